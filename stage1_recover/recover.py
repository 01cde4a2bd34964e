"""Stage 1 pretraining: the space-time MAE learns to recover masked facial parts of REAL clips.

After training (best checkpoint on the validation clips' masked-patch loss) it writes, for a few
validation clips, a PNG grid (original / masked / recovered frames), and measures the reconstruction
error of real clips against fakes made from the same sources: the gap stage 2 feeds on.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from delocate.common.config import Config, RecoverConfig
from delocate.common.io import atomic_write_bytes
from delocate.common.log import info
from delocate.models.registry import ModelSpec, build_model
from delocate.models.st_mae import SpaceTimeMAE
from delocate.preprocessing.regions import PART_NAMES
from delocate.preprocessing.sample_cache import ClipCache
from delocate.training.checkpoints import load_model
from delocate.training.engine import default_device, open_run
from delocate.training.inputs import ClipRow, ClipStore, VideoClipDataset, denormalize, select_rows
from delocate.training.masking import TokenMasker
from delocate.training.stage import StageData, train_stage


def input_kwargs(cfg) -> dict:
    return {"size": cfg.model, "num_frames": cfg.num_frames, "img_size": cfg.img_size,
            "patch_size": cfg.patch_size, "tubelet_size": cfg.tubelet_size}


def make_masker(cfg: RecoverConfig, model: SpaceTimeMAE, strategy: str | None = None
                ) -> TokenMasker:
    return TokenMasker(strategy or cfg.mask_strategy, model.encoder.grid, cfg.patch_size,
                       cfg.tubelet_size, cfg.mask_ratio, cfg.roi_budget)


def mae_loss(model, batch):
    loss, _ = model(batch["video"], batch["token_mask"])
    return loss, {}


def context_mean_fill(model: SpaceTimeMAE, video: torch.Tensor, token_mask: torch.Tensor
                      ) -> torch.Tensor:
    """A trivial recovery, every patch filled with the mean colour of the clip's visible patches:
    [B, 1, patch_dim]. The reference a trained MAE must beat on unseen people, or it has learned
    nothing beyond a face's average colour."""
    channels = video.shape[1]
    # patch vectors are (u p q c): channel last, so a colour tiles over the vector
    pixels = model.patchify(video).unflatten(-1, (-1, channels))  # [B, N, pixels, C]
    visible = (~token_mask)[..., None, None].to(pixels.dtype)
    colour = (pixels * visible).sum(dim=(1, 2)) / (visible.sum(dim=(1, 2)) * pixels.shape[2])
    return colour.repeat(1, model.patch_dim // channels)[:, None]


@torch.no_grad()
def recovery_errors(model: SpaceTimeMAE, dataset: VideoClipDataset, batch_size: int = 8,
                    context_mean: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Masked-patch MSE of every item of `dataset` (its masker decides the masks): float [N] for
    the MAE's recovery and, with context_mean, for context_mean_fill on the same items."""
    device = next(model.parameters()).device
    errors, references = [], []

    def masked_mse(prediction, target, mask):
        per_patch = ((prediction - target) ** 2).mean(dim=-1)
        return ((per_patch * mask).sum(1) / mask.sum(1)).cpu().numpy()

    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        video = torch.stack([it["video"] for it in items]).to(device)
        mask = torch.stack([it["token_mask"] for it in items]).to(device)
        _, pred = model(video, mask)
        target = model.target(video)
        errors.append(masked_mse(pred.float(), target, mask))
        if context_mean:
            references.append(masked_mse(context_mean_fill(model, video, mask), target, mask))
    if not errors:
        return np.zeros(0), (np.zeros(0) if context_mean else None)
    return np.concatenate(errors), (np.concatenate(references) if context_mean else None)


def per_clip_error(model: SpaceTimeMAE, dataset: VideoClipDataset) -> np.ndarray:
    return recovery_errors(model, dataset)[0]


def validation_loss(model: SpaceTimeMAE, dataset: VideoClipDataset) -> dict:
    return {"val_loss": float(per_clip_error(model, dataset).mean())}


def save_grid(model: SpaceTimeMAE, dataset: VideoClipDataset, index: int, path: Path) -> None:
    """PNG: rows = original, masked (grey), recovered; columns = frames."""
    item = dataset[index]
    device = next(model.parameters()).device
    video, mask = item["video"][None].to(device), item["token_mask"][None].to(device)
    recovered = denormalize(model.recover(video, mask)[0])
    original = denormalize(item["video"])
    grey = model.patchify(video).clone()
    grey[mask] = 0.0  # 0 in normalized space = the dataset mean colour
    masked = denormalize(model.unpatchify(grey)[0])
    rows = [np.concatenate(list(frames), axis=1) for frames in (original, masked, recovered)]
    image = cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", image)
    atomic_write_bytes(path, png.tobytes())


def reconstruction_gap(model: SpaceTimeMAE, cache: Path, cfg: RecoverConfig, split: str,
                       store: ClipStore) -> dict:
    """Mean recovery error of real clips vs fakes of the same sources, over the three parts."""
    rows = select_rows(cache, split)
    reals = {r.clip for r in rows if r.label == 0}
    kept: list[ClipRow] = []
    clips = ClipCache(cache)
    for row in rows:
        if row.label == 0:
            kept.append(row)
        elif clips.load(row.clip, frames=False).meta.get("source_clip") in reals:
            kept.append(row)
    if not any(r.label == 1 for r in kept):
        return {"split": split, "note": "no fakes of these real sources in this split"}
    errors, baseline = np.zeros(len(kept)), np.zeros(len(kept))
    for part in PART_NAMES:
        masker = make_masker(cfg, model, f"roi:{part}")
        data = VideoClipDataset(cache, kept, cfg.num_frames, cfg.img_size, masker, train=False,
                                seed=cfg.seed, store=store)
        mae_error, reference = recovery_errors(model, data, context_mean=True)
        errors += mae_error / len(PART_NAMES)
        baseline += reference / len(PART_NAMES)
    labels = np.array([r.label for r in kept])
    by_method = {m: float(errors[[r.method == m for r in kept]].mean())
                 for m in sorted({r.method for r in kept if r.label == 1})}
    return {"split": split, "real_clips": int((labels == 0).sum()),
            "fake_clips": int((labels == 1).sum()),
            "real_error": float(errors[labels == 0].mean()),
            "fake_error": float(errors[labels == 1].mean()), "fake_error_by_method": by_method,
            # the same real clips recovered as their visible mean colour (see context_mean_fill)
            "real_error_context_mean": float(baseline[labels == 0].mean())}


def gap_lines(gaps: list[dict]) -> list[str]:
    """One printable line per split of reconstruction_gap (splits without fakes are left out)."""
    lines = []
    for gap in gaps:
        if "real_error" not in gap:
            continue
        by_method = ", ".join(f"{m} {e:.4f}" for m, e in gap["fake_error_by_method"].items())
        lines.append(f"{gap['split']}: real clips {gap['real_error']:.4f} (filled with their "
                     f"visible mean colour instead: {gap['real_error_context_mean']:.4f}); fakes "
                     f"of the same sources {gap['fake_error']:.4f} ({by_method}; "
                     f"{gap['real_clips']} real, {gap['fake_clips']} fake clips)")
    return lines


def run_recover(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    cfg = config.recover
    cache, run_dir = open_run(cache, run_dir, config)
    train_rows = select_rows(cache, "train", labels={0})
    val_rows = select_rows(cache, "val", labels={0})
    if not train_rows:
        raise ValueError(f"{cache} has no real clips in its train split: stage 1 pretrains on "
                         "real clips only")
    if not val_rows:
        info("no real validation clips: model selection falls back to the training loss")
    torch.manual_seed(cfg.seed)
    spec = ModelSpec("st_mae", {**input_kwargs(cfg), "norm_pix_loss": cfg.norm_pix_loss})
    model = build_model(spec)
    masker = make_masker(cfg, model)
    store = ClipStore(cache)
    train_set = VideoClipDataset(cache, train_rows, cfg.num_frames, cfg.img_size, masker,
                                 train=True, seed=cfg.seed, store=store)
    val_set = VideoClipDataset(cache, val_rows, cfg.num_frames, cfg.img_size, masker,
                               train=False, seed=cfg.seed, store=store)
    about = (f"{len(train_rows)} real training clips, {len(val_rows)} validation clips, "
             f"{masker.num_masked}/{masker.num_tokens} tokens masked per clip "
             f"({cfg.mask_strategy})")
    # the same training clips with fixed frames and masks, scored before and after training
    probe = VideoClipDataset(cache, train_rows, cfg.num_frames, cfg.img_size, masker, train=False,
                             seed=cfg.seed, store=store)
    with torch.no_grad():
        initial_loss = float(per_clip_error(model.eval(), probe).mean())
        initial_val = validation_loss(model, val_set)["val_loss"] if val_rows else None
    model.train()

    def after_fit(engine, result) -> dict:
        engine.module.eval()  # the weights after the configured steps (the last epoch)
        trained_loss = float(per_clip_error(engine.module, probe).mean())
        best, _ = load_model(result.best_path, default_device())
        grids = []
        for index in range(min(cfg.grid_clips, len(val_set))):
            path = run_dir / f"recover_grid_{val_rows[index].clip}.png"
            save_grid(best, val_set, index, path)
            grids.append(str(path))
        gaps = [reconstruction_gap(best, cache, cfg, split, store) for split in ("val", "test")]
        # masked-patch loss on the training clips (fixed frames and masks): at init and after the
        # configured steps
        return {"train_loss_at_init": initial_loss, "train_loss_trained": trained_loss,
                "val_loss_at_init": initial_val, "grids": grids, "reconstruction_gap": gaps,
                "config": asdict(cfg)}

    data = StageData(train_set, val_set if val_rows else None, description=about)
    return train_stage("recover", model, spec, run_dir, cfg, data, mae_loss,
                       validate=validation_loss, after_fit=after_fit).to_dict()
