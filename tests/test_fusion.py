"""Fusion of the branch scores: fitted on validation videos only, and a branch that learned nothing
does not drag the fused score to chance."""
import numpy as np
import pytest

from delocate.common.metrics import roc_auc
from delocate.evaluation.fusion import Fusion, fit_fusion


def records(n, split, seed, flip=False):
    """Videos whose s2 separates the classes and whose s1 is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        s2 = float(np.clip(0.5 + (0.1 if label else -0.1) + rng.normal(0, 0.1), 0.01, 0.99))
        out.append({"split": split, "label": 1 - label if flip else label,
                    "video": {"s1": float(rng.uniform(0.01, 0.99)), "s2": s2, "dadf": None}})
    return out


def test_fitted_weights_come_from_validation_rows_only():
    val = records(40, "val", 0)
    others = records(40, "test", 1, flip=True) + records(40, "train", 2, flip=True)
    alone = fit_fusion(val, "val")
    mixed = fit_fusion(val + others, "val")
    assert alone.mode == "fitted" and alone.weights == mixed.weights and alone.bias == mixed.bias
    assert fit_fusion(others, "no val").mode == "mean"  # nothing to fit on


def test_a_branch_that_learned_nothing_does_not_drag_the_score_to_chance():
    val, test = records(60, "val", 3), records(60, "test", 4)
    fusion = fit_fusion(val, "val")
    assert fusion.weights["s2"] > 5 * abs(fusion.weights.get("s1", 0.0))
    labels = [r["label"] for r in test]
    fitted = roc_auc(labels, [fusion(r["video"]) for r in test])
    mean = roc_auc(labels, [Fusion()(r["video"]) for r in test])
    s2 = roc_auc(labels, [r["video"]["s2"] for r in test])
    assert fitted >= s2 - 0.01 and fitted > mean


def test_fusion_round_trip_and_frames(tmp_path):
    fusion = Fusion("fitted", {"s1": 0.0, "s2": 2.0}, -0.5, "test")
    fusion.save(tmp_path / "fusion.json")
    loaded = Fusion.load(tmp_path / "fusion.json")
    assert loaded == fusion
    # a zero-weight branch is not needed: s2 alone gives the fitted score
    assert loaded({"s2": 0.5}) == pytest.approx(1 / (1 + np.exp(0.5)))
    frames = loaded({"s1": None, "s2": np.array([0.2, 0.8])})
    assert frames.shape == (2,) and frames[1] > frames[0]
    assert Fusion.load(tmp_path / "missing.json").mode == "mean"


def test_a_fusion_fitted_before_a_branch_was_added_does_not_fit_the_run():
    fusion = fit_fusion(records(40, "val", 0), "val")
    assert fusion.branches == ["s1", "s2"]
    assert fusion.fits(["s1", "s2"]) and not fusion.fits(["s1", "s2", "dadf"])
    shipped = Fusion("fitted", {"s1": 0.0, "s2": 2.0}, 0.0, "val", ["s1", "s2"])
    assert shipped.fits(["s2"]) and not shipped.fits(["s1"])  # a 0-weight branch may be left out
