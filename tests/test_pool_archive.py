"""A face pool packed small and unpacked back: the same sources and geometry, pixels close to the
pool's (resampled and lossy: PSNR > 32 dB), and a pool that online pairs can be made from."""
import numpy as np
import pytest

from delocate.common.config import OnlineConfig
from delocate.preprocessing.face_pool import FacePool
from delocate.preprocessing.pool_archive import main, pack, unpack
from delocate.training.pairs import PairMaker


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_a_packed_pool_unpacks_to_the_same_faces(tiny_pool, tmp_path):
    archive = pack(tiny_pool, tmp_path / "archive", quality=92)
    packed_bytes = sum(f.stat().st_size for f in archive.iterdir())
    pool_bytes = sum(f.stat().st_size for f in (tiny_pool / "sources").iterdir())
    assert packed_bytes < pool_bytes / 10

    unpacked = unpack(archive, tmp_path / "pool", workers=2)
    before, after = FacePool(tiny_pool), FacePool(unpacked)
    assert [s.id for s in after.sources] == [s.id for s in before.sources]
    assert after.people == before.people and after.crop_size == before.crop_size
    for k in range(len(before.sources)):
        np.testing.assert_array_equal(after.landmarks[k], before.landmarks[k])
        np.testing.assert_array_equal(after.native_side[k], before.native_side[k])
        assert after.crops[k].shape == before.crops[k].shape
        assert _psnr(after.crops[k], before.crops[k]) > 32

    made = PairMaker(after, OnlineConfig()).make((0, 1))
    assert made.fake is not None and (made.mask > 0).any()


def test_unpacking_resumes_and_refuses_what_is_not_an_archive(tiny_pool, tmp_path):
    archive = tmp_path / "archive"
    main(["pack", str(tiny_pool), str(archive)])
    pool = tmp_path / "pool"
    main(["unpack", str(archive), str(pool)])
    done = sorted(pool.glob("sources/*.npy"))
    stamps = [f.stat().st_mtime_ns for f in done]
    unpack(archive, pool)  # every source already there: nothing is rewritten
    assert [f.stat().st_mtime_ns for f in done] == stamps
    with pytest.raises(ValueError, match="not a pool archive"):
        unpack(tiny_pool, tmp_path / "other")
