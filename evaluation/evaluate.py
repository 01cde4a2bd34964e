"""--stage evaluate: frame- and video-level detection tables for s1, s2 and the fused score, per
manipulation method, localization metrics, and the fused video scores by source (the same-source
AUC: calibration across people apart from detection); metrics.json in the output folder.

The verdict threshold is chosen on VALIDATION data: the val split of the same cache, or, in the
cross-dataset mode, of another cache (--val-data, e.g. the training cache). Nothing is ever selected
on the data being evaluated. Video-level AUCs come with 95% bootstrap intervals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from delocate.common.config import save_config
from delocate.common.io import atomic_write_json
from delocate.common.log import info, progress
from delocate.common.metrics import (best_threshold, bootstrap_auc, detection_metrics,
                                     localization_metrics, roc_auc)
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
                  "source": str(clip.meta.get("source") or ""),
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


def _by_source(records: list[dict], score: str = "fused") -> dict:
    """Video scores per source (the person, or the real video a fake was made from: the dataset
    layout's `source`), and the AUC of fakes against real videos of the same source only.

    The pooled AUC compares every fake with every real video; the same-source AUC asks only whether
    forgeries score above their own source's real videos. The gap between the two is what
    calibration across sources costs (unseen faces or footage scoring high as a whole), as opposed
    to forgeries the model does not see. A source's real videos often include the one a fake was
    made from, so the gap also holds what the two share (pose, light, moment): the model card
    measures that part apart. Empty when no source has both classes."""
    sources: dict[str, dict[int, list[float]]] = {}
    for r in records:
        if r["source"] and r["video"][score] is not None:
            sources.setdefault(r["source"], {0: [], 1: []})[r["label"]].append(r["video"][score])
    both = {k: v for k, v in sources.items() if v[0] and v[1]}
    if not both:
        return {}
    rows = {k: {"real": len(v[0]), "fake": len(v[1]), "mean_real": float(np.mean(v[0])),
                "mean_fake": float(np.mean(v[1])),
                "auc": roc_auc([0] * len(v[0]) + [1] * len(v[1]), v[0] + v[1])}
            for k, v in sorted(both.items())}
    # each same-source (fake, real) pair counts once, ties half: each source's AUC times its pairs
    pairs = sum(r["real"] * r["fake"] for r in rows.values())
    wins = sum(r["auc"] * r["real"] * r["fake"] for r in rows.values())
    chosen = [r for r in records if r["source"] in both]
    pooled = roc_auc([r["label"] for r in chosen], [r["video"][score] for r in chosen])
    return {"score": score, "same_source_auc": wins / pairs, "pooled_auc": pooled,
            "sources": rows}


def _refuse(cache: Path, val_cache: Path, split: str, fit: bool, out_dir) -> None:
    if cache == val_cache and split == "val":
        raise ValueError("evaluating the val split: pass --val-data with another cache to choose "
                         "the threshold, so nothing is selected on the data evaluated")
    if not fit and out_dir is None:
        raise ValueError("evaluating without fit writes nothing into the run: give out_dir")


class Evaluation:
    """A run's detector with its verdict thresholds (and, when fitted, its fusion) chosen on the
    validation split of `val_cache`, once; then `tables()` of any split of any cache.

    fit=True (a run being finished): the fusion and the threshold are saved in the run; fit=False
    (a finished model, e.g. the shipped one): the run is only read and its fusion kept."""

    def __init__(self, run_dir: str | Path, val_cache: str | Path, aggregator: str | None = None,
                 fit: bool = True):
        self.run_dir, self.val_cache, self.fit = Path(run_dir), Path(val_cache), fit
        self.chosen_on = f"{self.val_cache} (val split)"
        self.detector = detector = Detector(self.run_dir, aggregator=aggregator)
        self.readings: dict[int, dict] = {}
        val_records = self._validation_reading()
        if fit and detector.config.evaluate.fusion == "fitted":
            fusion = fit_fusion(val_records, self.chosen_on)
            fusion.save(self.run_dir / "fusion.json")
            detector.fusion, detector.run_id = fusion, detector._run_id()
            for record in val_records:  # the validation videos' fused scores under the new fusion
                record["video"]["fused"] = fusion(record["video"])
            print(f"fusion: {fusion.describe()} -> {self.run_dir / 'fusion.json'}")
        self.thresholds = {}
        for score in SCORES:
            scored = [r for r in val_records if r["video"][score] is not None]
            if len({r["label"] for r in scored}) == 2:
                self.thresholds[score] = best_threshold([r["label"] for r in scored],
                                                        [r["video"][score] for r in scored])
        if not self.thresholds:
            info("no validation clips with both classes: accuracy is reported at 0.5 only")
        # what the choices were made on, for choosing between runs too: rankings and masks of the
        # validation videos (no accuracy: the thresholds were fitted to these very videos)
        self.validation = {
            "clips": len(val_records), "data": self.chosen_on,
            "video_auc": {score: {subset: m["auc"] for subset, m in rows.items()}
                          for score, rows in _table(val_records, "video", {}, 0).items()},
            "iou": {subset: m["iou"] for subset, m in _localization_table(val_records).items()},
            "same_source_auc": _by_source(val_records).get("same_source_auc"),
            **({"readings": self.readings, "input_size": detector.input_size}
               if self.readings else {})}
        if fit and "fused" in self.thresholds:
            atomic_write_json(self.run_dir / "threshold.json", {
                "threshold": self.thresholds["fused"], "chosen_on": self.chosen_on,
                "score": "fused", "aggregator": detector.aggregator,
                "model_run_id": detector.run_id})

    def _validation_reading(self) -> list[dict]:
        """The validation videos' records. When fitting a run whose evaluate.input_sizes lists
        sides, stage 2 reads them at each; the side with the best mean of the fused video AUC
        (under a fusion fitted at that side) and the fake frames' mask IoU is kept, first listed
        on a tie, and written to the run's config.yaml as evaluate.input_size."""
        detector, cfg = self.detector, self.detector.config.evaluate
        if not (self.fit and cfg.input_sizes and detector.stage2 is not None):
            return predict_split(detector, self.val_cache, "val")
        best, chosen, configured, read = float("-inf"), None, cfg.input_size, {}
        for size in cfg.input_sizes:
            side = detector.config.stage2_input_size(size)
            if side in read:  # 0 and the training size are one reading
                continue
            cfg.input_size = size
            records = read[side] = predict_split(detector, self.val_cache, "val")
            fusion = fit_fusion(records, self.chosen_on) if cfg.fusion == "fitted" \
                else detector.fusion
            labels = [r["label"] for r in records]
            auc = roc_auc(labels, [fusion(r["video"]) for r in records]) \
                if len(set(labels)) == 2 else float("nan")
            iou = _localization_table(records).get("all", {}).get("iou", float("nan"))
            select = (auc + iou) / 2
            self.readings[side] = {"video_auc": auc, "iou": iou, "select": select}
            print(f"stage 2 reading {side} px: validation video AUC {auc:.3f}, mask IoU "
                  f"{iou:.3f}, mean {select:.3f}")
            if select > best:  # NaN never wins; the first listed keeps a tie
                best, chosen = select, size
        if chosen is None:  # nothing to choose on: the reading stays as configured
            cfg.input_size, side = configured, detector.config.stage2_input_size(configured)
            info(f"evaluate.input_sizes: the validation split of {self.val_cache} has no real and "
                 f"fake videos with masks to choose a reading on; reading {side} px as configured")
            self.readings.clear()
            return read[side] if side in read else predict_split(detector, self.val_cache, "val")
        cfg.input_size = chosen
        detector.run_id = detector._run_id()
        save_config(detector.config, self.run_dir / "config.yaml")
        print(f"stage 2 reads {detector.input_size} px (chosen on {self.chosen_on}; "
              f"evaluate.input_size in {self.run_dir / 'config.yaml'})")
        return read[detector.input_size]

    def tables(self, cache: str | Path, split: str = "test", out_dir: str | Path | None = None
               ) -> dict:
        """The tables of `split` ("all": every clip) of `cache`, written to out_dir/metrics.json
        (default: the run's eval_<split>, only when fit=True)."""
        cache = Path(cache)
        _refuse(cache, self.val_cache, split, self.fit, out_dir)
        records = predict_split(self.detector, cache, split)
        if not records:
            raise ValueError(f"{cache} has no clips in split {split!r}")
        detector, bootstrap = self.detector, self.detector.config.evaluate.bootstrap
        result = {
            "data": str(cache), "split": split, "threshold_chosen_on": self.chosen_on,
            "run": str(self.run_dir), "model_run_id": detector.run_id,
            "aggregator": detector.aggregator, "thresholds": self.thresholds,
            "fusion": detector.fusion.describe(),
            "video": _table(records, "video", self.thresholds, bootstrap),
            "frame": _table(records, "frame", self.thresholds, 0),
            "localization": _localization_table(records),
            "by_source": _by_source(records),
            "clips": len(records),
            "validation": self.validation,
        }
        out_dir = Path(out_dir) if out_dir else self.run_dir / f"eval_{split}"
        atomic_write_json(out_dir / "metrics.json", result)
        result["out_dir"] = str(out_dir)
        return result


def run_evaluate(cache: str | Path, run_dir: str | Path, split: str = "test",
                 val_cache: str | Path | None = None, out_dir: str | Path | None = None,
                 aggregator: str | None = None, fit: bool = True) -> dict:
    """Tables of `split`, thresholds (and fusion) chosen on the val split of `val_cache` (default:
    the same cache); see Evaluation."""
    _refuse(Path(cache), Path(val_cache or cache), split, fit, out_dir)  # before predicting
    return Evaluation(run_dir, val_cache or cache, aggregator, fit).tables(cache, split, out_dir)


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
    by_source = result.get("by_source")
    if by_source:
        lines.append(f"\nby source ({by_source['score']} video score, {result['split']}): fakes "
                     f"against their own source's real videos AUC "
                     f"{by_source['same_source_auc']:.3f}, against all real videos "
                     f"{by_source['pooled_auc']:.3f} (the gap: calibration across sources, and "
                     f"what a fake shares with the real clip it was made from)")
        lines.append(f"  {'source':<20}{'real':>5}{'fake':>5}{'mean real':>11}{'mean fake':>11}"
                     f"{'AUC':>7}")
        for source, m in by_source["sources"].items():
            lines.append(f"  {source[:20]:<20}{m['real']:>5}{m['fake']:>5}{m['mean_real']:>11.3f}"
                         f"{m['mean_fake']:>11.3f}{m['auc']:>7.3f}")
    validation = result.get("validation")
    if validation and "fused" in validation["video_auc"]:
        aucs = " · ".join(f"{k} {v:.3f}" for k, v in validation["video_auc"]["fused"].items())
        lines.append(f"\nvalidation ({validation['clips']} videos of {validation['data']}; "
                     f"what thresholds and fusion were chosen on)\n  video AUC fused: {aucs}")
        if validation["iou"]:
            ious = " · ".join(f"{k} {v:.3f}" for k, v in validation["iou"].items())
            lines.append(f"  mask IoU: {ious}")
        if validation.get("readings"):
            sides = " · ".join(f"{side} px AUC {m['video_auc']:.3f} IoU {m['iou']:.3f}"
                               for side, m in validation["readings"].items())
            lines.append(f"  stage 2 reading: {sides} -> reads {validation['input_size']} px")
        if validation.get("same_source_auc") is not None:
            lines.append(f"  fakes against their own source's real videos: AUC "
                         f"{validation['same_source_auc']:.3f}")
    return "\n".join(lines)
