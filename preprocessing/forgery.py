"""One forged face from a real one, at any resolution, with its exact mask.

The randomized recipes of the self-blend detectors that generalize (SBI, Face X-ray, LAA-Net,
SLADD): the mask shape comes from one of several landmark hulls, is grown or shrunk, wobbled,
elastically deformed, eroded or dilated and feathered; the source is the same face transformed
(colour in RGB and HSV, brightness / contrast, blur or sharpening, downscale-upscale, a small scale
and shift), a part of it, or another person's face warped onto this one; it goes in by feathered
alpha, after a colour transfer, or by Poisson cloning (`cv2.seamlessClone`, as classical face-swap
tools do), at a blend ratio from {0.25 .. 1}.

Used by the online training pairs (training/pairs.py) on face crops at source resolution and by
--stage forge on whole video frames (preprocessing/forge_videos.py). A recipe is drawn once per
fake: every frame of a forged clip shares it, as a real tool's settings do, while the landmarks
move.

Exactness: a pixel of the fake differs from the real image only where `weight` > 0; `mask` (the
label) is where the manipulation's shape weight is >= 0.5, whatever the blend ratio (a faint blend
is still a forged region).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from delocate.preprocessing.face_transforms import (blend, box_window, colour_match,
                                                    piecewise_affine)
from delocate.preprocessing.regions import PART_LANDMARKS, PART_NAMES, part_boxes
from delocate.preprocessing.synthesis import METHODS, PART_HULLS, PART_OF_METHOD

JAW, BROWS = list(range(0, 17)), list(range(17, 27))
# mask shapes after Face X-ray's hull types (facehull, extended, dfl_full-like inner face,
# components)
HULL_TYPES = ("face", "extended", "inner", "components")
BLEND_MODES = ("alpha", "colour", "poisson")
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's dynamic blend: mostly full, sometimes faint
# landmark-wise warp (classical swaps) or BI's whole-face fit
SWAP_ALIGNS = ("piecewise", "similarity")


@dataclass
class Recipe:
    """Everything random about one fake. Lengths are fractions of the face size (the landmark
    bounding box's larger side), so a recipe means the same at any resolution."""
    method: str
    hull: str
    mode: str
    ratio: float
    align: str
    grow: float  # radial hull growth (< 0 shrinks)
    wobble: np.ndarray  # [68] extra radial growth per landmark: the outline is not a clean hull
    elastic: float  # amplitude of a smooth random displacement of the mask
    elastic_seed: int
    morph: float  # erode (< 0) or dilate (> 0) kernel size
    feather: float  # Gaussian feather sigma
    rgb_shift: np.ndarray  # [3] added to the source's channels
    hsv: np.ndarray  # [3] hue shift (OpenCV units), saturation gain, value gain
    contrast: float
    brightness: float
    sharpness: float  # > 0 blur sigma in pixels per 100 px of face, < 0 unsharp amount
    resample: float  # < 1: the source is downscaled by this factor and upscaled back
    scale: float  # self-blend source geometry relative to the target
    shift: np.ndarray  # [2]


def draw_recipe(rng: np.random.Generator, method: str) -> Recipe:
    if method not in METHODS:
        raise ValueError(f"unknown forgery method {method!r}; choose from {METHODS}")
    coin = lambda p: rng.random() < p  # noqa: E731
    return Recipe(
        method=method,
        hull=str(rng.choice(HULL_TYPES)),
        mode=str(rng.choice(BLEND_MODES, p=[0.4, 0.3, 0.3])),
        ratio=float(rng.choice(BLEND_RATIOS)),
        align=str(rng.choice(SWAP_ALIGNS)),
        # parts are small: shrinking them would leave nothing to see
        grow=float(rng.uniform(0.0, 0.08) if method in PART_OF_METHOD
                   else rng.uniform(-0.06, 0.08)),
        wobble=rng.uniform(-0.03, 0.03, 68),
        elastic=float(rng.uniform(0.0, 0.06)) if coin(0.6) else 0.0,
        elastic_seed=int(rng.integers(1 << 31)),
        morph=float(rng.uniform(-0.08, 0.05)) if coin(0.5) else 0.0,
        feather=float(rng.uniform(0.005, 0.06)),
        rgb_shift=rng.uniform(-20, 20, 3) if coin(0.5) else np.zeros(3),
        hsv=np.array([rng.uniform(-6, 6), rng.uniform(0.75, 1.25), rng.uniform(0.85, 1.15)])
        if coin(0.5) else np.array([0.0, 1.0, 1.0]),
        contrast=float(rng.uniform(0.85, 1.15)) if coin(0.5) else 1.0,
        brightness=float(rng.uniform(-15, 15)) if coin(0.5) else 0.0,
        sharpness=float(rng.choice([-1, 1]) * rng.uniform(0.3, 1.2)) if coin(0.5) else 0.0,
        resample=float(rng.uniform(0.35, 0.9)) if coin(0.3) else 1.0,
        scale=float(rng.uniform(0.95, 1.05)),
        shift=rng.uniform(-0.03, 0.03, 2),
    )


def face_size(landmarks: np.ndarray) -> float:
    return float(max(landmarks.max(axis=0) - landmarks.min(axis=0)))


# --- the mask -------------------------------------------------------------------------------------

def hull_groups(landmarks: np.ndarray, method: str, hull: str) -> list[np.ndarray]:
    """Landmark point sets whose convex hulls (united) are the forged region."""
    if method in PART_HULLS:
        return [landmarks[h] for h in PART_HULLS[method]]
    if hull == "extended":  # the brows lifted by a third of the face height: the forehead too
        lifted = landmarks[BROWS].copy()
        lifted[:, 1] -= 0.33 * (landmarks[8, 1] - landmarks[BROWS, 1].min())
        return [np.concatenate([landmarks[JAW + BROWS], lifted])]
    if hull == "inner":  # brows, eyes, nose, mouth and the chin, not the jaw line
        return [landmarks[list(range(3, 14)) + list(range(17, 68))]]
    if hull == "components":
        return [landmarks[PART_HULLS["part-eyes"][0] + PART_HULLS["part-eyes"][1]],
                landmarks[list(range(27, 36))], landmarks[list(range(48, 68))]]
    return [landmarks[JAW + BROWS]]


def _fill_hull(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(out, cv2.convexHull(np.round(points).astype(np.int32)), 1.0)
    return out


def _elastic(mask: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    """Displace `mask` by a smooth random field (a coarse 4x4 grid of offsets, upsampled)."""
    height, width = mask.shape
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-amplitude, amplitude, (2, 4, 4)).astype(np.float32)
    dx, dy = (cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def shape_weight(shape: tuple[int, int], landmarks: np.ndarray, recipe: Recipe) -> np.ndarray:
    """float32 [H, W] in [0, 1]: the forged region's soft shape (before the blend ratio)."""
    size = face_size(landmarks)
    mask = np.zeros(shape, np.float32)
    for group in hull_groups(landmarks, recipe.method, recipe.hull):
        centre = group.mean(axis=0)
        offsets = group - centre
        radius = np.linalg.norm(offsets, axis=1, keepdims=True) + 1e-6
        wobble = recipe.wobble[: len(group), None]
        grown = centre + offsets * (1 + (recipe.grow + wobble) * size / radius)
        mask = np.maximum(mask, _fill_hull(grown, shape))
    if recipe.elastic > 0:
        mask = _elastic(mask, recipe.elastic * size, recipe.elastic_seed)
    side = int(abs(recipe.morph) * size) | 1
    if recipe.morph and side > 1 and recipe.method not in PART_OF_METHOD:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        mask = (cv2.erode if recipe.morph < 0 else cv2.dilate)(mask, kernel)
    sigma = max(0.5, recipe.feather * size)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    if recipe.method in PART_OF_METHOD:  # a part method never leaves its part's box
        box = part_boxes(landmarks, max(shape))[PART_NAMES.index(PART_OF_METHOD[recipe.method])]
        mask *= box_window(box, shape, sigma)
    return np.clip(mask, 0.0, 1.0)


# --- the source -----------------------------------------------------------------------------------

def _colour(image: np.ndarray, recipe: Recipe) -> np.ndarray:
    out = image.astype(np.float32) + recipe.rgb_shift.astype(np.float32)
    if recipe.hsv[0] or recipe.hsv[1] != 1 or recipe.hsv[2] != 1:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
        hsv = hsv.astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + recipe.hsv[0]) % 180
        hsv[..., 1:] *= recipe.hsv[1:].astype(np.float32)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
        out = out.astype(np.float32)
    mean = out.mean()
    return (out - mean) * recipe.contrast + mean + recipe.brightness


def texture(image: np.ndarray, resample: float, sharpness: float, size: float) -> np.ndarray:
    """Downscale by `resample` (< 1) and upscale back, then blur (`sharpness` > 0: sigma in pixels
    per 100 px of a face `size` px wide) or unsharp-mask (< 0: the amount). A forged source's
    texture here; the footage's own quality in training pairs (training/pairs.py)."""
    height, width = image.shape[:2]
    if resample < 1:
        small = cv2.resize(image, (max(8, int(width * resample)), max(8, int(height * resample))),
                           interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if abs(sharpness) >= 0.05:
        blurred = cv2.GaussianBlur(image, (0, 0), max(0.3, abs(sharpness) * size / 100))
        image = blurred if sharpness > 0 else image + (image - blurred) * abs(sharpness) * 1.5
    return image


def texture_frames(frames: np.ndarray, resample: float, sharpness: float, size: float
                   ) -> np.ndarray:
    """`texture` on every frame of uint8 [T, H, W, 3] footage, back to uint8 (rounded)."""
    out = np.stack([texture(f.astype(np.float32), resample, sharpness, size) for f in frames])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def source_image(target: np.ndarray, landmarks: np.ndarray, recipe: Recipe,
                 donor: np.ndarray | None = None, donor_landmarks: np.ndarray | None = None
                 ) -> np.ndarray:
    """float32 [H, W, 3]: what gets blended into `target`, before the blend mode's own colour
    work."""
    size = face_size(landmarks)
    if recipe.method == "swap":
        if donor is None or donor_landmarks is None:
            raise ValueError("swap needs a donor face and its landmarks")
        if recipe.align == "piecewise":
            from scipy.spatial import Delaunay

            triangles = Delaunay(landmarks).simplices
            source = piecewise_affine(donor, donor_landmarks, landmarks, triangles, target)
        else:
            source = _fit_donor(donor, donor_landmarks, landmarks, target.shape)
    elif recipe.method in PART_OF_METHOD and donor is not None and donor_landmarks is not None:
        # another moment of the same face, aligned on this part: the part's content really changes
        idx = PART_LANDMARKS[PART_OF_METHOD[recipe.method]]
        source = _fit_donor(donor, donor_landmarks[idx], landmarks[idx], target.shape)
    else:  # self-blend: the same frame, slightly moved
        centre = landmarks.mean(axis=0)
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, recipe.scale)
        matrix[:, 2] += recipe.shift * size
        source = cv2.warpAffine(target, matrix, (target.shape[1], target.shape[0]),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return texture(_colour(source, recipe), recipe.resample, recipe.sharpness, size)


def _fit_donor(donor: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray,
               shape: tuple) -> np.ndarray:
    """The donor warped, into the target's frame size, by the similarity that best maps its points
    onto the target's."""
    matrix, _ = cv2.estimateAffinePartial2D(src_points.astype(np.float32),
                                            dst_points.astype(np.float32))
    if matrix is None:  # degenerate points: the donor as it lies
        matrix = np.eye(2, 3, dtype=np.float32)
    return cv2.warpAffine(donor, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


# --- blending -------------------------------------------------------------------------------------

@dataclass
class Forged:
    image: np.ndarray  # uint8 [H, W, 3]
    weight: np.ndarray  # float32 [H, W]: share of the source in each pixel (0 = untouched)
    mask: np.ndarray  # bool [H, W]: the forged region (label)


def _poisson(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """Poisson-cloned source (float32) or None where OpenCV cannot clone this region."""
    binary = (region > 0.5).astype(np.uint8) * 255
    binary[:2], binary[-2:], binary[:, :2], binary[:, -2:] = 0, 0, 0, 0  # clone needs a border
    x, y, w, h = cv2.boundingRect(binary)
    if w < 4 or h < 4:
        return None
    try:
        cloned = cv2.seamlessClone(np.clip(source, 0, 255).astype(np.uint8), target, binary,
                                   (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error:
        return None
    return cloned.astype(np.float32)


def forge(target: np.ndarray, landmarks: np.ndarray, recipe: Recipe,
          donor: np.ndarray | None = None, donor_landmarks: np.ndarray | None = None) -> Forged:
    """`target` uint8 [H, W, 3] RGB with its 68 landmarks [68, 2] (pixels) -> the forged image."""
    shape = shape_weight(target.shape[:2], landmarks, recipe)
    source = source_image(target, landmarks, recipe, donor, donor_landmarks)
    if recipe.mode == "colour":
        source = colour_match(source, target, shape)
    elif recipe.mode == "poisson":
        cloned = _poisson(source, target, shape)
        # Poisson cloning repaints its whole bounding box; feathering it back into the target keeps
        # every change inside the mask (the label stays exact)
        source = cloned if cloned is not None else colour_match(source, target, shape)
    weight = (shape * recipe.ratio).astype(np.float32)
    return Forged(blend(target, source, weight), weight, shape >= 0.5)
