"""Detection metrics against scikit-learn and hand-computed cases; localization metrics by hand."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve as sk_roc_curve

from delocate.common.metrics import (accuracy, average_precision, balanced_accuracy, best_threshold,
                                     bootstrap_auc, eer, iinc, iou, localization_metrics, pbca,
                                     roc_auc)
from delocate.evaluation.aggregate import aggregate
from delocate.evaluation.fusion import Fusion


def test_hand_computed_detection_case():
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(labels, scores) == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ordered
    # ranked: 0.8 (1), 0.4 (0), 0.35 (1), 0.1 (0): AP = 0.5 * 1 + 0.5 * 2/3
    assert average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)
    assert accuracy(labels, scores, 0.5) == pytest.approx(0.75)
    assert eer(labels, scores) == pytest.approx(0.5)
    assert accuracy(labels, scores, best_threshold(labels, scores)) == pytest.approx(0.75)


def test_the_threshold_is_not_fooled_by_more_fakes_than_reals():
    # five fakes per real: calling every video fake already scores accuracy 5/6
    labels = [0] * 4 + [1] * 20
    scores = [0.2, 0.4, 0.5, 0.6] + [0.1] * 4 + [0.7] * 16
    assert accuracy(labels, scores, 0.0) == pytest.approx(20 / 24)
    assert balanced_accuracy(labels, scores, 0.0) == pytest.approx(0.5)
    threshold = best_threshold(labels, scores)
    assert 0.6 < threshold < 0.7  # every real below, the 16 clear fakes above
    assert balanced_accuracy(labels, scores, threshold) == pytest.approx((1 + 16 / 20) / 2)


def test_perfect_and_tied_scores():
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def _sk_eer(labels, scores):
    fpr, tpr, _ = sk_roc_curve(labels, scores)
    fnr = 1 - tpr
    i = np.argmax(fpr - fnr >= 0)
    a, b = (fpr - fnr)[i - 1], (fpr - fnr)[i]
    return fpr[i - 1] + (-a / (b - a)) * (fpr[i] - fpr[i - 1]) if b != 0 else fpr[i]


@pytest.mark.parametrize("seed", range(6))
def test_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.6 + labels * 0.3, 2)  # ties on purpose
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    expected_ap = average_precision_score(labels, scores)
    assert average_precision(labels, scores) == pytest.approx(expected_ap)
    assert eer(labels, scores) == pytest.approx(_sk_eer(labels, scores))
    low, high = bootstrap_auc(labels, scores, rounds=200, seed=seed)
    assert low < roc_auc(labels, scores) < high


def test_iou_pbca_iinc_by_hand():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True  # 6 pixels, 4 shared
    assert iou(pred, gt) == pytest.approx(4 / 6)
    assert pbca(pred, gt) == pytest.approx(14 / 16)
    # I=4, P=6, G=4, U=6: (2 - 4/6 - 1) / (3 - 4/6)
    assert iinc(pred, gt) == pytest.approx((2 - 4 / 6 - 1) / (3 - 4 / 6))
    assert iinc(gt, gt) == 0.0 and iou(gt, gt) == 1.0
    empty = np.zeros((4, 4), bool)
    assert iinc(empty, empty) == 0.0 and iinc(pred, empty) == 1.0 and iinc(empty, gt) == 1.0
    assert iou(empty, empty) == 1.0
    # a prediction inside the true region costs less than one spilling out of it, by IINC
    inside = np.zeros((4, 4), bool)
    inside[0, :2] = True
    assert iinc(inside, gt) < iinc(pred, gt) or iou(inside, gt) < iou(pred, gt)
    # uint8 0/255 and probability masks are binarized the same way
    assert iou((pred * 255).astype(np.uint8), gt) == iou(pred.astype(float) * 0.9, gt)
    metrics = localization_metrics([pred, gt], [gt, gt])
    assert metrics["frames"] == 2 and metrics["iou"] == pytest.approx((4 / 6 + 1) / 2)


def test_aggregators_and_fusion():
    scores = [0.9, 0.95, 0.85, 0.1, 0.5]
    assert aggregate(scores, "mean") == pytest.approx(np.mean(scores))
    assert aggregate(scores, "max") == 0.95
    assert aggregate(scores, "confident") == pytest.approx(0.9)  # 3/5 confidently fake
    assert aggregate([0.05] * 19 + [0.6], "confident") == pytest.approx(0.05)
    with pytest.raises(ValueError):
        aggregate(scores, "median-ish")
    mean = Fusion()  # the paper's rule
    assert mean({"s1": 0.2, "s2": 0.6}) == pytest.approx(0.4)
    assert mean({"s1": None, "s2": 0.6}) == 0.6
