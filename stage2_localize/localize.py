"""Stage 2 training: mapping module + SE-UNet-SCSE localizer + classifier, in meta episodes.

Per frame of the clip frames stage 1 uses: the face is mapped to a small "real-looking" face,
regressed onto stage 1's recovered face (L_map); the localizer predicts the forgery mask (L_loc); a
classifier on mapping + localizer features gives the frame score s2 (L_cls). Recovered faces are
computed once from the stage-1 MAE checkpoint and cached in the run dir.
"""
from __future__ import annotations

import hashlib
from itertools import cycle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from delocate.common.config import Config, LocalizeConfig
from delocate.common.io import atomic_save_npz
from delocate.common.log import info, progress
from delocate.meta.step import meta_step_loss
from delocate.models.pretrained import load_imagenet_encoder, weights_file
from delocate.models.registry import ModelSpec, build_model
from delocate.preprocessing.face_pool import is_pool
from delocate.preprocessing.regions import PART_NAMES
from delocate.stage2_localize.dadf_train import run_dadf
from delocate.stage2_localize.frame_sets import frame_sets
from delocate.stage2_localize.losses import stage2_loss
from delocate.stage2_localize.validation import validation_metrics
from delocate.training.checkpoints import load_model
from delocate.training.engine import default_device, open_run
from delocate.training.inputs import ClipRow, ClipStore, VideoClipDataset
from delocate.training.masking import TokenMasker
from delocate.training.stage import train_stage


def stage2_spec(cfg: LocalizeConfig) -> ModelSpec:
    return ModelSpec("stage2_net", {
        "encoder_name": cfg.encoder, "map_size": cfg.map_size, "use_mapping": cfg.use_mapping,
        "use_localizer": cfg.use_localizer, "decoder_channels": list(cfg.decoder_channels),
        # named only when not the default: runs from before the option still resume and start from
        **({"cls_pool": cfg.cls_pool} if cfg.cls_pool != "avg" else {})})


# --- recovered faces (stage 1 -> stage 2 targets) -------------------------------------------------

@torch.no_grad()
def recovered_faces(run_dir: Path, cache: Path, rows: list[ClipRow], config: Config,
                    store: ClipStore) -> dict[str, np.ndarray]:
    """clip id -> float16 [T1, 3, m, m]: each of stage 1's frames with all three facial parts
    recovered by the MAE (masked one part at a time, composited), at the mapped-face size.
    Cached in RUN_DIR/recovered_faces.npz, keyed by the stage-1 checkpoint and the clips."""
    cfg1, cfg2 = config.recover, config.localize
    checkpoint = run_dir / "recover_best.safetensors"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} not found: run --stage recover on this run dir "
                                "first (or set localize.use_stage1=false for the ablation)")
    digest = hashlib.sha1(checkpoint.read_bytes()[:1 << 20]).hexdigest()[:12]
    cache_file = run_dir / "recovered_faces.npz"
    wanted = {r.clip for r in rows}
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as saved:
            if str(saved["digest"]) == f"{digest}:{cfg2.map_size}" and \
                    wanted <= set(saved.files) - {"digest"}:
                return {k: saved[k] for k in wanted}
    device = default_device()
    mae, _ = load_model(checkpoint, device)
    out = {}
    maskers = [TokenMasker(f"roi:{part}", mae.encoder.grid, cfg1.patch_size, cfg1.tubelet_size,
                           cfg1.mask_ratio, cfg1.roi_budget) for part in PART_NAMES]
    datasets = [VideoClipDataset(cache, rows, cfg1.num_frames, cfg1.img_size, m, train=False,
                                 seed=cfg1.seed, store=store) for m in maskers]
    for index in progress(range(len(rows)), "localize: recovered faces", unit="clip"):
        items = [d[index] for d in datasets]
        video = items[0]["video"][None].to(device)
        patches = mae.patchify(video).clone()
        for item in items:
            mask = item["token_mask"][None].to(device)
            _, pred = mae(video, mask)
            patches[mask] = pred[mask].to(patches.dtype)
        recovered = mae.unpatchify(patches)[0].transpose(0, 1)  # [T, 3, H, W]
        small = torch.nn.functional.interpolate(recovered.float(), size=(cfg2.map_size,) * 2,
                                                mode="area")
        out[rows[index].clip] = small.cpu().numpy().astype(np.float16)
    atomic_save_npz(cache_file, digest=np.array(f"{digest}:{cfg2.map_size}"), **out)
    return out


# --- training -------------------------------------------------------------------------------------

ENCODER = "localizer.unet.encoder."  # the ImageNet-initialised part of Stage2Net, by name


def learning_rate_groups(model, cfg: LocalizeConfig) -> list[dict]:
    """The localizer's encoder at encoder_lr_scale x lr, everything else at lr (the engine's
    schedule scales each group's rate by the same factor)."""
    named = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    if cfg.encoder_lr_scale == 1:  # one group, as before the option: earlier runs' states resume
        return [{"params": [param for _, param in named], "lr": cfg.lr}]
    groups = [{"params": [p for name, p in named if not name.startswith(ENCODER)], "lr": cfg.lr},
              {"params": [p for name, p in named if name.startswith(ENCODER)],
               "lr": cfg.lr * cfg.encoder_lr_scale}]
    return [group for group in groups if group["params"]]


def optimizer_factory(cfg: LocalizeConfig):
    def make(model):
        params = learning_rate_groups(model, cfg)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        raise ValueError(f"localize.optimizer must be sgd or adamw, got {cfg.optimizer!r}")
    return make


def batch_at(batch: dict, size: int) -> dict:
    """The batch's faces and target masks resized to size x size (multi-scale training); the
    masks stay binary, cut at half as at evaluation."""
    if batch["input"].shape[-1] == size:
        return batch

    def resized(x):
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
    return {**batch, "input": resized(batch["input"]),
            "mask": (resized(batch["mask"]) > 0.5).float()}


def make_loss(cfg: LocalizeConfig):
    # the sides in turn, not drawn: every size gets its share of each epoch, resumed or not
    sizes = cycle(cfg.train_sizes) if cfg.train_sizes else None

    def loss_of(out, batch):
        total, _ = stage2_loss(out, batch, cfg.loc_loss, cfg.w_map, cfg.w_loc, cfg.w_cls,
                               cfg.w_pair)
        return total

    def plain(model, batch):
        if sizes is not None:
            batch = batch_at(batch, next(sizes))
        return loss_of(model(batch["input"]), batch), {}

    def meta(model, batch):
        module = getattr(model, "module", model)
        half = batch["input"].shape[0] // 2
        first = {k: v[:half] for k, v in batch.items() if torch.is_tensor(v)}
        second = {k: v[half:] for k, v in batch.items() if torch.is_tensor(v)}
        return meta_step_loss(module, loss_of, first, second, cfg.inner_lr,
                              cfg.meta_test_weight, cfg.first_order)

    return meta if cfg.meta else plain


def run_localize(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    """Train stage 2 on `cache`: a FaceClip cache, or a face pool (online pairs)."""
    cfg = config.localize
    if cfg.w_pair and not is_pool(cache):
        raise ValueError(f"localize.w_pair ranks each online fake against its own real frame: "
                         f"train on a face pool (--stage pool), not the FaceClip cache {cache}")
    cache, run_dir = open_run(cache, run_dir, config)
    torch.manual_seed(cfg.seed)
    spec = stage2_spec(cfg)
    model = build_model(spec)
    if cfg.encoder_weights == "imagenet" and cfg.use_localizer:
        loaded = load_imagenet_encoder(model.localizer.unet.encoder, cfg.encoder)
        info(f"localize: {cfg.encoder} starts from ImageNet weights ({loaded} tensors, "
             f"{weights_file(cfg.encoder).name})")
    wants_target = cfg.use_stage1 and cfg.use_mapping
    sets = frame_sets(cache, config, cfg.img_size, model.input_norm, cfg.seed, cfg.batch_size,
                      cfg.meta, cfg.num_workers,
                      (lambda rows, store: recovered_faces(run_dir, cache, rows, config, store))
                      if wants_target else None)
    methods = sets.methods
    sets.description = (
        f"{sets.description}; methods {methods or 'all'}; meta-learning "
        f"{'on' if cfg.meta else 'off'}, mapping {'on' if cfg.use_mapping else 'off'}, "
        f"localizer {'on' if cfg.use_localizer else 'off'}, stage-1 target "
        f"{'on' if wants_target else 'off'}")
    extra = {"train_methods": sorted(methods or []),
             "ablation": {"meta": cfg.meta, "use_mapping": cfg.use_mapping,
                          "use_localizer": cfg.use_localizer, "use_stage1": cfg.use_stage1}}
    summary = train_stage("localize", model, spec, run_dir, cfg, sets, make_loss(cfg),
                          validate=validation_metrics, select_key="val_select", select_mode="max",
                          optimizer_factory=optimizer_factory(cfg), wrap_ddp=not cfg.meta,
                          extra=extra).to_dict()
    if config.dadf.enabled:  # the DADF head trains as a second stage-2 branch
        summary["dadf"] = run_dadf(cache, run_dir, config)
    return summary
