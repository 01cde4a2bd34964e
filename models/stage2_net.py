"""Delocate's stage-2 network: mapping module -> localizer -> classifier, with the paper's Table 7
ablation switches (without mapping, without encoder-decoder).

- mapping on: the localizer sees [face, upsampled mapped face] (6 channels);
  off: it sees the face alone (3 channels) and there is no mapped face (no L_map).
- localizer on: mask logits from the SE-UNet-SCSE;
  off ("without encoder-decoder"): mask logits from a 1x1 convolution over the mapped face,
  upsampled (so there is still a mask to score), and the classifier uses mapping features only.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from delocate.models.localizer import Localizer
from delocate.models.mapping import MappingModule
from delocate.models.pretrained import input_norm


class Stage2Net(nn.Module):
    def __init__(self, encoder_name: str = "tu-seresnet18", map_size: int = 56,
                 use_mapping: bool = True, use_localizer: bool = True,
                 decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
                 cls_pool: str = "avg"):
        super().__init__()
        if not (use_mapping or use_localizer):
            raise ValueError("stage 2 needs the mapping module or the localizer (or both)")
        self.use_mapping, self.use_localizer = use_mapping, use_localizer
        # how inputs are scaled: what the encoder's pretrained weights expect (models/pretrained.py)
        self.input_norm = input_norm(encoder_name)
        self.mapping = MappingModule(map_size) if use_mapping else None
        self.localizer = Localizer(encoder_name, 6 if use_mapping else 3,
                                   decoder_channels, cls_pool) if use_localizer else None
        self.mask_from_map = None if use_localizer else nn.Conv2d(3, 1, kernel_size=1)
        feature_dim = (MappingModule.feature_dim if use_mapping else 0) + \
            (self.localizer.feature_dim if use_localizer else 0)
        self.classifier = nn.Linear(feature_dim, 1)

    def forward(self, face: torch.Tensor) -> dict[str, torch.Tensor]:
        """face [B, 3, S, S] (normalized) -> {"mask_logits" [B, 1, S, S], "cls_logit" [B],
        "mapped" [B, 3, m, m] when the mapping module is on}"""
        out, features = {}, []
        size = face.shape[-2:]
        if self.use_mapping:
            mapped, map_features = self.mapping(face)
            out["mapped"] = mapped
            features.append(map_features)
        if self.use_localizer:
            inputs = face
            if self.use_mapping:
                upsampled = F.interpolate(mapped, size=size, mode="bilinear", align_corners=False)
                inputs = torch.cat([face, upsampled], dim=1)
            mask_logits, loc_features = self.localizer(inputs)
            features.append(loc_features)
        else:
            mask_logits = F.interpolate(self.mask_from_map(mapped), size=size, mode="bilinear",
                                        align_corners=False)
        out["mask_logits"] = mask_logits
        out["cls_logit"] = self.classifier(torch.cat(features, dim=1)).squeeze(-1)
        return out
