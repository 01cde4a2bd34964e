"""Lossy round trips that real and fake frames take alike: JPEG (OpenCV) and H.264 (the ffmpeg
binary of imageio-ffmpeg, through pipes: nothing touches the disk)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from delocate.preprocessing.video_io import ffmpeg_binary

CODECS = ("jpeg", "h264", "none")


def jpeg_roundtrip(frames: np.ndarray, quality: int) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB -> the same after JPEG encoding at `quality` (1-100)."""
    out = np.empty_like(frames)
    for t, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        out[t] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def _even_sides(frames: np.ndarray) -> np.ndarray:
    """Odd heights / widths padded by one replicated pixel: yuv420p needs even sides."""
    height, width = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def h264_roundtrip(frames: np.ndarray, crf: int, preset: str = "veryfast") -> np.ndarray:
    """uint8 [T, H, W, 3] RGB -> the same after libx264 (yuv420p, `crf`) and decoding, as a video
    file would carry it. Odd sides are padded by replication for 4:2:0 and cut back after."""
    count, height, width = frames.shape[:3]
    even = _even_sides(frames)
    size = f"{even.shape[2]}x{even.shape[1]}"
    encode = [ffmpeg_binary(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
              size, "-r", "25", "-i", "pipe:", "-c:v", "libx264", "-preset", preset, "-crf",
              str(int(crf)), "-pix_fmt", "yuv420p", "-f", "h264", "pipe:"]
    stream = subprocess.run(encode, input=np.ascontiguousarray(even).tobytes(), capture_output=True,
                            check=True).stdout
    decode = [ffmpeg_binary(), "-loglevel", "error", "-f", "h264", "-i", "pipe:", "-f", "rawvideo",
              "-pix_fmt", "rgb24", "pipe:"]
    raw = subprocess.run(decode, input=stream, capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, np.uint8).reshape(-1, *even.shape[1:])
    if len(decoded) != count:
        raise RuntimeError(f"h264 round trip returned {len(decoded)} frames for {count}")
    return decoded[:, :height, :width].copy()


def jpeg_quality_to_crf(quality: int) -> int:
    """A rough match of JPEG quality 50..98 to x264 crf 35..16 (what 'light' to 'heavy' means)."""
    return int(round(np.interp(quality, [50, 98], [35, 16])))


def roundtrip(frames: np.ndarray, codec: str, quality: int) -> np.ndarray:
    if codec == "jpeg":
        return jpeg_roundtrip(frames, quality)
    if codec == "h264":
        return h264_roundtrip(frames, jpeg_quality_to_crf(quality))
    if codec == "none":
        return frames
    raise ValueError(f"unknown codec {codec!r}; choose from {CODECS}")


def encode_video(frames: np.ndarray, path: str | Path, fps: float = 25.0, crf: int = 20,
                 preset: str = "medium") -> Path:
    """Write uint8 [T, H, W, 3] RGB frames as an H.264 mp4 (yuv420p; odd sides padded by one
    replicated pixel), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    even = _even_sides(frames)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    cmd = [ffmpeg_binary(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{even.shape[2]}x{even.shape[1]}", "-r", f"{fps:.5f}", "-i", "pipe:", "-an",
           "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
           str(tmp)]
    subprocess.run(cmd, input=np.ascontiguousarray(even).tobytes(), check=True)
    tmp.replace(path)
    return path
