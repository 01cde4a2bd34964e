"""How the branch scores (s1 of stage 1, s2 of stage 2, the DADF head's) become one fake score.

- `mean`: the paper's rule, the mean of the branches present;
- `fitted` (default): a logistic regression on the branches' logits, fitted on VALIDATION videos
  only (evaluate picks the records; `fit_fusion` refuses anything else), with weights kept
  non-negative: a branch that learned nothing gets a weight near 0 instead of dragging the fused
  score to chance. It is saved as RUN_DIR/fusion.json, printed, and used by every later evaluate and
  score.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from delocate.common.io import atomic_write_json

BRANCHES = ("s1", "s2", "dadf")
MIN_VIDEOS = 6  # fewer validation videos than this: keep the mean


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@dataclass
class Fusion:
    mode: str = "mean"  # mean | fitted
    weights: dict[str, float] = field(default_factory=dict)  # fitted: per branch
    bias: float = 0.0
    fitted_on: str = ""  # which validation videos
    branches: list[str] = field(default_factory=list)  # the branches the run had when fitted

    def __call__(self, scores: dict[str, float | np.ndarray | None]) -> float | np.ndarray:
        """Fused score of a video (floats) or of frames (arrays) from the branches' scores."""
        present = {k: scores[k] for k in BRANCHES if scores.get(k) is not None}
        used = {k: w for k, w in self.weights.items() if w > 0}  # a 0 weight needs no branch
        if self.mode == "fitted" and used and set(used) <= set(present):
            z = self.bias + sum(w * _logit(present[k]) for k, w in used.items())
            fused = 1 / (1 + np.exp(-z))
        else:
            fused = np.nanmean(np.stack([np.asarray(v, float) for v in present.values()]), axis=0) \
                if present else np.nan
        return float(fused) if np.ndim(fused) == 0 else fused

    def describe(self) -> str:
        if self.mode != "fitted":
            return "mean of the branches (the paper's rule)"
        terms = " + ".join(f"{w:.3f}*logit({k})" for k, w in self.weights.items())
        return f"sigmoid({self.bias:.3f} + {terms}), fitted on {self.fitted_on}"

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "Fusion":
        path = Path(path)
        return cls(**json.loads(path.read_text())) if path.is_file() else cls()

    def fits(self, branches: list[str]) -> bool:
        """Whether this fusion can fuse a run with these branches: none of them is newer than the
        fit (a branch trained afterwards, e.g. the DADF head, has no weight yet: refit with --stage
        evaluate), and every branch with a weight is there (a 0-weight one may be left out)."""
        if self.mode != "fitted":
            return True
        weighted = {k for k, w in self.weights.items() if w > 0}
        return set(branches) <= set(self.branches) and weighted <= set(branches)


def fit_fusion(records: list[dict], where: str) -> Fusion:
    """Fit on the records of the validation split only: each record has "split", "label" and
    "video": {branch: score or None}. Falls back to the mean when there is too little to fit."""
    from sklearn.linear_model import LogisticRegression

    val = [r for r in records if r.get("split") == "val"]
    branches = [b for b in BRANCHES if val and all(r["video"].get(b) is not None for r in val)]
    labels = np.array([r["label"] for r in val])
    if len(val) < MIN_VIDEOS or len(set(labels)) < 2 or not branches:
        return Fusion(fitted_on=f"nothing: {len(val)} validation videos of {where}")
    fitted_on, present = f"{len(val)} validation videos of {where}", list(branches)
    if len(branches) == 1:  # one branch: its own score, no rescaling
        return Fusion("fitted", {branches[0]: 1.0}, 0.0, fitted_on, present)
    while True:  # drop branches whose best weight is negative, refit on the rest
        x = np.stack([_logit([r["video"][b] for r in val]) for b in branches], axis=1)
        model = LogisticRegression(C=1.0, class_weight="balanced").fit(x, labels)
        weights = dict(zip(branches, model.coef_[0].tolist()))
        negative = [b for b, w in weights.items() if w < 0]
        if not negative or len(branches) == 1:
            break
        branches = [b for b in branches if b not in negative]
    weights = {b: max(0.0, weights.get(b, 0.0)) for b in present}  # dropped branches: 0
    return Fusion("fitted", weights, float(model.intercept_[0]), fitted_on, present)
