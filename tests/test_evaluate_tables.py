"""The evaluation's tables computed from predictions (no model needed)."""
import numpy as np
import pytest

from delocate.common.metrics import roc_auc
from delocate.evaluation.evaluate import _by_source, format_tables


def _record(source: str, label: int, score: float) -> dict:
    return {"source": source, "label": label, "method": "blend" if label else "real",
            "video": {"s1": None, "s2": score, "dadf": None, "fused": score}}


def test_same_source_auc_sets_calibration_apart_from_detection():
    # each person's fakes score above that person's own reals, but one person's reals score above
    # the other's fakes: perfect within a source, not across sources
    records = [_record("anna", 0, 0.1), _record("anna", 1, 0.3), _record("anna", 1, 0.2),
               _record("ben", 0, 0.7), _record("ben", 0, 0.6), _record("ben", 1, 0.9),
               _record("cleo", 1, 0.5),  # no real video of cleo: not comparable, left out
               _record("", 0, 0.95)]  # no source known: left out
    table = _by_source(records)
    assert table["same_source_auc"] == pytest.approx(1.0)
    chosen = records[:6]
    assert table["pooled_auc"] == pytest.approx(roc_auc([r["label"] for r in chosen],
                                                        [r["video"]["fused"] for r in chosen]))
    assert table["pooled_auc"] < 1.0
    assert set(table["sources"]) == {"anna", "ben"}
    assert table["sources"]["ben"] == {"real": 2, "fake": 1, "mean_real": pytest.approx(0.65),
                                       "mean_fake": pytest.approx(0.9), "auc": 1.0}


def test_same_source_auc_weighs_every_pair_once():
    # anna: 1 real, 3 fakes, one below the real (AUC 2/3, 3 pairs); ben: 2 reals, 1 fake below
    # both (AUC 0, 2 pairs) -> 2 wins of 5 pairs, not the mean of the two AUCs (1/3)
    records = [_record("anna", 0, 0.5), _record("anna", 1, 0.6), _record("anna", 1, 0.7),
               _record("anna", 1, 0.4), _record("ben", 0, 0.5), _record("ben", 0, 0.6),
               _record("ben", 1, 0.2)]
    assert _by_source(records)["same_source_auc"] == pytest.approx(2 / 5)


def test_no_source_with_both_classes_gives_no_table():
    records = [_record("anna", 0, 0.1), _record("ben", 1, 0.9)]
    assert _by_source(records) == {}
    result = {"video": {}, "frame": {}, "localization": {}, "split": "test", "by_source": {}}
    assert "by source" not in format_tables(result)


def test_the_table_is_printed():
    records = [_record("anna", 0, 0.1), _record("anna", 1, 0.3)]
    result = {"video": {}, "frame": {}, "localization": {}, "split": "test",
              "by_source": _by_source(records)}
    printed = format_tables(result)
    assert "own source's real videos AUC 1.000" in printed
    assert any(line.split()[:3] == ["anna", "1", "1"] for line in printed.splitlines())
    assert not np.isnan(result["by_source"]["pooled_auc"])
