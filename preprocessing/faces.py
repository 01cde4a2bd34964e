"""Faces: dlib HOG detection that escalates, face tracks over the sampled frames, 68 landmarks,
square face crops.

Detection runs on a downscaled frame (long side <= detect_max_side) and landmarks on the
full-resolution frame: measured 25.6 ms instead of 85 ms per 720p frame with the same hit rate
(ARCHITECTURE.md). dlib's HOG window is 80 px, so that fast pass misses faces under ~80 px in a 640
px frame (a stage, a panel, a distant speaker). Frames where it finds nothing are retried at the
escalation passes (more resolution, dlib upsampling: ~0.1 s and ~0.4 s a frame), unless the faces it
found elsewhere in the video are well above that size (then a miss is a pose or blur, not a size); a
few such frames are probed first, and when none of them has a face at any pass the rest are not
tried, which bounds the cost of a face-less video.
"""
from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from delocate.preprocessing.tracks import fill_missing, link_tracks

LANDMARK_FILE = "shape_predictor_68_face_landmarks.dat"
HOG_WINDOW = 80  # px: the smallest face dlib's frontal detector finds at the scale it searches


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
    detect_pass: np.ndarray | None = None  # int8 [T] the pass that found the face; -1: not found

    def __post_init__(self) -> None:
        if self.detect_pass is None:
            self.detect_pass = np.where(self.face_found, 0, -1).astype(np.int8)


@dataclass
class Detections:
    boxes: list[np.ndarray]  # per frame [N_t, 4] in frame pixels
    found_by: np.ndarray  # int8 [T] the pass that found the frame's boxes; -1: none
    seconds: float  # time spent detecting
    scores: list[np.ndarray]  # per frame [N_t]: the detector's confidence of each box


class FaceAnalyzer:
    """dlib frontal face detector + 68-point shape predictor. Build one per process (not picklable).

    passes: the fast pass (detect_max_side, upsample) then `escalation`, each (max side the frame
    is scaled down to, dlib upsampling). Without escalation, the fast pass finds every face.
    """

    def __init__(self, detect_max_side: int = 320, upsample: int = 1,
                 escalation: list[list[int]] | tuple = (), min_face: int = 0, max_faces: int = 1,
                 min_track_fraction: float = 0.25, probe_frames: int = 4,
                 min_face_score: float = 0.2):
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmark_model_path()))
        self.passes = [(int(detect_max_side), int(upsample))] + \
            [(int(side), int(up)) for side, up in escalation]
        self.min_face = min_face
        self.max_faces = max_faces
        self.min_track_fraction = min_track_fraction
        self.probe_frames = probe_frames
        self.min_face_score = min_face_score

    @classmethod
    def from_config(cls, cfg) -> "FaceAnalyzer":
        """From a PreprocessConfig: escalation, every face (up to max_faces) above min_face_size."""
        return cls(cfg.detect_max_side, cfg.detect_upsample, cfg.detect_escalation,
                   cfg.min_face_size, cfg.max_faces, cfg.min_track_fraction,
                   min_face_score=cfg.min_face_score)

    def _pass_scale(self, frame: np.ndarray, index: int) -> tuple[float, float]:
        """(scale of the frame, its effective long side after upsampling) at pass `index`."""
        side, upsample = self.passes[index]
        long_side = max(frame.shape[:2])
        scale = min(1.0, side / long_side)
        return scale, long_side * scale * 2 ** upsample

    def detect_scored(self, frame: np.ndarray, pass_index: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes [N, 4] (x0, y0, x1, y1) in `frame` pixels found at one pass, and the
        detector's confidence of each [N]; boxes narrower than `min_face` pixels are dropped."""
        height, width = frame.shape[:2]
        scale, _ = self._pass_scale(frame, pass_index)
        small = frame if scale >= 1.0 else cv2.resize(
            frame, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(np.ascontiguousarray(small),
                                             self.passes[pass_index][1], 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects],
                         np.float32).reshape(-1, 4) / scale
        keep = boxes[:, 2] - boxes[:, 0] >= self.min_face
        return boxes[keep], np.asarray(scores, np.float32).reshape(-1)[keep]

    def detect(self, frame: np.ndarray, pass_index: int = 0) -> np.ndarray:
        """The boxes of `detect_scored`."""
        return self.detect_scored(frame, pass_index)[0]

    def _useful_passes(self, frame: np.ndarray) -> list[int]:
        """Escalation passes that look at more pixels than every pass before them."""
        useful, best = [], self._pass_scale(frame, 0)[1]
        for index in range(1, len(self.passes)):
            effective = self._pass_scale(frame, index)[1]
            if effective > best:
                useful.append(index)
                best = effective
        return useful

    def _escalate(self, frames: np.ndarray, indices, found: Detections, passes: list[int]
                  ) -> int | None:
        """Retry frames `indices` at `passes` in order, stopping per frame at the first hit; the
        lowest pass that found anything, or None."""
        lowest = None
        for t in indices:
            for index in passes:
                boxes, scores = self.detect_scored(frames[t], index)
                if len(boxes):
                    found.boxes[t], found.scores[t], found.found_by[t] = boxes, scores, index
                    lowest = index if lowest is None else min(lowest, index)
                    break
        return lowest

    def detect_all(self, frames: np.ndarray) -> Detections:
        """Boxes on every frame: the fast pass, then escalation where it found nothing."""
        start = time.perf_counter()
        boxes, scores = zip(*(self.detect_scored(frame, 0) for frame in frames)) \
            if len(frames) else ((), ())
        found = Detections(list(boxes), np.array([0 if len(b) else -1 for b in boxes], np.int8),
                           0.0, list(scores))
        missing = np.flatnonzero(found.found_by < 0)
        passes = self._useful_passes(frames[0]) if len(frames) else []
        if len(missing) and passes and not self._faces_are_large(frames[0], found.boxes):
            probe = missing[np.unique(np.linspace(0, len(missing) - 1,
                                                  min(self.probe_frames, len(missing))).round()
                                      .astype(int))]
            lowest = self._escalate(frames, probe, found, passes)
            if lowest is not None:  # faces are there: try the other frames from that pass on
                rest = np.setdiff1d(missing, probe)
                self._escalate(frames, rest, found, [p for p in passes if p >= lowest])
        found.seconds = time.perf_counter() - start
        return found

    def _faces_are_large(self, frame: np.ndarray, boxes: list[np.ndarray]) -> bool:
        """True when the fast pass found faces at least twice the smallest it can find (80 px at
        its effective resolution, dlib's HOG window): frames it missed then miss a face for its pose
        or blur, not its size, and more resolution would only cost time."""
        widths = [float(b[2] - b[0]) for frame_boxes in boxes for b in frame_boxes]
        if not widths:
            return False
        smallest = HOG_WINDOW * max(frame.shape[:2]) / self._pass_scale(frame, 0)[1]
        return float(np.median(widths)) >= 2 * smallest

    def effective_sides(self, frame: np.ndarray) -> list[int]:
        """The long side, in pixels after upsampling, that each useful pass searches."""
        return [round(self._pass_scale(frame, i)[1]) for i in [0, *self._useful_passes(frame)]]

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) points [68, 2] predicted on the full-resolution frame inside `box`."""
        rect = self._dlib.rectangle(*[int(round(v)) for v in box])
        shape = self.predictor(np.ascontiguousarray(frame), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def tracks(self, frames: np.ndarray, max_faces: int | None = None) -> list[FaceTrack]:
        """Face tracks over `frames` [T, H, W, 3], the main one first (the largest face's; see
        `track_faces`), at most `max_faces`; raises ValueError when no frame has a face."""
        detections = self.detect_all(frames)
        min_frames = max(1, math.ceil(self.min_track_fraction * len(frames)))
        linked = link_tracks(detections.boxes, max_faces or self.max_faces, min_frames,
                             accept=lambda picks, first: self._credible(picks, detections,
                                                                        min_frames, main=first))
        if not linked:
            searched = " / ".join(f"{s} px" for s in self.effective_sides(frames[0])) \
                if len(frames) else "-"
            raise ValueError(f"no face found in any of the {len(frames)} sampled frames "
                             f"(searched at {searched}; {detections.seconds:.1f} s)")
        return [self._track(frames, detections, picks) for picks in linked]

    def _credible(self, picks: list[int | None], found: Detections, min_frames: int, main: bool
                  ) -> bool:
        """Whether a track is a face: the main track as the fast pass found it always is (as
        before); any other face, and a face only escalation found, needs the detector's median
        confidence >= min_face_score on at least min_frames frames. Measured: faces 0.6-1.6 at the
        fast pass, ~0.5 (0.15-1.1) for 40 px faces found by escalation, 0.04-0.09 for the false
        detections escalation finds in face-less video and for a badge in a portrait."""
        frames = [t for t, pick in enumerate(picks) if pick is not None]
        if main and any(found.found_by[t] == 0 for t in frames):
            return True
        confidence = float(np.median([found.scores[t][picks[t]] for t in frames]))
        return confidence >= self.min_face_score and len(frames) >= min_frames

    def _track(self, frames: np.ndarray, detections: Detections, picks: list[int | None]
               ) -> FaceTrack:
        found = np.array([p is not None for p in picks], bool)
        boxes = np.zeros((len(frames), 4), np.float32)
        landmarks = np.zeros((len(frames), 68, 2), np.float32)
        for t, pick in enumerate(picks):
            if pick is not None:
                boxes[t] = detections.boxes[t][pick]
                landmarks[t] = self.landmarks(frames[t], boxes[t])
        detect_pass = np.where(found, detections.found_by, -1).astype(np.int8)
        return FaceTrack(fill_missing(boxes, found), fill_missing(landmarks, found), found,
                         detect_pass)

    def track(self, frames: np.ndarray) -> FaceTrack:
        """The main face track over `frames`; raises ValueError when no frame has a face."""
        return self.tracks(frames, max_faces=1)[0]


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
    the frame's border replicated (`replicate`). A box larger than the crop is area-averaged down
    first: cv2.warpAffine has no area filter (INTER_AREA there is bilinear), and a face shrunk by
    point sampling aliases (moire, jagged edges), texture no training face has."""
    matrix = crop_affine(box, size)
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    shrink = float(box[2] - box[0]) / size
    if not nearest and shrink > 1.0:
        height, width = image.shape[:2]
        x0, y0 = max(0, int(np.floor(box[0])) - 1), max(0, int(np.floor(box[1])) - 1)
        x1, y1 = min(width, int(np.ceil(box[2])) + 2), min(height, int(np.ceil(box[3])) + 2)
        if x1 > x0 and y1 > y0:  # (a box wholly outside the frame is all border either way)
            small_w = max(1, int(np.ceil((x1 - x0) / shrink)))
            small_h = max(1, int(np.ceil((y1 - y0) / shrink)))
            image = cv2.resize(image[y0:y1, x0:x1], (small_w, small_h),
                               interpolation=cv2.INTER_AREA)
            # the same crop, read from the shrunk region (cv2.resize maps pixel centres)
            fx, fy = small_w / (x1 - x0), small_h / (y1 - y0)
            scale = matrix[0, 0]
            matrix = np.array([[scale / fx, 0.0, scale * (0.5 / fx - 0.5 + x0 - box[0])],
                               [0.0, scale / fy, scale * (0.5 / fy - 0.5 + y0 - box[1])]],
                              np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=border,
                          borderValue=0)


def to_crop_coords(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Source-frame points [..., 2] -> crop pixels."""
    scale = size / float(box[2] - box[0])
    return ((points - box[:2]) * scale).astype(np.float32)
