"""--stage forge: forged videos with full-frame masks, read back by preprocessing with their
masks."""
from pathlib import Path

import numpy as np
import pytest
import skimage

from delocate.common.config import ForgeConfig, PreprocessConfig
from delocate.preprocessing.datasets import discover
from delocate.preprocessing.demo_data import still_to_clip
from delocate.preprocessing.forge_videos import forge_videos
from delocate.preprocessing.preprocess import run_preprocess
from delocate.preprocessing.sample_cache import FaceClip, read_index
from delocate.preprocessing.video_io import sample_frames


@pytest.fixture(scope="module")
def forged(tmp_path_factory, short_carphone):
    scratch = tmp_path_factory.mktemp("forge")
    astronaut = still_to_clip(Path(skimage.__file__).parent / "data" / "astronaut.png",
                              scratch / "astronaut.mp4", frames=12)
    cfg = ForgeConfig(methods=["blend", "swap"], segments=1, frames=8)
    # swap takes its donor from another person of the same split
    sources = [(short_carphone, "carphone", "test"), (astronaut, "astronaut", "test")]
    return forge_videos(sources, scratch / "out", cfg)


def test_forge_writes_videos_masks_and_a_manifest(forged):
    _, entries = discover(forged)
    assert len(entries) == 6  # 2 people x (real + blend + swap)
    fakes = [e for e in entries if e.label == 1]
    assert {e.method for e in fakes} == {"blend", "swap"}
    for entry in fakes:
        assert entry.mask_file is not None and entry.mask_file.is_file()
        with np.load(entry.mask_file) as data:
            masks = data["mask"]
        video = sample_frames(entry.path, 8)
        assert masks.shape == (8, *video.frames.shape[1:3])
        assert (masks > 0).any(axis=(1, 2)).all()  # every frame has a face, so every frame forged


def test_preprocess_reads_the_masks_of_a_manifest(forged, tmp_path):
    _, entries = discover(forged)
    summary = run_preprocess(entries, tmp_path / "cache", PreprocessConfig(num_frames=8))
    assert summary.failed == 0
    for row in read_index(tmp_path / "cache"):
        clip = FaceClip.load(tmp_path / "cache" / f"{row['clip']}.npz")
        if row["label"] == "1":
            assert clip.meta["mask_source"] == "mask_file"
            assert (clip.mask > 0).mean() > 0.05  # the face region, in the face crop
        else:
            assert not clip.mask.any()
