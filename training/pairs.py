"""Online training pairs: a real face from the pool and a fake made from the very same frames, both
taking the path a test video takes.

Per pair (a fixed function of its key, so runs are reproducible by seed in any DataLoader worker):
1. a person (photo-only people with probability `image_share`), a source, one frame or `num_frames`
   consecutive ones;
2. a source resolution: the frames are scaled so the face crop is `source_scale` x crop_size wide,
   never finer than the footage itself (blend_at=crop instead forges on the final crop, as the fixed
   synthetic cache did); in a share `relight_share` of pairs the footage is relit around the face
   (training/relighting.py), and in a share `degrade_share` it is sharpened, blurred, resampled or
   noised, so the real face and its fake both carry it;
3. the fake: a method, a recipe and (swap) a donor person, forged frame by frame at that resolution
   (preprocessing/forgery.py); recipes that change less than `min_change` or leave no mask are
   drawn again (the method stays);
4. in a share `post_process_share` of pairs, one such processing of both after the forgery (the
   same on both, noise included), as a video is sharpened, blurred, rescaled or grainy after it
   was made: the forged face's own texture is then no evidence, only what processing leaves;
5. the same lossy round trip for both (JPEG or H.264 at one quality);
6. preprocessing's crop (margin 1.3, jittered like a real detector's landmarks) resized to
   crop_size, and the same flip and colour jitter for both.

Everything the real face goes through is drawn from the pair's "real" stream and everything about
the forgery from its "fake" stream, so the real item of a pair never needs its fake to be made.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from delocate.common.config import OnlineConfig
from delocate.preprocessing.codecs import roundtrip
from delocate.preprocessing.face_pool import FacePool
from delocate.preprocessing.faces import crop_square, to_crop_coords, warp_crop
from delocate.preprocessing.forgery import draw_recipe, face_size, forge, texture_frames
from delocate.preprocessing.synthesis import METHODS, PART_OF_METHOD
from delocate.training.relighting import Relighting, draw_relighting, relight

MIN_FACE_PX = 64  # the smallest face crop side a source resolution may go down to
MIN_MASK_SHARE = 0.004  # a fake's mask covers at least this share of the crop (else redrawn)


def _in_share(rng: np.random.Generator, share: float) -> bool:
    """Whether this pair is among a `share` of pairs; no draw at 0, so the pairs of runs without
    the option are exactly those made before it existed."""
    return bool(share) and rng.random() < share


@dataclass
class Pair:
    real: np.ndarray  # uint8 [T, C, C, 3] at crop_size
    fake: np.ndarray | None  # the same frames forged (None when only the real one was asked for)
    mask: np.ndarray  # uint8 [T, C, C] 0/255: the forged region of `fake` (all 0 for the real)
    method: str  # the fake's method ("" when no fake was made)
    person: str
    # uint8 [T, C, C] 0/255: where any source went in (weight > 0)
    touched: np.ndarray | None = None


@dataclass
class _View:
    """Where one pair is worked on: frames at the working resolution and the final crop boxes."""
    frames: np.ndarray
    landmarks: np.ndarray
    # [T, 4] preprocessing's crop in working pixels; None = already cropped
    boxes: np.ndarray | None
    quality: int
    flip: bool
    colour: tuple[float, float, float]  # contrast, brightness, saturation
    # the footage's own degradation (PairMaker._degradation), also on donors from the same footage
    degrade: Callable[[np.ndarray], np.ndarray] | None = None
    relit: Relighting | None = None  # the footage's light, also on donors from the same footage

    def footage(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Frames of this footage as it was shot: relit, then degraded (when drawn)."""
        if self.relit is not None:
            frames = relight(frames, landmarks, self.relit)
        return frames if self.degrade is None else self.degrade(frames)


class PairMaker:
    def __init__(self, pool: FacePool, cfg: OnlineConfig, methods: list[str] | None = None):
        self.pool, self.cfg = pool, cfg
        self.methods = list(methods or cfg.methods)
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(f"online.methods {sorted(unknown) or '[]'}: choose from {METHODS}")
        kinds = pool.kinds()
        self.video_people, self.image_people = kinds["video"], kinds["image"]
        if "swap" in self.methods and len(pool.people) < 2:
            raise ValueError("swap needs at least two people in the pool")

    # --- what to take ----------------------------------------------------------------------------
    def _person(self, rng: np.random.Generator, num_frames: int) -> str:
        use_images = self.image_people and (not self.video_people or num_frames == 1
                                            and rng.random() < self.cfg.image_share)
        people = self.image_people if use_images else self.video_people
        return people[int(rng.integers(len(people)))]

    def _frames(self, rng: np.random.Generator, person: str, num_frames: int
                ) -> tuple[int, np.ndarray]:
        sources = self.pool.sources_of[person]
        source = sources[int(rng.integers(len(sources)))]
        available = len(self.pool.native_side[source])
        start = int(rng.integers(max(1, available - num_frames + 1)))
        return source, np.minimum(start + np.arange(num_frames), available - 1)

    def _view(self, rng: np.random.Generator, source: int, picks: np.ndarray) -> _View:
        cfg, pool = self.cfg, self.pool
        frames = np.asarray(pool.crops[source][picks])
        points = pool.landmarks[source][picks].copy()
        margin = cfg.margin * (1 + rng.uniform(-cfg.margin_jitter, cfg.margin_jitter))
        shift = rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2)
        boxes = np.stack([crop_square(p, margin) for p in points])
        boxes += np.tile(shift, 2) * (boxes[:, 2:3] - boxes[:, 0:1])
        quality = int(rng.integers(cfg.quality[0], cfg.quality[1] + 1))
        flip = bool(rng.random() < 0.5)
        colour = (float(rng.uniform(0.85, 1.15)), float(rng.uniform(-12, 12)),
                  float(rng.uniform(0.8, 1.2)))
        if cfg.blend_at == "crop":  # the old order: crop and resize first, forge on the crop
            crops = np.stack([warp_crop(f, b, cfg.crop_size) for f, b in zip(frames, boxes)])
            points = np.stack([to_crop_coords(p, b, cfg.crop_size) for p, b in zip(points, boxes)])
            return _View(crops, points, None, quality, flip, colour)
        face_px = float(np.mean(boxes[:, 2] - boxes[:, 0]))  # the crop's side in pool pixels
        low, high = np.log(cfg.source_scale[0]), np.log(cfg.source_scale[1])
        wanted = cfg.crop_size * float(np.exp(rng.uniform(low, high)))
        # pool px -> source
        native = float(np.mean(pool.native_side[source][picks])) / pool.crop_size
        factor = max(min(wanted / face_px, native), MIN_FACE_PX / face_px)
        if abs(factor - 1) > 1e-3:
            side = max(8, int(round(frames.shape[1] * factor)))
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            frames = np.stack([cv2.resize(f, (side, side), interpolation=interp) for f in frames])
            factor = side / pool.crop_size
            points, boxes = points * factor, boxes * factor
        return _View(frames, points, boxes, quality, flip, colour)

    @staticmethod
    def _degradation(rng: np.random.Generator, size: float, same_noise: bool = False
                     ) -> Callable[[np.ndarray], np.ndarray]:
        """The footage's own quality, before anything is forged in it: in-camera sharpening, a
        soft lens or focus, upscaled video or sensor noise, one of them, the same on every frame
        of the footage. The shipped model called sharpened real faces fake (forged sources are
        sharpened too): carried by the real face and its fake alike, a global look tells them
        nothing. `size`: the face's width in working pixels. same_noise: every call adds the same
        noise (processing after the forgery: the real face and its fake get one grain, so they
        still differ only where the forgery is); otherwise each call draws its own."""
        kind = int(rng.integers(4))
        if kind == 3:  # sensor noise, drawn afresh for every frame as a camera's is
            sigma = float(rng.uniform(1.5, 5.0))
            seed = int(rng.integers(1 << 31))
            stream = np.random.default_rng(seed)  # one stream: each call its own grain

            def noised(frames: np.ndarray) -> np.ndarray:
                draw = np.random.default_rng(seed) if same_noise else stream
                grain = draw.normal(0.0, sigma, frames.shape).astype(np.float32)
                return np.clip(frames.astype(np.float32) + grain + 0.5, 0, 255).astype(np.uint8)
            return noised
        resample = float(rng.uniform(0.4, 0.85)) if kind == 2 else 1.0
        sharpness = (-float(rng.uniform(0.3, 1.2)) if kind == 0 else
                     float(rng.uniform(0.3, 1.0)) if kind == 1 else 0.0)
        return lambda frames: texture_frames(frames, resample, sharpness, size)

    # --- the forgery -----------------------------------------------------------------------------
    def _donor(self, rng: np.random.Generator, person: str, method: str, source: int,
               picks: np.ndarray, view: _View) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Donor frames and landmarks at the working resolution: another person (swap), another
        moment of the same footage (part methods on video; degraded as the footage is), or none
        (self-blend)."""
        shape = view.frames.shape[1:3]
        if method == "swap":
            others = [p for p in self.pool.people if p != person]
            donor_source, donor_picks = self._frames(rng, others[int(rng.integers(len(others)))],
                                                     len(picks))
        elif method in PART_OF_METHOD and len(self.pool.native_side[source]) > 1:
            available = len(self.pool.native_side[source])
            offset = int(rng.integers(1, available))
            donor_source, donor_picks = source, (picks + offset) % available
        else:
            return None, None
        frames = np.asarray(self.pool.crops[donor_source][donor_picks])
        points = self.pool.landmarks[donor_source][donor_picks].copy()
        if frames.shape[1] != shape[0]:
            factor = shape[0] / frames.shape[1]
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            frames = np.stack([cv2.resize(f, shape[1::-1], interpolation=interp) for f in frames])
            points = points * factor
        if donor_source == source:
            frames = view.footage(frames, points)
        return frames, points

    def _forge(self, rng: np.random.Generator, view: _View, person: str, source: int,
               picks: np.ndarray, methods: list[str]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(fake frames, masks bool, touched bool, method); redraws the recipe (not the method)
        while it changes less than `online.min_change` inside the mask."""
        method = methods[int(rng.integers(len(methods)))]  # kept: redraws must not shift the mix
        for _ in range(6):
            recipe = draw_recipe(rng, method)
            donor, donor_points = self._donor(rng, person, method, source, picks, view)
            forged = [forge(frame, points, recipe,
                            None if donor is None else donor[t],
                            None if donor_points is None else donor_points[t])
                      for t, (frame, points) in enumerate(zip(view.frames, view.landmarks))]
            masks = np.stack([f.mask for f in forged])
            touched = np.stack([f.weight > 0 for f in forged])
            fakes = np.stack([f.image for f in forged])
            change = np.abs(fakes.astype(np.int16) - view.frames).max(axis=3)
            if masks.all(axis=(1, 2)).any():
                continue  # the whole picture: no shape to find
            least = MIN_MASK_SHARE * masks.shape[1] * masks.shape[2]
            if all(m.sum() >= least and change[t][m].mean() >= self.cfg.min_change
                   for t, m in enumerate(masks)):
                break
        # (after six draws that change too little, rare at the default, the last is kept rather
        # than stall)
        return fakes, masks, touched, method

    # --- the shared path -------------------------------------------------------------------------
    def _crop_masks(self, view: _View, masks: np.ndarray | None) -> np.ndarray:
        """bool masks at the working resolution -> uint8 0/255 masks of the final crop."""
        masks_u8 = np.zeros(view.frames.shape[:3], np.uint8) if masks is None else \
            masks.astype(np.uint8) * 255
        if view.boxes is not None:
            masks_u8 = np.stack([warp_crop(m, b, self.cfg.crop_size, nearest=True)
                                 for m, b in zip(masks_u8, view.boxes)])
        return np.ascontiguousarray(masks_u8[:, :, ::-1] if view.flip else masks_u8)

    def _finish(self, view: _View, frames: np.ndarray, masks: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
        """codec, preprocessing's crop, flip and colour jitter: identical for real and fake."""
        cfg = self.cfg
        frames = roundtrip(np.ascontiguousarray(frames), cfg.codec, view.quality)
        if view.boxes is not None:
            frames = np.stack([warp_crop(f, b, cfg.crop_size) for f, b in zip(frames, view.boxes)])
        if view.flip:
            frames = frames[:, :, ::-1]
        contrast, brightness, saturation = view.colour
        x = frames.astype(np.float32)
        grey = x.mean(axis=3, keepdims=True)
        x = grey + (x - grey) * saturation
        x = (x - 128.0) * contrast + 128.0 + brightness  # a fixed pivot: the same map for both
        return np.clip(x + 0.5, 0, 255).astype(np.uint8), self._crop_masks(view, masks)

    def _drawn_degradation(self, rng: np.random.Generator, view: _View, share: float,
                           same_noise: bool = False) -> Callable[[np.ndarray], np.ndarray] | None:
        """One of the degradations in a `share` of pairs, else None; drawn from the real stream,
        so the real face never needs its fake."""
        if not _in_share(rng, share):
            return None
        size = float(np.mean([face_size(p) for p in view.landmarks]))
        return self._degradation(rng, size, same_noise)

    def make(self, key: tuple[int, ...], fake: bool = True, num_frames: int = 1,
             methods: list[str] | None = None) -> Pair:
        """The pair named by `key` (e.g. (seed, pair index)); fake=False skips making the fake;
        `methods` narrows the methods the fake is drawn from (meta-learning sides)."""
        rng = np.random.default_rng([*key, 0])
        person = self._person(rng, num_frames)
        source, picks = self._frames(rng, person, num_frames)
        view = self._view(rng, source, picks)
        view.degrade = self._drawn_degradation(rng, view, self.cfg.degrade_share)
        view.relit = draw_relighting(rng) if _in_share(rng, self.cfg.relight_share) else None
        # the footage's own light and quality, before anything is forged in it
        view.frames = view.footage(view.frames, view.landmarks)
        # after the forgery, the same on the real frames and the forged ones, noise included
        after = self._drawn_degradation(rng, view, self.cfg.post_process_share, same_noise=True) \
            or (lambda frames: frames)
        real, zeros = self._finish(view, after(view.frames), None)
        if not fake:
            return Pair(real, None, zeros, "", person)
        fakes, masks, touched, method = self._forge(np.random.default_rng([*key, 1]), view, person,
                                                    source, picks, methods or self.methods)
        fake_frames, fake_masks = self._finish(view, after(fakes), masks)
        return Pair(real, fake_frames, fake_masks, method, person, self._crop_masks(view, touched))
