"""Decode N evenly spaced frames of a video.

decord first (`get_batch` on the wanted indices: it seeks to the nearest keyframe and decodes only up
to each wanted frame, and can scale while decoding); ffmpeg-python as the fallback, with one ffmpeg
process whose `select` filter converts only the wanted frames. Never one process or one seek per frame:
measured 5-10x slower (../shared/DESIGN.md).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int, float]:
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    if scale >= 1.0:
        return width, height, 1.0
    # even sizes: some decoders (and yuv420p) need them
    new_w, new_h = max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)
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


def _sample_decord(path: Path, num_frames: int, max_side: int, threads: int,
                   indices: np.ndarray | None) -> SampledFrames:
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
        indices = _pick_indices(total, num_frames, indices)
        if len(indices) == 0:
            raise VideoError("none of the requested frames exist in this video")
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as err:  # decord raises bare RuntimeError too
        raise VideoError(f"not a readable video ({str(err).splitlines()[0][:120]})") from None
    return SampledFrames(frames=np.ascontiguousarray(frames), frame_index=indices, fps=fps,
                         total_frames=total, source_size=(width, height), scale=scale,
                         backend="decord", requested=num_frames)


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
        raise VideoError(f"not a readable video (ffmpeg: {str(err).splitlines()[0][:120]})") from None
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
    # the header's duration can overestimate the count: select emits in order, so keep the first `got`
    frames = np.frombuffer(out[: got * frame_bytes], np.uint8).reshape(got, new_h, new_w, 3)
    return SampledFrames(frames=frames.copy(), frame_index=indices[:got], fps=fps,
                         total_frames=total, source_size=(width, height), scale=scale,
                         backend="ffmpeg", requested=num_frames)


def decord_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("decord") is not None


def sample_frames(path: str | Path, num_frames: int = 30, max_side: int = 1920,
                  backend: str = "auto", threads: int = 1,
                  indices: np.ndarray | None = None) -> SampledFrames:
    """Decode `num_frames` evenly spaced RGB frames of `path` (or exactly the frames `indices`, e.g.
    to sample a fake's source or mask video at the fake's frames).

    backend: "auto" (decord, ffmpeg if decord is missing or fails), "decord" or "ffmpeg".
    Raises VideoError with a one-line reason for anything that is not a readable video.
    """
    path = Path(path)
    _check_file(path)
    if backend not in {"auto", "decord", "ffmpeg"}:
        raise ValueError(f"unknown backend {backend!r}")
    use_decord = backend == "decord" or (backend == "auto" and decord_available()
                                         and not os.environ.get("DELOCATE_NO_DECORD"))
    if use_decord:
        try:
            return _sample_decord(path, num_frames, max_side, threads, indices)
        except VideoError:
            if backend == "decord":
                raise
            # decord refuses some files ffmpeg can read (e.g. odd containers): give ffmpeg its turn
    return _sample_ffmpeg(path, num_frames, max_side, indices)
