"""The trained detector of a run dir: FaceClip in, scores and masks out.

s1: the stage-1 classifier over disjoint windows of the clip's frames; s2 and the forgery mask: the
stage-2 network on every frame; video scores aggregate windows / frames (evaluation/aggregate.py)
and the fused score is the run's fusion of them (evaluation/fusion.py: fitted on validation videos,
or the paper's mean). Inference is per clip and deterministic, so a video gets the same score alone
or in a batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from delocate.common.config import Config, load_config
from delocate.common.log import info
from delocate.evaluation.aggregate import aggregate
from delocate.evaluation.fusion import Fusion
from delocate.preprocessing.sample_cache import FaceClip
from delocate.training.checkpoints import load_model
from delocate.training.engine import default_device
from delocate.training.inputs import frame_positions, normalize, resize_frames


@dataclass
class ClipPrediction:
    s1_frames: np.ndarray | None  # [T] the score of the stage-1 window each frame belongs to
    s2_frames: np.ndarray | None  # [T]
    masks: np.ndarray | None  # float16 [T, S, S] forgery probability at crop size
    s1: float | None
    s2: float | None
    fused: float
    aggregator: str
    fused_frames: np.ndarray  # [T] the fusion of the branches' frame scores
    dadf_frames: np.ndarray | None = None  # [T] the DADF head's frame scores, when enabled
    dadf: float | None = None

    def frame_fused(self) -> np.ndarray:
        return self.fused_frames


class Detector:
    def __init__(self, run_dir: str | Path, config: Config | None = None,
                 aggregator: str | None = None):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run dir not found: {self.run_dir}")
        self.config = config or load_config(self.run_dir / "config.yaml")
        self.aggregator = aggregator or self.config.evaluate.aggregator
        self.device = default_device()
        self.classifier = self._load("finetune_best.safetensors")
        self.stage2 = self._load("localize_best.safetensors")
        self.dadf = self._load("dadf_best.safetensors")  # optional third branch
        if self.classifier is None and self.stage2 is None and self.dadf is None:
            raise FileNotFoundError(f"{self.run_dir} holds no trained model (finetune_best or "
                                    "localize_best): train with --stage finetune / localize first")
        if self.stage2 is not None and not self.config.localize.use_stage1:
            self.classifier = None  # ablation "without stage 1": the score is s2 alone
        self.fusion = Fusion.load(self.run_dir / "fusion.json") \
            if self.config.evaluate.fusion == "fitted" else Fusion()
        if not self.fusion.fits(self.branches):
            info(f"{self.run_dir / 'fusion.json'} was fitted for branches {self.fusion.branches}, "
                 f"this run has {self.branches}: the mean is used until --stage evaluate refits it")
            self.fusion = Fusion()
        self.run_id = self._run_id()

    @property
    def branches(self) -> list[str]:
        """The scores this run gives: s1, s2, dadf (those it has models for)."""
        return [name for name, model in (("s1", self.classifier), ("s2", self.stage2),
                                         ("dadf", self.dadf)) if model is not None]

    def _load(self, name: str):
        path = self.run_dir / name
        if not path.is_file():
            return None
        return load_model(path, self.device)[0]

    def _run_id(self) -> str:
        digest = hashlib.sha1()
        for name in ("finetune_best.safetensors", "localize_best.safetensors",
                     "dadf_best.safetensors", "fusion.json"):
            path = self.run_dir / name
            if path.is_file():
                digest.update(path.read_bytes())
        if self.stage2 is not None:  # the same weights read at another size score differently
            digest.update(f"stage-2 input {self.input_size}".encode())
        return digest.hexdigest()[:12]

    @property
    def threshold(self) -> tuple[float, str]:
        """The verdict threshold: chosen on validation data by --stage evaluate, else 0.5."""
        path = self.run_dir / "threshold.json"
        if path.is_file():
            import json

            data = json.loads(path.read_text())
            return float(data["threshold"]), data.get("chosen_on", "validation")
        return 0.5, "default 0.5 (run --stage evaluate to choose one on validation data)"

    @property
    def input_size(self) -> int:
        """The side stage 2 reads frames at: evaluate.input_size, else the size it trained at."""
        return self.config.stage2_input_size()

    @torch.no_grad()
    def _s1_windows(self, clip: FaceClip) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config.recover
        count = clip.num_frames
        windows = max(1, count // cfg.num_frames)
        span = count // windows
        videos, owners = [], np.zeros(count, int)
        for w in range(windows):
            picks = w * span + frame_positions(span, cfg.num_frames, None)
            frames = resize_frames(clip.frames[picks], cfg.img_size)
            videos.append(normalize(frames))
            owners[w * span:(w + 1) * span] = w
        owners[windows * span:] = windows - 1
        logits = self.classifier(torch.stack(videos).to(self.device))
        scores = torch.sigmoid(logits.float()).cpu().numpy()
        return scores, scores[owners]

    @torch.no_grad()
    def _frames(self, model, clip: FaceClip, size: int,
                batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """A per-frame model (stage 2 or DADF) reading frames at `size`: frame scores [T] and
        masks [T, S, S] at crop size."""
        norm = getattr(model, "input_norm", "imagenet")
        scores, masks = [], []
        for start in range(0, clip.num_frames, batch_size):
            frames = resize_frames(clip.frames[start:start + batch_size], size)
            faces = normalize(frames, norm).transpose(0, 1).to(self.device)  # [B, 3, S, S]
            out = model(faces)
            scores.append(torch.sigmoid(out["cls_logit"].float()).cpu().numpy())
            probs = torch.sigmoid(out["mask_logits"].float())[:, 0].cpu().numpy()
            masks.extend(cv2.resize(p, (clip.size, clip.size), interpolation=cv2.INTER_LINEAR)
                         for p in probs)
        return np.concatenate(scores), np.stack(masks).astype(np.float16)

    def predict_clip(self, clip: FaceClip) -> ClipPrediction:
        # frames where no face was found reuse a neighbour's crop: they do not vote
        voting = clip.face_found if clip.face_found.any() else np.ones(clip.num_frames, bool)
        s1 = s1_frames = s2 = s2_frames = masks = None
        if self.classifier is not None:
            windows, s1_frames = self._s1_windows(clip)
            s1 = aggregate(windows, self.aggregator)
        if self.stage2 is not None:
            s2_frames, masks = self._frames(self.stage2, clip, self.input_size)
            s2 = aggregate(s2_frames[voting], self.aggregator)
        dadf = dadf_frames = None
        if self.dadf is not None:
            dadf_frames, dadf_masks = self._frames(self.dadf, clip,
                                                   self.config.localize.img_size)
            dadf = aggregate(dadf_frames[voting], self.aggregator)
            # the DADF mask joins stage 2's (averaged); alone, it is the mask
            masks = dadf_masks if masks is None else \
                ((masks.astype(np.float32) + dadf_masks.astype(np.float32)) / 2).astype(np.float16)
        fused = self.fusion({"s1": s1, "s2": s2, "dadf": dadf})
        fused_frames = self.fusion({"s1": s1_frames, "s2": s2_frames, "dadf": dadf_frames})
        return ClipPrediction(s1_frames, s2_frames, masks, s1, s2, fused, self.aggregator,
                              np.asarray(fused_frames, float), dadf_frames, dadf)
