"""Relit footage: a smooth change of light over the face, carried by a real face and its fake alike.

Real faces are often lit unlike their surroundings (a pale, flat-lit face over a darker neck; a lamp
on one side), and a face swap with a colour mismatch differs from its surroundings the same way. A
detector that learned "the face's tone differs from the neck" calls such real faces forged (the
shipped model: two test people's real videos at 0.94 and 0.96; relit real clips score higher).
Relit in a share of pairs, before anything is forged, tone alone tells real from fake nothing; a
blend's seam still does. Measured at 0.5 and 0.2 (STUDIES.md, "Relit footage under the real face
and its fake"): at 0.5 those real faces fell and so did the fakes; neither share ranked better;
off by default.

The light is a gain per colour channel, weighted by a field with no edge anywhere (a wide Gaussian
around the face, or a soft ramp across it), placed by each frame's landmarks so it moves with the
face. OpenCV/albumentations offer global or random-spot brightness, never one tied to landmarks,
hence this small module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from delocate.preprocessing.forgery import face_size


@dataclass(frozen=True)
class Relighting:
    kind: str  # "face": brighter or darker around the face | "side": lit from one side
    gain: tuple[float, float, float]  # the change at the field's full weight, per channel (RGB)
    reach: float  # the field's width (Gaussian sigma, or ramp softness), in face sizes
    offset: tuple[float, float]  # the field's centre from the landmarks' mean, in face sizes
    angle: float  # "side": the direction the light comes from (radians)


def draw_relighting(rng: np.random.Generator) -> Relighting:
    kind = "face" if rng.random() < 0.6 else "side"
    level = float(rng.uniform(0.12, 0.35)) * (1 if rng.random() < 0.5 else -1)
    tint = rng.uniform(-0.06, 0.06, 3)
    gain = tuple(float(level + t) for t in tint)
    reach = float(rng.uniform(0.35, 0.8) if kind == "face" else rng.uniform(0.25, 0.6))
    offset = tuple(float(v) for v in rng.uniform(-0.12, 0.12, 2))
    return Relighting(kind, gain, reach, offset, float(rng.uniform(0, 2 * np.pi)))


def light_field(relighting: Relighting, landmarks: np.ndarray, shape: tuple[int, int]
                ) -> np.ndarray:
    """float32 [H, W] in [0, 1]: how much of the gain each pixel of one frame takes."""
    size = face_size(landmarks)
    centre = landmarks.mean(axis=0) + np.asarray(relighting.offset) * size
    # a row and a column that broadcast to [H, W]: no full coordinate grids per frame
    dx = np.arange(shape[1], dtype=np.float32)[None, :] - centre[0]
    dy = np.arange(shape[0], dtype=np.float32)[:, None] - centre[1]
    width = relighting.reach * size
    if relighting.kind == "face":
        return np.exp(-(dx * dx + dy * dy) / (2 * width * width)).astype(np.float32)
    along = dx * np.cos(relighting.angle) + dy * np.sin(relighting.angle)
    return (0.5 * (1 + np.tanh(along / width))).astype(np.float32)


def relight(frames: np.ndarray, landmarks: np.ndarray, relighting: Relighting) -> np.ndarray:
    """uint8 [T, H, W, 3] frames with their [T, 68, 2] landmarks -> the same frames relit."""
    gain = np.asarray(relighting.gain, np.float32)
    out = np.empty_like(frames)
    for t, (frame, points) in enumerate(zip(frames, landmarks)):
        field = light_field(relighting, points, frame.shape[:2])[..., None]
        out[t] = np.clip(frame.astype(np.float32) * (1 + field * gain) + 0.5, 0, 255)
    return out
