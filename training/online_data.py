"""Datasets over online pairs (training/pairs.py) for the training stages, and fixed validation
sets.

Item 2k is the real face of pair k and item 2k+1 its fake, so a batch of consecutive items holds
each real face beside its own fake (as SBI trains). The sets are endless: the engine asks for items
[epoch * count, (epoch + 1) * count) (`online_index_fn`), so a run never repeats a pair, and an item
is a pure function of (seed, index): any worker, any resume, the same pixels.

Meta-learning episodes (localize.meta): each epoch splits the methods into meta-train and meta-test
types (meta/splits.py's rule); the first half of every batch forges with the first, the second half
with the second.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from delocate.common.config import Config
from delocate.meta.splits import split_by_method
from delocate.preprocessing.face_pool import FacePool
from delocate.training.batches import start_workers
from delocate.training.inputs import frame_tensors, normalize, resize_frames
from delocate.training.pairs import PairMaker

ENDLESS = 1 << 40


def online_index_fn(epoch: int, count: int) -> list[int]:
    """The engine's item order: a fresh, consecutive block of items per epoch."""
    return list(range(epoch * count, (epoch + 1) * count))


class OnlinePairs(Dataset):
    """Base: pair bookkeeping shared by the frame and clip sets."""

    def __init__(self, maker: PairMaker, img_size: int, seed: int = 0, num_frames: int = 1,
                 meta_batch: int = 0):
        self.maker, self.img_size, self.seed, self.num_frames = maker, img_size, seed, num_frames
        self.meta_batch = meta_batch  # > 0: batches are meta-train half + meta-test half
        self.side_methods: tuple[list[str], list[str]] | None = None

    def set_epoch(self, epoch: int) -> None:
        if self.meta_batch:
            methods = self.maker.methods
            if len(methods) < 2:
                raise ValueError("online meta-learning needs at least two methods")
            split = split_by_method(methods, methods, [1] * len(methods),
                                    np.random.default_rng([self.seed, epoch, 11]))
            self.side_methods = (split.train_methods, split.test_methods)

    def __len__(self) -> int:
        return ENDLESS

    def pair_frames(self, index: int) -> tuple[np.ndarray, np.ndarray, int, str]:
        """(frames uint8 [T, C, C, 3], masks uint8 [T, C, C], label, method) of item `index`."""
        pair, is_fake = divmod(int(index), 2)
        methods = None
        if self.side_methods is not None:
            side = int((index % self.meta_batch) >= self.meta_batch // 2)
            methods = self.side_methods[side]
        made = self.maker.make((self.seed, pair), bool(is_fake), self.num_frames, methods)
        if is_fake:
            return made.fake, made.mask, 1, made.method
        return made.real, made.mask, 0, "real"


class OnlineFrames(OnlinePairs):
    """Stage-2 / DADF items: input [3, S, S] (scaled for the model: `norm`),
    mask [1, S, S] in {0, 1}, label, method."""

    def __init__(self, maker: PairMaker, img_size: int, norm: str = "imagenet", seed: int = 0,
                 meta_batch: int = 0):
        super().__init__(maker, img_size, seed, 1, meta_batch)
        self.norm = norm

    def __getitem__(self, index: int) -> dict:
        frames, masks, label, method = self.pair_frames(index)
        face, target = frame_tensors(frames, masks, self.img_size, self.norm)
        return {"input": face, "mask": target, "label": torch.tensor(float(label)),
                "method": method, "index": int(index)}


class OnlineClips(OnlinePairs):
    """Stage-1 items: video [3, T, S, S] (ImageNet-scaled, as the MAE), label, method."""

    def __getitem__(self, index: int) -> dict:
        frames, _, label, method = self.pair_frames(index)
        return {"video": normalize(resize_frames(frames, self.img_size)),
                "label": torch.tensor(float(label)), "method": method, "index": int(index)}


class FixedSet(Dataset):
    """Items made once and kept (validation): the same pairs every epoch."""

    def __init__(self, items: list[dict]):
        self.items = items
        self.labels = np.array([int(item["label"]) for item in items])
        self.methods = [item["method"] for item in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def fixed_set(dataset: OnlinePairs, pairs: int, workers: int = 0) -> FixedSet:
    """The first `pairs` pairs of `dataset`, made once (in `workers` processes, forked with OpenCV
    at one thread as the training loader's are)."""
    loader = DataLoader(dataset, batch_size=None, sampler=range(2 * pairs), num_workers=workers)
    return FixedSet(list(start_workers(loader)))


def training_methods(config: Config) -> list[str]:
    """The online methods a training stage uses: config.online.methods less holdout_methods."""
    methods = [m for m in config.online.methods if m not in config.holdout_methods]
    if not methods:
        raise ValueError(f"holdout_methods {config.holdout_methods} leaves no method to train on")
    return methods


def online_sets(pool_dir: str | Path, config: Config,
                make: Callable[[PairMaker, int], OnlinePairs], seed: int, val_pairs: int,
                workers: int = 0) -> tuple[OnlinePairs, FixedSet | None, list[str], str]:
    """(endless training set over the pool's train people, fixed validation set over its val people
    or None, methods, a line saying what they hold). `make(maker, seed)` builds one set."""
    methods = training_methods(config)
    pool = FacePool(pool_dir, ("train",))
    train = make(PairMaker(pool, config.online, methods), seed)
    if not FacePool.has_split(pool_dir, "val"):
        return train, None, methods, f"online pairs from {pool.describe()}; no validation people"
    val_pool = FacePool(pool_dir, ("val",))
    # the fixed pairs stay clean footage: checkpoints are chosen on the same items whatever the
    # training pairs' light, degradations and processing
    val_online = replace(config.online, **dict.fromkeys(config.online.SHARES, 0.0))
    val = fixed_set(make(PairMaker(val_pool, val_online, methods), config.online.seed + 1),
                    val_pairs, workers)
    return train, val, methods, (f"online pairs from {pool.describe()}; validation: {val_pairs} "
                                 f"fixed pairs from {val_pool.describe()}")
