"""Face tracks: which detection in each sampled frame belongs to which face.

The main track starts at the largest box of the whole video (the main subject) and follows it
forwards and backwards by box overlap, or, for a fast move between sampled frames, by a centre
within half a face width; every other face is linked the same way from the boxes left over.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _same_face(prev: np.ndarray, candidate: np.ndarray) -> float:
    """How well `candidate` continues the track at `prev`: IoU, or for a fast move between
    sampled frames, a small score when the centres are within half a face width. 0 means a
    different face."""
    iou = box_iou(prev, candidate)
    if iou > 0.05:
        return iou
    size = max(prev[2] - prev[0], prev[3] - prev[1])
    shift = np.hypot(*((candidate[:2] + candidate[2:]) / 2 - (prev[:2] + prev[2:]) / 2))
    return 0.01 if shift < 0.5 * size else 0.0


def track_faces(detections: list[np.ndarray]) -> list[int | None]:
    """Pick one detection per frame so that the picks form one face track.

    detections[t] is an [N_t, 4] array of boxes. The track starts at the largest box over the whole
    video (the main subject), then follows it forwards and backwards by box overlap, so a second
    person entering the frame never takes over. Frames with no continuing box get None.
    """
    picks: list[int | None] = [None] * len(detections)
    best = max(((_area(b), t, i) for t, boxes in enumerate(detections)
                for i, b in enumerate(boxes)), default=None)
    if best is None:
        return picks
    _, seed_t, seed_i = best
    picks[seed_t] = seed_i
    for order in (range(seed_t + 1, len(detections)), range(seed_t - 1, -1, -1)):
        prev = detections[seed_t][seed_i]
        for t in order:
            scores = [_same_face(prev, box) for box in detections[t]]
            if scores and max(scores) > 0:
                picks[t] = int(np.argmax(scores))
                prev = detections[t][picks[t]]
    return picks


def link_tracks(detections: list[np.ndarray], max_tracks: int, min_frames: int,
                accept: Callable[[list[int | None], bool], bool] | None = None
                ) -> list[list[int | None]]:
    """Every face's track: `track_faces` on the boxes no earlier track took, repeated. The first is
    the main track (exactly what `track_faces` picks); later ones are kept when they span at least
    `min_frames` frames (a passer-by or a false detection does not become a face). `accept(picks,
    first)` may reject a track (e.g. too weak a detection); a rejected one takes none of the
    `max_tracks` places."""
    available = [np.arange(len(boxes)) for boxes in detections]
    tracks: list[list[int | None]] = []
    first = True
    while len(tracks) < max_tracks and any(len(a) for a in available):
        picks = track_faces([boxes[a] for boxes, a in zip(detections, available)])
        chosen = [None if p is None else int(a[p]) for p, a in zip(picks, available)]
        available = [a if p is None else np.delete(a, p) for p, a in zip(picks, available)]
        long_enough = first or sum(c is not None for c in chosen) >= min_frames
        if long_enough and (accept is None or accept(chosen, first)):
            tracks.append(chosen)
        first = False
    return tracks


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Copy each missing frame's value from the nearest frame that has one (ties: the earlier)."""
    found_idx = np.flatnonzero(found)
    filled = values.copy()
    for t in np.flatnonzero(~found):
        filled[t] = values[found_idx[np.argmin(np.abs(found_idx - t))]]
    return filled
