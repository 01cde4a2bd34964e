"""DeepFake-Adapter style parameter-efficient tuning (Shao et al.) of the stage-1 ViT encoder.

The pretrained space-time encoder is frozen. Trainable parts:
- Globally-aware Bottleneck Adapters (GBA): a down-projection, GELU and up-projection in parallel to
  the MLP of every ViT block (added to the block's MLP output, zero-initialized, so training starts
  from the pretrained encoder's exact function);
- Locally-aware Spatial Adapters (LSA): a small convolutional stem over the frames gives local
  features on the encoder's token grid (tubelet x patch), and after every block the ViT tokens
  cross-attend to them (queries: tokens; keys and values: local features), added back through a
  zero-initialized gate.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from delocate.models.st_mae import SpaceTimeEncoder


class BottleneckAdapter(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down, self.act, self.up = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class LocalSpatialAdapter(nn.Module):
    """Frames [B, 3, T, H, W] -> local features [B, N, D] on the encoder's token grid."""

    def __init__(self, dim: int, patch_size: int, tubelet_size: int, width: int = 64):
        super().__init__()
        layers, channels, stride = [], 3, 1
        while stride < patch_size:  # stride-2 convolutions down to the patch grid
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels, stride = width, stride * 2
        self.stem = nn.Sequential(*layers)
        self.tubelet_size = tubelet_size
        self.proj = nn.Linear(width, dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch = video.shape[0]
        frames = rearrange(video, "b c t h w -> (b t) c h w")
        features = rearrange(self.stem(frames), "(b t) c h w -> b c t h w", b=batch)
        pooled = nn.functional.avg_pool3d(features, (self.tubelet_size, 1, 1))  # frames -> tubelets
        return self.proj(rearrange(pooled, "b c t h w -> b (t h w) c"))


class CrossAttentionInjector(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(local)
        attended, _ = self.attn(self.norm_q(tokens), kv, kv, need_weights=False)
        return tokens + self.gate * attended


class DeepFakeAdapterEncoder(nn.Module):
    """Wraps a SpaceTimeEncoder (frozen) with GBA + LSA; same interface as the encoder."""

    def __init__(self, encoder: SpaceTimeEncoder, reduction: int = 4, lsa_width: int = 64):
        super().__init__()
        self.backbone = encoder
        for param in encoder.parameters():
            param.requires_grad = False
        dim, depth = encoder.embed_dim, len(encoder.blocks)
        heads = encoder.blocks[0].attn.num_heads
        self.embed_dim, self.grid = dim, encoder.grid
        self.gba = nn.ModuleList([BottleneckAdapter(dim, max(8, dim // reduction))
                                  for _ in range(depth)])
        patch = encoder.patch_embed.patch_size
        self.lsa = LocalSpatialAdapter(dim, patch, encoder.patch_embed.tubelet_size, lsa_width)
        self.injectors = nn.ModuleList([CrossAttentionInjector(dim, heads) for _ in range(depth)])

    def forward(self, video: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        if token_mask is not None:
            raise ValueError("adapter tuning is for the classifier: it sees every token")
        enc = self.backbone
        x = enc.patch_embed(video) + enc.pos_embed
        local = self.lsa(video)
        for block, gba, injector in zip(enc.blocks, self.gba, self.injectors):
            x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
            hidden = block.norm2(x)
            x = x + block.drop_path2(block.ls2(block.mlp(hidden))) + gba(hidden)
            x = injector(x, local)
        return enc.norm(x)
