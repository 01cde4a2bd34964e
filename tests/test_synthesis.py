"""Forgery synthesis on the real carphone clip: exact masks, confinement, temporal smoothness."""
import cv2
import numpy as np
import pytest

from delocate.common.config import PreprocessConfig
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.regions import PART_NAMES
from delocate.preprocessing.sample_cache import FaceClip, read_index, write_index
from delocate.preprocessing.synthesis import (METHODS, PARAM_RANGES, run_synthesis, smooth_params,
                                              synthesize)
from delocate.run_pipeline import main

MAX_FEATHER = int(PARAM_RANGES["feather"][1]) + 1


@pytest.fixture(scope="module")
def real(carphone) -> FaceClip:
    clip = preprocess_video(VideoEntry(carphone, "carphone.mp4", 0, source="carphone"),
                            PreprocessConfig(num_frames=12), FaceAnalyzer())
    clip.meta["clip_id"] = "carphone"
    return clip


@pytest.fixture(scope="module")
def donor(real) -> FaceClip:
    """Another 'identity' for swap: the same clip played backwards (the method only needs a
    face)."""
    clip = FaceClip(frames=real.frames[::-1].copy(), landmarks=real.landmarks[::-1].copy(),
                    rois=real.rois[::-1].copy(), face_found=real.face_found[::-1].copy(),
                    frame_index=real.frame_index.copy(), crop_box=real.crop_box.copy(),
                    meta={**real.meta, "source": "donor", "clip_id": "donor"}, mask=real.mask)
    return clip


@pytest.mark.parametrize("method", METHODS)
def test_fake_differs_from_source_only_inside_its_mask(real, donor, method):
    result = synthesize(real, method, np.random.default_rng(7), donor=donor)
    fake = result.clip
    assert fake.meta["method"] == method and fake.label == 1
    assert fake.meta["source_clip"] == "carphone"
    changed = np.any(fake.frames != real.frames, axis=3)
    # exact: a pixel changes only where the source was blended in
    assert not changed[result.blend_weight <= 0].any()
    # and the 0/255 mask covers every change but the feathered edge
    kernel = np.ones((2 * MAX_FEATHER + 1, 2 * MAX_FEATHER + 1), np.uint8)
    for t in range(fake.num_frames):
        near_mask = cv2.dilate(fake.mask[t], kernel) > 0
        assert not changed[t][~near_mask].any(), t
        if real.face_found[t]:
            assert fake.mask[t].any() and changed[t].any()
    # the mask stays on the face: inside the landmark hull grown by 20%
    for t in range(fake.num_frames):
        points = real.landmarks[t]
        centre = points.mean(axis=0)
        hull = np.zeros(fake.mask[t].shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(centre + (points - centre) * 1.2)
                                                .astype(np.int32)), 1)
        assert (fake.mask[t][hull == 0] == 0).all(), t


@pytest.mark.parametrize("method,part", [("part-eyes", "eyes"), ("part-mouth", "lips"),
                                         ("part-nose", "cheek_nose")])
def test_part_masks_lie_inside_their_roi(real, method, part):
    for seed in range(3):
        result = synthesize(real, method, np.random.default_rng(seed))
        for t in range(real.num_frames):
            x0, y0, x1, y1 = real.rois[t, PART_NAMES.index(part)]
            outside = np.ones(result.blend_weight[t].shape, bool)
            outside[y0:y1, x0:x1] = False
            assert (result.blend_weight[t][outside] == 0).all()
            assert (result.clip.mask[t][outside] == 0).all()


def test_parameters_are_temporally_smooth():
    steps, across = [], []
    tracks = [smooth_params(np.random.default_rng(s), 30, 0.15, flicker=False) for s in range(40)]
    flicker = [smooth_params(np.random.default_rng(s), 30, 0.15, flicker=True) for s in range(40)]
    for name, (low, high) in PARAM_RANGES.items():
        span = high - low
        within = np.mean([np.abs(np.diff(tr.values[name])).mean() for tr in tracks]) / span
        starts = np.array([tr.values[name][0] for tr in tracks])
        between = np.abs(starts[:, None] - starts[None, :])[np.triu_indices(40, 1)].mean() / span
        flick = np.mean([np.abs(np.diff(tr.values[name])).mean() for tr in flicker]) / span
        assert within < 0.5 * between, name
        assert flick > 2 * within, name
        steps.append(within)
        across.append(between)
    assert np.mean(steps) < 0.4 * np.mean(across)


def test_frames_without_a_face_stay_real(real):
    missing = real.face_found.copy()
    missing[[2, 5]] = False
    clip = FaceClip(frames=real.frames, landmarks=real.landmarks, rois=real.rois,
                    face_found=missing, frame_index=real.frame_index, crop_box=real.crop_box,
                    meta=dict(real.meta), mask=real.mask)
    fake = synthesize(clip, "blend", np.random.default_rng(0)).clip
    for t in (2, 5):
        assert (fake.frames[t] == real.frames[t]).all() and not fake.mask[t].any()
    assert fake.meta["synthesis"]["frames_left_real"] == 2


def test_synth_stage_on_a_one_identity_cache_skips_swap(tmp_path, real, capsys):
    cache = tmp_path / "real"
    real.meta["split"] = "train"
    real.save(cache / "carphone.npz")
    write_index(cache, [{"clip": "carphone", "video": "carphone.mp4", "label": 0, "method": "real",
                         "split": "train", "face_frames": int(real.face_found.sum()),
                         "status": "ok", "error": ""}])
    code = main(["--stage", "synth", "--data", str(cache), "--out", str(tmp_path / "fake")])
    assert code == 0
    assert "swap skipped" in capsys.readouterr().err
    rows = {r["clip"]: r for r in read_index(tmp_path / "fake")}
    assert set(rows) == {"carphone"} | {f"carphone__{m}" for m in METHODS if m != "swap"}
    fake = FaceClip.load(tmp_path / "fake" / "carphone__part-mouth.npz")
    assert fake.meta["source_clip"] == "carphone" and fake.meta["split"] == "train"
    assert rows["carphone__blend"]["label"] == "1" and rows["carphone"]["label"] == "0"
    # resumable: a second run writes nothing new
    before = (tmp_path / "fake" / "carphone__blend.npz").stat().st_mtime_ns
    assert run_synthesis(cache, tmp_path / "fake", ["blend"])["blend"] == 0
    assert (tmp_path / "fake" / "carphone__blend.npz").stat().st_mtime_ns == before
