"""--stage evaluate: frame- and video-level detection tables for s1, s2 and the fused score, per
manipulation method, and localization metrics; metrics.json in the output folder.

The verdict threshold is chosen on VALIDATION data: the val split of the same cache, or, in the
cross-dataset mode, of another cache (--val-data, e.g. the training cache). Nothing is ever selected
on the data being evaluated. Video-level AUCs come with 95% bootstrap intervals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from delocate.common.io import atomic_write_json
from delocate.common.log import info, progress
from delocate.common.metrics import (best_threshold, bootstrap_auc, detection_metrics,
                                     localization_metrics)
from delocate.evaluation.detector import Detector
from delocate.evaluation.fusion import fit_fusion
from delocate.preprocessing.sample_cache import ClipCache
from delocate.training.inputs import select_rows

SCORES = ["s1", "s2", "dadf", "fused"]  # dadf: only when the run has the DADF head


def predict_split(detector: Detector, cache: Path, split: str) -> list[dict]:
    """Per clip: label, method, video scores, per-frame scores, localization per fake frame.
    split "all": every clip of the cache, whatever its split (e.g. a test-only dataset)."""
    records = []
    rows = select_rows(cache, None if split == "all" else split)
    clips = ClipCache(cache)
    for row in progress(rows, f"evaluate {split}", unit="clip"):
        clip = clips.load(row.clip)
        pred = detector.predict_clip(clip)
        record = {"clip": row.clip, "label": row.label, "method": row.method, "split": split,
                  "video": {"s1": pred.s1, "s2": pred.s2, "dadf": pred.dadf, "fused": pred.fused},
                  "frames": {"s1": pred.s1_frames, "s2": pred.s2_frames, "dadf": pred.dadf_frames,
                             "fused": pred.frame_fused()},
                  "face_found": clip.face_found}
        if pred.masks is not None and clip.mask is not None:
            pred_bin = pred.masks.astype(np.float32) > 0.5
            gt_bin = clip.mask > 127
            record["localization"] = localization_metrics(pred_bin[clip.face_found],
                                                          gt_bin[clip.face_found])
        records.append(record)
    return records


def _table(records: list[dict], level: str, thresholds: dict, bootstrap: int) -> dict:
    """{score: {"all": metrics, method: metrics (reals + that method's fakes)}}"""
    methods = sorted({r["method"] for r in records if r["label"] == 1})
    table = {}
    for score in SCORES:
        if all(r["video"][score] is None for r in records):
            continue
        rows = {}
        for subset in ["all", *methods]:
            chosen = [r for r in records if subset == "all" or r["label"] == 0
                      or r["method"] == subset]
            if level == "video":
                labels = np.array([r["label"] for r in chosen])
                scores = np.array([r["video"][score] for r in chosen], float)
            else:
                labels = np.concatenate([np.full(r["face_found"].sum(), r["label"])
                                         for r in chosen])
                scores = np.concatenate([np.asarray(r["frames"][score])[r["face_found"]]
                                         for r in chosen])
            metrics = detection_metrics(labels, scores, thresholds.get(score))
            if level == "video" and bootstrap:
                metrics["auc_ci95"] = list(bootstrap_auc(labels, scores, bootstrap))
            rows[subset] = metrics
        table[score] = rows
    return table


def _localization_table(records: list[dict]) -> dict:
    out = {}
    fakes = [r for r in records if r["label"] == 1 and "localization" in r]
    for subset in ["all", *sorted({r["method"] for r in fakes})]:
        chosen = [r["localization"] for r in fakes if subset == "all" or r["method"] == subset]
        if chosen:
            out[subset] = {k: float(np.mean([c[k] for c in chosen]))
                           for k in ("iou", "pbca", "iinc")}
            out[subset]["clips"] = len(chosen)
    return out


def run_evaluate(cache: str | Path, run_dir: str | Path, split: str = "test",
                 val_cache: str | Path | None = None, out_dir: str | Path | None = None,
                 aggregator: str | None = None, fit: bool = True) -> dict:
    """Tables of `split`. fit=True (a run being finished): the fusion (when fitted) and the verdict
    threshold are chosen on the validation split and saved in the run; fit=False (a finished model,
    e.g. the shipped one): the run is only read, its fusion kept, and `out_dir` must be given."""
    cache, run_dir = Path(cache), Path(run_dir)
    if not fit and out_dir is None:
        raise ValueError("run_evaluate(fit=False) writes nothing into the run: give out_dir")
    detector = Detector(run_dir, aggregator=aggregator)
    val_cache = Path(val_cache) if val_cache else cache
    if val_cache == cache and split == "val":
        raise ValueError("evaluating the val split: pass --val-data with another cache to choose "
                         "the threshold, so nothing is selected on the data evaluated")
    val_records = predict_split(detector, val_cache, "val")
    if fit and detector.config.evaluate.fusion == "fitted":
        fusion = fit_fusion(val_records, f"{val_cache} (val split)")
        fusion.save(run_dir / "fusion.json")
        detector.fusion, detector.run_id = fusion, detector._run_id()
        for record in val_records:  # the validation videos' fused scores under the new fusion
            record["video"]["fused"] = fusion(record["video"])
        print(f"fusion: {fusion.describe()} -> {run_dir / 'fusion.json'}")
    thresholds = {}
    for score in SCORES:
        labels = [r["label"] for r in val_records if r["video"][score] is not None]
        if len(set(labels)) == 2:
            thresholds[score] = best_threshold(labels, [r["video"][score] for r in val_records
                                                        if r["video"][score] is not None])
    if not thresholds:
        info("no validation clips with both classes: accuracy is reported at 0.5 only")
    records = predict_split(detector, cache, split)
    if not records:
        raise ValueError(f"{cache} has no clips in split {split!r}")
    bootstrap = detector.config.evaluate.bootstrap
    result = {
        "data": str(cache), "split": split, "threshold_chosen_on": f"{val_cache} (val split)",
        "run": str(run_dir), "model_run_id": detector.run_id, "aggregator": detector.aggregator,
        "thresholds": thresholds, "fusion": detector.fusion.describe(),
        "video": _table(records, "video", thresholds, bootstrap),
        "frame": _table(records, "frame", thresholds, 0),
        "localization": _localization_table(records),
        "clips": len(records),
    }
    out_dir = Path(out_dir) if out_dir else run_dir / f"eval_{split}"
    atomic_write_json(out_dir / "metrics.json", result)
    if fit and "fused" in thresholds:
        atomic_write_json(run_dir / "threshold.json", {
            "threshold": thresholds["fused"], "chosen_on": f"{val_cache} (val split)",
            "score": "fused", "aggregator": detector.aggregator, "model_run_id": detector.run_id})
    result["out_dir"] = str(out_dir)
    return result


def format_tables(result: dict) -> str:
    """The tables as the papers print them: rows = method, columns = AUC / AP / EER / ACC."""
    lines = []
    for level in ("video", "frame"):
        for score, rows in result[level].items():
            lines.append(f"\n{level}-level {score} ({result['split']}, aggregator "
                         f"{result['aggregator']})")
            lines.append(f"  {'method':<14}{'n':>5}{'AUC':>8}{'95% CI':>16}{'AP':>8}{'EER':>8}"
                         f"{'ACC@.5':>8}{'ACC@val':>8}")
            for method, m in rows.items():
                ci = m.get("auc_ci95")
                ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
                lines.append(f"  {method:<14}{m['n']:>5}{m['auc']:>8.3f}{ci_text:>16}"
                             f"{m['ap']:>8.3f}{m['eer']:>8.3f}{m['acc@0.5']:>8.3f}"
                             f"{m.get('acc@val_threshold', float('nan')):>8.3f}")
    if result["localization"]:
        lines.append(f"\nlocalization on fake frames ({result['split']}, masks binarized at 0.5)")
        lines.append(f"  {'method':<14}{'clips':>6}{'IoU':>8}{'PBCA':>8}{'IINC':>8}")
        for method, m in result["localization"].items():
            lines.append(f"  {method:<14}{m['clips']:>6}{m['iou']:>8.3f}{m['pbca']:>8.3f}"
                         f"{m['iinc']:>8.3f}")
    return "\n".join(lines)
