"""Online training pairs from a face pool: labels, masks, exactness, reproducibility."""
import cv2
import numpy as np
import pytest
import torch

from delocate.common.config import OnlineConfig
from delocate.preprocessing.face_pool import FacePool
from delocate.preprocessing.synthesis import METHODS
from delocate.training.online_data import OnlineClips, OnlineFrames, fixed_set, online_index_fn
from delocate.training.pairs import PairMaker


@pytest.fixture(scope="module")
def pool(tiny_pool):
    return FacePool(tiny_pool)


SPREAD = 5  # square width: two pixels either side of where a source went in


def changed_and_near(pair, width: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, C, C] where the fake differs from its real, and where a pixel lies within a `width`
    square around where a source went in (`touched`)."""
    touched = torch.from_numpy((pair.touched > 0)[:, None].astype(np.float32))
    near = torch.nn.functional.max_pool2d(touched, width, 1, width // 2)[:, 0].numpy() > 0
    return np.any(pair.fake != pair.real, axis=3), near


def test_the_pool_keeps_wide_crops_with_landmarks(pool):
    assert pool.kinds() == {"video": ["carphone"], "image": ["astronaut"]}
    crops, points = pool.crops[0], pool.landmarks[0]
    assert crops.dtype == np.uint8 and crops.shape[1:] == (pool.crop_size, pool.crop_size, 3)
    assert points.shape == (len(crops), 68, 2)
    # the landmarks sit in the middle of the wide crop (margin 1.8 around their box)
    span = points.max(axis=1) - points.min(axis=1)
    assert np.allclose(span.max(axis=1), pool.crop_size / 1.8, rtol=0.02)


@pytest.mark.parametrize("blend_at", ["source", "crop"])
def test_a_fake_differs_from_its_real_only_where_its_source_went_in(pool, blend_at):
    cfg = OnlineConfig(codec="none", blend_at=blend_at)  # no codec: exact comparison
    maker = PairMaker(pool, cfg)
    for k in range(12):
        pair = maker.make((3, k))
        assert pair.real.shape == pair.fake.shape == (1, 224, 224, 3)
        # resizing to the crop mixes a pixel with its neighbours: a face forged at 0.55 x
        # crop_size is upscaled ~1.8x into the crop, so a change spreads by up to two pixels
        changed, near = changed_and_near(pair, SPREAD)
        assert not changed[~near].any(), (k, pair.method)
        assert pair.mask.any(), (k, pair.method)
        assert not (pair.mask > 0)[~near].any(), (k, pair.method)


def test_masks_are_never_empty_and_every_method_comes_up(pool):
    maker = PairMaker(pool, OnlineConfig())
    seen = set()
    for k in range(40):
        pair = maker.make((0, k))
        seen.add(pair.method)
        assert (pair.mask > 0).sum() >= 16, (k, pair.method)
        visible = np.abs(pair.fake.astype(int) - pair.real).max(axis=3)[pair.mask > 0]
        assert visible.mean() >= 1.0, (k, pair.method)
    assert seen == set(METHODS)


def test_min_change_redraws_faint_recipes_and_keeps_the_method(pool):
    # blend_at=crop and no codec: the change is measured on the very pixels the pair returns
    faint, strict = (PairMaker(pool, OnlineConfig(codec="none", blend_at="crop", min_change=m))
                     for m in (0.0, 5.0))
    redrawn = 0
    for k in range(30):
        loose, clean = faint.make((5, k)), strict.make((5, k))
        assert loose.method == clean.method, k  # redraws change the recipe, never the mix
        change = np.abs(clean.fake.astype(int) - clean.real).max(axis=3)[clean.mask > 0].mean()
        # the check is made before the colour jitter, which scales a change by 0.68-1.38 (at 5,
        # not higher: six draws for the 49 px face's nose can all fall short, and the last is kept)
        assert change >= 0.65 * 5.0, (k, clean.method, change)
        redrawn += not np.array_equal(loose.fake, clean.fake)
    assert redrawn > 0  # some recipes drawn at 0 change less than 5: the option did something


def test_pairs_are_reproducible_and_the_real_needs_no_fake(pool):
    maker = PairMaker(pool, OnlineConfig())
    first, again = maker.make((7, 1)), maker.make((7, 1))
    assert np.array_equal(first.fake, again.fake) and np.array_equal(first.mask, again.mask)
    alone = maker.make((7, 1), fake=False)
    assert alone.fake is None and np.array_equal(alone.real, first.real)
    assert not np.array_equal(maker.make((7, 2)).real, first.real)


def test_labels_line_up_with_items(pool):
    frames = OnlineFrames(PairMaker(pool, OnlineConfig()), 64, "lite", seed=1)
    for index in range(8):
        item = frames[index]
        assert item["input"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
        assert item["label"].item() == index % 2
        assert (item["mask"].sum() > 0) == bool(index % 2)
        assert (item["method"] == "real") == (index % 2 == 0)
    # an item is the same whichever worker makes it
    elsewhere = OnlineFrames(frames.maker, 64, "lite", seed=1)
    assert torch.equal(frames[5]["input"], elsewhere[5]["input"])
    assert online_index_fn(2, 4) == [8, 9, 10, 11]


def test_clips_and_fixed_sets(pool):
    clips = OnlineClips(PairMaker(pool, OnlineConfig(methods=["blend", "swap"])), 32, seed=0,
                        num_frames=4)
    fixed = fixed_set(clips, 3)
    assert len(fixed) == 6 and list(fixed.labels) == [0, 1] * 3
    assert fixed[1]["video"].shape == (3, 4, 32, 32)
    # made in forked workers (OpenCV at one thread there), the very same items; OpenCV's own
    # thread count is back afterwards
    threads = cv2.getNumThreads()
    forked = fixed_set(clips, 3, workers=2)
    assert cv2.getNumThreads() == threads and len(forked) == len(fixed)
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(fixed, forked))


def test_meta_batches_forge_each_half_with_its_own_methods(pool):
    frames = OnlineFrames(PairMaker(pool, OnlineConfig()), 32, seed=0, meta_batch=8)
    frames.set_epoch(0)
    train_methods, test_methods = frames.side_methods
    assert train_methods and test_methods and not set(train_methods) & set(test_methods)
    for index in range(16):
        if index % 2:
            side = train_methods if index % 8 < 4 else test_methods
            assert frames[index]["method"] in side


@pytest.mark.parametrize("share", ["degrade_share", "relight_share"])
def test_degraded_or_relit_footage_is_carried_by_the_real_and_its_fake_alike(pool, share):
    clean = PairMaker(pool, OnlineConfig(codec="none"))
    degraded = PairMaker(pool, OnlineConfig(codec="none", **{share: 1.0}))
    moved = []
    for k in range(12):
        pair, before = degraded.make((5, k)), clean.make((5, k))
        # the footage changed (sharpened, blurred, resampled or noised; or relit) ...
        moved.append(np.abs(pair.real.astype(int) - before.real).mean())
        assert moved[-1] > 0, k
        # ... under the real face and its fake alike: they still differ only where the forgery is
        changed, near = changed_and_near(pair, SPREAD)
        assert not changed[~near].any(), (k, pair.method)
        assert pair.mask.any(), (k, pair.method)
    assert np.mean(moved) > 0.3, moved


def test_processing_after_the_forgery_is_the_same_on_the_real_and_its_fake(pool):
    clean = PairMaker(pool, OnlineConfig(codec="none"))
    processed = PairMaker(pool, OnlineConfig(codec="none", post_process_share=1.0))
    moved, spread = [], []
    for k in range(12):
        pair, before = processed.make((6, k)), clean.make((6, k))
        # the same pair (person, frame, forgery) ...
        assert pair.method == before.method and np.array_equal(pair.mask, before.mask), k
        # ... both processed: the real face changed ...
        moved.append(np.abs(pair.real.astype(int) - before.real).mean())
        assert moved[-1] > 0, k
        # ... and the fake the same way, noise included: away from the forgery (blur and rescale
        # spread it by a few pixels) the two are still identical
        changed, near = changed_and_near(pair, 25)
        assert not changed[~near].any(), (k, pair.method)
        assert changed[pair.mask > 0].mean() > 0.5, (k, pair.method)
        spread.append(changed[~(pair.touched > 0)].sum())
    assert np.mean(moved) > 0.3, moved
    assert sum(spread) > 0  # some processing blurred the forgery past its edge: the test sees it
