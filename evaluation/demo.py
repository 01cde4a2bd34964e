"""--stage demo: the whole pipeline on the embedded demo data, from a fresh clone, on a CPU.

Builds the demo dataset (preprocessing/demo_data.py), pretrains and fine-tunes stage 1, trains
stage 2, evaluates on the held-out test people (with a fake method never seen in training), exports
the test clips as videos and scores them into a report a person can open.
"""
from __future__ import annotations

import time
from pathlib import Path

from common.config import Config
from common.log import info
from evaluation.evaluate import format_tables, run_evaluate
from evaluation.score import run_score
from preprocessing.demo_data import build_demo_dataset, export_split_videos
from stage1_recover.finetune import run_finetune
from stage1_recover.recover import gap_lines, run_recover
from stage2_localize.localize import run_localize


def run_demo(out_dir: str | Path, config: Config, real_faces: Path | None = None) -> int:
    out = Path(out_dir)
    began = time.time()
    timings = {}

    def step(name, fn, *args):
        start = time.time()
        info(f"demo: {name} ...")
        result = fn(*args)
        timings[name] = time.time() - start
        return result

    cache, sources = step("demo dataset", build_demo_dataset, out, config, real_faces)
    print("demo sources:")
    for source in sources:
        print(f"  - {source.origin}")
    if not any(s.origin.startswith("real-faces") for s in sources):
        print("  (../shared/real-faces not found: demo built from the bundled clips only)")
    run = out / "run"
    recover = step("stage 1 pretraining (recover)", run_recover, cache, run, config)
    step("stage 1 fine-tuning", run_finetune, cache, run, config)
    step("stage 2 (localize)", run_localize, cache, run, config)
    result = step("evaluate", run_evaluate, cache, run, "test")
    videos = out / "test_videos"
    step("export test videos", export_split_videos, cache, videos, "test")
    report = out / "report"
    summary = step("score test videos", run_score, [str(videos)], run, report)

    print("\nstage 1 recovery error (masked facial parts, lower = more real-looking):")
    for line in gap_lines(recover["reconstruction_gap"]):
        print(f"  {line}")
    held = ", ".join(config.holdout_methods) or "none"
    print(f"\nmetrics on the test people (methods held out of training: {held}):")
    print(format_tables(result))
    print("\ntime per step: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
          + f"; total {time.time() - began:.0f}s")
    print(f"\nwritten:\n  dataset cache  {cache}\n  run (models)   {run}\n"
          f"  metrics        {Path(result['out_dir']) / 'metrics.json'}\n"
          f"  test videos    {videos}\n  report         {report / 'index.html'} "
          f"({summary.videos} videos, {summary.failed} failed)")
    return 0 if summary.failed == 0 else 1
