"""--stage robustness: how a run's verdicts move when the faces went through processing that real
video often has and that forges nothing: in-camera or editor sharpening, a soft focus, sensor
noise, upscaling, harder compression.

Each processing is applied to the preprocessed face crops of every clip of a split (the crops, not
the source video: the face at the size the model reads it, cheap to repeat), and the run scores
them as always. Per processing: the video AUC (fakes against reals, both processed), the mean
real and fake video score, and how many real and fake videos the run's own threshold
(threshold.json) calls fake. Nothing is chosen here. A detector whose verdict flips on a sharpened
real face misleads an analyst more than its AUC says.
"""
from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from delocate.common.io import atomic_write_json
from delocate.common.log import progress
from delocate.common.metrics import bootstrap_auc, roc_auc
from delocate.evaluation.detector import Detector
from delocate.preprocessing.codecs import roundtrip
from delocate.preprocessing.forgery import face_size, texture_frames
from delocate.preprocessing.sample_cache import ClipCache, FaceClip
from delocate.training.inputs import select_rows

Processing = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _textured(resample: float, sharpness: float) -> Processing:
    """forgery.texture's resampling and blur / unsharp mask (sigma relative to the face's width),
    frame by frame."""
    return lambda frames, size, rng: texture_frames(frames, resample, sharpness, size)


def _noise(sigma: float) -> Processing:
    def apply(frames: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
        return np.clip(frames + rng.normal(0.0, sigma, frames.shape) + 0.5, 0, 255
                       ).astype(np.uint8)
    return apply


# name -> processing of uint8 [T, S, S, 3] crops (None: as preprocessed). The first four sit
# inside what the online pairs' footage degradation draws (training/pairs.py), about what phones
# and video editors apply; JPEG 40 is below the pairs' lowest quality (50).
PROCESSINGS: dict[str, Processing | None] = {
    "none": None,
    "sharpen": _textured(1.0, -0.8),  # unsharp mask, sigma 0.8 % of the face width, amount 1.2
    "blur": _textured(1.0, 0.6),  # Gaussian, sigma 0.6 % of the face width
    "upscaled": _textured(0.5, 0.0),  # half the resolution, back up (bilinear)
    "noise": _noise(4.0),  # Gaussian sensor noise, sigma 4 grey levels
    "jpeg-40": lambda frames, size, rng: roundtrip(frames, "jpeg", 40),
}


def processed(clip: FaceClip, name: str, rng: np.random.Generator) -> FaceClip:
    """`clip` with its frames through processing `name`."""
    apply = PROCESSINGS[name]
    if apply is None:
        return clip
    found = clip.face_found if clip.face_found.any() else np.ones(clip.num_frames, bool)
    size = float(np.median([face_size(p) for p in clip.landmarks[found]]))
    return replace(clip, frames=apply(clip.frames, size, rng))


def summarize(labels: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: int) -> dict:
    """One processing's row: AUC (with a 95% bootstrap interval), mean scores, verdicts."""
    real, fake = scores[labels == 0], scores[labels == 1]
    row = {"auc": roc_auc(labels, scores), "mean_real": float(real.mean()),
           "mean_fake": float(fake.mean()), "real": int(len(real)), "fake": int(len(fake)),
           "real_called_fake": int((real >= threshold).sum()),
           "fake_called_fake": int((fake >= threshold).sum())}
    if bootstrap:
        row["auc_ci95"] = list(bootstrap_auc(labels, scores, bootstrap))
    return row


def run_robustness(cache: str | Path, run_dir: str | Path, split: str = "test",
                   out_dir: str | Path | None = None, detector: Detector | None = None) -> dict:
    """Every processing of PROCESSINGS on every clip of `split` ("all": the whole cache), scored
    by the run (or by `detector`, the run already loaded); robustness.json in out_dir (default
    RUN_DIR/robustness_<split>)."""
    cache, run_dir = Path(cache), Path(run_dir)
    detector = Detector(run_dir) if detector is None else detector
    threshold, chosen_on = detector.threshold
    rows = select_rows(cache, None if split == "all" else split)
    labels = np.array([row.label for row in rows])
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"{cache} split {split!r} needs real and fake clips for an AUC")
    clips = ClipCache(cache)
    scores = {name: [] for name in PROCESSINGS}
    for row in progress(rows, f"robustness {split}", unit="clip"):
        clip = clips.load(row.clip)
        for name in PROCESSINGS:
            # noise drawn from the clip's name: the same pixels on every run and for every model
            rng = np.random.default_rng(zlib.crc32(row.clip.encode()))
            scores[name].append(detector.predict_clip(processed(clip, name, rng)).fused)
    bootstrap = detector.config.evaluate.bootstrap
    result = {"data": str(cache), "split": split, "run": str(run_dir),
              "model_run_id": detector.run_id, "threshold": threshold,
              "threshold_chosen_on": chosen_on, "clips": len(rows),
              "processings": {name: summarize(labels, np.array(s, float), threshold, bootstrap)
                              for name, s in scores.items()}}
    out_dir = Path(out_dir) if out_dir else run_dir / f"robustness_{split}"
    atomic_write_json(out_dir / "robustness.json", result)
    result["out_dir"] = str(out_dir)
    return result


def format_robustness(result: dict) -> str:
    lines = [f"video scores of {result['clips']} clips ({result['split']} of {result['data']}) "
             f"after processing the face crops; threshold {result['threshold']:.3f} "
             f"(chosen on {result['threshold_chosen_on']})",
             f"  {'processing':<11}{'AUC':>7}{'95% CI':>14}{'mean real':>11}{'mean fake':>11}"
             f"{'real called fake':>18}{'fake called fake':>18}"]
    for name, m in result["processings"].items():
        ci = m.get("auc_ci95")
        ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
        lines.append(f"  {name:<11}{m['auc']:>7.3f}{ci_text:>14}{m['mean_real']:>11.3f}"
                     f"{m['mean_fake']:>11.3f}{m['real_called_fake']:>12} / {m['real']:<3}"
                     f"{m['fake_called_fake']:>12} / {m['fake']:<3}")
    if "out_dir" in result:
        lines.append(f"\nrobustness -> {Path(result['out_dir']) / 'robustness.json'}")
    return "\n".join(lines)
