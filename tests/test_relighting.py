"""Relit footage (training/relighting.py): a light with no edge, around the face, on donors from
the same footage too (under the real face and its fake alike: tests/test_pairs.py)."""
import numpy as np
import pytest

from delocate.common.config import OnlineConfig
from delocate.preprocessing.face_pool import FacePool
from delocate.preprocessing.forgery import face_size
from delocate.training.pairs import PairMaker
from delocate.training.relighting import Relighting, draw_relighting, light_field, relight


@pytest.fixture(scope="module")
def pool(tiny_pool):
    return FacePool(tiny_pool)


def test_the_light_has_no_edge_and_sits_on_the_face(pool):
    points = pool.landmarks[0][0]
    side = pool.crop_size
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(40):
        light = draw_relighting(rng)
        kinds.add(light.kind)
        assert all(0.05 < abs(g) < 0.42 for g in light.gain), light
        field = light_field(light, points, (side, side))
        assert field.min() >= 0 and field.max() <= 1
        # no seam anywhere: the steepest a Gaussian (0.61 / sigma) or the ramp (0.5 / width) gets
        steepest = max(np.abs(np.diff(field, axis=a)).max() for a in (0, 1))
        assert steepest <= 0.62 / (light.reach * face_size(points)), light
        if light.kind == "face":  # full light on the face, little in the wide crop's corners
            centre = np.round(points.mean(axis=0)).astype(int)
            assert field[centre[1], centre[0]] > 0.9, light
            assert max(field[0, 0], field[0, -1], field[-1, 0], field[-1, -1]) < 0.4, light
    assert kinds == {"face", "side"}


def test_relight_brightens_the_face_by_its_gain():
    frames = np.full((2, 64, 64, 3), 100, np.uint8)
    points = np.stack([np.random.default_rng(1).uniform(24, 40, (68, 2))] * 2).astype(np.float32)
    warm = relight(frames, points, Relighting("face", (0.3, 0.1, -0.2), 0.6, (0.0, 0.0), 0.0))
    centre = np.round(points[0].mean(axis=0)).astype(int)
    assert np.abs(warm[:, centre[1], centre[0]].astype(int) - [130, 110, 80]).max() <= 2
    assert np.abs(warm[:, 0, 0].astype(int) - 100).max() < np.abs(warm[:, 32, 32] - 100.0).max()


def test_a_donor_from_the_same_footage_is_lit_as_the_footage_and_another_persons_is_not(pool):
    maker = PairMaker(pool, OnlineConfig(codec="none"))
    source = pool.sources_of["carphone"][0]  # the video: other moments of it are part donors
    picks = np.array([0])
    view = maker._view(np.random.default_rng(0), source, picks)
    unlit = {m: maker._donor(np.random.default_rng(1), "carphone", m, source, picks, view)
             for m in ("part-eyes", "swap")}
    view.relit = Relighting("face", (0.3, 0.2, 0.25), 0.6, (0.0, 0.0), 0.0)
    lit = {m: maker._donor(np.random.default_rng(1), "carphone", m, source, picks, view)
           for m in ("part-eyes", "swap")}
    (eyes, points), (before, _) = lit["part-eyes"], unlit["part-eyes"]
    assert np.array_equal(points, unlit["part-eyes"][1])  # the same moment of the footage ...
    assert np.array_equal(eyes, relight(before, points, view.relit))  # ... under its light
    assert np.abs(eyes.astype(int) - before).mean() > 3
    # the astronaut's photo was not shot in this footage: its light stays its own
    assert np.array_equal(lit["swap"][0], unlit["swap"][0])
