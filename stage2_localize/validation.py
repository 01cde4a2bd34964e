"""Validation of a per-frame stage-2 model (the localizer network or the DADF head): frame AUC of
its score and IoU of its masks, what both trainings select their checkpoint on."""
from __future__ import annotations

import numpy as np
import torch

from delocate.common.metrics import iou as frame_iou, roc_auc


@torch.no_grad()
def frame_outputs(model, dataset, batch_size: int = 16) -> dict[str, np.ndarray]:
    """s2 per item, mask probabilities [N, S, S] (at the stage-2 input size) and the items' true
    masks [N, S, S], each item read once."""
    device = next(model.parameters()).device
    scores, masks, truth = [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        out = model(torch.stack([it["input"] for it in items]).to(device))
        scores.append(torch.sigmoid(out["cls_logit"].float()).cpu().numpy())
        masks.append(torch.sigmoid(out["mask_logits"].float())[:, 0].cpu().numpy())
        truth.append(torch.stack([it["mask"][0] for it in items]).numpy())
    return {"s2": np.concatenate(scores), "mask": np.concatenate(masks),
            "truth": np.concatenate(truth)}


def validation_metrics(model, dataset) -> dict:
    """Frame AUC of s2 and the mean IoU on fake frames, on a dataset with a `labels` array
    (FrameDataset, or training/online_data.py's FixedSet)."""
    out = frame_outputs(model, dataset)
    labels = dataset.labels
    gt = out["truth"] > 0.5
    pred = out["mask"] > 0.5
    iou = np.array([frame_iou(p, g) for p, g in zip(pred, gt)])
    auc = roc_auc(labels, out["s2"])
    mean_iou = float(iou[labels == 1].mean()) if (labels == 1).any() else float("nan")
    # stage 2 both detects and localizes: select on both (an epoch whose AUC is noise but whose
    # masks are empty must not win)
    parts = [v for v in (auc, mean_iou) if not np.isnan(v)]
    return {"val_auc": auc, "val_iou": mean_iou,
            "val_select": float(np.mean(parts)) if parts else float("nan")}
