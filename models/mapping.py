"""The ResNet-18 mapping module of Delocate's stage 2.

ResNet-18's stem and its first three residual stages (torchvision; random init unless a checkpoint
is loaded), their outputs resized to one grid and concatenated, then three convolutions to a
3-channel mapped face (56x56 for a 224 input), regressed onto stage 1's recovered face. A pooled
vector of the concatenated features feeds the real/fake classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class MappingModule(nn.Module):
    feature_dim = 64 + 64 + 128 + 256  # stem + layer1 + layer2 + layer3 channels

    def __init__(self, map_size: int = 56):
        super().__init__()
        backbone = resnet18(weights=None)  # never downloads: weights come from a checkpoint if any
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool)
        self.layer1, self.layer2, self.layer3 = backbone.layer1, backbone.layer2, backbone.layer3
        self.map_size = map_size
        self.to_face = nn.Sequential(conv_bn_relu(self.feature_dim, 128),
                                     conv_bn_relu(128, 64),
                                     nn.Conv2d(64, 3, kernel_size=3, padding=1))

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """face [B, 3, S, S] -> (mapped face [B, 3, map_size, map_size],
        pooled features [B, 512])"""
        stem = self.stem(face)
        f1 = self.layer1(stem)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        size = (self.map_size, self.map_size)
        stacked = torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                             for f in (stem, f1, f2, f3)], dim=1)
        return self.to_face(stacked), stacked.mean(dim=(2, 3))
