"""Training a stage: its data, the engine's fit, the checkpoint chosen on validation, a summary.

recover, finetune, localize and the DADF head each build their model and their data and hand them
to `train_stage`; what differs between them is their StageData, loss, validation function and the
extra fields of their summary. Validation never touches a test split (the data sources make the
splits), and a stage without validation data keeps the engine's fallback (the training loss).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from delocate.common.config import TrainConfig
from delocate.common.io import atomic_write_json
from delocate.common.log import info
from delocate.models.registry import ModelSpec
from delocate.training.checkpoints import start_from
from delocate.training.engine import Engine, EngineResult


@dataclass
class StageData:
    """What a stage trains and validates on."""
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None = None
    sample_weights: np.ndarray | None = None  # per training item, e.g. class balancing
    index_fn: Callable[[int, int], list[int]] | None = None  # (epoch, count) -> item order
    description: str = ""  # one line for the log: what the data is


@dataclass
class TrainSummary:
    """A trained stage: where its selected checkpoint is and why, plus the stage's own facts."""
    stage: str
    best_checkpoint: str
    best_epoch: int | None
    select_key: str
    best_metric: float | None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The `<stage>_summary.json` of the run dir."""
        return {"best_checkpoint": self.best_checkpoint, "best_epoch": self.best_epoch,
                f"best_{self.select_key}": self.best_metric, **self.extra}


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weights that draw each class equally often, whatever the class ratio."""
    labels = np.asarray(labels)
    return 1.0 / np.bincount(labels)[labels]


def train_stage(name: str, model: torch.nn.Module, spec: ModelSpec, run_dir: str | Path,
                cfg: TrainConfig, data: StageData, loss_fn: Callable,
                validate: Callable[[torch.nn.Module, object], dict] | None = None,
                select_key: str = "val_loss", select_mode: str = "min",
                optimizer_factory: Callable | None = None, wrap_ddp: bool = True,
                extra: dict | None = None,
                after_fit: Callable[[Engine, EngineResult], dict] | None = None) -> TrainSummary:
    """Fit `model` on `data` (starting from `cfg.init_from`'s weights when set; resuming when the
    run dir holds a state), select the checkpoint on `validate(model, data.val)[select_key]`,
    write RUN_DIR/<name>_summary.json and return it.
    The stage's own summary fields: `extra` (known before training) and what
    `after_fit(engine, result)` returns (measured on the trained model)."""
    if cfg.init_from:  # after the stage's own initialisation (e.g. ImageNet): the checkpoint wins
        loaded = start_from(model, cfg.init_from, spec)
        info(f"{name}: starts from {cfg.init_from} ({loaded} tensors)")
    if data.description:
        info(f"{name}: {data.description}")
    evaluate_fn = (lambda m: validate(m, data.val)) \
        if validate is not None and data.val is not None else None
    engine = Engine(name, model, run_dir, cfg, data.train, loss_fn, spec,
                    evaluate_fn=evaluate_fn, select_key=select_key, select_mode=select_mode,
                    sample_weights=data.sample_weights, optimizer_factory=optimizer_factory,
                    index_fn=data.index_fn, wrap_ddp=wrap_ddp)
    result = engine.fit()
    fields = {**(extra or {}), **(after_fit(engine, result) if after_fit is not None else {})}
    summary = TrainSummary(name, str(result.best_path), result.best_epoch, select_key,
                           result.best_metric, fields)
    atomic_write_json(Path(run_dir) / f"{name}_summary.json", summary.to_dict())
    return summary
