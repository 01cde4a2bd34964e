"""The per-frame training and validation sets of stage 2 and the DADF head, from either kind of
data:

- a FaceClip cache (`--stage preprocess` / `synth`): the frames stage 1 looks at, real and fake
  clips as they are, balanced by sampling weights or laid out in meta-learning episodes;
- a face pool (`--stage pool`): online pairs (training/pairs.py), every real face beside a fake made
  from it, with fixed validation pairs from the pool's validation people.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from delocate.common.config import Config
from delocate.meta.splits import split_by_method
from delocate.preprocessing.face_pool import is_pool
from delocate.training.inputs import (ClipRow, ClipStore, frame_positions, frame_tensors,
                                      labelled_splits)
from delocate.training.online_data import OnlineFrames, online_index_fn, online_sets
from delocate.training.stage import StageData, balanced_weights


# --- per-frame dataset ----------------------------------------------------------------------------

class FrameDataset(Dataset):
    """Items: one frame of one clip (the frames stage 1 looks at): input face, mask, recovered
    face."""

    def __init__(self, rows: list[ClipRow], store: ClipStore, frames_per_clip: int, img_size: int,
                 recovered: dict[str, np.ndarray] | None, train: bool, seed: int = 0,
                 norm: str = "imagenet"):
        self.rows, self.store, self.img_size = rows, store, img_size
        self.frames_per_clip, self.recovered = frames_per_clip, recovered
        self.train, self.seed, self.epoch, self.norm = train, seed, 0, norm
        self.items = [(r, k) for r in range(len(rows)) for k in range(frames_per_clip)]
        self.labels = np.array([rows[r].label for r, _ in self.items])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        row_index, k = self.items[index]
        row = self.rows[row_index]
        clip = self.store.get(row.clip)
        t = int(frame_positions(clip.num_frames, self.frames_per_clip, None)[k])
        mask = np.zeros((1, clip.size, clip.size), np.uint8) if clip.mask is None else \
            clip.mask[t:t + 1]
        face, target = frame_tensors(clip.frames[t:t + 1], mask, self.img_size, self.norm)
        item = {"input": face, "mask": target, "label": torch.tensor(float(row.label)),
                "index": index}
        if self.recovered is not None:
            item["recovered"] = torch.from_numpy(self.recovered[row.clip][k].astype(np.float32))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.train and rng.random() < 0.5:  # flip face, mask and target together
            for key in ("input", "mask", "recovered"):
                if key in item:
                    item[key] = item[key].flip(-1)
        return item


def meta_index_fn(dataset: FrameDataset, seed: int, batch_size: int):
    """Each batch: first half from the meta-train side, second half from the meta-test side of the
    epoch's split (meta/splits.py); real and fake drawn equally often on each side."""
    rows = dataset.rows
    per_clip = dataset.frames_per_clip

    def index_fn(epoch: int, count: int) -> list[int]:
        rng = np.random.default_rng([seed, epoch, 11])
        split = split_by_method([r.method for r in rows], [r.source or r.clip for r in rows],
                                [r.label for r in rows], rng)
        half = batch_size // 2
        pools = []
        for side in (split.train, split.test):
            items = np.array([i * per_clip + k for i in side for k in range(per_clip)])
            labels = np.array([rows[i].label for i in side for _ in range(per_clip)])
            weights = 1.0 / np.bincount(labels, minlength=2)[labels]
            pools.append((items, weights / weights.sum()))
        order = []
        for _ in range(count // batch_size):
            for items, p in pools:
                order.extend(rng.choice(items, half, p=p).tolist())
        return order

    return index_fn


@dataclass
class FrameSets(StageData):
    """StageData (val: None when the validation data lacks a class; index_fn: the engine's item
    order, when laid out in episodes) and the fake methods trained on (None: every method)."""
    methods: list[str] | None = None


def frame_sets(data: str | Path, config: Config, img_size: int, norm: str, seed: int,
               batch_size: int, meta: bool, num_workers: int = 0,
               recovered_for: Callable[[list[ClipRow], ClipStore], dict] | None = None
               ) -> FrameSets:
    """Training and validation frames from `data` (a cache or a pool; see the module doc).
    `recovered_for(rows, store)`: stage 1's recovered faces for the mapping target (caches only)."""
    if is_pool(data):
        if recovered_for is not None:
            raise ValueError("online training data has no stage-1 recovered faces (the mapping "
                             "module's target): set localize.use_mapping=false or "
                             "localize.use_stage1=false")
        train, val, methods, about = online_sets(
            data, config, lambda maker, s: OnlineFrames(maker, img_size, norm, s,
                                                        batch_size if meta else 0),
            seed, config.online.val_pairs, num_workers)
        return FrameSets(train, val, None, online_index_fn, about, methods)
    data = Path(data)
    train_rows, val_rows, methods = labelled_splits(data, config.holdout_methods, "stage 2")
    store = ClipStore(data)
    frames = config.recover.num_frames
    recovered = recovered_for(train_rows, store) if recovered_for else None
    train = FrameDataset(train_rows, store, frames, img_size, recovered, train=True, seed=seed,
                         norm=norm)
    # validation looks at 4 of each clip's frames: enough to rank epochs, half the cost
    val = FrameDataset(val_rows, store, min(4, frames), img_size, None, train=False, seed=seed,
                       norm=norm)
    labels = train.labels
    return FrameSets(train, val if len(set(val.labels)) == 2 else None,
                     None if meta else balanced_weights(labels),
                     meta_index_fn(train, seed, batch_size) if meta else None,
                     f"{len(train_rows)} training clips ({len(train)} frames), {len(val_rows)} "
                     f"validation clips of {data}", sorted(methods) if methods else None)
