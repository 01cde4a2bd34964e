"""FaceClips -> model inputs: selecting clips of a cache, frame sampling, resizing, normalizing.

All randomness (frame offsets, token masks) comes from a generator seeded by (seed, epoch, item), so
an epoch is reproducible exactly, whichever process loads it and whether or not the run was resumed.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from delocate.preprocessing.entries import hash_split
from delocate.preprocessing.sample_cache import ClipCache, FaceClip

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# input scalings by name (a model's `input_norm`): ImageNet statistics, or EfficientNet-Lite's
# (x - 127) / 128 in 0..255 units
INPUT_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD),
               "lite": (np.full(3, 127 / 255, np.float32), np.full(3, 128 / 255, np.float32))}


@dataclass
class ClipRow:
    clip: str
    label: int
    method: str
    split: str
    source: str


def select_rows(cache: str | Path, split: str | None = None, labels: set[int] | None = None,
                methods: set[str] | None = None) -> list[ClipRow]:
    """The ok clips of a cache, filtered by split, label and method (real clips always pass the
    method filter)."""
    cache = Path(cache)
    rows = []
    clips = ClipCache(cache)
    for row in clips.rows():
        label = int(row["label"])
        if labels is not None and label not in labels:
            continue
        if methods is not None and label == 1 and row["method"] not in methods:
            continue
        clip_split, source = row["split"], ""
        if not clip_split or split is None:
            meta = clips.load(row["clip"], frames=False).meta
            source = str(meta.get("source") or meta.get("source_clip") or row["clip"])
            # caches written before discovery assigned every split: the same rule, drawn here
            clip_split = clip_split or hash_split(source)
        if split is not None and clip_split != split:
            continue
        rows.append(ClipRow(row["clip"], label, row["method"], clip_split, source))
    return rows


def training_methods(cache: str | Path, holdout: list[str]) -> set[str] | None:
    """The fake methods training may use: every method in the cache but the held-out ones
    (None = no filter)."""
    if not holdout:
        return None
    present = {r.method for r in select_rows(cache, None, labels={1})}
    kept = present - set(holdout)
    if not kept:
        raise ValueError(f"holdout_methods {holdout} leaves no fake method to train on")
    return kept


def labelled_splits(cache: str | Path, holdout: list[str], who: str
                    ) -> tuple[list[ClipRow], list[ClipRow], set[str] | None]:
    """(train rows, val rows, methods used) for a classifier stage: held-out methods removed; the
    train split must hold both real and fake clips."""
    methods = training_methods(cache, holdout)
    train_rows = select_rows(cache, "train", methods=methods)
    val_rows = select_rows(cache, "val", methods=methods)
    if len({r.label for r in train_rows}) < 2:
        raise ValueError(f"{cache}: {who} needs real and fake clips in the train split")
    return train_rows, val_rows, methods


class ClipStore:
    """Loads FaceClips by id with a small in-memory LRU (tiny datasets fit whole)."""

    def __init__(self, cache: str | Path, capacity: int = 256):
        self.cache, self.capacity = Path(cache), capacity
        self.clips = ClipCache(cache)
        self._clips: OrderedDict[str, FaceClip] = OrderedDict()

    def get(self, clip_id: str) -> FaceClip:
        if clip_id in self._clips:
            self._clips.move_to_end(clip_id)
            return self._clips[clip_id]
        clip = self.clips.load(clip_id)
        self._clips[clip_id] = clip
        if len(self._clips) > self.capacity:
            self._clips.popitem(last=False)
        return clip


def frame_positions(available: int, wanted: int, rng: np.random.Generator | None) -> np.ndarray:
    """Which of a clip's frames to use: `wanted` frames spread over the clip (stride = available //
    wanted), at a random offset when training (rng given), centred otherwise; repeats the last
    frame when the clip is shorter than `wanted`."""
    if available >= wanted:
        stride = available // wanted
        span = stride * (wanted - 1) + 1
        start = int(rng.integers(available - span + 1)) if rng is not None else \
            (available - span) // 2
        return start + stride * np.arange(wanted)
    return np.minimum(np.arange(wanted), available - 1)


def normalize(frames: np.ndarray, norm: str = "imagenet") -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [3, T, H, W], scaled as INPUT_STATS[norm] says."""
    mean, std = INPUT_STATS[norm]
    x = (frames.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))


def frame_tensors(frame: np.ndarray, mask: np.ndarray, img_size: int, norm: str = "imagenet"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame uint8 [1, H, W, 3] and its mask uint8 [1, H, W] (0/255) -> the per-frame models'
    input [3, S, S] (scaled as `norm` says) and target mask [1, S, S] in {0, 1}."""
    face = resize_frames(frame, img_size)
    resized = resize_frames(mask[..., None].repeat(3, -1), img_size)[..., 0]
    return normalize(face, norm)[:, 0], torch.from_numpy((resized > 127).astype(np.float32))


def denormalize(video: torch.Tensor) -> np.ndarray:
    """float [3, T, H, W] -> uint8 [T, H, W, 3]"""
    x = video.detach().float().cpu().numpy().transpose(1, 2, 3, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size:
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def augment_clip(frames: np.ndarray, rois: np.ndarray, rng: np.random.Generator, out_size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation, one draw per clip (so time stays coherent): horizontal flip, a random
    crop of 85-100% of the side (scale and position), per-channel colour gains, contrast and
    brightness; then resized to out_size. Applied to real and fake clips alike, so it is no label
    cue. The crop and colour draws are strong on purpose: with a few dozen people, a model that
    can memorise each face's exact colours and framing does (stage 1's masked-part loss on unseen
    people stayed at the constant-prediction level); jitter makes the visible context the only
    reliable source of the missing part."""
    size = frames.shape[2]
    rois = rois.copy()
    if rng.random() < 0.5:
        frames = frames[:, :, ::-1]
        rois[..., [0, 2]] = size - rois[..., [2, 0]]  # the parts are left-right symmetric regions
    side = int(round(size * rng.uniform(0.85, 1.0)))
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
    frames = resize_frames(np.ascontiguousarray(frames[:, y0:y0 + side, x0:x0 + side]), out_size)
    rois = np.clip((rois - np.array([x0, y0, x0, y0], np.float32)) * (out_size / side), 0, out_size)
    contrast, gains = rng.uniform(0.8, 1.2), rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return colour_jitter(frames, contrast, gains, rng.uniform(-20, 20)), rois


def colour_jitter(frames: np.ndarray, contrast: float, gains: np.ndarray, shift: float
                  ) -> np.ndarray:
    """uint8 [T, H, W, 3]: ((x - m) * contrast + m) * gains + shift per channel, m the clip's mean,
    clipped and truncated to uint8. Each channel's 256 values map on their own, so a lookup
    table gives the same bytes as the arithmetic on every pixel, ~4x faster
    (benchmarks/recover_speed)."""
    mean = frames.mean(dtype=np.float32)
    values = np.arange(256, dtype=np.float32)[:, None]
    table = np.clip(((values - mean) * contrast + mean) * gains + shift, 0, 255).astype(np.uint8)
    return cv2.LUT(frames.reshape(-1, *frames.shape[2:]), table[None]).reshape(frames.shape)


class VideoClipDataset(Dataset):
    """Items: video [3, T, S, S], label, rois [T, 3, 4] (input pixels), and a token mask when a
    masker is given. Training items draw a random frame offset; evaluation items are fixed."""

    def __init__(self, cache: str | Path, rows: list[ClipRow], num_frames: int, img_size: int,
                 masker=None, train: bool = True, seed: int = 0, store: ClipStore | None = None,
                 augment: bool | None = None):
        self.rows, self.num_frames, self.img_size = rows, num_frames, img_size
        self.masker, self.train, self.seed = masker, train, seed
        self.augment = train if augment is None else augment
        self.store = store or ClipStore(cache)
        self.epoch = 0
        self.labels = np.array([r.label for r in rows])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        clip = self.store.get(row.clip)
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, index])
        picks = frame_positions(clip.num_frames, self.num_frames, rng if self.train else None)
        frames, rois = clip.frames[picks], clip.rois[picks].astype(np.float32)
        if self.augment:
            frames, rois = augment_clip(frames, rois, rng, self.img_size)
        else:
            frames, rois = resize_frames(frames, self.img_size), rois * (self.img_size / clip.size)
        item = {"video": normalize(frames), "label": torch.tensor(float(row.label)),
                "rois": torch.from_numpy(rois), "index": index}
        if self.masker is not None:
            token_mask, info = self.masker(rois, rng)
            item["token_mask"] = torch.from_numpy(token_mask)
            item["masked_part"] = info.part
        return item
