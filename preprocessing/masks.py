"""Ground-truth forgery masks, cut with the same crop as the face.

Two sources: a dataset's own mask videos (FaceForensics++ `masks/videos`), or, as Kong et al. do
when none ship, the difference between a fake video and its source: grayscale |fake - source|, a
threshold, then a morphological opening (drops compression speckle) and closing (fills the blended
region).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from delocate.preprocessing.faces import warp_crop
from delocate.preprocessing.video_io import SampledFrames


def _crop_masks(full_masks: np.ndarray, crop_box: np.ndarray, scale: float, size: int
                ) -> np.ndarray:
    """Full-frame 0/255 masks [T, H, W] (decoded at `scale` x source size) -> crops [T, S, S]."""
    out = np.zeros((len(full_masks), size, size), np.uint8)
    for t, full in enumerate(full_masks):
        box = crop_box[min(t, len(crop_box) - 1)] * scale
        out[t] = warp_crop(full, box, size, nearest=True)
    return out


def masks_from_mask_video(mask_frames: SampledFrames, crop_box: np.ndarray, size: int,
                          threshold: int = 127) -> np.ndarray:
    """Masks from a dataset mask video sampled at the clip's frame indices -> uint8 [T, S, S]."""
    grey = mask_frames.frames.max(axis=3)  # FF++ masks are white (sometimes coloured) on black
    binary = np.where(grey > threshold, 255, 0).astype(np.uint8)
    return _crop_masks(binary, crop_box, mask_frames.scale, size)


def difference_mask(fake: np.ndarray, source: np.ndarray, threshold: int = 20) -> np.ndarray:
    """One full frame: 0/255 mask of where `fake` [H, W, 3] differs from `source`."""
    if fake.shape != source.shape:
        source = cv2.resize(source, (fake.shape[1], fake.shape[0]), interpolation=cv2.INTER_AREA)
    diff = cv2.absdiff(cv2.cvtColor(fake, cv2.COLOR_RGB2GRAY),
                       cv2.cvtColor(source, cv2.COLOR_RGB2GRAY))
    binary = np.where(diff > threshold, 255, 0).astype(np.uint8)
    side = max(3, (min(fake.shape[:2]) // 100) | 1)  # kernel grows with resolution, always odd
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel, iterations=2)


def masks_from_mask_file(path: str | Path, frame_index: np.ndarray, crop_box: np.ndarray,
                         scale: float, size: int, threshold: int = 127) -> np.ndarray:
    """Masks stored as full-frame arrays (.npz key `mask`, or .npy; uint8 [T, H, W] in source
    pixels, one per video frame) at the clip's frame indices -> uint8 [T, S, S] 0/255 crops."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            full = data["mask"] if "mask" in data.files else data[data.files[0]]
    else:
        full = np.load(path, allow_pickle=False)
    if full.ndim != 3:
        raise ValueError(f"{path.name}: masks must be [T, H, W], got shape {full.shape}")
    picked = full[np.minimum(np.asarray(frame_index), len(full) - 1)]
    binary = np.where(picked > threshold, 255, 0).astype(np.uint8)
    if scale != 1.0:  # the frames were decoded scaled: scale the masks the same way
        height, width = binary.shape[1:]
        binary = np.stack([cv2.resize(m, (round(width * scale), round(height * scale)),
                                      interpolation=cv2.INTER_NEAREST) for m in binary])
    return _crop_masks(binary, crop_box, scale, size)


def masks_from_difference(fake_frames: SampledFrames, source_frames: SampledFrames,
                          crop_box: np.ndarray, size: int, threshold: int = 20) -> np.ndarray:
    """Masks of a fake video from its source video, both sampled at the same frame indices."""
    count = min(len(fake_frames.frames), len(source_frames.frames))
    full = np.stack([difference_mask(fake_frames.frames[t], source_frames.frames[t], threshold)
                     for t in range(count)])
    masks = _crop_masks(full, crop_box, fake_frames.scale, size)
    if count < len(crop_box):  # source shorter than the fake: unknown frames stay unmarked
        masks = np.concatenate([masks, np.zeros((len(crop_box) - count, size, size), np.uint8)])
    return masks


def mask_source_exists(path: str | Path | None) -> bool:
    return path is not None and Path(path).is_file()
