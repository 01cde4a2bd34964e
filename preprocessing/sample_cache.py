"""FaceClip: the per-face sample every stage reads (the data contract of ARCHITECTURE.md).

One compressed .npz per face track, written atomically: `<clip>.npz` holds a video's main face (the
one training reads), `<clip>.face<k>.npz` its k-th other face. index.csv has a row per video, with
how many faces it has. Format 1 (one face, no detect_pass) still loads: detect_pass is then 0 where
a face was found.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from delocate.common.io import atomic_save_npz, atomic_write_text

FORMAT_VERSION = 2
INDEX_COLUMNS = ["clip", "video", "label", "method", "split", "face_frames", "faces", "status",
                 "error"]
ARRAY_KEYS = ["frames", "landmarks", "rois", "mask", "face_found", "frame_index", "crop_box",
              "detect_pass"]


@dataclass
class FaceClip:
    frames: np.ndarray  # uint8 [T, S, S, 3] RGB face crops
    landmarks: np.ndarray  # float32 [T, 68, 2] crop pixels
    rois: np.ndarray  # int16 [T, 3, 4] eyes, cheek_nose, lips (x0, y0, x1, y1) crop pixels
    face_found: np.ndarray  # bool [T]
    frame_index: np.ndarray  # int32 [T] source frame index
    crop_box: np.ndarray  # float32 [T, 4] crop square in source-frame pixels
    meta: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None  # uint8 [T, S, S] 0/255; None when unknown
    # int8 [T] the detection pass that found the face (0: the fast one; faces.py), -1: none
    detect_pass: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.detect_pass is None:
            self.detect_pass = np.where(self.face_found, 0, -1).astype(np.int8)
        self.validate()

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def label(self) -> int:
        return int(self.meta.get("label", -1))

    def validate(self) -> None:
        """Raise ValueError if any array breaks the contract (shape, dtype, range)."""
        t = self.frames.shape[0]
        checks = [
            (self.frames.dtype == np.uint8 and self.frames.ndim == 4 and self.frames.shape[3] == 3
             and self.frames.shape[1] == self.frames.shape[2], "frames must be uint8 [T, S, S, 3]"),
            (self.landmarks.shape == (t, 68, 2), "landmarks must be [T, 68, 2]"),
            (self.rois.shape == (t, 3, 4), "rois must be [T, 3, 4]"),
            (self.face_found.shape == (t,) and self.face_found.dtype == bool,
             "face_found: bool [T]"),
            (self.frame_index.shape == (t,), "frame_index must be [T]"),
            (self.crop_box.shape == (t, 4), "crop_box must be [T, 4]"),
            (self.detect_pass.shape == (t,), "detect_pass must be [T]"),
            (self.mask is None or (self.mask.shape == self.frames.shape[:3]
                                   and self.mask.dtype == np.uint8),
             "mask must be uint8 [T, S, S]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid FaceClip: {message}")

    def save(self, path: str | Path) -> Path:
        arrays = {
            "frames": self.frames, "landmarks": self.landmarks.astype(np.float32),
            "rois": self.rois.astype(np.int16), "face_found": self.face_found.astype(bool),
            "frame_index": self.frame_index.astype(np.int32),
            "crop_box": self.crop_box.astype(np.float32),
            "detect_pass": self.detect_pass.astype(np.int8),
            "meta": np.array(json.dumps({"format_version": FORMAT_VERSION, **self.meta},
                                        sort_keys=True)),
        }
        if self.mask is not None:
            arrays["mask"] = self.mask.astype(np.uint8)
        return atomic_save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path, frames: bool = True) -> "FaceClip":
        """Read a FaceClip. frames=False skips decompressing the pixel arrays (meta/geometry
        only)."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            t = int(data["frame_index"].shape[0])
            size = int(meta.get("crop_size", 0)) or None
            if frames:
                pixels = data["frames"]
                mask = data["mask"] if "mask" in data.files else None
            else:
                pixels = np.zeros((t, 1, 1, 3), np.uint8)
                mask = None
            clip = cls(frames=pixels, landmarks=data["landmarks"], rois=data["rois"],
                       face_found=data["face_found"], frame_index=data["frame_index"],
                       crop_box=data["crop_box"], meta=meta, mask=mask,
                       detect_pass=data["detect_pass"] if "detect_pass" in data.files else None)
        if not frames and size:
            clip.meta.setdefault("crop_size", size)
        return clip


def face_path(cache_dir: str | Path, clip_id: str, face: int = 0) -> Path:
    """Where a video's face track `face` lies in a cache (0: the main face)."""
    return Path(cache_dir) / (f"{clip_id}.npz" if face == 0 else f"{clip_id}.face{face}.npz")


class ClipCache:
    """A FaceClip cache folder: where each face's clip lies, loading it, and its index rows."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, clip_id: str, face: int = 0) -> Path:
        return face_path(self.folder, clip_id, face)

    def load(self, clip_id: str, face: int = 0, frames: bool = True) -> FaceClip:
        """A clip; frames=False reads its meta and geometry only (fast)."""
        return FaceClip.load(self.path(clip_id, face), frames=frames)

    def other_faces(self, clip_id: str) -> list[Path]:
        """The files of a video's faces other than the main one (`<clip>.face<k>.npz`)."""
        return sorted(self.folder.glob(f"{clip_id}.face*.npz"))

    def rows(self, ok_only: bool = True) -> list[dict[str, str]]:
        """index.csv's rows (only the videos that preprocessed, unless ok_only is False)."""
        return [r for r in read_index(self.folder) if not ok_only or r["status"] == "ok"]


def face_count(row: dict) -> int:
    """How many faces an index row's video has (indexes older than format 2: one)."""
    return int(row.get("faces") or 1)


def clip_id_for(video_rel: str) -> str:
    """A file-system safe, unique id for a video from its path relative to the dataset root."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", video_rel.replace("\\", "/"))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "__", stem).strip("_") or "video"
    digest = hashlib.sha1(video_rel.encode()).hexdigest()[:6]
    return f"{safe[-80:]}-{digest}"


def params_digest(params: dict) -> str:
    """Short stable hash of preprocessing parameters: a cached clip is reused only if they match."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def read_index(cache_dir: str | Path) -> list[dict[str, str]]:
    path = Path(cache_dir) / "index.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no index.csv in {cache_dir}: is it a FaceClip cache "
                                "(made by --stage preprocess or synth)?")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_index(cache_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: str(r["clip"])):
        writer.writerow({k: row.get(k, "") for k in INDEX_COLUMNS})
    return atomic_write_text(Path(cache_dir) / "index.csv", buffer.getvalue())
