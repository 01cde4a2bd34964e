"""Space-time ViT masked autoencoder (after He et al. MAE and Tong et al. VideoMAE).

Tubelet patch embedding (2 frames x 16 x 16 pixels by default), a fixed 3-D sin-cos position
embedding, joint space-time attention (timm `Block`s over all tokens), an encoder that sees only the
visible tokens, and a lighter decoder that predicts the pixels of the masked tubelets.

Token order everywhere: (t, h, w) flattened, t slowest; a boolean token mask has True = masked.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from timm.models.vision_transformer import Block


# --- position embedding ---------------------------------------------------------------------------

def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[len(positions), dim] sin-cos embedding of 1-D positions (dim even)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_3d(dim: int, grid_t: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """[grid_t * grid_h * grid_w, dim] fixed embedding: separate sin-cos codes of t, h and w,
    concatenated (h and w get 2 * (dim // 6) channels each, t the rest)."""
    dim_hw = 2 * (dim // 6)
    dim_t = dim - 2 * dim_hw
    if dim_t % 2 or dim_hw == 0:
        raise ValueError(f"embedding dim {dim} must be even and at least 6")
    t, h, w = np.meshgrid(np.arange(grid_t), np.arange(grid_h), np.arange(grid_w), indexing="ij")
    embed = np.concatenate([sincos_1d(dim_t, t.ravel()), sincos_1d(dim_hw, h.ravel()),
                            sincos_1d(dim_hw, w.ravel())], axis=1)
    return torch.from_numpy(embed).float()


# --- encoder --------------------------------------------------------------------------------------

class TubeletEmbed(nn.Module):
    """Video [B, C, T, H, W] -> tokens [B, N, D], one per tubelet x patch x patch cube."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 192, patch_size: int = 16,
                 tubelet_size: int = 2):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        tubelet = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=tubelet, stride=tubelet)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        # the same map as self.proj(video): with stride = kernel a Conv3d is one linear map per
        # cube, and as a matmul its backward costs half of the Conv3d's on a CPU
        cubes = rearrange(video, "b c (t u) (h p) (w q) -> b (t h w) (c u p q)",
                          u=self.tubelet_size, p=self.patch_size, q=self.patch_size)
        return F.linear(cubes, self.proj.weight.flatten(1), self.proj.bias)


class SpaceTimeEncoder(nn.Module):
    """The ViT encoder of the MAE; also the backbone of the stage-1 classifier."""

    def __init__(self, num_frames: int = 8, img_size: int = 112, patch_size: int = 16,
                 tubelet_size: int = 2, in_chans: int = 3, embed_dim: int = 192, depth: int = 4,
                 num_heads: int = 3, mlp_ratio: float = 4.0):
        super().__init__()
        if num_frames % tubelet_size or img_size % patch_size:
            raise ValueError("num_frames must divide by tubelet_size and img_size by patch_size")
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.embed_dim = embed_dim
        self.patch_embed = TubeletEmbed(in_chans, embed_dim, patch_size, tubelet_size)
        # fixed, so not saved: a checkpoint stays loadable into another grid size's embedding
        self.register_buffer("pos_embed", sincos_3d(embed_dim, *self.grid), persistent=False)
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True,
                                           norm_layer=norm) for _ in range(depth)])
        self.norm = norm(embed_dim)

    @property
    def num_tokens(self) -> int:
        return int(np.prod(self.grid))

    def forward(self, video: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """video [B, C, T, H, W], token_mask bool [B, N] (True = drop; the same count per row)
        -> visible tokens [B, N_visible, D]."""
        x = self.patch_embed(video) + self.pos_embed
        if token_mask is not None:
            batch, _, dim = x.shape
            x = x[~token_mask].reshape(batch, -1, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# --- the masked autoencoder -----------------------------------------------------------------------

class SpaceTimeMAE(nn.Module):
    def __init__(self, encoder: SpaceTimeEncoder, decoder_dim: int = 96, decoder_depth: int = 2,
                 decoder_heads: int = 3, mlp_ratio: float = 4.0, norm_pix_loss: bool = False,
                 in_chans: int = 3):
        super().__init__()
        self.encoder = encoder
        self.norm_pix_loss = norm_pix_loss
        patch, tubelet = encoder.patch_embed.patch_size, encoder.patch_embed.tubelet_size
        self.patch_dim = tubelet * patch * patch * in_chans

        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_3d(decoder_dim, *encoder.grid),
                             persistent=False)
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.ModuleList([Block(decoder_dim, decoder_heads, mlp_ratio,
                                                   qkv_bias=True, norm_layer=norm)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.mask_token, std=0.02)
        w = self.encoder.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as MAE: like a Linear layer
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # tensor helpers
    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> [B, N, tubelet * p * p * C]"""
        p, u = self.encoder.patch_embed.patch_size, self.encoder.patch_embed.tubelet_size
        return rearrange(video, "b c (t u) (h p) (w q) -> b (t h w) (u p q c)", u=u, p=p, q=p)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, N, tubelet * p * p * C] -> [B, C, T, H, W]"""
        p, u = self.encoder.patch_embed.patch_size, self.encoder.patch_embed.tubelet_size
        t, h, w = self.encoder.grid
        return rearrange(patches, "b (t h w) (u p q c) -> b c (t u) (h p) (w q)",
                         t=t, h=h, w=w, u=u, p=p, q=p)

    def forward_encoder(self, video: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(video, token_mask)

    def forward_decoder(self, visible: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """visible tokens [B, N_vis, D] -> predicted patches for all tokens [B, N, patch_dim]."""
        x = self.decoder_embed(visible)
        batch, num = token_mask.shape
        full = self.mask_token.expand(batch, num, -1).clone().to(x.dtype)
        full[~token_mask] = x.reshape(-1, x.shape[-1])  # visible tokens back in their places
        x = full + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def target(self, video: torch.Tensor) -> torch.Tensor:
        target = self.patchify(video)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward_loss(self, video: torch.Tensor, pred: torch.Tensor, token_mask: torch.Tensor
                     ) -> torch.Tensor:
        """Mean squared error on the masked patches only."""
        per_patch = ((pred - self.target(video)) ** 2).mean(dim=-1)
        mask = token_mask.float()
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)

    def forward(self, video: torch.Tensor, token_mask: torch.Tensor):
        """-> (loss, predicted patches [B, N, patch_dim])"""
        pred = self.forward_decoder(self.forward_encoder(video, token_mask), token_mask)
        return self.forward_loss(video, pred, token_mask), pred

    @torch.no_grad()
    def recover(self, video: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """The recovered clip [B, C, T, H, W]: input where visible, prediction where masked.
        (Only meaningful without norm_pix_loss, whose predictions are per-patch normalized.)"""
        _, pred = self.forward(video, token_mask)
        patches = self.patchify(video).clone()
        patches[token_mask] = pred[token_mask].to(patches.dtype)
        return self.unpatchify(patches)


# --- sizes ----------------------------------------------------------------------------------------

SIZES = {
    # name: encoder (dim, depth, heads), decoder (dim, depth, heads)
    "tiny": ((192, 4, 3), (96, 2, 3)),  # CPU: 0.17 s per step of 8 clips x 8 frames at 112 px
    "small": ((384, 12, 6), (192, 4, 3)),
    "base": ((768, 12, 12), (384, 4, 6)),  # the paper's ViT-B (VideoMAE's decoder)
}


def build_encoder(size: str = "tiny", num_frames: int = 8, img_size: int = 112,
                  patch_size: int = 16, tubelet_size: int = 2) -> SpaceTimeEncoder:
    (dim, depth, heads), _ = SIZES[size]
    return SpaceTimeEncoder(num_frames, img_size, patch_size, tubelet_size, embed_dim=dim,
                            depth=depth, num_heads=heads)


def build_st_mae(size: str = "tiny", num_frames: int = 8, img_size: int = 112, patch_size: int = 16,
                 tubelet_size: int = 2, norm_pix_loss: bool = False) -> SpaceTimeMAE:
    if size not in SIZES:
        raise ValueError(f"unknown MAE size {size!r}; choose from {list(SIZES)}")
    _, (dec_dim, dec_depth, dec_heads) = SIZES[size]
    encoder = build_encoder(size, num_frames, img_size, patch_size, tubelet_size)
    return SpaceTimeMAE(encoder, dec_dim, dec_depth, dec_heads, norm_pix_loss=norm_pix_loss)


st_mae_tiny = partial(build_st_mae, "tiny")
st_mae_small = partial(build_st_mae, "small")
st_mae_base = partial(build_st_mae, "base")
