"""Token masks: shapes and counts for every strategy, and the ROI rule with its documented
top-up."""
import numpy as np
import pytest

from delocate.common.config import PreprocessConfig
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.regions import PART_NAMES
from delocate.training.masking import STRATEGIES, TokenMasker

GRID, PATCH, TUBELET, SIZE = (4, 7, 7), 16, 2, 112


@pytest.fixture(scope="module")
def rois(carphone):
    clip = preprocess_video(VideoEntry(carphone, "c.mp4", 0), PreprocessConfig(num_frames=8),
                            FaceAnalyzer())
    return clip.rois.astype(np.float32) * (SIZE / clip.size)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_masks_the_same_count_for_every_clip(strategy, rois):
    masker = TokenMasker(strategy, GRID, PATCH, TUBELET, ratio=0.75)
    counts = set()
    for seed in range(20):
        shifted = rois + np.random.default_rng(seed).integers(-12, 12, size=(1, 1, 4))
        mask, _ = masker(np.clip(shifted, 0, SIZE), np.random.default_rng(seed))
        assert mask.shape == (196,) and mask.dtype == bool
        counts.add(int(mask.sum()))
    assert counts == {masker.num_masked}


def test_random_and_tube_ratios():
    masker = TokenMasker("random", GRID, PATCH, TUBELET, 0.75)
    random_mask, _ = masker(None, np.random.default_rng(0))
    assert random_mask.sum() == 147
    tube, _ = TokenMasker("tube", GRID, PATCH, TUBELET, 0.75)(None, np.random.default_rng(0))
    per_step = tube.reshape(GRID)
    assert all((per_step[t] == per_step[0]).all() for t in range(4))  # same positions through time
    assert per_step[0].sum() == round(0.75 * 49)


@pytest.mark.parametrize("ratio", [0.55, 0.75, 0.95])
def test_roi_masks_the_ratio_inside_the_part_and_only_tops_up_nearby(rois, ratio):
    masker = TokenMasker("roi", GRID, PATCH, TUBELET, ratio=ratio, roi_budget=0.5)
    parts_seen = set()
    for seed in range(30):
        mask, info = masker(rois, np.random.default_rng(seed))
        parts_seen.add(info.part)
        in_roi = masker.roi_tokens(rois, info.part).ravel()
        assert mask[in_roi].sum() >= np.ceil(ratio * in_roi.sum()) - 1e-9
        outside = mask & ~in_roi
        assert outside.sum() == info.topped_up
        # the top-up is the ROI's neighbourhood: nearer tokens are all taken before farther ones
        distance = TokenMasker._distance_to(in_roi.reshape(GRID))
        if outside.any():
            unmasked_outside = ~mask & ~in_roi
            if unmasked_outside.any():
                assert distance[outside].max() <= distance[unmasked_outside].min()
    assert parts_seen == set(PART_NAMES)  # one part drawn at random per clip


@pytest.mark.parametrize("part", PART_NAMES)
def test_fixed_part(rois, part):
    masker = TokenMasker(f"roi:{part}", GRID, PATCH, TUBELET)
    for seed in range(5):
        _, info = masker(rois, np.random.default_rng(seed))
        assert info.part == part


def test_bad_arguments():
    with pytest.raises(ValueError, match="strategy"):
        TokenMasker("everything", GRID, PATCH, TUBELET)
    with pytest.raises(ValueError, match="ratio"):
        TokenMasker("random", GRID, PATCH, TUBELET, ratio=1.5)
