"""Does keyframe-near sampling keep scores equivalent to exact even sampling? Measured, not assumed.

Real face clips are a few seconds long with one or two keyframes, where `frame_sampling=auto`
samples exactly anyway. Keyframe-near sampling only changes anything on long videos, so each
labelled video of a manifest (real and forged, with masks) is looped to `--seconds` and encoded with
a keyframe every `--gop` seconds (2 s: what streaming platforms and many cameras use; 0: x264's
default, at most 250 frames apart); its masks are looped with it. Every long video is then
preprocessed with frame_sampling exact and auto, and scored by the same model: the report gives the
score differences, verdict agreement at the model's threshold, video AUC and mask IoU under each,
and the preprocessing time of each.

Looping repeats the content every few seconds, which can alias with the keyframe interval; with
`--concat N` each long video is instead N different clips of the same label and method one after
another (scaled and padded to 512x512; masks are then not carried, so no IoU).

What "equivalent" means is measured too: the same video sampled exactly at the *starts* of the 30
equal segments instead of their centres is just as valid a sample, and the differences it makes
(column "shift") are how much a score moves with the choice of frames alone: the yardstick for
the differences keyframe-near sampling makes.

Usage: python -m benchmarks.sampling_equivalence MANIFEST.csv [...] [--run RUN] [--limit N]
(default model: the shipped one in models/release)
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import decord
import numpy as np

from delocate.common.io import atomic_save_npz
from delocate.common.metrics import iou, roc_auc
from delocate.evaluation.detector import Detector
from delocate.preprocessing.datasets import VideoEntry, discover_manifest
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.video_io import VideoError, ffmpeg_binary, sample_frames


def loop_video(entry: VideoEntry, seconds: int, gop: float, out_dir: Path) -> VideoEntry:
    """`entry` looped to `seconds` (its mask file too, frame for frame)."""
    name = f"{hashlib.sha1(entry.rel.encode()).hexdigest()[:8]}_{entry.path.stem}_{seconds}s_g{gop}"
    video = out_dir / f"{name}.mp4"
    if not video.exists():
        fps = decord.VideoReader(str(entry.path)).get_avg_fps()
        keyint = ["-g", str(max(1, round(gop * fps)))] if gop else []
        subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-stream_loop", "-1",
                        "-i", str(entry.path), "-t", str(seconds), "-an", "-c:v", "libx264",
                        *keyint, "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                        str(video)], check=True)
    looped = dataclasses.replace(entry, path=video)
    if entry.mask_file is not None:
        with np.load(entry.mask_file) as data:
            mask = data["mask"]
        frames = len(decord.VideoReader(str(video)))
        mask_file = out_dir / f"{name}_mask.npz"
        if not mask_file.exists():
            atomic_save_npz(mask_file, mask=mask[np.arange(frames) % len(mask)])
        looped.mask_file = mask_file
    return looped


def concat_videos(group: list[VideoEntry], gop: float, out_dir: Path) -> VideoEntry:
    """The clips of `group` one after another at 25 fps, 512x512, a keyframe every `gop` s."""
    key = hashlib.sha1("|".join(e.rel for e in group).encode()).hexdigest()[:8]
    video = out_dir / f"concat_{key}_{len(group)}_g{gop}.mp4"
    if not video.exists():
        inputs, chains = [], []
        for i, entry in enumerate(group):
            inputs += ["-i", str(entry.path)]
            chains.append(f"[{i}:v]scale=512:512:force_original_aspect_ratio=decrease,"
                          f"pad=512:512:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25[v{i}]")
        graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(group))) + \
            f"concat=n={len(group)}:v=1:a=0[out]"
        keyint = ["-g", str(max(1, round(gop * 25)))] if gop else []
        subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", *inputs, "-filter_complex",
                        graph, "-map", "[out]", "-c:v", "libx264", *keyint, "-preset", "veryfast",
                        "-crf", "18", "-pix_fmt", "yuv420p", str(video)], check=True)
    return VideoEntry(video, video.name, group[0].label, group[0].method, video.stem)


def grouped(entries: list[VideoEntry], size: int) -> list[list[VideoEntry]]:
    """Consecutive runs of `size` entries with the same label and method."""
    by_kind: dict[tuple, list[VideoEntry]] = {}
    for entry in entries:
        by_kind.setdefault((entry.label, entry.method), []).append(entry)
    return [items[i:i + size] for items in by_kind.values()
            for i in range(0, len(items) - size + 1, size)]


def segment_starts(path: Path, count: int) -> np.ndarray:
    total = len(decord.VideoReader(str(path)))
    return (np.arange(count) * total // count).astype(np.int32)


def score(entry: VideoEntry, detector: Detector, analyzer: FaceAnalyzer, sampling: str) -> dict:
    """sampling: exact | auto | keyframe, or "shift" (exact, at the segments' starts)."""
    cfg = detector.config.preprocess
    start = time.perf_counter()
    if sampling == "shift":
        sampled = sample_frames(entry.path, indices=segment_starts(entry.path, cfg.num_frames),
                                max_side=cfg.max_decode_side)
        clip = preprocess_video(entry, cfg, analyzer, sampled)
    else:
        clip = preprocess_video(entry, dataclasses.replace(cfg, frame_sampling=sampling), analyzer)
    seconds = time.perf_counter() - start
    pred = detector.predict_clip(clip)
    found = clip.face_found
    overlap = None
    if entry.label == 1 and clip.mask is not None and pred.masks is not None:
        overlap = float(np.mean([iou(p > 0.5, g > 127) for p, g in
                                 zip(pred.masks[found].astype(np.float32), clip.mask[found])]))
    return {"fused": pred.fused, "seconds": seconds, "iou": overlap,
            "sampling": clip.meta["sampling"], "frames": clip.frame_index.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", nargs="+", help="labelled manifest.csv files (with masks)")
    parser.add_argument("--run", default=None, help="model run dir (default: the shipped model)")
    parser.add_argument("--seconds", type=int, default=30, help="length of the looped videos")
    parser.add_argument("--gop", type=float, default=2.0,
                        help="seconds between keyframes (0: x264's default)")
    parser.add_argument("--limit", type=int, default=0,
                        help="at most this many videos per manifest")
    parser.add_argument("--concat", type=int, default=0,
                        help="join this many different clips per long video instead of looping one")
    parser.add_argument("--scratch", default=None, help="folder for the looped videos")
    args = parser.parse_args()
    from delocate.workflows.export import SHIPPED

    detector = Detector(args.run or SHIPPED)
    threshold = detector.threshold[0]
    analyzer = FaceAnalyzer.from_config(detector.config.preprocess)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="delocate-sampling-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"{'set':<26} {'videos':>6} {'keyframe':>8} {'mean|d| auto':>12} {'shift':>6} "
          f"{'max|d| auto':>11} {'shift':>6} {'agree auto':>10} {'shift':>6} "
          f"{'AUC exact':>9} {'auto':>6} {'shift':>6} {'IoU exact':>9} {'auto':>6} {'shift':>6} "
          f"{'s exact':>8} {'s auto':>7}")
    for manifest in args.manifests:
        entries = [e for e in discover_manifest(Path(manifest)) if e.label in (0, 1)]
        units = grouped(entries, args.concat) if args.concat else [[e] for e in entries]
        if args.limit:
            step = max(1, len(units) // args.limit)
            units = units[::step][:args.limit]
        labels, runs = [], {"exact": [], "auto": [], "shift": []}
        for unit in units:
            entry = unit[0]
            try:
                looped = concat_videos(unit, args.gop, scratch) if args.concat else \
                    loop_video(entry, args.seconds, args.gop, scratch)
                results = {mode: score(looped, detector, analyzer, mode) for mode in runs}
            except (VideoError, ValueError, subprocess.CalledProcessError) as err:
                print(f"  skipped {entry.rel}: {' '.join(str(err).split())[:120]}")
                continue
            labels.append(entry.label)
            for mode, result in results.items():
                runs[mode].append(result)
        exact = runs["exact"]
        cells = {}
        for mode in ("auto", "shift"):
            diffs = np.abs([o["fused"] - e["fused"] for o, e in zip(runs[mode], exact)])
            agree = np.mean([(o["fused"] >= threshold) == (e["fused"] >= threshold)
                             for o, e in zip(runs[mode], exact)])
            cells[mode] = (diffs.mean(), diffs.max(), agree)

        def auc(mode):
            return roc_auc(labels, [r["fused"] for r in runs[mode]])

        def mean_iou(mode):
            values = [r["iou"] for r in runs[mode] if r["iou"] is not None]
            return float(np.mean(values)) if values else float("nan")

        name = Path(manifest).parent.name
        print(f"{name[:26]:<26} {len(labels):>6} "
              f"{sum(a['sampling'] == 'keyframe' for a in runs['auto']):>8} "
              f"{cells['auto'][0]:>12.4f} {cells['shift'][0]:>6.4f} "
              f"{cells['auto'][1]:>11.4f} {cells['shift'][1]:>6.4f} "
              f"{cells['auto'][2]:>10.3f} {cells['shift'][2]:>6.3f} "
              f"{auc('exact'):>9.3f} {auc('auto'):>6.3f} {auc('shift'):>6.3f} "
              f"{mean_iou('exact'):>9.3f} {mean_iou('auto'):>6.3f} {mean_iou('shift'):>6.3f} "
              f"{sum(r['seconds'] for r in exact):>8.1f} "
              f"{sum(r['seconds'] for r in runs['auto']):>7.1f}")


if __name__ == "__main__":
    main()
