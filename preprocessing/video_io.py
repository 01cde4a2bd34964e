"""Decode N evenly spaced frames of a video (or read a still image as a one-frame video).

Sampling "exact" decodes the evenly spaced frames themselves; "keyframe" moves each to the nearest
cheaply decodable frame (a keyframe, or one of the first few frames after it), which skips decoding
whole GOPs; "auto" takes "keyframe" when the video has keyframes enough to keep the samples spread
over it (at least `num_frames // 2`: at most two samples per keyframe), else "exact". The frames'
real indices are returned either way. benchmarks/sampling_equivalence.py measures what it changes.

decord first (`get_batch` on the wanted indices: it seeks to the nearest keyframe and decodes only
up to each wanted frame, and can scale while decoding); ffmpeg-python as the fallback, with one
ffmpeg process whose `select` filter converts only the wanted frames. Never one process or one seek
per frame: measured 5-10x slower (ARCHITECTURE.md).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SAMPLING_MODES = ("auto", "exact", "keyframe")


class VideoError(RuntimeError):
    """A video that cannot be read; the message is one line meant for the user's report."""


@dataclass
class SampledFrames:
    frames: np.ndarray  # uint8 [T, H, W, 3] RGB, possibly scaled (see `scale`)
    frame_index: np.ndarray  # int32 [T] index of each frame in the source video
    fps: float
    total_frames: int
    source_size: tuple[int, int]  # (width, height) of the source video
    scale: float  # decoded size / source size (1.0 unless the video exceeded max_side)
    backend: str
    requested: int = 0  # how many frames were asked for
    sampling: str = "exact"  # exact | keyframe (what was used; see the module doc) | image

    @property
    def short_video(self) -> bool:
        """True when the video had fewer frames than requested (then every frame was taken)."""
        return len(self.frame_index) < self.requested


def evenly_spaced_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """Centres of `num_frames` equal segments of the video; every frame when it is shorter."""
    if total_frames <= 0:
        return np.zeros(0, dtype=np.int32)
    if total_frames <= num_frames:
        return np.arange(total_frames, dtype=np.int32)
    centres = (np.arange(num_frames) + 0.5) * total_frames / num_frames
    return np.minimum(centres.astype(np.int64), total_frames - 1).astype(np.int32)


def keyframe_near_indices(total_frames: int, num_frames: int, keyframes, min_keyframes: int = 1
                          ) -> np.ndarray | None:
    """`num_frames` distinct frames, each at or a few frames after a keyframe, as near as they can
    be to the evenly spaced frames; None when the video is too short or has fewer than
    `min_keyframes` keyframes (then exact sampling is the right choice).

    With K keyframes, up to ceil(num_frames / K) frames starting at each keyframe are candidates, so
    decoding costs at most that many frames per keyframe instead of every frame up to each sample.
    """
    targets = evenly_spaced_indices(total_frames, num_frames)
    keys = np.unique(np.asarray(keyframes, np.int64))
    keys = keys[(keys >= 0) & (keys < total_frames)]
    if len(targets) < num_frames or len(keys) < max(1, min_keyframes):
        return None
    lead = -(-num_frames // len(keys))  # frames decodable per keyframe
    ends = np.append(keys[1:], total_frames)
    candidates = np.concatenate([np.arange(k, min(k + lead, end)) for k, end in zip(keys, ends)])
    if len(candidates) < num_frames:
        return None
    picks, low = [], 0
    for i, target in enumerate(targets):  # nearest candidate, in order, leaving room for the rest
        high = len(candidates) - (num_frames - i)
        j = low + int(np.argmin(np.abs(candidates[low:high + 1] - target)))
        picks.append(candidates[j])
        low = j + 1
    return np.array(picks, np.int32)


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int, float]:
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    if scale >= 1.0:
        return width, height, 1.0
    # even sizes: some decoders (and yuv420p) need them
    new_w = max(2, int(round(width * scale / 2)) * 2)
    new_h = max(2, int(round(height * scale / 2)) * 2)
    return new_w, new_h, new_w / width


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"file not found: {path}")
    if not path.is_file():
        raise VideoError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")


def _pick_indices(total: int, num_frames: int, indices: np.ndarray | None) -> np.ndarray:
    if indices is None:
        return evenly_spaced_indices(total, num_frames)
    indices = np.asarray(indices, np.int32)
    return indices[indices < total]


def _keyframe_picks(reader, total: int, num_frames: int, sampling: str) -> np.ndarray | None:
    if sampling == "exact":
        return None
    try:
        keys = reader.get_key_indices()
    except Exception:  # a container without a usable index: exact sampling still works
        return None
    return keyframe_near_indices(total, num_frames, keys,
                                 num_frames // 2 if sampling == "auto" else 1)


def _read_image(path: Path, max_side: int) -> SampledFrames:
    """A still image as a one-frame video."""
    import cv2

    image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoError(f"not a readable image ({path.suffix.lower()} that OpenCV cannot decode)")
    height, width = image.shape[:2]
    new_w, new_h, scale = _scaled_size(width, height, max_side)
    if scale < 1.0:
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return SampledFrames(frames=cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None],
                         frame_index=np.zeros(1, np.int32), fps=0.0, total_frames=1,
                         source_size=(width, height), scale=scale, backend="image", requested=1,
                         sampling="image")


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _sample_decord(path: Path, num_frames: int, max_side: int, threads: int,
                   indices: np.ndarray | None, sampling: str) -> SampledFrames:
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
        total = len(reader)
        if total == 0:
            raise VideoError("video has no frames")
        height, width = reader[0].shape[:2]
        new_w, new_h, scale = _scaled_size(width, height, max_side)
        if scale < 1.0:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads,
                                        width=new_w, height=new_h)
        fps = float(reader.get_avg_fps())
        near = _keyframe_picks(reader, total, num_frames, sampling) if indices is None else None
        used = "exact" if near is None else "keyframe"
        indices = _pick_indices(total, num_frames, indices) if near is None else near
        if len(indices) == 0:
            raise VideoError("none of the requested frames exist in this video")
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as err:  # decord raises bare RuntimeError too
        raise VideoError(f"not a readable video ({str(err).splitlines()[0][:120]})") from None
    return SampledFrames(frames=np.ascontiguousarray(frames), frame_index=indices, fps=fps,
                         total_frames=total, source_size=(width, height), scale=scale,
                         backend="decord", requested=num_frames, sampling=used)


def ffmpeg_binary() -> str:
    """ffmpeg on PATH, else the binary that the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _probe_ffmpeg(path: Path) -> tuple[int, int, float, int]:
    """(width, height, fps, estimated frame count) from the container header, decoding nothing."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (RuntimeError, OSError, StopIteration) as err:
        first_line = str(err).splitlines()[0][:120]
        raise VideoError(f"not a readable video (ffmpeg: {first_line})") from None
    width, height = meta["size"]
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    if width <= 0 or height <= 0 or fps <= 0 or duration <= 0:
        raise VideoError("not a readable video (ffmpeg found no video stream with a duration)")
    return int(width), int(height), fps, max(1, int(round(duration * fps)))


def _sample_ffmpeg(path: Path, num_frames: int, max_side: int,
                   indices: np.ndarray | None) -> SampledFrames:
    import ffmpeg

    width, height, fps, total = _probe_ffmpeg(path)
    new_w, new_h, scale = _scaled_size(width, height, max_side)
    indices = _pick_indices(total, num_frames, indices)
    if len(indices) == 0:
        raise VideoError("none of the requested frames exist in this video")
    select = "+".join(f"eq(n,{i})" for i in indices.tolist())  # ffmpeg-python escapes the commas
    stream = ffmpeg.input(str(path)).filter("select", select)
    if scale < 1.0:
        stream = stream.filter("scale", new_w, new_h)
    # imageio-ffmpeg's ffmpeg 9 has no -vsync: fps_mode passthrough keeps only the selected frames
    stream = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
    try:
        out, _ = stream.run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        last = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise VideoError(f"not a readable video (ffmpeg: {last[0][:120]})") from None
    frame_bytes = new_w * new_h * 3
    got = len(out) // frame_bytes
    if got == 0:
        raise VideoError("ffmpeg decoded no frames")
    # the header's duration can overestimate the count: select emits in order, so keep the
    # first `got`
    frames = np.frombuffer(out[: got * frame_bytes], np.uint8).reshape(got, new_h, new_w, 3)
    return SampledFrames(frames=frames.copy(), frame_index=indices[:got], fps=fps,
                         total_frames=total, source_size=(width, height), scale=scale,
                         backend="ffmpeg", requested=num_frames)


def decord_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("decord") is not None


def sample_frames(path: str | Path, num_frames: int = 30, max_side: int = 1920,
                  backend: str = "auto", threads: int = 1,
                  indices: np.ndarray | None = None, sampling: str = "exact") -> SampledFrames:
    """Decode `num_frames` RGB frames of `path` spread over the video as `sampling` says (module
    doc), or exactly the frames `indices` (e.g. to sample a fake's source or mask video at the
    fake's frames). An image file (IMAGE_EXTENSIONS) is read as a one-frame video.

    backend: "auto" (decord, ffmpeg if decord is missing or fails), "decord" or "ffmpeg" (ffmpeg
    samples exactly). Raises VideoError with a one-line reason for anything that is not readable.
    """
    path = Path(path)
    _check_file(path)
    if backend not in {"auto", "decord", "ffmpeg"}:
        raise ValueError(f"unknown backend {backend!r}")
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {sampling!r}; choose from {SAMPLING_MODES}")
    if is_image(path):
        return _read_image(path, max_side)
    use_decord = backend == "decord" or (backend == "auto" and decord_available()
                                         and not os.environ.get("DELOCATE_NO_DECORD"))
    if use_decord:
        try:
            return _sample_decord(path, num_frames, max_side, threads, indices, sampling)
        except VideoError:
            if backend == "decord":
                raise
            # decord refuses some files ffmpeg can read (e.g. odd containers): give ffmpeg its turn
    return _sample_ffmpeg(path, num_frames, max_side, indices)
