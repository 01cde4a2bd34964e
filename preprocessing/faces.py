"""Faces: dlib HOG detection, one face track per video, 68 landmarks, square face crops.

Detection runs on a downscaled frame (long side <= detect_max_side) and landmarks on the full-resolution
frame: measured 25.6 ms instead of 85 ms per 720p frame with the same hit rate (../shared/DESIGN.md).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LANDMARK_FILE = "shape_predictor_68_face_landmarks.dat"


def landmark_model_path() -> Path:
    """dlib's 68-point model inside the face_recognition_models wheel, found by path.

    Importing that package needs pkg_resources (gone from recent setuptools), so it is located with
    importlib instead of imported.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face_recognition_models package is not installed "
                           "(pip install face_recognition_models)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / LANDMARK_FILE
        if path.is_file():
            return path
    raise RuntimeError(f"{LANDMARK_FILE} not found inside face_recognition_models")


@dataclass
class FaceTrack:
    boxes: np.ndarray  # float32 [T, 4] x0, y0, x1, y1 detector box in source-frame pixels
    landmarks: np.ndarray  # float32 [T, 68, 2] in source-frame pixels
    face_found: np.ndarray  # bool [T]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _same_face(prev: np.ndarray, candidate: np.ndarray) -> float:
    """How well `candidate` continues the track at `prev`: IoU, or for a fast move between sampled
    frames, a small score when the centres are within half a face width. 0 means a different face."""
    iou = box_iou(prev, candidate)
    if iou > 0.05:
        return iou
    size = max(prev[2] - prev[0], prev[3] - prev[1])
    shift = np.hypot(*((candidate[:2] + candidate[2:]) / 2 - (prev[:2] + prev[2:]) / 2))
    return 0.01 if shift < 0.5 * size else 0.0


def track_faces(detections: list[np.ndarray]) -> list[int | None]:
    """Pick one detection per frame so that the picks form one face track.

    detections[t] is an [N_t, 4] array of boxes. The track starts at the largest box over the whole
    video (the main subject), then follows it forwards and backwards by box overlap, so a second
    person entering the frame never takes over. Frames with no continuing box get None.
    """
    picks: list[int | None] = [None] * len(detections)
    best = max(((_area(b), t, i) for t, boxes in enumerate(detections) for i, b in enumerate(boxes)),
               default=None)
    if best is None:
        return picks
    _, seed_t, seed_i = best
    picks[seed_t] = seed_i
    for order in (range(seed_t + 1, len(detections)), range(seed_t - 1, -1, -1)):
        prev = detections[seed_t][seed_i]
        for t in order:
            scores = [_same_face(prev, box) for box in detections[t]]
            if scores and max(scores) > 0:
                picks[t] = int(np.argmax(scores))
                prev = detections[t][picks[t]]
    return picks


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Copy each missing frame's value from the nearest frame that has one (ties: the earlier)."""
    found_idx = np.flatnonzero(found)
    filled = values.copy()
    for t in np.flatnonzero(~found):
        filled[t] = values[found_idx[np.argmin(np.abs(found_idx - t))]]
    return filled


class FaceAnalyzer:
    """dlib frontal face detector + 68-point shape predictor. Build one per process (not picklable)."""

    def __init__(self, detect_max_side: int = 320, upsample: int = 1):
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmark_model_path()))
        self.detect_max_side = detect_max_side
        self.upsample = upsample

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """Face boxes [N, 4] (x0, y0, x1, y1) in `frame` pixels, found on a downscaled copy."""
        height, width = frame.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = frame if scale >= 1.0 else cv2.resize(
            frame, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        rects = self.detector(np.ascontiguousarray(small), self.upsample)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32)
        return boxes.reshape(-1, 4) / scale

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) points [68, 2] predicted on the full-resolution frame inside `box`."""
        rect = self._dlib.rectangle(*[int(round(v)) for v in box])
        shape = self.predictor(np.ascontiguousarray(frame), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def track(self, frames: np.ndarray) -> FaceTrack:
        """One face track over `frames` [T, H, W, 3]; raises ValueError when no frame has a face."""
        detections = [self.detect(frame) for frame in frames]
        picks = track_faces(detections)
        found = np.array([p is not None for p in picks], bool)
        if not found.any():
            raise ValueError(f"no face found in any of the {len(frames)} sampled frames")
        boxes = np.zeros((len(frames), 4), np.float32)
        landmarks = np.zeros((len(frames), 68, 2), np.float32)
        for t, pick in enumerate(picks):
            if pick is not None:
                boxes[t] = detections[t][pick]
                landmarks[t] = self.landmarks(frames[t], boxes[t])
        return FaceTrack(fill_missing(boxes, found), fill_missing(landmarks, found), found)


def crop_square(landmarks: np.ndarray, margin: float) -> np.ndarray:
    """Square box [4] (x0, y0, x1, y1) centred on the landmarks' bounding box, side = margin x its
    larger side. The box may extend past the frame; crops pad that part with black."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (lo + hi) / 2
    half = max(hi - lo) * margin / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half],
                    np.float32)


def crop_affine(box: np.ndarray, size: int) -> np.ndarray:
    """2x3 matrix mapping source-frame pixels into a size x size crop of `box`."""
    scale = size / float(box[2] - box[0])
    return np.array([[scale, 0.0, -box[0] * scale], [0.0, scale, -box[1] * scale]], np.float32)


def warp_crop(image: np.ndarray, box: np.ndarray, size: int, nearest: bool = False,
              replicate: bool = False) -> np.ndarray:
    """Cut `box` out of `image` (any channels) resized to size x size; outside the frame is 0, or
    the frame's border replicated (`replicate`)."""
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if (box[2] - box[0]) > size \
        else cv2.INTER_LINEAR
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, crop_affine(box, size), (size, size), flags=interp,
                          borderMode=border, borderValue=0)


def to_crop_coords(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Source-frame points [..., 2] -> crop pixels."""
    scale = size / float(box[2] - box[0])
    return ((points - box[:2]) * scale).astype(np.float32)
