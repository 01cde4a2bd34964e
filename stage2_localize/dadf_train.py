"""Training the DADF head as a stage-2 branch (dadf.enabled, or --stage dadf alone), on the same
frames, masks and splits as stage 2 (a cache, or online pairs from a face pool), with the shared
engine; selection on validation AUC and IoU."""
from __future__ import annotations

from pathlib import Path

import torch

from common.config import Config
from common.io import atomic_write_json
from common.log import info
from models.dadf import dadf_loss
from models.registry import build_model
from stage1_recover.engine import Engine, open_run
from stage2_localize.frame_sets import frame_sets
from stage2_localize.localize import validation_metrics


def dadf_spec(config: Config) -> dict:
    cfg = config.dadf
    return {"builder": "dadf", "kwargs": {"variant": cfg.variant, "img_size": cfg.img_size,
                                          "adapter_variant": cfg.adapter_variant}}


def _loss(model, batch):
    out = model(batch["input"], batch["label"])
    return dadf_loss(out, batch["mask"], batch["label"])


def run_dadf(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    """Train the DADF head on `cache`: a FaceClip cache, or a face pool (online pairs)."""
    cfg = config.dadf
    cache, run_dir = open_run(cache, run_dir, config)
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
    sets = frame_sets(cache, config, config.localize.img_size, "imagenet", cfg.seed, cfg.batch_size,
                      meta=False, num_workers=cfg.num_workers)
    info(f"dadf: {sets.description}")
    engine = Engine("dadf", model, run_dir, cfg, sets.train, _loss, spec,
                    evaluate_fn=(lambda m: validation_metrics(m, sets.val))
                    if sets.val is not None else None,
                    select_key="val_select", select_mode="max", sample_weights=sets.sample_weights,
                    index_fn=sets.index_fn)
    result = engine.fit()
    summary = {"best_checkpoint": str(result.best_path), "best_epoch": result.best_epoch,
               "best_val_select": result.best_metric, "trainable_parameters": trainable,
               "sam_parameters": sam_total, "trainable_share": share}
    atomic_write_json(run_dir / "dadf_summary.json", summary)
    return summary
