"""Config values with a fixed set of choices are checked where the config is read, with the key and
the choices in the message, before any stage starts."""
import pytest

from delocate.common.config import ConfigError, load_config
from delocate.run_pipeline import main

CHOICES = ["preprocess.frame_sampling", "recover.mask_strategy", "finetune.tuning",
           "localize.loc_loss", "localize.optimizer", "localize.encoder_weights", "dadf.variant",
           "dadf.adapter_variant", "evaluate.aggregator", "evaluate.fusion", "online.codec"]


@pytest.mark.parametrize("key", CHOICES)
def test_a_value_outside_the_choices_is_a_config_error(key):
    with pytest.raises(ConfigError, match=f"{key} must be one of .*; got 'nonsense'"):
        load_config(None, [f"{key}=nonsense"])


def test_the_defaults_and_shipped_configs_are_valid():
    from conftest import ROOT

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_the_cli_exits_2_naming_the_key(tmp_path, capsys):
    code = main(["--stage", "evaluate", "--data", str(tmp_path), "--run", str(tmp_path),
                 "--set", "evaluate.aggregator=median"])
    assert code == 2
    assert "evaluate.aggregator must be one of mean, max, confident" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["200", "-32"])
def test_an_input_size_the_localizer_cannot_read_is_a_config_error(size):
    with pytest.raises(ConfigError, match="evaluate.input_size .*a multiple of 32"):
        load_config(None, [f"evaluate.input_size={size}"])
