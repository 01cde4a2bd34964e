"""Training the DADF head as a stage-2 branch (dadf.enabled, or --stage dadf alone), on the same
frames, masks and splits as stage 2 (a cache, or online pairs from a face pool), with the shared
engine; selection on validation AUC and IoU."""
from __future__ import annotations

from pathlib import Path

import torch

from delocate.common.config import Config
from delocate.common.log import info
from delocate.models.dadf import dadf_loss
from delocate.models.registry import ModelSpec, build_model
from delocate.stage2_localize.frame_sets import frame_sets
from delocate.stage2_localize.validation import validation_metrics
from delocate.training.engine import open_run
from delocate.training.stage import train_stage


def dadf_spec(config: Config) -> ModelSpec:
    cfg = config.dadf
    return ModelSpec("dadf", {"variant": cfg.variant, "img_size": cfg.img_size,
                              "adapter_variant": cfg.adapter_variant})


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
    extra = {"trainable_parameters": trainable, "sam_parameters": sam_total,
             "trainable_share": share}
    return train_stage("dadf", model, spec, run_dir, cfg, sets, _loss, validate=validation_metrics,
                       select_key="val_select", select_mode="max",
                       extra=extra).to_dict()
