"""VideoEntry: one input file (a video or an image) with what is known about it, and finding such
files under a folder. The dataset layouts (datasets.py) and scoring build on it."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from delocate.preprocessing.video_io import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv"}
SPLITS = ("train", "val", "test")


class LayoutError(ValueError):
    """The input does not have the expected dataset layout; the message lists what is missing."""


@dataclass
class VideoEntry:
    path: Path
    rel: str  # path relative to the dataset root: names the clip in the cache
    label: int  # 0 real, 1 fake, -1 unknown
    method: str = "real"  # manipulation method ("real" for real videos)
    source: str = ""  # id of the real source (identity / original video): keeps splits leak-free
    split: str = ""  # train / val / test, "" when the dataset gives none
    mask_video: Path | None = None  # dataset-provided mask video (FF++)
    source_video: Path | None = None  # real video the fake was made from (difference masks)
    dataset: str = "folder"
    mask_file: Path | None = None  # full-frame masks as .npz (key `mask`, uint8 [T, H, W]) or .npy


def videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def media_under(folder: Path) -> list[Path]:
    """Videos and still images (one-frame inputs) below `folder`: what a plain folder holds."""
    kinds = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in kinds and p.is_file())


def relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


def require_layout(problems: list[str], dataset: str, root: Path) -> None:
    if problems:
        listed = "\n  - ".join(problems)
        raise LayoutError(f"{dataset} layout not found under {root}:\n  - {listed}")


def hash_split(source: str, val_share: float = 0.15, test_share: float = 0.15) -> str:
    """The one split rule for a source that its dataset leaves unassigned: a deterministic draw per
    source id (identity / original video), so a fake and its real source, which share the id,
    always land on the same side. 70/15/15 by default; a dataset that fixes its own test list
    draws train/val only (test_share 0)."""
    draw = random.Random(f"split:{source}").random()
    return ("train" if draw < 1 - val_share - test_share
            else "val" if draw < 1 - test_share else "test")


def fill_splits(entries: list[VideoEntry]) -> list[VideoEntry]:
    """Every entry with a source gets a split (`hash_split`) where its dataset gave none, at
    discovery: the split is then written into the cache's index, and everything downstream
    (training, swap donors, evaluation) reads the same one."""
    for entry in entries:
        if not entry.split and entry.source:
            entry.split = hash_split(entry.source)
    return entries
