"""Faces that are not missed: small faces found by escalating detection, every face tracked and
scored on its own, still images as one-frame inputs."""
import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from delocate.common.config import ForgeConfig, PreprocessConfig
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_faces
from delocate.preprocessing.sample_cache import FaceClip, face_path, read_index
from delocate.preprocessing.tracks import link_tracks, track_faces
from delocate.preprocessing.video_io import sample_frames
from delocate.run_pipeline import main

from conftest import ffmpeg_binary


def box(x, y, side):
    return [x, y, x + side, y + side]


def encode(frames: np.ndarray, path: Path, fps: float = 25.0) -> Path:
    from delocate.preprocessing.codecs import encode_video

    return encode_video(frames, path, fps, 18)


def test_link_tracks_gives_every_face_its_own_track():
    left = [box(100 + 4 * t, 80, 90) for t in range(6)]
    right = [box(420 - 3 * t, 100, 60) for t in range(6)]
    detections = [np.array([left[t], right[t]], np.float32) for t in range(6)]
    detections[2] = np.array([right[2]], np.float32)  # the main face missed once
    detections[4] = np.array([right[4], left[4], box(10, 300, 30)], np.float32)  # a one-off box
    tracks = link_tracks(detections, max_tracks=4, min_frames=2)
    assert tracks[0] == track_faces(detections)  # the main track is exactly the single-face one
    assert tracks[0] == [0, 0, None, 0, 1, 0]
    assert tracks[1] == [1, 1, 0, 1, 0, 1]
    assert len(tracks) == 2  # the one-off box is not a face track
    assert link_tracks(detections, max_tracks=1, min_frames=2) == tracks[:1]


def test_a_rejected_track_takes_no_place():
    """Five faces side by side, the second largest too weak to count: with room for four, the four
    that count are kept (the rejected one does not use up a place)."""
    widths = [100, 90, 80, 70, 60]
    faces = [box(20 + 120 * k, 50, w) for k, w in enumerate(widths)]
    detections = [np.array(faces, np.float32) for _ in range(4)]

    def accept(picks, first):
        return picks[0] != 1  # the 90 px one is, say, a badge

    tracks = link_tracks(detections, max_tracks=4, min_frames=2, accept=accept)
    assert [picks[0] for picks in tracks] == [0, 2, 3, 4]
    unfiltered = link_tracks(detections, max_tracks=4, min_frames=2)
    assert [picks[0] for picks in unfiltered] == [0, 1, 2, 3]


def _paste(frames: np.ndarray, face_width: float, target: float, at=(400, 150)) -> np.ndarray:
    """Frames shrunk so the face is `target` px wide, pasted on a grey 640x360 canvas."""
    scale = target / face_width
    small = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
    canvas = np.full((len(frames), 360, 640, 3), 96, np.uint8)
    height, width = small[0].shape[:2]
    canvas[:, at[1]:at[1] + height, at[0]:at[0] + width] = np.stack(small)
    return canvas


def test_a_40px_face_in_a_640x360_frame_is_found_by_escalation(tmp_path, carphone):
    sampled = sample_frames(carphone, 30)
    points = FaceAnalyzer().track(sampled.frames).landmarks
    face_width = float(np.median(points[..., 0].max(1) - points[..., 0].min(1)))
    video = encode(_paste(sampled.frames, face_width, 40), tmp_path / "stage.mp4")

    fast_only = FaceAnalyzer.from_config(PreprocessConfig(detect_escalation=[]))
    frames = sample_frames(video, 30).frames
    with pytest.raises(ValueError, match="no face found"):
        fast_only.tracks(frames)  # what preprocessing did before: the video went unscored

    cfg = PreprocessConfig()
    clips = preprocess_faces(VideoEntry(video, "stage.mp4", 0), cfg, FaceAnalyzer.from_config(cfg))
    clip = clips[0]
    assert clip.face_found.sum() >= 28
    assert (clip.detect_pass[clip.face_found] > 0).all()  # found by an escalation pass
    assert (clip.detect_pass[~clip.face_found] == -1).all()
    width = clip.crop_box[:, 2] - clip.crop_box[:, 0]
    assert 35 < np.median(width) / cfg.margin < 70  # the crop is around a ~40 px face
    saved = clip.save(tmp_path / "c.npz")
    assert (FaceClip.load(saved).detect_pass == clip.detect_pass).all()


def test_no_escalation_where_the_faces_found_are_large(carphone):
    frames = np.stack([cv2.resize(f, (704, 576)) for f in sample_frames(carphone, 6).frames])
    frames[2] = 96  # a frame without the face: a miss that more resolution cannot fix
    analyzer = FaceAnalyzer.from_config(PreprocessConfig())
    passes_run = []
    detect = analyzer.detect_scored
    analyzer.detect_scored = lambda frame, index=0: passes_run.append(index) or detect(frame, index)
    found = analyzer.detect_all(frames)
    assert found.found_by.tolist() == [0, 0, -1, 0, 0, 0]
    assert set(passes_run) == {0}


def test_what_escalation_finds_in_a_face_less_video_is_not_a_face(tmp_path, bigbuckbunny):
    import subprocess

    video = tmp_path / "noface.mp4"  # x264 defaults (crf 23): its artefacts fool escalation twice
    subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-i", str(bigbuckbunny),
                    "-frames:v", "20", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)],
                   check=True)
    analyzer = FaceAnalyzer.from_config(PreprocessConfig())
    frames = sample_frames(video, 30).frames
    assert (analyzer.detect_all(frames).found_by > 0).any()  # weak detections at 1280 / 2560 px
    with pytest.raises(ValueError, match="no face found in any of the 20 sampled frames"):
        analyzer.tracks(frames)


def test_format_1_clips_still_load(tmp_path, short_carphone):
    cfg = PreprocessConfig(num_frames=4)
    clip = preprocess_faces(VideoEntry(short_carphone, "c.mp4", 0), cfg, FaceAnalyzer())[0]
    arrays = {"frames": clip.frames, "landmarks": clip.landmarks, "rois": clip.rois,
              "face_found": clip.face_found, "frame_index": clip.frame_index,
              "crop_box": clip.crop_box, "meta": np.array(json.dumps({"format_version": 1}))}
    np.savez(tmp_path / "old.npz", **arrays)  # no detect_pass: what format 1 wrote
    old = FaceClip.load(tmp_path / "old.npz")
    assert (old.detect_pass == np.where(clip.face_found, 0, -1)).all()


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, real_faces):
    """Two real people side by side in one 640x360 video; the left one forged (blend), with the
    forgery's full-frame mask, in a manifest; also the shipped-model report on it."""
    from delocate.preprocessing.forge_videos import forge_clip, read_clips

    rows = list(csv.DictReader((real_faces / "manifest.csv").open()))
    people = {}
    for row in rows:
        people.setdefault(row["person"], real_faces / row["file"])
    (left_person, left), (_, right) = list(people.items())[:2]
    cfg = ForgeConfig(frames=30, segments=1)
    analyzer = FaceAnalyzer()
    clip = read_clips(left, left_person, "test", cfg, analyzer)[0]
    fakes, masks, _ = forge_clip(clip, "blend", [], seed=3)
    right_frames = sample_frames(right, 30, indices=np.arange(30)).frames
    count = min(len(fakes), len(right_frames))
    canvas = np.zeros((count, 360, 640, 3), np.uint8)
    full_mask = np.zeros((count, 360, 640), np.uint8)
    for t in range(count):
        canvas[t, 20:340, :320] = cv2.resize(fakes[t], (320, 320), interpolation=cv2.INTER_AREA)
        canvas[t, 20:340, 320:] = cv2.resize(right_frames[t], (320, 320),
                                             interpolation=cv2.INTER_AREA)
        full_mask[t, 20:340, :320] = cv2.resize(masks[t], (320, 320),
                                                interpolation=cv2.INTER_NEAREST)
    root = tmp_path_factory.mktemp("two_people")
    encode(canvas, root / "pair.mp4", clip.fps)
    np.savez_compressed(root / "pair_mask.npz", mask=full_mask)
    (root / "manifest.csv").write_text("path,label,method,mask_path\n"
                                       "pair.mp4,fake,blend,pair_mask.npz\n")
    return root


def test_two_people_give_two_tracks_with_their_own_masks(two_people, tmp_path):
    cache = tmp_path / "cache"
    assert main(["--stage", "preprocess", "--input", str(two_people / "manifest.csv"),
                 "--out", str(cache)]) == 0
    (row,) = read_index(cache)
    assert row["faces"] == "2"
    faces = [FaceClip.load(face_path(cache, row["clip"], k)) for k in range(2)]
    assert [f.meta["face"] for f in faces] == [0, 1] and faces[0].meta["faces"] == 2
    centres = [(f.crop_box[:, 0] + f.crop_box[:, 2]).mean() / 2 for f in faces]
    forged = int(np.argmin(centres))  # the left face is the forged one
    assert all(f.face_found.sum() >= 25 for f in faces)
    assert (faces[forged].mask > 127).mean() > 0.05  # its mask is its own forgery
    assert (faces[1 - forged].mask > 127).mean() < 0.001  # the real face next to it: none


def test_a_video_with_two_faces_is_scored_per_face_and_by_the_max(two_people, tmp_path):
    report = tmp_path / "report"
    assert main(["--stage", "score", str(two_people / "pair.mp4"), "--out", str(report)]) == 0
    (row,) = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    faces = row["face_scores"]
    assert row["faces"] == 2 and len(faces) == 2
    assert row["fake_score"] == max(f["fake_score"] for f in faces)
    assert faces[row["decided_by"]]["fake_score"] == row["fake_score"]
    for face in faces:
        assert (report / face["overlay"]).is_file() and (report / face["plot"]).is_file()
        with np.load(report / face["masks"]) as data:
            assert data["mask"].shape[0] == 30
    assert faces[0]["overlay"] != faces[1]["overlay"]
    with (report / "scores.csv").open() as handle:
        (csv_row,) = list(csv.DictReader(handle))
    assert csv_row["faces"] == "2" and csv_row["decided_by"] == str(row["decided_by"])
    page = (report / "index.html").read_text()
    assert "face 1 of 2" in page and "face 2 of 2" in page

    main_only = tmp_path / "main_only"  # a preprocess.* override at score time: the main face only
    assert main(["--stage", "score", str(two_people / "pair.mp4"), "--out", str(main_only),
                 "--set", "preprocess.max_faces=1"]) == 0
    (row,) = [json.loads(line) for line in (main_only / "results.jsonl").read_text().splitlines()]
    assert row["faces"] == 1 and len(row["face_scores"]) == 1


def test_still_images_are_one_frame_inputs(tmp_path):
    import skimage

    images = tmp_path / "images"
    images.mkdir()
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    rgb = cv2.imread(str(astronaut))
    shutil.copy(astronaut, images / "astronaut.png")
    cv2.imwrite(str(images / "astronaut.jpg"), rgb)
    cv2.imwrite(str(images / "astronaut.webp"), rgb)
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    report = tmp_path / "report"
    code = main(["--stage", "score", str(images), "--out", str(report)])
    assert code == 1  # the broken one failed; the others are scored
    rows = {Path(r["video"]).name: r for r in
            (json.loads(line) for line in (report / "results.jsonl").read_text().splitlines())}
    assert rows["broken.jpg"]["status"] == "error"
    assert "not a readable image" in rows["broken.jpg"]["error"]
    for name in ("astronaut.png", "astronaut.jpg", "astronaut.webp"):
        row = rows[name]
        assert row["status"] == "ok" and row["input"] == "image" and row["frames"] == 1, row
        assert row["faces"] == 1  # the badge on the suit (detector confidence 0.08) is no face
        with np.load(report / row["masks"]) as data:
            assert data["mask"].shape == (1, 224, 224)
        assert (report / row["overlay"]).is_file()
    scores = [rows[n]["fake_score"] for n in ("astronaut.png", "astronaut.webp")]
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)  # lossless formats: the same pixels


def test_keyframe_sampling_decodes_the_frames_it_says(tmp_path, carphone):
    import subprocess

    video = tmp_path / "gop5.mp4"
    subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-i", str(carphone), "-c:v",
                    "libx264", "-g", "5", "-keyint_min", "5", "-sc_threshold", "0",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    auto = sample_frames(video, 30, sampling="auto")
    exact = sample_frames(video, 30, sampling="exact")
    assert auto.sampling == "keyframe" and exact.sampling == "exact"
    assert len(set(auto.frame_index.tolist())) == 30
    assert (auto.frame_index % 5 <= 1).all()  # at or just after a keyframe (every 5 frames)
    few_keys = tmp_path / "gop20.mp4"  # 6 keyframes for 30 samples: auto samples exactly
    subprocess.run([ffmpeg_binary(), "-y", "-loglevel", "error", "-i", str(carphone), "-c:v",
                    "libx264", "-g", "20", "-keyint_min", "20", "-sc_threshold", "0",
                    "-pix_fmt", "yuv420p", str(few_keys)], check=True)
    assert sample_frames(few_keys, 30, sampling="auto").sampling == "exact"
    again = sample_frames(video, indices=auto.frame_index)  # the real indices, decoded exactly
    assert np.abs(again.frames.astype(int) - auto.frames.astype(int)).max() <= 2
