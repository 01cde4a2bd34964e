"""Forgery recipes on a real face (the carphone clip): exact masks at any resolution, every method
and blend mode."""
import cv2
import numpy as np
import pytest

from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.forgery import BLEND_MODES, HULL_TYPES, draw_recipe, forge
from delocate.preprocessing.regions import PART_NAMES, part_boxes
from delocate.preprocessing.synthesis import METHODS, PART_OF_METHOD
from delocate.preprocessing.video_io import sample_frames


@pytest.fixture(scope="module")
def faces(carphone):
    """Two real frames of the carphone clip with their landmarks (target and donor)."""
    sampled = sample_frames(carphone, 6)
    track = FaceAnalyzer().track(sampled.frames)
    assert track.face_found[[0, 5]].all()
    return sampled.frames[[0, 5]], track.landmarks[[0, 5]]


def _cases():
    return [(m, mode) for m in METHODS for mode in BLEND_MODES]


@pytest.mark.parametrize("method,mode", _cases())
def test_a_fake_differs_from_its_real_only_where_the_source_went_in(faces, method, mode):
    frames, points = faces
    for seed in range(3):
        recipe = draw_recipe(np.random.default_rng(seed), method)
        recipe.mode = mode
        forged = forge(frames[0], points[0], recipe, frames[1], points[1])
        changed = np.any(forged.image != frames[0], axis=2)
        assert not changed[forged.weight <= 0].any(), (seed, "change outside the blend")
        assert forged.mask.any(), (seed, "empty mask")
        assert not forged.mask[forged.weight <= 0].any(), (seed, "mask beyond the blend")
        if method in PART_OF_METHOD:  # part methods stay inside their part's box
            x0, y0, x1, y1 = part_boxes(points[0], max(frames[0].shape[:2]))[
                PART_NAMES.index(PART_OF_METHOD[method])]
            outside = np.ones(changed.shape, bool)
            outside[y0:y1, x0:x1] = False
            assert not changed[outside].any() and not forged.mask[outside].any()


@pytest.mark.parametrize("hull", HULL_TYPES)
def test_hull_types_stay_on_the_face(faces, hull):
    frames, points = faces
    recipe = draw_recipe(np.random.default_rng(3), "blend")
    recipe.hull, recipe.elastic, recipe.grow = hull, 0.0, 0.0
    recipe.wobble[:] = 0
    forged = forge(frames[0], points[0], recipe)
    size = max(points[0].max(0) - points[0].min(0))
    centre = points[0].mean(axis=0)
    ys, xs = np.nonzero(forged.mask)
    assert len(xs) and np.hypot(xs - centre[0], ys - centre[1]).max() < 1.2 * size


def test_the_same_recipe_means_the_same_at_another_resolution(faces):
    """A recipe is in face-size units: forging a 2x upscaled frame gives the 2x mask."""
    frames, points = faces
    recipe = draw_recipe(np.random.default_rng(11), "blend")
    recipe.elastic = 0.0  # the elastic field is drawn on a pixel grid
    small = forge(frames[0], points[0], recipe)
    big_frame = cv2.resize(frames[0], None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    big = forge(big_frame, points[0] * 2, recipe)
    down = cv2.resize(big.mask.astype(np.uint8), small.mask.shape[::-1],
                      interpolation=cv2.INTER_NEAREST) > 0
    agreement = (down & small.mask).sum() / max(1, (down | small.mask).sum())
    assert agreement > 0.9


def test_recipes_are_reproducible_by_seed():
    a = draw_recipe(np.random.default_rng(5), "swap")
    b = draw_recipe(np.random.default_rng(5), "swap")
    assert a.mode == b.mode and a.hull == b.hull and np.array_equal(a.wobble, b.wobble)
    with pytest.raises(ValueError):
        draw_recipe(np.random.default_rng(0), "deepfake")
