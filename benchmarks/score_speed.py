"""Throughput of --stage score with a trained run (tiny config by default), measured in one run:

- preprocessing: run_preprocess on the videos (decode 30 frames, faces, crops), seconds per video;
- model: detector + report files per video;
- the preprocessing floor: decoding the same frames the fastest way + one detection and one landmark
  pass per frame (as benchmarks/preprocess_speed.py defines it);
- videos per minute end to end, and ratios against the floor.

Usage: python -m benchmarks.score_speed [--run RUN_DIR] [--videos demo_output/test_videos]
Without --run it measures the shipped model (models/release); without --videos it scores copies of
the bundled carphone clip.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.preprocess_speed import carphone, floor
from delocate.common.config import load_config
from delocate.evaluation.detector import Detector
from delocate.evaluation.score import _score_one, collect_entries
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import run_preprocess
from delocate.preprocessing.sample_cache import clip_id_for, face_count, read_index
from delocate.workflows.export import shipped_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None,
                        help="a trained run dir (default: the shipped model)")
    parser.add_argument("--videos", default=None, help="folder of videos (default: carphone x 8)")
    parser.add_argument("--limit", type=int, default=12, help="at most this many videos")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="delocate-score-bench-"))
    if args.videos:
        videos = sorted(Path(args.videos).rglob("*.mp4"))[: args.limit]
    else:
        videos = []
        for i in range(8):
            videos.append(scratch / "in" / f"carphone{i}.mp4")
            videos[-1].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(carphone(), videos[-1])
    args.run = args.run or shipped_run() or "demo_output/run"
    detector = Detector(args.run)
    cfg = detector.config.preprocess
    entries = collect_entries([str(v) for v in videos])

    start = time.perf_counter()
    run_preprocess(entries, scratch / "cache", cfg, workers=1, desc="bench: preprocess")
    pre_s = (time.perf_counter() - start) / len(entries)

    index = {r["clip"]: r for r in read_index(scratch / "cache")}

    def model_seconds(scorer: Detector, report: str, videos: list) -> tuple[float, int]:
        start, scored = time.perf_counter(), 0
        for entry in videos:
            clip_id = clip_id_for(entry.rel)
            if index.get(clip_id, {}).get("status") == "ok":
                _score_one(scorer, entry, clip_id, face_count(index[clip_id]),
                           scratch / "cache", scratch / report, 0.5)
                scored += 1
        return (time.perf_counter() - start) / max(1, scored), scored

    reading, trained = detector.input_size, detector.config.localize.img_size
    scorers = [detector]
    if reading != trained:  # what reading at a size other than the training size costs
        scorers.append(Detector(args.run, load_config(Path(args.run) / "config.yaml",
                                                      ["evaluate.input_size=0"])))
    for scorer in scorers:  # first-call costs (weights, a new input shape) are not the reading's
        model_seconds(scorer, "warmup", entries[:1])
    model_s, scored = model_seconds(detector, "report", entries)
    if reading != trained:
        trained_s, _ = model_seconds(scorers[1], "report_trained_size", entries)

    analyzer = FaceAnalyzer.from_config(cfg)
    start = time.perf_counter()
    for entry in entries:
        floor(entry.path, analyzer, cfg)
    floor_s = (time.perf_counter() - start) / len(entries)

    total = pre_s + model_s
    print(f"videos: {len(entries)} ({scored} with a face), run {args.run}, "
          f"stage-2 input {detector.input_size} px")
    print(f"preprocessing       {pre_s:7.3f} s/video  ({pre_s / floor_s:.2f}x the floor)")
    print(f"model + report      {model_s:7.3f} s/video")
    if reading != trained:
        print(f"  at the training size ({trained} px) {trained_s:7.3f} s/video "
              f"(the {reading} px reading costs {model_s / trained_s:.2f}x)")
    print(f"preprocessing floor {floor_s:7.3f} s/video")
    print(f"end to end          {total:7.3f} s/video = {60 / total:.1f} videos/min "
          f"({total / floor_s:.2f}x the floor, {pre_s / total:.0%} of it preprocessing)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
