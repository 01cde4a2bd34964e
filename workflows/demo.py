"""--stage demo: the whole pipeline on the embedded demo data, from a fresh clone, on a CPU.

Builds the demo dataset (preprocessing/demo_data.py), pretrains and fine-tunes stage 1, trains
stage 2, evaluates on the held-out test people (with a fake method never seen in training), exports
the test clips as videos and scores them into a report a person can open.
"""
from __future__ import annotations

import json
from pathlib import Path

from delocate.common.config import Config
from delocate.common.log import Steps
from delocate.evaluation.evaluate import format_tables, run_evaluate
from delocate.evaluation.score import run_score
from delocate.preprocessing.demo_data import build_demo_dataset, export_split_videos
from delocate.preprocessing.sample_cache import read_index
from delocate.stage1_recover.finetune import run_finetune
from delocate.stage1_recover.recover import gap_lines, run_recover
from delocate.stage2_localize.localize import run_localize
from delocate.workflows.export import shipped_run


def side_by_side(results: dict[str, dict]) -> str:
    """Video AUC of the fused score and mask IoU per method, one column pair per model."""
    names = list(results)
    methods = list(next(iter(results.values()))["video"]["fused"])
    head = "".join(f"{name + ' AUC':>22}{'IoU':>7}" for name in names)
    lines = ["side by side on the demo's test clips "
             "(video level, fused score; IoU on fake frames):",
             f"  {'method':<14}{head}"]
    for method in methods:
        cells = ""
        for name in names:
            auc = results[name]["video"]["fused"].get(method, {}).get("auc", float("nan"))
            iou = results[name]["localization"].get(method, {}).get("iou", float("nan"))
            cells += f"{auc:>22.3f}{iou:>7.3f}"
        lines.append(f"  {method:<14}{cells}")
    return "\n".join(lines)


def shipped_overlap(shipped: Path, people: set[str]) -> str:
    """Which of the demo's test people the shipped model saw in training (read its column with
    that in mind)."""
    listing = shipped / "people.json"
    if not listing.is_file():
        return ""
    seen = sorted(people & set(json.loads(listing.read_text()).get("train", [])))
    if not seen:
        return "none of the demo's test people were in the shipped model's training data"
    return (f"note: the shipped model trained on {len(seen)} of the demo's {len(people)} test "
            f"people ({', '.join(seen)}), so its column is not a test on unseen people; its own "
            f"numbers on held-out people are in {shipped / 'MODEL_CARD.md'}")


def run_demo(out_dir: str | Path, config: Config, real_faces: Path | None = None) -> int:
    out = Path(out_dir)
    step = Steps("demo")
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
    print(f"\n{step.summary()}")
    shipped = shipped_run()
    if shipped is not None:
        compare = step("the shipped model on the same test clips", run_evaluate, cache, shipped,
                       "test", None, out / "shipped_eval", None, False)
        step("score test videos with the shipped model", run_score, [str(videos)], shipped,
             out / "report_shipped")
        print("\n" + side_by_side({"trained here": result, "shipped model": compare}))
        tested = {row["clip"].rsplit("_seg", 1)[0] for row in read_index(cache)
                  if row["split"] == "test" and row["label"] == "0"}
        print(shipped_overlap(shipped, tested))
    else:
        print("\n(this install ships no model: models/release is empty)")
    print(f"\nwritten:\n  dataset cache  {cache}\n  run (models)   {run}\n"
          f"  metrics        {Path(result['out_dir']) / 'metrics.json'}\n"
          f"  test videos    {videos}\n  report         {report / 'index.html'} "
          f"({summary.videos} videos, {summary.failed} failed)")
    return 0 if summary.failed == 0 else 1
