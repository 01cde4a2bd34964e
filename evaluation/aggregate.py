"""Frame / clip scores -> one video score (the branches' fusion is evaluation/fusion.py).

Aggregators: `mean` (default), `max`, and `confident` (the rule of the DFDC winning solution,
Seferbekov 2020): if a large share of frames is confidently fake (> 0.8), average those; else if
almost all are confidently real (< 0.2), average those; else average everything. The original's
absolute count (> 11 fake frames of 32) is expressed as a share here (> 40%) so it works for any
number of frames.
"""
from __future__ import annotations

import numpy as np

AGGREGATORS = ["mean", "max", "confident"]


def aggregate(scores, how: str = "mean") -> float:
    scores = np.asarray(scores, float).ravel()
    scores = scores[~np.isnan(scores)]
    if len(scores) == 0:
        return float("nan")
    if how == "mean":
        return float(scores.mean())
    if how == "max":
        return float(scores.max())
    if how == "confident":
        fake, real = scores > 0.8, scores < 0.2
        if fake.sum() > 0.4 * len(scores):
            return float(scores[fake].mean())
        if real.sum() > 0.9 * len(scores):
            return float(scores[real].mean())
        return float(scores.mean())
    raise ValueError(f"unknown aggregator {how!r}; choose from {AGGREGATORS}")
