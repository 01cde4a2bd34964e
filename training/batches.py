"""Batches on their way from a DataLoader to the model: worker processes started with OpenCV at
one thread, and tensors moved to the model's device."""
from __future__ import annotations

from typing import Iterator

import cv2
import torch
from torch.utils.data import DataLoader


def start_workers(loader: DataLoader) -> Iterator:
    """iter(loader), its worker processes forked while OpenCV runs one thread: N workers then make
    items on N cores, instead of each spreading its resizes and blurs over every core and all of
    them starving one another. (It has to be set before the fork: cv2.setNumThreads inside a
    forked worker hangs, OpenCV's thread pool not surviving the fork.)"""
    if not loader.num_workers:
        return iter(loader)
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)
    finally:
        cv2.setNumThreads(before)


def move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}
