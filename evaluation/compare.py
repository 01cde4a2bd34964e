"""Trained runs side by side: one markdown table row per run, read from what `--stage release` (or
`--stage evaluate`, and the evaluation of a dev set into RUN/eval_dev) left in the run folder, so
a study's table is copied rather than retyped.

    python -m delocate.evaluation.compare RUN [RUN ...] [--labels "seed 0,seed 1"]

Columns: the side stage 2 reads faces at, the validation people's video AUC, mask IoU (blend /
swap) and same-source AUC (the numbers thresholds and ship rules are chosen on:
eval_test/metrics.json's `validation`), the test split's video AUC and mask IoU, the dev set's
video AUC (all, then each method) and IoU, the verdict threshold, and the epoch training selected
with its own validation numbers (log.jsonl). Every score is the fused one, the score verdicts use.
A file that is not there leaves its cells "–".
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from delocate.common.config import load_config
from delocate.common.log import read_json_lines

COLUMNS = ("run", "reads (px)", "val video AUC", "val mask IoU (blend / swap)",
           "val same-source AUC", "test video AUC", "test IoU", "dev video AUC (by method)",
           "dev IoU", "threshold", "selected epoch (its val AUC / IoU)")
SCORE = "fused"


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _short(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def selected_epoch(run: Path, stage: str = "localize") -> str:
    """'N (AUC / IoU)': the epoch whose validation value is the one the stage's summary kept
    (matched by value, so runs whose summaries counted epochs from 0 read the same)."""
    summary = _read(run / f"{stage}_summary.json")
    keys = [k for k in summary if k.startswith("best_") and k not in ("best_checkpoint",
                                                                      "best_epoch")]
    if not keys or summary[keys[0]] is None:
        return "–"
    select, value = keys[0][len("best_"):], summary[keys[0]]
    kept = [r for r in read_json_lines(run / "log.jsonl")
            if r.get("stage") == stage and r.get(select) == value]
    if not kept:
        return "–"
    record = kept[-1]
    return f"{record['epoch']} ({_num(record.get('val_auc'))} / {_num(record.get('val_iou'))})"


def _reads(run: Path, validation: dict) -> str:
    """The side stage 2 read the faces at: chosen by the evaluation, else the run's config."""
    if validation.get("input_size"):
        return str(validation["input_size"])
    if not (run / "config.yaml").is_file():
        return "–"
    return str(load_config(run / "config.yaml").stage2_input_size())


def run_row(run: str | Path, label: str | None = None) -> list[str]:
    """One row of COLUMNS for the run folder `run`."""
    run = Path(run)
    test, dev = _read(run / "eval_test" / "metrics.json"), _read(run / "eval_dev" / "metrics.json")
    val = test.get("validation") or {}
    val_iou = val.get("iou") or {}
    test_auc = test.get("video", {}).get(SCORE, {})
    dev_auc = dev.get("video", {}).get(SCORE, {})
    dev_methods = " / ".join(_num(m["auc"]) for name, m in dev_auc.items() if name != "all")
    threshold = _read(run / "threshold.json").get("threshold")
    return [
        label or str(run),
        _reads(run, val),
        _num(val.get("video_auc", {}).get(SCORE, {}).get("all")),
        (f"{_num(val_iou.get('all'))} ({_short(val_iou.get('blend'))} / "
         f"{_short(val_iou.get('swap'))})") if val_iou else "–",
        _num(val.get("same_source_auc")),
        _num(test_auc.get("all", {}).get("auc")),
        _num(test.get("localization", {}).get("all", {}).get("iou")),
        (f"{_num(dev_auc['all']['auc'])} ({dev_methods})" if dev_methods
         else _num(dev_auc.get("all", {}).get("auc"))),
        _num(dev.get("localization", {}).get("all", {}).get("iou")),
        _num(threshold),
        selected_epoch(run),
    ]


def table(runs: list[str | Path], labels: list[str] | None = None) -> str:
    """The markdown table of `runs`, one row each, in the order given."""
    labels = labels or [None] * len(runs)
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(run_row(run, label)) + " |" for run, label in zip(runs, labels)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m delocate.evaluation.compare",
        description="Print trained runs side by side (a markdown table) from their metrics files: "
                    "validation people, test split, dev set (RUN/eval_dev), threshold, selected "
                    "epoch.")
    parser.add_argument("runs", nargs="+", help="run folders (e.g. OUT/run of --stage release)")
    parser.add_argument("--labels", help="comma-separated row names, one per run (default: "
                                         "the run folders)")
    args = parser.parse_args(argv)
    missing = [run for run in args.runs if not Path(run).is_dir()]
    if missing:
        parser.error(f"not a run folder: {', '.join(missing)}")
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    try:
        print(table(args.runs, labels))
    except ValueError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
