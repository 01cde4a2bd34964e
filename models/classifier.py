"""Stage-1 clip classifier: the MAE's encoder (decoder dropped) + mean-pooled linear head.

Parameter names match SpaceTimeMAE's (`encoder.*`), so a pretrained MAE state dict loads with
exactly the head's keys missing and the decoder's keys unexpected.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from delocate.models.st_mae import SpaceTimeEncoder


class ClipClassifier(nn.Module):
    def __init__(self, encoder: SpaceTimeEncoder, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.fc_norm = nn.LayerNorm(encoder.embed_dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.embed_dim, 1)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> pooled features [B, D]"""
        return self.fc_norm(self.encoder(video).mean(dim=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """-> real/fake logits [B] (sigmoid = clip score s1, 1 = fake)"""
        return self.head(self.dropout(self.features(video))).squeeze(-1)

    @staticmethod
    def head_keys() -> set[str]:
        return {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
