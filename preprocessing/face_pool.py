"""The face pool: real faces at source resolution, the raw material of online forgery synthesis.

Real tools forge at the source frame's resolution; the result is then encoded and cropped by the
detector's own preprocessing. So the pool keeps, per sampled frame of every real video (and every
photo), a wide face crop (`pool.margin` x the landmark box, wider than preprocessing's 1.3, so the
crop can jitter and blend edges have room) at `pool.crop_size` px, with its 68 dlib landmarks; the
training pairs (training/pairs.py) forge, encode, crop and resize from there, as test videos go.

Layout of a pool folder (each file written atomically; a rerun skips sources already done):
- `sources/<id>.npy`: uint8 [N, P, P, 3] crops (plain .npy: memory-mapped, shared by DataLoader
  workers through the page cache);
- `sources/<id>.npz`: landmarks float32 [N, 68, 2] (crop pixels), native_side float32 [N] (the
  crop's side in source pixels), frame_index int32 [N];
- `sources/<id>.error.json`: a source that gave no face, with its one-line reason;
- `index.json`: one row per source: id, person, kind (video | image), split, frames, origin.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from delocate.common.config import PoolConfig
from delocate.common.io import atomic_save_npz, atomic_write_bytes, atomic_write_json
from delocate.common.log import info, progress
from delocate.preprocessing.datasets import VIDEO_EXTENSIONS
from delocate.preprocessing.faces import FaceAnalyzer, crop_square, to_crop_coords, warp_crop
from delocate.preprocessing.video_io import IMAGE_EXTENSIONS, VideoError, sample_frames

POOL_VERSION = 1


@dataclass
class PoolSource:
    id: str
    person: str
    kind: str  # video | image
    path: str
    split: str = "train"  # train | val | test (test people are listed, never loaded for training)
    origin: str = ""
    frames: int = 0


def source_id(origin: str, person: str) -> str:
    """A file-system safe id, stable wherever the input folder lies (hashed on `origin`, the path
    below the input folder's parent)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{person}__{Path(origin).stem}")[-60:]
    return f"{safe}-{hashlib.sha1(origin.encode()).hexdigest()[:6]}"


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image" if suffix in IMAGE_EXTENSIONS else None


def find_sources(inputs: list[str | Path]) -> list[PoolSource]:
    """Real videos and photos under each input folder. A folder's manifest.csv (columns file or
    path, and person) names who is in each file; without one, or where it says `unknown`, every file
    is its own person."""
    sources: list[PoolSource] = []
    for root in map(Path, inputs):
        manifest = root / "manifest.csv"
        if manifest.is_file():
            with manifest.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            listed = [(root / (r.get("file") or r.get("path") or ""), r.get("person") or "")
                      for r in rows]
        elif root.is_dir():
            listed = [(p, "") for p in sorted(root.rglob("*")) if p.is_file()]
        else:
            raise FileNotFoundError(f"pool input not found: {root}")
        for path, person in listed:
            kind = _kind(path)
            if kind is None or not path.is_file():
                continue
            person = path.stem if person in ("", "unknown") else person
            origin = f"{root.name}/{path.relative_to(root).as_posix()}"
            sources.append(PoolSource(source_id(origin, person), person, kind, str(path),
                                      origin=origin))
    return sources


def assign_people(sources: list[PoolSource], cfg: PoolConfig) -> list[PoolSource]:
    """Split by person: `test_people` and `val_people` of the people with videos (the held-out
    video sets are made from them), and a `image_val_share` of the photo-only people for
    validation; everyone else trains. Deterministic in cfg.seed."""
    video_people = sorted({s.person for s in sources if s.kind == "video"})
    shuffled = np.random.default_rng(cfg.seed).permutation(len(video_people))
    order = [video_people[i] for i in shuffled]
    split_of = {p: "test" for p in order[:cfg.test_people]}
    split_of.update({p: "val" for p in order[cfg.test_people:cfg.test_people + cfg.val_people]})
    for source in sources:
        if source.person in split_of:
            source.split = split_of[source.person]
        elif source.kind == "image":
            draw = int(hashlib.sha1(f"{cfg.seed}:{source.person}".encode()).hexdigest()[:8], 16)
            source.split = "val" if draw / 0xFFFFFFFF < cfg.image_val_share else "train"
        else:
            source.split = "train"
    return sources


def _read(source: PoolSource, cfg: PoolConfig) -> tuple[np.ndarray, np.ndarray]:
    """(frames [N, H, W, 3] RGB, frame indices [N]) of a video or a photo (one frame, read at its
    full resolution: max_side 0)."""
    sampled = sample_frames(source.path, cfg.frames_per_video,
                            0 if source.kind == "image" else cfg.max_decode_side)
    return sampled.frames, sampled.frame_index.astype(np.int32)


def wide_crop(image: np.ndarray, landmarks: np.ndarray, cfg: PoolConfig
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """(crop [P, P, 3], landmarks in crop pixels, side of the crop in source pixels). The border is
    replicated where the crop leaves the picture (tight photos), the same for real and fake."""
    box = crop_square(landmarks, cfg.margin)
    crop = warp_crop(image, box, cfg.crop_size, replicate=True)
    return crop, to_crop_coords(landmarks, box, cfg.crop_size), float(box[2] - box[0])


def build_source(source: PoolSource, folder: Path, cfg: PoolConfig, analyzer: FaceAnalyzer) -> int:
    """Crops of every frame of `source` where a face is found; returns how many."""
    frames, frame_index = _read(source, cfg)
    track = analyzer.track(frames)  # ValueError when no frame has a face
    keep = np.flatnonzero(track.face_found)
    crops, points, sides = zip(*(wide_crop(frames[t], track.landmarks[t], cfg) for t in keep))
    write_source(folder, source.id, np.stack(crops), np.stack(points), np.array(sides),
                 frame_index[keep])
    return len(keep)


def write_source(folder: Path, source_id: str, crops: np.ndarray, landmarks: np.ndarray,
                 native_side: np.ndarray, frame_index: np.ndarray) -> None:
    """One source's files: its crops (.npy), then its geometry (.npz), whose presence marks the
    source done."""
    buffer = io.BytesIO()
    np.save(buffer, crops)
    atomic_write_bytes(folder / f"{source_id}.npy", buffer.getvalue())
    atomic_save_npz(folder / f"{source_id}.npz", landmarks=np.asarray(landmarks, np.float32),
                    native_side=np.asarray(native_side, np.float32), frame_index=frame_index)


def build_pool(sources: list[PoolSource], out_dir: str | Path, cfg: PoolConfig) -> list[PoolSource]:
    """Crop every train / val source into `out_dir` (resumable); test people are listed only.
    Returns the sources with their frame counts (0: no face, see its error file)."""
    out = Path(out_dir)
    folder = out / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer(cfg.detect_max_side, cfg.detect_upsample)
    failed = 0
    for source in progress(sources, "face pool", unit="source"):
        if source.split == "test":
            continue
        done, error = folder / f"{source.id}.npz", folder / f"{source.id}.error.json"
        if done.is_file():
            with np.load(done) as saved:
                source.frames = len(saved["native_side"])
            continue
        if error.is_file():
            failed += 1
            continue
        try:
            source.frames = build_source(source, folder, cfg, analyzer)
        except (VideoError, ValueError, OSError) as exc:
            atomic_write_json(error, {"source": source.path, "error": " ".join(str(exc).split())})
            failed += 1
    atomic_write_json(out / "index.json", {"version": POOL_VERSION, "config": asdict(cfg),
                                           "sources": [asdict(s) for s in sources]})
    loaded = [s for s in sources if s.frames]
    info(f"face pool {out}: {sum(s.frames for s in loaded)} face crops of "
         f"{len({s.person for s in loaded})} people from {len(loaded)} sources "
         f"({failed} without a face)")
    return sources


def is_pool(path: str | Path) -> bool:
    return (Path(path) / "index.json").is_file() and (Path(path) / "sources").is_dir()


class FacePool:
    """A built pool, read-only: crops are memory-mapped, geometry is loaded."""

    def __init__(self, folder: str | Path, splits: tuple[str, ...] = ("train",)):
        self.folder = Path(folder)
        if not is_pool(self.folder):
            raise FileNotFoundError(f"{self.folder} is not a face pool "
                                    "(make one with --stage pool)")
        index = json.loads((self.folder / "index.json").read_text())
        self.crop_size = int(index["config"]["crop_size"])
        self.sources = [PoolSource(**s) for s in index["sources"]
                        if s["split"] in splits and s["frames"] > 0]
        if not self.sources:
            raise ValueError(f"{self.folder}: no face crops in split(s) {', '.join(splits)}")
        self.crops, self.landmarks, self.native_side = [], [], []
        for source in self.sources:
            self.crops.append(np.load(self.folder / "sources" / f"{source.id}.npy", mmap_mode="r"))
            with np.load(self.folder / "sources" / f"{source.id}.npz") as geometry:
                self.landmarks.append(geometry["landmarks"])
                self.native_side.append(geometry["native_side"])
        self.people = sorted({s.person for s in self.sources})
        self.sources_of = {p: [i for i, s in enumerate(self.sources) if s.person == p]
                           for p in self.people}

    @staticmethod
    def has_split(folder: str | Path, split: str) -> bool:
        index = json.loads((Path(folder) / "index.json").read_text())
        return any(s["split"] == split and s["frames"] > 0 for s in index["sources"])

    def kinds(self) -> dict[str, list[str]]:
        """people by kind (a person with any video counts as a video person)."""
        video = {s.person for s in self.sources if s.kind == "video"}
        return {"video": sorted(video), "image": sorted(set(self.people) - video)}

    def describe(self) -> str:
        kinds = self.kinds()
        return (f"{sum(len(c) for c in self.crops)} face crops of {len(self.people)} people "
                f"({len(kinds['video'])} with video, {len(kinds['image'])} photo-only)")
