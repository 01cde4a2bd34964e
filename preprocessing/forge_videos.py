"""--stage forge: real videos in, forged videos out, made the way third-party tools make them.

Per real video, `forge.segments` clips of `forge.frames` consecutive frames are decoded at source
resolution; dlib finds the face and its landmarks in every frame (as preprocessing does); every
method forges each frame in place with one recipe per clip (preprocessing/forgery.py; swap donors
are other people of the same split, part methods take the part from another moment of the same
clip); the real clip and every fake are encoded with H.264 (crf `forge.crf`); masks are saved
full-frame. This is how ../shared/dev-forgeries was built with other projects' code, so our own
held-out fakes and third-party ones are scored on equal terms.

Output (resumable: finished files are kept):
  OUT/real/<clip>.mp4, OUT/fake/<method>/<clip>.mp4, OUT/masks/<method>/<clip>.npz (uint8 mask
  [T, H, W], 255 = forged), OUT/manifest.csv (path, label, method, source, split, mask_path), which
  `--stage preprocess --input OUT/manifest.csv` reads, masks included.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from delocate.common.config import ForgeConfig
from delocate.common.io import atomic_save_npz, atomic_write_text
from delocate.common.log import info, progress
from delocate.preprocessing.codecs import encode_video
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.forgery import draw_recipe, forge
from delocate.preprocessing.synthesis import METHODS, PART_OF_METHOD
from delocate.preprocessing.video_io import VideoError, sample_frames

MANIFEST_COLUMNS = ["path", "label", "method", "source", "split", "mask_path"]


@dataclass
class RealClip:
    name: str
    person: str
    split: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    landmarks: np.ndarray  # float32 [T, 68, 2]
    found: np.ndarray  # bool [T]
    fps: float


def _rng(*keys) -> np.random.Generator:
    digest = hashlib.sha1("/".join(map(str, keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def read_clips(path: Path, person: str, split: str, cfg: ForgeConfig,
               analyzer: FaceAnalyzer) -> list[RealClip]:
    """Up to cfg.segments clips of cfg.frames consecutive frames, spread over the video."""
    total = sample_frames(path, 1, cfg.max_decode_side).total_frames
    count = min(cfg.frames, total)
    starts = np.linspace(0, total - count, max(1, min(cfg.segments, total // count)))
    clips = []
    for k, start in enumerate(starts.round().astype(int)):
        sampled = sample_frames(path, count, cfg.max_decode_side,
                                indices=np.arange(start, start + count))
        track = analyzer.track(sampled.frames)
        clips.append(RealClip(f"{person}_{path.stem}_s{k}", person, split, sampled.frames,
                              track.landmarks, track.face_found, sampled.fps))
    return clips


def forge_clip(clip: RealClip, method: str, donors: list[RealClip], seed: int
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(fake frames, masks uint8 [T, H, W], donor name) for one clip and method."""
    rng = _rng(seed, clip.name, method)
    recipe = draw_recipe(rng, method)
    count = len(clip.frames)
    donor, offset = None, 0
    if method == "swap":
        others = [d for d in donors if d.person != clip.person]
        if not others:
            raise ValueError(f"swap of {clip.name}: no other person in split {clip.split!r}")
        donor = others[int(rng.integers(len(others)))]
    elif method in PART_OF_METHOD and count > 1:
        donor, offset = clip, int(rng.integers(max(1, count // 4), max(2, count // 2 + 1)))
    fakes, masks = clip.frames.copy(), np.zeros(clip.frames.shape[:3], np.uint8)
    for t in np.flatnonzero(clip.found):  # frames without a face stay real
        source = None if donor is None else (t + offset) % len(donor.frames)
        forged = forge(clip.frames[t], clip.landmarks[t], recipe,
                       None if donor is None else donor.frames[source],
                       None if donor is None else donor.landmarks[source])
        fakes[t], masks[t] = forged.image, forged.mask.astype(np.uint8) * 255
    return fakes, masks, "" if donor is None or donor is clip else donor.name


def forge_videos(sources: list[tuple[Path, str, str]], out_dir: str | Path, cfg: ForgeConfig
                 ) -> Path:
    """sources: (video, person, split). Returns the manifest's path."""
    out = Path(out_dir)
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown forge method(s) {unknown}; choose from {METHODS}")
    analyzer = FaceAnalyzer(cfg.detect_max_side, cfg.detect_upsample)
    clips: list[RealClip] = []
    for path, person, split in progress(sources, "forge: read real videos", unit="video"):
        try:
            clips.extend(read_clips(Path(path), person, split, cfg, analyzer))
        except (VideoError, ValueError) as err:
            info(f"forge: {path} skipped: {' '.join(str(err).split())}")
    rows = []
    jobs = [(clip, method) for clip in clips for method in ["real", *cfg.methods]]
    for clip, method in progress(jobs, "forge", unit="video"):
        rel = f"real/{clip.name}.mp4" if method == "real" else f"fake/{method}/{clip.name}.mp4"
        mask_rel = "" if method == "real" else f"masks/{method}/{clip.name}.npz"
        row = {"path": rel, "label": "real" if method == "real" else "fake",
               "method": method, "source": clip.person, "split": clip.split, "mask_path": mask_rel}
        if not (out / rel).is_file():
            if method == "real":
                encode_video(clip.frames, out / rel, clip.fps, cfg.crf)
            else:
                try:
                    fakes, masks, _ = forge_clip(clip, method, [c for c in clips
                                                                if c.split == clip.split], cfg.seed)
                except ValueError as err:
                    info(f"forge: {err}")
                    continue
                atomic_save_npz(out / mask_rel, mask=masks)
                encode_video(fakes, out / rel, clip.fps, cfg.crf)
        rows.append(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "manifest.csv", buffer.getvalue())
    info(f"forge: {sum(r['label'] == 'real' for r in rows)} real and "
         f"{sum(r['label'] == 'fake' for r in rows)} forged videos -> {out / 'manifest.csv'}")
    return out / "manifest.csv"
