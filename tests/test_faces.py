import cv2
import numpy as np
import pytest

from delocate.common.config import PreprocessConfig
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import (FaceAnalyzer, crop_affine, crop_square,
                                          landmark_model_path, warp_crop)
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.regions import PART_NAMES
from delocate.preprocessing.tracks import fill_missing, track_faces


def box(x, y, side):
    return [x, y, x + side, y + side]


def test_track_follows_the_largest_face_not_the_largest_per_frame():
    main = [box(100 + 5 * t, 50, 80) for t in range(5)]
    # a bigger second person appears at frame 3, far away: the track must not jump to them
    detections = [np.array([main[0]], np.float32),
                  np.array([main[1], box(400, 40, 60)], np.float32),
                  np.zeros((0, 4), np.float32),
                  np.array([box(400, 40, 70), main[3]], np.float32),
                  np.array([main[4]], np.float32)]
    picks = track_faces(detections)
    assert picks == [0, 0, None, 1, 0]


def test_track_with_no_faces_at_all():
    assert track_faces([np.zeros((0, 4), np.float32)] * 3) == [None, None, None]


def test_fill_missing_copies_the_nearest_found_frame():
    values = np.array([[0.0], [1.0], [0.0], [0.0], [4.0]])
    found = np.array([False, True, False, False, True])
    assert fill_missing(values, found)[:, 0].tolist() == [1.0, 1.0, 1.0, 4.0, 4.0]


def test_crop_square_margin():
    points = np.array([[10, 20], [50, 100]], np.float32)
    x0, y0, x1, y1 = crop_square(points, 1.3)
    assert x1 - x0 == pytest.approx(y1 - y0) == pytest.approx(104)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((30, 60))


def test_warp_crop_shrinks_without_aliasing_and_keeps_the_geometry():
    # a one-pixel checkerboard shrunk 4x: averaged it is flat grey, point-sampled it stays a pattern
    board = (np.indices((900, 1200)).sum(0) % 2 * 255).astype(np.uint8)
    big = np.array([150.0, 2.0, 1046.0, 898.0])
    crop = warp_crop(board, big, 224)
    assert abs(float(crop.mean()) - 127.5) < 3 and crop[4:-4, 4:-4].std() < 5
    # the crop covers exactly the same place as the plain affine warp (smooth picture, any box)
    ys, xs = np.mgrid[0:900, 0:1200].astype(np.float32)
    ramp = np.dstack([xs * 0.2, ys * 0.25, (xs + ys) * 0.1])
    outside, small = np.array([-200.0, -100.0, 472.0, 572.0]), np.array([10.0, 20.0, 110.0, 120.0])
    for box in (big, outside, small):
        plain = cv2.warpAffine(ramp, crop_affine(box, 224), (224, 224), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(warp_crop(ramp, box, 224, replicate=True) - plain).max() < 0.3


def test_landmark_model_is_found_by_path():
    assert landmark_model_path().stat().st_size > 50_000_000


def test_carphone_faces_landmarks_and_rois(carphone):
    clip = preprocess_video(VideoEntry(carphone, "carphone.mp4", 0), PreprocessConfig(),
                            FaceAnalyzer())
    assert clip.frames.shape == (30, 224, 224, 3)
    assert clip.face_found.sum() >= 28
    assert clip.landmarks.shape == (30, 68, 2)
    # landmarks land inside the crop, and the ROIs inside the crop in the right vertical order
    assert (clip.landmarks > -5).all() and (clip.landmarks < 229).all()
    rois = clip.rois.astype(int)
    assert (rois[..., :2] >= 0).all() and (rois[..., 2:] <= 224).all()
    assert (rois[..., 2] > rois[..., 0]).all() and (rois[..., 3] > rois[..., 1]).all()
    centre_y = (rois[..., 1] + rois[..., 3]) / 2
    eyes, cheek_nose, lips = (centre_y[:, PART_NAMES.index(p)] for p in PART_NAMES)
    assert (eyes < cheek_nose).all() and (cheek_nose < lips).all()
    # the crop box is in source pixels (176x144 video) and the face was tracked, not re-picked
    centres = (clip.crop_box[:, :2] + clip.crop_box[:, 2:]) / 2
    assert (centres[:, 0] > 20).all() and (centres[:, 0] < 160).all()
    assert np.abs(np.diff(centres, axis=0)).max() < 40
    assert clip.mask is not None and clip.mask.max() == 0  # real video: empty mask
