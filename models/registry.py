"""Model builders by name and the ModelSpec that names one, so a checkpoint's JSON sidecar
({"builder": ..., "kwargs": ...}) can rebuild its model without pickled code."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from delocate.models.adapters import DeepFakeAdapterEncoder
from delocate.models.classifier import ClipClassifier
from delocate.models.st_mae import build_encoder, build_st_mae
from delocate.models.stage2_net import Stage2Net


def build_clip_classifier(size: str = "tiny", num_frames: int = 8, img_size: int = 112,
                          patch_size: int = 16, tubelet_size: int = 2, dropout: float = 0.0,
                          tuning: str = "full") -> ClipClassifier:
    """tuning: full | linear (same network) | adapters (DeepFake-Adapter wrapped encoder)."""
    classifier = ClipClassifier(build_encoder(size, num_frames, img_size, patch_size, tubelet_size),
                                dropout)
    if tuning == "adapters":
        classifier.encoder = DeepFakeAdapterEncoder(classifier.encoder)
    elif tuning not in ("full", "linear"):
        raise ValueError(f"tuning must be full, linear or adapters, got {tuning!r}")
    return classifier


def build_dadf(**kwargs) -> nn.Module:
    from delocate.models.dadf import DADF  # segment-anything is only imported when DADF is used

    return DADF(**kwargs)


BUILDERS = {"st_mae": build_st_mae, "clip_classifier": build_clip_classifier,
            "stage2_net": Stage2Net, "dadf": build_dadf}


def register(name: str, builder) -> None:
    BUILDERS[name] = builder


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: a builder's name and its keyword arguments. A checkpoint's sidecar
    holds it as {"builder": ..., "kwargs": ...} (plus the stage's facts)."""
    builder: str
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, spec: "ModelSpec | dict") -> "ModelSpec":
        """A ModelSpec from itself or from a sidecar dict."""
        if isinstance(spec, ModelSpec):
            return spec
        return cls(spec.get("builder"), dict(spec.get("kwargs", {})))

    def with_kwargs(self, **changes) -> "ModelSpec":
        return ModelSpec(self.builder, {**self.kwargs, **changes})

    def to_dict(self) -> dict:
        return {"builder": self.builder, "kwargs": dict(self.kwargs)}


def build_model(spec: ModelSpec | dict) -> nn.Module:
    """Build the model a spec (or a checkpoint sidecar) names."""
    spec = ModelSpec.of(spec)
    if spec.builder not in BUILDERS:
        raise ValueError(f"unknown model builder {spec.builder!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[spec.builder](**spec.kwargs)
