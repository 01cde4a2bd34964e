"""Token masks for the space-time MAE, made in the data pipeline (as VideoMAE's masking generator).

Strategies (the paper's Table 6):
- `roi` (Delocate, default): pick ONE facial part at random per clip (eyes / cheek_nose / lips) and
  mask `ratio` of the tubelet tokens that overlap that part's ROI (the union of its boxes over the
  tubelet's frames).
- `roi:eyes`, `roi:cheek_nose`, `roi:lips`: the same with the part fixed.
- `random` (MAE): `ratio` of all tokens, uniformly.
- `tube` (VideoMAE): `ratio` of the spatial positions, masked through all time steps.

The encoder drops masked tokens by reshaping, so every clip must mask the same number of tokens.
For `roi` that number is fixed per config: K = round(roi_budget * N) for N tokens. The rule:
1. m = ceil(ratio * n_roi) tokens are drawn at random among the n_roi tokens overlapping the ROI;
2. if m < K, the mask is TOPPED UP with the K - m tokens nearest to the ROI (ring by ring around it,
   in the same time steps; ties broken at random): the ROI's neighbourhood, never far-away tokens;
3. if m > K (an ROI larger than K / ratio tokens), it is TRIMMED to K random ROI tokens.
`mask_info` returns n_roi, m and the top-up count so callers and tests can check the rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from delocate.preprocessing.regions import PART_NAMES

STRATEGIES = ["roi", "random", "tube"] + [f"roi:{p}" for p in PART_NAMES]


@dataclass
class MaskInfo:
    part: str  # the part masked ("" for random / tube)
    roi_tokens: int  # n_roi
    masked_in_roi: int
    topped_up: int  # masked tokens outside the ROI (the documented top-up)


class TokenMasker:
    """Callable: (rois [T, 3, 4] in model-input pixels, rng) -> (bool mask [N], MaskInfo)."""

    def __init__(self, strategy: str, grid: tuple[int, int, int], patch_size: int,
                 tubelet_size: int, ratio: float = 0.75, roi_budget: float = 0.33):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown masking strategy {strategy!r}; choose from {STRATEGIES}")
        if not 0 < ratio < 1:
            raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
        self.strategy, self.grid = strategy, grid
        self.patch, self.tubelet = patch_size, tubelet_size
        self.ratio, self.roi_budget = ratio, roi_budget
        self.num_tokens = int(np.prod(grid))

    @property
    def num_masked(self) -> int:
        """Masked tokens per clip, the same for every clip."""
        t, h, w = self.grid
        if self.strategy == "random":
            return int(round(self.ratio * self.num_tokens))
        if self.strategy == "tube":
            return int(round(self.ratio * h * w)) * t
        return int(round(self.roi_budget * self.num_tokens))

    def roi_tokens(self, rois: np.ndarray, part: str) -> np.ndarray:
        """bool [t, h, w]: tokens whose patch overlaps the part's box in any frame of the
        tubelet."""
        t_grid, h_grid, w_grid = self.grid
        index = PART_NAMES.index(part)
        overlap = np.zeros(self.grid, bool)
        edges = np.arange(max(h_grid, w_grid) + 1) * self.patch
        for t in range(t_grid):
            for frame in range(t * self.tubelet, min((t + 1) * self.tubelet, len(rois))):
                x0, y0, x1, y1 = rois[frame, index]
                rows = (edges[:h_grid] < y1) & (edges[1:h_grid + 1] > y0)
                cols = (edges[:w_grid] < x1) & (edges[1:w_grid + 1] > x0)
                overlap[t] |= rows[:, None] & cols[None, :]
        return overlap

    def __call__(self, rois: np.ndarray | None, rng: np.random.Generator
                 ) -> tuple[np.ndarray, MaskInfo]:
        t_grid, h_grid, w_grid = self.grid
        mask = np.zeros(self.num_tokens, bool)
        if self.strategy == "random":
            mask[rng.choice(self.num_tokens, self.num_masked, replace=False)] = True
            return mask, MaskInfo("", 0, 0, 0)
        if self.strategy == "tube":
            spatial = np.zeros(h_grid * w_grid, bool)
            spatial[rng.choice(h_grid * w_grid, self.num_masked // t_grid, replace=False)] = True
            return np.tile(spatial, t_grid), MaskInfo("", 0, 0, 0)
        if rois is None:
            raise ValueError("roi masking needs the clip's ROI boxes")
        part = self.strategy.split(":")[1] if ":" in self.strategy else \
            PART_NAMES[int(rng.integers(len(PART_NAMES)))]
        in_roi = self.roi_tokens(rois, part).ravel()
        roi_idx = np.flatnonzero(in_roi)
        budget = self.num_masked
        wanted = min(math.ceil(self.ratio * len(roi_idx)), budget)
        mask[rng.choice(roi_idx, wanted, replace=False)] = True
        top_up = budget - wanted
        if top_up:
            distance = self._distance_to(in_roi.reshape(self.grid))
            outside = np.flatnonzero(~in_roi)
            # nearest first; random jitter < 1 only breaks ties within a ring
            order = outside[np.argsort(distance[outside] + rng.random(len(outside)))]
            mask[order[:top_up]] = True
        return mask, MaskInfo(part, len(roi_idx), wanted, top_up)

    @staticmethod
    def _distance_to(region: np.ndarray) -> np.ndarray:
        """Chebyshev distance (in patches, within each time step) of every token to `region`;
        flat."""
        t_grid, h_grid, w_grid = region.shape
        yy, xx = np.mgrid[:h_grid, :w_grid]
        out = np.full(region.shape, np.inf)
        for t in range(t_grid):
            ys, xs = np.nonzero(region[t])
            if len(ys) == 0:
                continue
            d = np.maximum(np.abs(yy[..., None] - ys), np.abs(xx[..., None] - xs)).min(axis=-1)
            out[t] = d
        out[np.isinf(out)] = h_grid + w_grid  # a time step without the ROI: last resort
        return out.ravel()
