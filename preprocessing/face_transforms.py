"""Image transforms of forgery synthesis: colour, sharpness and geometry of a source face, blend
masks from landmark hulls (deformed, feathered), landmark-driven warps (similarity, piecewise
affine) and colour matching. Shared by the clip synthesis (synthesis.py) and the frame recipes
(forgery.py).
"""
from __future__ import annotations

import cv2
import numpy as np


def colour_transform(image: np.ndarray, p: dict[str, float]) -> np.ndarray:
    gains = np.array([p["gain_r"], p["gain_g"], p["gain_b"]], np.float32)
    return np.clip(image.astype(np.float32) * gains + p["bias"], 0, 255)


def sharpness_transform(image: np.ndarray, amount: float) -> np.ndarray:
    if abs(amount) < 0.05:
        return image
    sigma = max(0.3, abs(amount))
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    if amount > 0:
        return blurred
    return np.clip(image + (image - blurred) * abs(amount) * 1.5, 0, 255)


def geometric_transform(image: np.ndarray, p: dict[str, float], centre: np.ndarray) -> np.ndarray:
    size = image.shape[0]
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, p["scale"])
    matrix[:, 2] += (p["shift_x"] * size, p["shift_y"] * size)
    return cv2.warpAffine(image, matrix, (image.shape[1], size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def deformed_mask(groups: list[np.ndarray], size: int, p: dict[str, float],
                  radial_noise: np.ndarray, face_size: float) -> np.ndarray:
    """Union of hulls of landmark `groups`, each grown/shrunk radially (with a fixed per-clip wobble
    `radial_noise` so the outline is not a clean hull), then feathered.
    float32 [S, S] in [0, alpha]."""
    mask = np.zeros((size, size), np.float32)
    for group in groups:
        centre = group.mean(axis=0)
        offsets = group - centre
        radius = np.linalg.norm(offsets, axis=1, keepdims=True) + 1e-6
        growth = p["grow"] * face_size + radial_noise[: len(group), None] * face_size
        grown = centre + offsets * (1 + growth / radius)
        mask = np.maximum(mask, hull_mask(grown, size))
    feather = p["feather"] * size / 224.0
    kernel = int(feather) * 2 + 1
    mask = cv2.GaussianBlur(mask, (kernel, kernel), feather / 2)
    return mask * p["alpha"]


def box_window(box: np.ndarray, shape: tuple[int, int], feather: float) -> np.ndarray:
    """float32 [H, W]: 1 deep inside `box`, falling smoothly to 0 at its edges: confines a mask to a
    ROI."""
    window = np.zeros(shape, np.float32)
    inset = int(np.ceil(feather))
    x0, y0, x1, y1 = [int(v) for v in box]
    if x1 - x0 > 2 * inset + 2 and y1 - y0 > 2 * inset + 2:
        window[y0 + inset:y1 - inset, x0 + inset:x1 - inset] = 1.0
        kernel = inset * 2 + 1
        window = cv2.GaussianBlur(window, (kernel, kernel), max(0.5, inset / 2))
    outside = np.ones(shape, bool)
    outside[y0:y1, x0:x1] = False
    window[outside] = 0.0
    return window


def blend(target: np.ndarray, source: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """target where weight == 0, exactly; source where weight == 1."""
    w = weight[..., None]
    mixed = np.round(source.astype(np.float32) * w + target.astype(np.float32) * (1 - w))
    out = np.clip(mixed, 0, 255).astype(np.uint8)
    out[weight <= 0] = target[weight <= 0]
    return out


def similarity_align(src_points: np.ndarray, dst_points: np.ndarray, image: np.ndarray
                     ) -> np.ndarray:
    """Warp `image` so that src_points land on dst_points (least-squares similarity transform)."""
    matrix, _ = cv2.estimateAffinePartial2D(src_points.astype(np.float32),
                                            dst_points.astype(np.float32))
    if matrix is None:
        return image
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def piecewise_affine(src_image: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray,
                     triangles: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Warp `src_image` triangle by triangle so src_points -> dst_points; pixels outside every
    triangle keep `base` (the target), so the blend never pulls in empty black borders.

    scikit-image's PiecewiseAffineTransform does the same but is far slower per frame at 224 px.
    """
    out = base.astype(np.float32).copy()
    size_y, size_x = out.shape[:2]
    for tri in triangles:
        src_tri, dst_tri = src_points[tri].astype(np.float32), dst_points[tri].astype(np.float32)
        x, y, w, h = cv2.boundingRect(np.round(dst_tri).astype(np.int32))
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w + 1, size_x), min(y + h + 1, size_y)
        if x1 <= x0 or y1 <= y0 or _area2(src_tri) < 1.0 or _area2(dst_tri) < 1.0:
            continue  # off the crop, or degenerate (its affine map would explode)
        matrix = cv2.getAffineTransform(src_tri, dst_tri - np.float32([x0, y0]))
        # REPLICATE, not REFLECT: OpenCV reflects far-away coordinates in a loop (seconds per call)
        patch = cv2.warpAffine(src_image, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        tri_mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(tri_mask, np.round(dst_tri - [x0, y0]).astype(np.int32), 1)
        region = out[y0:y1, x0:x1]
        region[tri_mask > 0] = patch[tri_mask > 0]
    return out


def _area2(tri: np.ndarray) -> float:
    """Twice the area of a triangle [3, 2]."""
    (ax, ay), (bx, by), (cx, cy) = tri
    return abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay))


def colour_match(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in LAB: source's statistics inside `region` -> target's."""
    src_lab = cv2.cvtColor(np.clip(source, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB)
    src_lab = src_lab.astype(np.float32)
    dst_lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = region > 0.5
    if inside.sum() < 16:
        return source
    for c in range(3):
        s_mean, s_std = src_lab[..., c][inside].mean(), src_lab[..., c][inside].std() + 1e-3
        d_mean, d_std = dst_lab[..., c][inside].mean(), dst_lab[..., c][inside].std() + 1e-3
        src_lab[..., c] = (src_lab[..., c] - s_mean) * (d_std / s_std) + d_mean
    matched = cv2.cvtColor(np.clip(src_lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    return matched.astype(np.float32)
