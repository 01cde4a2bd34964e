"""Configuration: YAML file + `--set key=value` overrides -> plain, typed dataclasses.

Every section is a dataclass with defaults that make the CPU tiny run work; a YAML file only names
what it changes. Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from delocate.common.sections import (ConfigError, DemoConfig, EvalConfig, ForgeConfig,
                                      OnlineConfig, PoolConfig, PreprocessConfig, ReleaseConfig,
                                      SynthConfig)
from delocate.common.training_sections import (ClipInputConfig, DadfConfig, FinetuneConfig,
                                               LocalizeConfig, RecoverConfig, TrainConfig)

# the sections are defined in common/sections.py and common/training_sections.py and read through
# here, with the root and the loader
__all__ = ["ClipInputConfig", "Config", "ConfigError", "DadfConfig", "DemoConfig", "EvalConfig",
           "FinetuneConfig", "ForgeConfig", "LocalizeConfig", "OnlineConfig", "PoolConfig",
           "PreprocessConfig", "RecoverConfig", "ReleaseConfig", "SynthConfig", "TrainConfig",
           "config_to_dict", "load_config", "save_config"]


@dataclass
class Config:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    forge: ForgeConfig = field(default_factory=ForgeConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    recover: RecoverConfig = field(default_factory=RecoverConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    dadf: DadfConfig = field(default_factory=DadfConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    # fake methods left out of every training stage (to test on manipulations never seen)
    holdout_methods: list[str] = field(default_factory=list)
    seed: int = 0

    def stage2_input_size(self, size: int | None = None) -> int:
        """The side stage 2 reads frames at for `size` (default evaluate.input_size): 0 means
        the size it trained at, localize.img_size."""
        size = self.evaluate.input_size if size is None else size
        return size or self.localize.img_size


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(annotation, value, key)
    if origin is list:
        (item_type,) = typing.get_args(annotation) or (Any,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item_type, key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from None
    return value


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        where = prefix or "config"
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read `path` (YAML), apply `key.sub=value` overrides, return a validated Config."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        tree = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return _build(Config, tree)


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config (every default spelled out) next to a run's outputs."""
    from delocate.common.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
