"""Forgery synthesis: real FaceClips -> fake FaceClips whose masks are exactly the blend masks.

Methods:
- `blend`: self-blended forgery after Shiohara & Yamasaki (CVPR 2022, SBI): a source and a target
  made from the same frame by different colour, sharpness and small geometric transforms, blended
  inside a mask grown from the landmark hull, randomly deformed and feathered.
- `part-eyes`, `part-mouth`, `part-nose`: the same, confined to one facial part (inside that part's
  ROI), so the traces sit in a random part of the face, as Delocate stresses; the source is the same
  face `offset` frames away, aligned on the part's landmarks, so the part's content (gaze, mouth
  shape) really changes, as in reenactment (Face2Face, NeuralTextures).
- `swap`: another identity's face warped onto this one by its 68 landmarks (piecewise affine over a
  Delaunay triangulation), colour-matched, and blended.

The transform parameters of one fake clip drift smoothly from frame to frame (a bounded random
walk); `per_frame_flicker` draws them independently per frame (ablation). Frames without a detected
face stay real (mask all zero). Nothing outside the blend mask changes: the fake equals its source
there, byte for byte, so no cue outside the forged region exists; colour shifts are symmetric so
their sign is no cue.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial import Delaunay

from delocate.preprocessing.face_transforms import (blend, box_window, colour_match,
                                                    colour_transform, deformed_mask,
                                                    geometric_transform, piecewise_affine,
                                                    sharpness_transform, similarity_align)
from delocate.preprocessing.regions import PART_LANDMARKS, PART_NAMES
from delocate.preprocessing.sample_cache import ClipCache, FaceClip

METHODS = ["blend", "part-eyes", "part-mouth", "part-nose", "swap"]
PART_OF_METHOD = {"part-eyes": "eyes", "part-mouth": "lips", "part-nose": "cheek_nose"}
FACE_OUTLINE = list(range(0, 27))  # jaw + brows: the hull of the whole face

# landmark sets whose hulls are the forged region of each part method
PART_HULLS = {
    "part-eyes": [list(range(17, 22)) + list(range(36, 42)),
                  list(range(22, 27)) + list(range(42, 48))],
    "part-mouth": [list(range(48, 60))],
    "part-nose": [list(range(27, 36)) + [39, 42]],
}


class SynthesisSkipped(Exception):
    """A method that cannot apply to this input (e.g. swap with one identity); message says why."""


# --- smooth per-frame parameters ------------------------------------------------------------------

@dataclass
class ParamTrack:
    """Per-frame values of the named transform parameters: name -> float [T]."""
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def at(self, t: int) -> dict[str, float]:
        return {k: float(v[t]) for k, v in self.values.items()}


PARAM_RANGES = {
    # colour: per-channel gain and offset of the source (symmetric around identity)
    "gain_r": (0.85, 1.15), "gain_g": (0.85, 1.15), "gain_b": (0.85, 1.15),
    "bias": (-18.0, 18.0),
    # sharpness: > 0 blurs (Gaussian sigma), < 0 sharpens (unsharp amount)
    "sharpness": (-1.0, 1.5),
    # geometry of the source relative to the target
    "scale": (0.96, 1.04), "shift_x": (-0.02, 0.02), "shift_y": (-0.02, 0.02),
    # mask: hull growth (fraction of face size; < 0 shrinks) and feather width (pixels / 224)
    "grow": (-0.04, 0.06), "feather": (3.0, 11.0), "alpha": (0.6, 1.0),
}


def smooth_params(rng: np.random.Generator, num_frames: int, smoothness: float,
                  flicker: bool) -> ParamTrack:
    """A bounded random walk per parameter: start anywhere in its range, step with std
    `smoothness` x range, reflect at the bounds. flicker=True: independent draws per frame."""
    track = ParamTrack()
    for name, (low, high) in PARAM_RANGES.items():
        if flicker:
            track.values[name] = rng.uniform(low, high, num_frames)
            continue
        span = high - low
        walk = np.empty(num_frames)
        walk[0] = rng.uniform(low, high)
        for t in range(1, num_frames):
            value = walk[t - 1] + rng.normal(0, smoothness * span)
            value = low + abs(value - low)  # reflect at low
            value = high - abs(high - value)  # reflect at high
            walk[t] = np.clip(value, low, high)
        track.values[name] = walk
    return track


# --- one fake clip --------------------------------------------------------------------------------

@dataclass
class SynthOptions:
    smoothness: float = 0.15
    per_frame_flicker: bool = False
    part_offset: int = 0  # frames between target and source for part methods (0: random 3..T/2)


def _face_size(landmarks: np.ndarray) -> float:
    span = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(max(span))


@dataclass
class SynthResult:
    clip: FaceClip  # the fake
    params: ParamTrack  # per-frame transform parameters
    blend_weight: np.ndarray  # float32 [T, S, S]: how much of the source went into each pixel


def synthesize(real: FaceClip, method: str, rng: np.random.Generator,
               options: SynthOptions | None = None, donor: FaceClip | None = None) -> SynthResult:
    """One fake FaceClip from `real` by `method`."""
    options = options or SynthOptions()
    if method not in METHODS:
        raise ValueError(f"unknown synthesis method {method!r}; choose from {METHODS}")
    if method == "swap" and donor is None:
        raise SynthesisSkipped("swap needs a second identity (a donor clip)")
    size, count = real.size, real.num_frames
    params = smooth_params(rng, count, options.smoothness, options.per_frame_flicker)
    radial_noise = rng.uniform(-0.03, 0.03, 68)
    offset = options.part_offset or int(rng.integers(3, max(4, count // 2 + 1)))
    # one triangulation per clip (on the mean face) keeps the swap's warp topology stable over time
    triangles = Delaunay(real.landmarks.mean(axis=0)).simplices if method == "swap" else None

    frames = real.frames.copy()
    masks = np.zeros((count, size, size), np.uint8)
    weights = np.zeros((count, size, size), np.float32)
    for t in range(count):
        if not real.face_found[t]:
            continue  # no face: the frame stays real, mask all zero
        p = params.at(t)
        target, points = real.frames[t], real.landmarks[t]
        face_size = _face_size(points)
        if method == "blend":
            source = geometric_transform(real.frames[t].astype(np.float32), p, points.mean(axis=0))
            groups = [points[FACE_OUTLINE]]
        elif method == "swap":
            d = t % donor.num_frames
            source = piecewise_affine(donor.frames[d], donor.landmarks[d], points, triangles,
                                      target)
            groups = [points[FACE_OUTLINE]]
        else:
            part_idx = PART_LANDMARKS[PART_OF_METHOD[method]]
            other = _nearest_found(real.face_found, (t + offset) % count)
            source = similarity_align(real.landmarks[other][part_idx], points[part_idx],
                                      real.frames[other]).astype(np.float32)
            groups = [points[h] for h in PART_HULLS[method]]
        weight = deformed_mask(groups, size, p, radial_noise, face_size)
        if method in PART_OF_METHOD:
            roi = real.rois[t, PART_NAMES.index(PART_OF_METHOD[method])]
            weight *= box_window(roi, (size, size), p["feather"] * size / 224.0)
        if method == "swap":
            source = colour_match(source, target, weight)
        source = sharpness_transform(colour_transform(source, p), p["sharpness"])
        frames[t] = blend(target, source, weight)
        weights[t] = weight
        masks[t] = np.where(weight >= 0.5 * p["alpha"], 255, 0).astype(np.uint8)

    meta = dict(real.meta)
    meta.update({
        "label": 1, "method": method, "source_clip": real.meta.get("clip_id", ""),
        "synthesis": {"method": method, "per_frame_flicker": options.per_frame_flicker,
                      "smoothness": options.smoothness, "mask_rule": "blend weight >= alpha/2",
                      "frames_left_real": int((~real.face_found).sum())},
        "mask_source": "synthesis",
    })
    if donor is not None and method == "swap":
        meta["donor_clip"] = donor.meta.get("clip_id", "")
        meta["donor_source"] = donor.meta.get("source", "")
    fake = FaceClip(frames=frames, landmarks=real.landmarks.copy(), rois=real.rois.copy(),
                    face_found=real.face_found.copy(), frame_index=real.frame_index.copy(),
                    crop_box=real.crop_box.copy(), meta=meta, mask=masks,
                    detect_pass=real.detect_pass.copy())
    return SynthResult(fake, params, weights)


def _nearest_found(found: np.ndarray, t: int) -> int:
    candidates = np.flatnonzero(found)
    return int(candidates[np.argmin(np.abs(candidates - t))])


# --- a whole cache --------------------------------------------------------------------------------

def _rng_for(*keys: str, seed: int = 0) -> np.random.Generator:
    """A generator seeded by names: the same fake comes out on every run (and on resume)."""
    import hashlib

    digest = hashlib.sha1("/".join([str(seed), *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _pick_donor(clip_id: str, clip_meta: dict, reals: dict[str, dict],
                rng: np.random.Generator) -> str | None:
    """A real clip of another identity in the same split (no identity crosses splits via swaps)."""
    candidates = sorted(cid for cid, meta in reals.items()
                        if meta.get("source") != clip_meta.get("source")
                        and meta.get("split", "") == clip_meta.get("split", ""))
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def run_synthesis(real_cache, out_cache, methods: list[str], seed: int = 0,
                  options: SynthOptions | None = None,
                  finish: Callable[[str, FaceClip], FaceClip] | None = None) -> dict[str, int]:
    """Fakes of every real clip of `real_cache` by every method, into `out_cache`, which also gets
    the real clips (hard-linked when possible) so that it is a complete real + fake training cache.
    `finish(clip_id, clip)`, when given, post-processes every clip written, real and fake alike
    (e.g. the demo's recompression), so both classes go through exactly the same last step.

    Resumable: a fake already written is kept. Returns counts per method (and 'skipped').
    """
    import os
    import shutil
    from pathlib import Path

    from delocate.common.log import info, progress
    from delocate.preprocessing.preprocess import row_for_clip
    from delocate.preprocessing.sample_cache import read_index, write_index

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown synthesis method(s) {unknown}; choose from {METHODS}")
    real_cache, out_cache = Path(real_cache), Path(out_cache)
    out_cache.mkdir(parents=True, exist_ok=True)
    reals, fakes = ClipCache(real_cache), ClipCache(out_cache)
    rows = [r for r in reals.rows() if r["label"] == "0"]
    if not rows:
        raise ValueError(f"{real_cache} holds no real clip with status ok")
    rows_by_id = {r["clip"]: r for r in rows}
    metas = {cid: reals.load(cid, frames=False).meta for cid in rows_by_id}
    earlier = read_index(out_cache) if (out_cache / "index.csv").is_file() else []
    out_rows = {r["clip"]: dict(r) for r in earlier}
    counts = {m: 0 for m in methods}
    counts["skipped"] = 0
    if "swap" in methods and len({m.get("source") for m in metas.values()}) < 2:
        info("swap skipped: the cache holds a single identity (swap needs two)")
        methods = [m for m in methods if m != "swap"]
    loaded: dict[str, FaceClip] = {}

    def load(clip_id: str) -> FaceClip:
        if clip_id not in loaded:
            if len(loaded) > 64:
                loaded.clear()
            clip = reals.load(clip_id)
            clip.meta["clip_id"] = clip_id
            loaded[clip_id] = clip
        return loaded[clip_id]

    options = options or SynthOptions()
    jobs = [(r["clip"], m) for r in rows for m in methods]
    try:
        for clip_id in metas:
            target = fakes.path(clip_id)
            if target.exists():
                pass
            elif finish is not None:
                finish(clip_id, reals.load(clip_id)).save(target)
            else:
                try:
                    os.link(reals.path(clip_id), target)
                except OSError:
                    shutil.copy2(reals.path(clip_id), target)
            out_rows[clip_id] = dict(rows_by_id[clip_id])
        for clip_id, method in progress(jobs, "synth", unit="fake"):
            fake_id = f"{clip_id}__{method}"
            path = fakes.path(fake_id)
            if path.is_file() and fake_id in out_rows:
                continue
            rng = _rng_for(clip_id, method, seed=seed)
            donor = None
            if method == "swap":
                donor_id = _pick_donor(clip_id, metas[clip_id], metas, rng)
                if donor_id is None:
                    counts["skipped"] += 1
                    info(f"swap skipped for {clip_id}: no other identity in split "
                         f"'{metas[clip_id].get('split', '')}'")
                    continue
                donor = load(donor_id)
            real = load(clip_id)
            result = synthesize(real, method, rng, options, donor)
            left_real = result.clip.meta["synthesis"]["frames_left_real"]
            if left_real:
                info(f"{fake_id}: {left_real} frame(s) without a face left real (mask all zero)")
            (finish(fake_id, result.clip) if finish else result.clip).save(path)
            out_rows[fake_id] = row_for_clip(fake_id, result.clip)
            counts[method] += 1
    finally:
        write_index(out_cache, list(out_rows.values()))
    return counts
