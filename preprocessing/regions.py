"""Facial-part regions of interest from the 68 dlib landmarks.

Delocate masks one facial part at a time, following the FACS action units the paper names. The
landmark indices (0-based, dlib/iBUG 68 layout) used for each part:

- eyes (AU1/AU2 brow raisers, AU4 brow lowerer, AU7 lower-eyelid tightener): brows 17-26 and eyes
  36-47. The box is padded below the eyes by 0.25 x the eye height so the lower eyelid is inside.
- cheek_nose (AU9 nose wrinkler at the nose root, AU6 cheek raiser): the nose 27-35 and the cheeks,
  bounded sideways by jaw points 1 and 15 (the cheek contours at eye level) and vertically from the
  nose root (27) to the nose base (33) plus a small pad.
- lips (AU12 lip-corner puller, AU15 lip-corner depressor, AU17 chin raiser, chin sides): mouth
  48-67 and chin 5-11, from just above the upper lip to the chin tip (8).

Boxes are (x0, y0, x1, y1) integer crop pixels, clipped to the crop.
"""
from __future__ import annotations

import numpy as np

PART_NAMES = ("eyes", "cheek_nose", "lips")

BROWS = list(range(17, 27))
EYES = list(range(36, 48))
NOSE = list(range(27, 36))
MOUTH = list(range(48, 68))
CHIN = list(range(5, 12))
CHEEK_LEFT, CHEEK_RIGHT = 1, 15
NOSE_ROOT, NOSE_BASE, CHIN_TIP = 27, 33, 8

# landmark indices that belong to each part (used for masks confined to a part, e.g. synthesis)
PART_LANDMARKS = {
    "eyes": BROWS + EYES,
    "cheek_nose": NOSE + [CHEEK_LEFT, 2, 3, 13, 14, CHEEK_RIGHT],
    "lips": MOUTH + CHIN,
}


def part_boxes(landmarks: np.ndarray, size: int) -> np.ndarray:
    """ROI boxes int16 [3, 4] (eyes, cheek_nose, lips) for one frame's landmarks [68, 2] in a
    size x size crop."""
    pts = landmarks.astype(np.float32)
    face_h = max(1.0, pts[CHIN_TIP, 1] - pts[BROWS, 1].min())
    pad = 0.04 * face_h

    eye_pts = pts[BROWS + EYES]
    eye_h = pts[EYES, 1].max() - pts[EYES, 1].min()
    eyes = [eye_pts[:, 0].min() - pad, eye_pts[:, 1].min() - pad,
            eye_pts[:, 0].max() + pad, pts[EYES, 1].max() + 0.25 * eye_h + pad]

    nose_pts = pts[NOSE]
    cheek_nose = [min(pts[CHEEK_LEFT, 0], nose_pts[:, 0].min()), pts[NOSE_ROOT, 1],
                  max(pts[CHEEK_RIGHT, 0], nose_pts[:, 0].max()), pts[NOSE_BASE, 1] + pad]

    lip_pts = pts[MOUTH + CHIN]
    lips = [lip_pts[:, 0].min() - pad, pts[MOUTH, 1].min() - pad,
            lip_pts[:, 0].max() + pad, pts[CHIN_TIP, 1]]

    boxes = np.array([eyes, cheek_nose, lips], np.float32)
    boxes = np.clip(np.round(boxes), 0, size)
    # a degenerate landmark set must still give a box of at least one pixel
    boxes[:, 2:] = np.maximum(boxes[:, 2:], np.minimum(boxes[:, :2] + 1, size))
    boxes[:, :2] = np.minimum(boxes[:, :2], boxes[:, 2:] - 1)
    return boxes.astype(np.int16)


def clip_rois(landmarks: np.ndarray, size: int) -> np.ndarray:
    """ROI boxes int16 [T, 3, 4] for landmarks [T, 68, 2]."""
    return np.stack([part_boxes(frame_points, size) for frame_points in landmarks])
