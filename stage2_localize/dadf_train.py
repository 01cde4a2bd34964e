"""Training the DADF head as a stage-2 branch (dadf.enabled, or --stage dadf alone), on the same
frames, masks and splits as stage 2, with the shared engine; selection on validation AUC."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.config import Config
from common.io import atomic_write_json
from common.log import info
from models.dadf import dadf_loss
from models.registry import build_model
from stage1_recover.data import ClipStore, labelled_splits
from stage1_recover.engine import Engine, open_run
from stage2_localize.localize import FrameDataset, validation_metrics


def dadf_spec(config: Config) -> dict:
    cfg = config.dadf
    return {"builder": "dadf", "kwargs": {"variant": cfg.variant, "img_size": cfg.img_size,
                                          "adapter_variant": cfg.adapter_variant}}


def _loss(model, batch):
    out = model(batch["input"], batch["label"])
    return dadf_loss(out, batch["mask"], batch["label"])


def run_dadf(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    cfg = config.dadf
    cache, run_dir = open_run(cache, run_dir, config)
    train_rows, val_rows, _ = labelled_splits(cache, config.holdout_methods, "the DADF head")
    torch.manual_seed(cfg.seed)
    spec = dadf_spec(config)
    model = build_model(spec)
    if cfg.checkpoint:
        state = torch.load(cfg.checkpoint, map_location="cpu", weights_only=True)
        model.load_sam_state_dict(state)
        info(f"dadf: SAM weights loaded from {cfg.checkpoint}")
    trainable, sam_total, share = model.trainable_share()
    print(f"dadf: {trainable:,} trainable parameters = {share:.2%} of SAM's {sam_total:,} "
          f"({cfg.variant} at {cfg.img_size} px; the paper reports 18.64% for SAM)")
    store = ClipStore(cache)
    frames, size = config.recover.num_frames, config.localize.img_size
    train_set = FrameDataset(train_rows, store, frames, size, None, train=True, seed=cfg.seed)
    val_set = FrameDataset(val_rows, store, min(4, frames), size, None, train=False, seed=cfg.seed)
    labels = np.array([train_rows[r].label for r, _ in train_set.items])
    has_val = len({r.label for r in val_rows}) == 2
    engine = Engine("dadf", model, run_dir, cfg, train_set, _loss, spec,
                    evaluate_fn=(lambda m: validation_metrics(m, val_set)) if has_val else None,
                    select_key="val_select", select_mode="max",
                    sample_weights=1.0 / np.bincount(labels)[labels])
    result = engine.fit()
    summary = {"best_checkpoint": str(result.best_path), "best_epoch": result.best_epoch,
               "best_val_select": result.best_metric, "trainable_parameters": trainable,
               "sam_parameters": sam_total, "trainable_share": share}
    atomic_write_json(run_dir / "dadf_summary.json", summary)
    return summary
