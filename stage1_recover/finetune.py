"""Stage 1 fine-tuning: drop the MAE decoder, train encoder + pooled linear head as a real/fake
classifier (binary cross-entropy); sigmoid(logit) is the clip score s1. Selection on validation AUC.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from delocate.common.config import Config
from delocate.common.io import load_checkpoint
from delocate.common.log import info
from delocate.common.metrics import roc_auc
from delocate.models.adapters import DeepFakeAdapterEncoder
from delocate.models.classifier import ClipClassifier
from delocate.models.registry import ModelSpec, build_model
from delocate.preprocessing.face_pool import is_pool
from delocate.stage1_recover.recover import input_kwargs
from delocate.training.engine import open_run
from delocate.training.inputs import ClipStore, VideoClipDataset, labelled_splits
from delocate.training.online_data import OnlineClips, online_index_fn, online_sets
from delocate.training.stage import StageData, balanced_weights, train_stage


class PretrainedKeysError(RuntimeError):
    pass


def load_pretrained_encoder(model: ClipClassifier, mae_checkpoint: Path) -> None:
    """Load the MAE's weights; exactly the classifier head's keys may be missing."""
    tensors, _ = load_checkpoint(mae_checkpoint)
    result = model.load_state_dict(tensors, strict=False)
    missing, unexpected = set(result.missing_keys), set(result.unexpected_keys)
    if missing != ClipClassifier.head_keys():
        raise PretrainedKeysError(
            f"{mae_checkpoint} does not fit the classifier: missing {sorted(missing)}, expected "
            f"exactly the head {sorted(ClipClassifier.head_keys())}")
    stray = sorted(k for k in unexpected if k.startswith("encoder."))
    if stray:
        raise PretrainedKeysError(f"{mae_checkpoint}: encoder keys the classifier lacks: {stray}")


def bce_loss(model, batch):
    logits = model(batch["video"])
    return F.binary_cross_entropy_with_logits(logits.float(), batch["label"]), {}


@torch.no_grad()
def clip_scores(model: ClipClassifier, dataset: VideoClipDataset, batch_size: int = 8
                ) -> np.ndarray:
    """s1 = sigmoid(logit) for every item of `dataset`: float [N] in [0, 1]."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        video = torch.stack([it["video"] for it in items]).to(device)
        out.append(torch.sigmoid(model(video).float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def validation_metrics(model: ClipClassifier, dataset: VideoClipDataset) -> dict:
    scores = clip_scores(model, dataset)
    labels = dataset.labels
    eps = 1e-6
    loss = -np.mean(labels * np.log(scores + eps) + (1 - labels) * np.log(1 - scores + eps))
    return {"val_loss": float(loss), "val_auc": roc_auc(labels, scores)}


def _clip_sets(cache: Path, config: Config) -> StageData:
    """Training and validation clips from a FaceClip cache or, online, from a face pool
    (training/online_data.py)."""
    cfg, inputs = config.finetune, config.recover
    if is_pool(cache):
        train_set, val_set, _, about = online_sets(
            cache, config, lambda maker, s: OnlineClips(maker, inputs.img_size, s,
                                                        inputs.num_frames),
            cfg.seed, config.online.val_clips, cfg.num_workers)
        return StageData(train_set, val_set, None, online_index_fn, about)
    train_rows, val_rows, _ = labelled_splits(cache, config.holdout_methods, "fine-tuning")
    store = ClipStore(cache)
    train_set = VideoClipDataset(cache, train_rows, inputs.num_frames, inputs.img_size,
                                 train=True, seed=cfg.seed, store=store)
    val_set = VideoClipDataset(cache, val_rows, inputs.num_frames, inputs.img_size, train=False,
                               seed=cfg.seed, store=store)
    labels = train_set.labels
    return StageData(train_set, val_set if len(set(val_set.labels)) == 2 else None,
                     balanced_weights(labels) if cfg.balanced else None, None,
                     f"{len(train_rows)} training clips ({int(labels.sum())} fake), "
                     f"{len(val_rows)} validation")


def run_finetune(cache: str | Path, run_dir: str | Path, config: Config) -> dict:
    cfg, inputs = config.finetune, config.recover
    cache, run_dir = open_run(cache, run_dir, config)
    spec = ModelSpec("clip_classifier", {**input_kwargs(inputs), "dropout": cfg.dropout,
                                         "tuning": cfg.tuning})
    torch.manual_seed(cfg.seed)
    # the pretrained encoder loads into the plain classifier; adapters wrap it afterwards
    model = build_model(spec.with_kwargs(tuning="full"))
    pretrained = run_dir / "recover_best.safetensors"
    if pretrained.is_file():
        load_pretrained_encoder(model, pretrained)
        info(f"finetune: encoder loaded from {pretrained} (only the head is new)")
    else:
        info(f"finetune: no {pretrained.name} in {run_dir}: the encoder starts from random "
             "weights (run --stage recover first for Delocate's stage 1)")
    if cfg.tuning == "linear":
        for param in model.encoder.parameters():
            param.requires_grad = False
    elif cfg.tuning == "adapters":  # frozen backbone + GBA + LSA (models/adapters.py)
        model.encoder = DeepFakeAdapterEncoder(model.encoder)
    elif cfg.tuning != "full":
        raise ValueError(f"finetune.tuning must be full, linear or adapters, got {cfg.tuning!r}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"finetune: {trainable:,} of {total:,} parameters trainable "
          f"({trainable / total:.1%}, tuning: {cfg.tuning})")
    extra = {"trainable_parameters": trainable, "total_parameters": total, "tuning": cfg.tuning}
    return train_stage("finetune", model, spec, run_dir, cfg, _clip_sets(cache, config), bce_loss,
                       validate=validation_metrics, select_key="val_auc", select_mode="max",
                       extra=extra).to_dict()
