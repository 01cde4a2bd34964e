"""Stage 2 training: mapping module + SE-UNet-SCSE localizer + classifier, in meta episodes.

Per frame of the clip frames stage 1 uses: the face is mapped to a small "real-looking" face,
regressed onto stage 1's recovered face (L_map); the localizer predicts the forgery mask (L_loc); a
classifier on mapping + localizer features gives the frame score s2 (L_cls). Recovered faces are
computed once from the stage-1 MAE checkpoint and cached in the run dir.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from common.config import Config, LocalizeConfig
from common.io import atomic_save_npz, atomic_write_json, load_checkpoint
from common.log import info, progress
from evaluation.metrics import roc_auc
from meta.splits import split_by_method
from meta.step import meta_step_loss
from models.registry import build_model
from preprocessing.regions import PART_NAMES
from stage1_recover.data import (ClipRow, ClipStore, VideoClipDataset, frame_positions, normalize,
                                 labelled_splits, resize_frames)
from stage1_recover.engine import Engine, default_device, open_run
from stage1_recover.masking import TokenMasker
from stage2_localize.losses import stage2_loss


def stage2_spec(cfg: LocalizeConfig) -> dict:
    return {"builder": "stage2_net", "kwargs": {
        "encoder_name": cfg.encoder, "map_size": cfg.map_size, "use_mapping": cfg.use_mapping,
        "use_localizer": cfg.use_localizer}}


# --- recovered faces (stage 1 -> stage 2 targets) --------------------------------------------------

@torch.no_grad()
def recovered_faces(run_dir: Path, cache: Path, rows: list[ClipRow], config: Config,
                    store: ClipStore) -> dict[str, np.ndarray]:
    """clip id -> float16 [T1, 3, m, m]: each of stage 1's frames with all three facial parts
    recovered by the MAE (masked one part at a time, composited), at the mapped-face size.
    Cached in RUN_DIR/recovered_faces.npz, keyed by the stage-1 checkpoint and the clips."""
    cfg1, cfg2 = config.recover, config.localize
    checkpoint = run_dir / "recover_best.safetensors"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} not found: run --stage recover on this run dir first "
                                "(or set localize.use_stage1=false for the ablation)")
    digest = hashlib.sha1(checkpoint.read_bytes()[:1 << 20]).hexdigest()[:12]
    cache_file = run_dir / "recovered_faces.npz"
    wanted = {r.clip for r in rows}
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as saved:
            if str(saved["digest"]) == f"{digest}:{cfg2.map_size}" and \
                    wanted <= set(saved.files) - {"digest"}:
                return {k: saved[k] for k in wanted}
    tensors, sidecar = load_checkpoint(checkpoint)
    mae = build_model(sidecar)
    mae.load_state_dict(tensors)
    device = default_device()
    mae.to(device).eval()
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


# --- per-frame dataset -----------------------------------------------------------------------------

class FrameDataset(Dataset):
    """Items: one frame of one clip (the frames stage 1 looks at): input face, mask, recovered face."""

    def __init__(self, rows: list[ClipRow], store: ClipStore, frames_per_clip: int, img_size: int,
                 recovered: dict[str, np.ndarray] | None, train: bool, seed: int = 0):
        self.rows, self.store, self.img_size = rows, store, img_size
        self.frames_per_clip, self.recovered = frames_per_clip, recovered
        self.train, self.seed, self.epoch = train, seed, 0
        self.items = [(r, k) for r in range(len(rows)) for k in range(frames_per_clip)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        row_index, k = self.items[index]
        row = self.rows[row_index]
        clip = self.store.get(row.clip)
        t = int(frame_positions(clip.num_frames, self.frames_per_clip, None)[k])
        face = resize_frames(clip.frames[t:t + 1], self.img_size)
        mask = np.zeros((1, clip.size, clip.size), np.uint8) if clip.mask is None else \
            clip.mask[t:t + 1]
        mask = resize_frames(mask[..., None].repeat(3, -1), self.img_size)[..., 0]
        item = {"input": normalize(face)[:, 0], "mask": torch.from_numpy(
            (mask > 127).astype(np.float32)), "label": torch.tensor(float(row.label)),
            "index": index}
        if self.recovered is not None:
            item["recovered"] = torch.from_numpy(self.recovered[row.clip][k].astype(np.float32))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.train and rng.random() < 0.5:  # flip face, mask and target together
            for key in ("input", "mask", "recovered"):
                if key in item:
                    item[key] = item[key].flip(-1)
        return item


# --- training --------------------------------------------------------------------------------------

def _optimizer(cfg: LocalizeConfig):
    def make(model):
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        raise ValueError(f"localize.optimizer must be sgd or adamw, got {cfg.optimizer!r}")
    return make


def make_loss(cfg: LocalizeConfig):
    def loss_of(out, batch):
        total, _ = stage2_loss(out, batch, cfg.loc_loss, cfg.w_map, cfg.w_loc, cfg.w_cls)
        return total

    def plain(model, batch):
        return loss_of(model(batch["input"]), batch), {}

    def meta(model, batch):
        module = getattr(model, "module", model)
        half = batch["input"].shape[0] // 2
        first = {k: v[:half] for k, v in batch.items() if torch.is_tensor(v)}
        second = {k: v[half:] for k, v in batch.items() if torch.is_tensor(v)}
        return meta_step_loss(module, loss_of, first, second, cfg.inner_lr,
                              cfg.meta_test_weight, cfg.first_order)

    return meta if cfg.meta else plain


def meta_index_fn(dataset: FrameDataset, cfg: LocalizeConfig):
    """Each batch: first half from the meta-train side, second half from the meta-test side of the
    epoch's split (meta/splits.py); real and fake drawn equally often on each side."""
    rows = dataset.rows
    per_clip = dataset.frames_per_clip

    def index_fn(epoch: int, count: int) -> list[int]:
        rng = np.random.default_rng([cfg.seed, epoch, 11])
        split = split_by_method([r.method for r in rows], [r.source or r.clip for r in rows],
                                [r.label for r in rows], rng)
        half = cfg.batch_size // 2
        pools = []
        for side in (split.train, split.test):
            items = np.array([i * per_clip + k for i in side for k in range(per_clip)])
            labels = np.array([rows[i].label for i in side for _ in range(per_clip)])
            weights = 1.0 / np.bincount(labels, minlength=2)[labels]
            pools.append((items, weights / weights.sum()))
        order = []
        for _ in range(count // cfg.batch_size):
            for items, p in pools:
                order.extend(rng.choice(items, half, p=p).tolist())
        return order

    return index_fn


@torch.no_grad()
def frame_outputs(model, dataset: FrameDataset, batch_size: int = 16) -> dict[str, np.ndarray]:
    """s2 per item and mask probabilities [N, S, S] (at the stage-2 input size)."""
    device = next(model.parameters()).device
    scores, masks = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        out = model(torch.stack([it["input"] for it in items]).to(device))
        scores.append(torch.sigmoid(out["cls_logit"].float()).cpu().numpy())
        masks.append(torch.sigmoid(out["mask_logits"].float())[:, 0].cpu().numpy())
    return {"s2": np.concatenate(scores), "mask": np.concatenate(masks)}


def validation_metrics(model, dataset: FrameDataset) -> dict:
    out = frame_outputs(model, dataset)
    labels = np.array([dataset.rows[r].label for r, _ in dataset.items])
    gt = torch.stack([dataset[i]["mask"][0] for i in range(len(dataset))]).numpy() > 0.5
    pred = out["mask"] > 0.5
    inter = (pred & gt).sum(axis=(1, 2))
    union = (pred | gt).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    auc = roc_auc(labels, out["s2"])
    mean_iou = float(iou[labels == 1].mean()) if (labels == 1).any() else float("nan")
    # stage 2 both detects and localizes: select on both (an epoch whose AUC is noise but whose
    # masks are empty must not win)
    parts = [v for v in (auc, mean_iou) if not np.isnan(v)]
    return {"val_auc": auc, "val_iou": mean_iou,
            "val_select": float(np.mean(parts)) if parts else float("nan")}


def run_localize(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    cfg = config.localize
    cache, run_dir = open_run(cache, run_dir, config)
    train_rows, val_rows, methods = labelled_splits(cache, config.holdout_methods, "stage 2")
    store = ClipStore(cache)
    frames = config.recover.num_frames
    recovered = None
    if cfg.use_stage1 and cfg.use_mapping:
        recovered = recovered_faces(run_dir, cache, train_rows, config, store)
    torch.manual_seed(cfg.seed)
    spec = stage2_spec(cfg)
    model = build_model(spec)
    train_set = FrameDataset(train_rows, store, frames, cfg.img_size, recovered, train=True,
                             seed=cfg.seed)
    # validation looks at 4 of each clip's frames: enough to rank epochs, half the cost
    val_set = FrameDataset(val_rows, store, min(4, frames), cfg.img_size, None, train=False,
                           seed=cfg.seed)
    labels = np.array([train_rows[r].label for r, _ in train_set.items])
    info(f"localize: {len(train_rows)} training clips ({len(train_set)} frames; methods "
         f"{sorted(methods) if methods else 'all'}), {len(val_rows)} validation clips; meta-learning "
         f"{'on' if cfg.meta else 'off'}, mapping {'on' if cfg.use_mapping else 'off'}, "
         f"localizer {'on' if cfg.use_localizer else 'off'}, stage-1 target "
         f"{'on' if recovered is not None else 'off'}")
    has_val = len({r.label for r in val_rows}) == 2
    engine = Engine(
        "localize", model, run_dir, cfg, train_set, make_loss(cfg), spec,
        evaluate_fn=(lambda m: validation_metrics(m, val_set)) if has_val else None,
        select_key="val_select", select_mode="max",
        sample_weights=None if cfg.meta else 1.0 / np.bincount(labels)[labels],
        optimizer_factory=_optimizer(cfg),
        index_fn=meta_index_fn(train_set, cfg) if cfg.meta else None, wrap_ddp=not cfg.meta)
    result = engine.fit()
    summary = {"best_checkpoint": str(result.best_path), "best_epoch": result.best_epoch,
               "best_val_select": result.best_metric, "train_methods": sorted(methods or []),
               "ablation": {"meta": cfg.meta, "use_mapping": cfg.use_mapping,
                            "use_localizer": cfg.use_localizer, "use_stage1": cfg.use_stage1}}
    atomic_write_json(run_dir / "localize_summary.json", summary)
    if config.dadf.enabled:  # the DADF head trains as a second stage-2 branch
        from stage2_localize.dadf_train import run_dadf

        summary["dadf"] = run_dadf(cache, run_dir, config)
    return summary

