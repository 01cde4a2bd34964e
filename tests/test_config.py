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


@pytest.mark.parametrize("setting", ["input_size=200", "input_size=-32", "input_sizes=[0,200]"])
def test_an_input_size_the_localizer_cannot_read_is_a_config_error(setting):
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=f"evaluate.{key} .*a multiple of 32"):
        load_config(None, [f"evaluate.{setting}"])


@pytest.mark.parametrize("overrides", [["localize.train_sizes=[128,150]"],
                                       ["localize.train_sizes=[128,160]", "localize.meta=true"]])
def test_multi_scale_training_the_localizer_cannot_do_is_a_config_error(overrides):
    with pytest.raises(ConfigError, match="localize.train_sizes"):
        load_config(None, ["localize.use_mapping=false", "localize.meta=false", *overrides])


@pytest.mark.parametrize("value", ["-1", "255"])
def test_online_min_change_out_of_range_is_a_config_error(value):
    with pytest.raises(ConfigError, match="online.min_change"):
        load_config(None, [f"online.min_change={value}"])


@pytest.mark.parametrize("key", ["degrade_share", "post_process_share", "relight_share"])
@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_online_shares_out_of_range_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"online.{key}"):
        load_config(None, [f"online.{key}={value}"])
