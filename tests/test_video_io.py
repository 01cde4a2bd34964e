import numpy as np
import pytest

from delocate.preprocessing.video_io import VideoError, evenly_spaced_indices, sample_frames

from conftest import make_video


def test_evenly_spaced_indices_cover_the_video():
    idx = evenly_spaced_indices(300, 30)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    assert idx[0] < 10 and idx[-1] > 290
    assert np.all(np.diff(idx) == 10)
    assert evenly_spaced_indices(5, 30).tolist() == [0, 1, 2, 3, 4]
    assert len(evenly_spaced_indices(0, 30)) == 0


@pytest.mark.parametrize("backend", ["decord", "ffmpeg"])
def test_carphone_30_frames(carphone, backend):
    sampled = sample_frames(carphone, 30, backend=backend)
    assert sampled.frames.shape == (30, 144, 176, 3) and sampled.frames.dtype == np.uint8
    assert sampled.source_size == (176, 144)
    assert len(sampled.frame_index) == 30 and not sampled.short_video
    assert np.all(np.diff(sampled.frame_index) > 0)
    assert 29 < sampled.fps < 31


def test_backends_agree_on_the_same_frames(carphone):
    idx = np.array([3, 50, 100])
    a = sample_frames(carphone, backend="decord", indices=idx)
    b = sample_frames(carphone, backend="ffmpeg", indices=idx)
    assert a.frame_index.tolist() == b.frame_index.tolist() == idx.tolist()
    # same frames, up to colour-conversion rounding of the two decoders
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 6


@pytest.mark.parametrize("backend", ["decord", "ffmpeg"])
def test_short_video_takes_every_frame(tmp_path, carphone, backend):
    five = make_video(carphone, tmp_path / "five.mp4", frames=5)
    sampled = sample_frames(five, 30, backend=backend)
    assert sampled.frame_index.tolist() == [0, 1, 2, 3, 4]
    assert sampled.short_video


def test_large_video_is_scaled_while_decoding(tmp_path, carphone):
    big = make_video(carphone, tmp_path / "big.mp4", frames=3, vf="scale=3840:2160")
    sampled = sample_frames(big, 30, max_side=960)
    assert sampled.source_size == (3840, 2160)
    assert sampled.frames.shape[1:3] == (540, 960)
    assert sampled.scale == pytest.approx(0.25)


@pytest.mark.parametrize("content", [b"", b"\x00\x17garbage" * 100, b"just some text\n"])
def test_unreadable_files_raise_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError) as err:
        sample_frames(path)
    assert "\n" not in str(err.value) and str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        sample_frames(tmp_path / "nope.mp4")


def test_keyframe_near_indices():
    from delocate.preprocessing.video_io import evenly_spaced_indices, keyframe_near_indices

    # keyframes every 30 frames, 60 of them: each sample is the keyframe nearest its even position
    picks = keyframe_near_indices(1800, 30, np.arange(0, 1800, 30))
    assert (picks % 30 == 0).all() and len(set(picks)) == 30
    assert np.abs(picks - evenly_spaced_indices(1800, 30)).max() <= 15
    # 8 keyframes for 30 samples: up to 4 frames from each keyframe on, all distinct, in order
    keys = np.arange(0, 1800, 225)
    picks = keyframe_near_indices(1800, 30, keys)
    assert len(picks) == 30 and (np.diff(picks) > 0).all()
    assert ((picks[:, None] - keys[None]) % 1800).min(axis=1).max() <= 3
    assert keyframe_near_indices(1800, 30, keys, min_keyframes=9) is None  # too few: exact
    assert keyframe_near_indices(20, 30, [0]) is None  # short video: every frame anyway
