"""Detection and localization metrics.

Detection (labels 1 = fake, scores higher = more fake): AUC, AP, EER, ACC at a threshold, and the
threshold chosen on a validation set. Localization (binary masks, prediction binarized at 0.5): IoU,
PBCA (pixel-wise binary classification accuracy) and IINC (inverse intersection non-containment,
Dang et al. CVPR 2020), per frame and averaged per video.

Written with numpy rather than scikit-learn so the scoring path stays light; tests check every
detection metric against scikit-learn.
"""
from __future__ import annotations

import numpy as np


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).astype(int).ravel(), np.asarray(scores, float).ravel()
    if labels.shape != scores.shape:
        raise ValueError("labels and scores differ in length")
    return labels, scores


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half); nan with one
    class."""
    labels, scores = _check(labels, scores)
    pos, neg = (labels == 1).sum(), (labels == 0).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), float)
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds decreasing; a point per distinct score, plus (0, 0)."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tps = np.cumsum(sorted_labels)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    pos, neg = max(1, labels.sum()), max(1, (labels == 0).sum())
    return (np.r_[0.0, fps / neg], np.r_[0.0, tps / pos],
            np.r_[np.inf, sorted_scores[last_of_tie]])


def average_precision(labels, scores) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) P_n (scikit-learn's definition, no
    interpolation)."""
    labels, scores = _check(labels, scores)
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tps = np.cumsum(sorted_labels)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def eer(labels, scores) -> float:
    """Equal error rate: where the false positive rate equals the false negative rate (linear
    interpolation between ROC points)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    diff = fpr - fnr  # rises from -1 to +1 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float(fpr[i])
    a, b = diff[i - 1], diff[i]
    w = -a / (b - a)
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    labels, scores = _check(labels, scores)
    if not len(labels):
        return float("nan")
    return float(((scores >= threshold).astype(int) == labels).mean())


def balanced_accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Mean of the accuracies on reals and on fakes: blind to how many of each there are."""
    labels, scores = _check(labels, scores)
    parts = [float(((scores >= threshold).astype(int) == labels)[labels == c].mean())
             for c in (0, 1) if (labels == c).any()]
    return float(np.mean(parts)) if parts else float("nan")


def best_threshold(labels, scores) -> float:
    """The threshold with the highest balanced accuracy on (validation) data; midpoints between
    scores. Balanced, because validation sets hold several fakes per real (one per method): plain
    accuracy would pick a threshold that calls every video fake."""
    labels, scores = _check(labels, scores)
    unique = np.unique(scores)
    candidates = np.r_[unique[0] - 1e-6, (unique[:-1] + unique[1:]) / 2, unique[-1] + 1e-6]
    accs = [balanced_accuracy(labels, scores, t) for t in candidates]
    return float(candidates[int(np.argmax(accs))])


def detection_metrics(labels, scores, threshold: float | None = None) -> dict:
    """AUC, AP, EER, ACC@0.5 and, when given, ACC at the validation-chosen threshold."""
    out = {"n": int(len(np.ravel(labels))), "auc": roc_auc(labels, scores),
           "ap": average_precision(labels, scores), "eer": eer(labels, scores),
           "acc@0.5": accuracy(labels, scores, 0.5)}
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["acc@val_threshold"] = accuracy(labels, scores, threshold)
    return out


def bootstrap_auc(labels, scores, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the AUC (resampling items)."""
    labels, scores = _check(labels, scores)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        value = roc_auc(labels[pick], scores[pick])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


# --- localization ---------------------------------------------------------------------------------

def _binary(mask, threshold: float = 0.5) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if mask.dtype == np.uint8:
        return mask > 127
    return mask > threshold


def iou(pred, gt) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty."""
    p, g = _binary(pred), _binary(gt)
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, g).sum() / union)


def pbca(pred, gt) -> float:
    """Pixel-wise binary classification accuracy."""
    return float((_binary(pred) == _binary(gt)).mean())


def iinc(pred, gt) -> float:
    """Inverse intersection non-containment (Dang et al., CVPR 2020), 0 best, 1 worst: 0 if both
    masks are empty; 1 if exactly one is; otherwise (2 - |I|/|P| - |I|/|G|) / (3 - |I|/|U|), with P
    the prediction, G the ground truth, I and U their intersection and union. Unlike 1 - IoU it
    penalizes a prediction lying inside the true region less than one spilling outside it."""
    p, g = _binary(pred), _binary(gt)
    p_area, g_area = p.sum(), g.sum()
    if p_area == 0 and g_area == 0:
        return 0.0
    if p_area == 0 or g_area == 0:
        return 1.0
    inter = np.logical_and(p, g).sum()
    union = np.logical_or(p, g).sum()
    return float((2 - inter / p_area - inter / g_area) / (3 - inter / union))


def localization_metrics(pred_masks, gt_masks) -> dict:
    """Mean IoU, PBCA and IINC over frames [T, H, W] (or any list of frame pairs)."""
    frames = list(zip(pred_masks, gt_masks))
    if not frames:
        return {"iou": float("nan"), "pbca": float("nan"), "iinc": float("nan"), "frames": 0}
    return {"iou": float(np.mean([iou(p, g) for p, g in frames])),
            "pbca": float(np.mean([pbca(p, g) for p, g in frames])),
            "iinc": float(np.mean([iinc(p, g) for p, g in frames])), "frames": len(frames)}
