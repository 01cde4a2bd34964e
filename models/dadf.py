"""DADF head ("Detect Any Deepfakes", Lai et al. 2023): SAM fine-tuned for joint forgery
localization and detection, built on the `segment-anything` package's image encoder, prompt encoder
and mask decoder (architecture only: an official checkpoint is loaded when its path is given, else
random init).

- SAM's image encoder is frozen; after each of its transformer blocks a trainable Multiscale
  Adapter.
- A learnable linear task head after the encoder (a 1x1 convolution over the embedding channels).
- Reconstruction Guided Attention (RGA): the input plus Gaussian noise (mean 0, variance 1e-6) is
  encoded too; S = |F_noisy - F|; attention = softmax(enhancer(S)); F_final = attention * F + F.
  L_rec = L1(F_noisy, F) over REAL samples only.
- SAM's mask decoder with a null prompt, and a classification head (global average pooling + fully
  connected) on the predicted mask. Loss = L_seg + 0.1 L_rec + 0.1 L_cls
  (stage2_localize/losses.py).

Choices the paper leaves open (documented here, the reference for this implementation):
- adapter width: the block width // 12 (64 for vit_b), which puts the trainable share of SAM's
  parameters near the paper's 18.64% (printed by `trainable_share`);
- the final 1x1 convolution of the adapter has no BatchNorm/ReLU (it must output signed
  corrections); the residual 1x1 convolution starts as the identity and the adapter's expansion at
  zero, so at initialization the adapted encoder computes exactly SAM's features;
- the enhancer maps S to one channel; the softmax runs over spatial positions and is multiplied by
  their number (attention averages 1), otherwise attention * F would vanish next to F;
- the noisy branch runs at inference too (noise from a fixed seed in eval mode), so F_final is
  computed the same way in training and testing; L_rec only counts real training samples;
- the classification head pools the predicted mask logits (1 channel) and maps them with
  Linear(1, 1).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

SAM_VARIANTS = {
    # name: (embed_dim, depth, heads, global attention blocks)
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_tiny": (192, 4, 3, (1, 3)),  # CPU tests and the tiny config only; no official weights
}
ADAPTER_VARIANTS = {
    # Figure 3 of the paper: A full, B without dilation, C without the 3x3 branch, D without 1x1
    "A": {"dilations": (1, 3, 5), "branches": ("1x1", "3x3", "5x5")},
    "B": {"dilations": (1, 1, 1), "branches": ("1x1", "3x3", "5x5")},
    "C": {"dilations": (1, 3, 5), "branches": ("1x1", "5x5")},
    "D": {"dilations": (1, 3, 5), "branches": ("3x3", "5x5")},
}


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class MultiscaleAdapter(nn.Module):
    """Tokens [B, H, W, C] after a frozen block -> adapted tokens [B, H, W, C]."""

    def __init__(self, dim: int, hidden: int, variant: str = "A"):
        super().__init__()
        spec = ADAPTER_VARIANTS[variant]
        kernels = {"1x1": 1, "3x3": 3, "5x5": 5}
        dilation_of = dict(zip(("1x1", "3x3", "5x5"), spec["dilations"]))
        self.reduce = conv_bn_relu(dim, hidden, 1)
        self.branches = nn.ModuleList([
            nn.Sequential(conv_bn_relu(hidden, hidden, kernels[name]),
                          conv_bn_relu(hidden, hidden, 3, dilation_of[name]))
            for name in spec["branches"]])
        self.expand = nn.Conv2d(hidden * len(self.branches), dim, 1)
        self.residual = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)
        with torch.no_grad():
            self.residual.weight.copy_(torch.eye(dim)[:, :, None, None])
            self.residual.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens.permute(0, 3, 1, 2)
        reduced = self.reduce(x)
        out = self.expand(torch.cat([branch(reduced) for branch in self.branches], dim=1))
        return (out + self.residual(x)).permute(0, 2, 3, 1)


class AdaptedBlock(nn.Module):
    """A frozen SAM block followed by its trainable adapter."""

    def __init__(self, block: nn.Module, adapter: MultiscaleAdapter):
        super().__init__()
        self.block, self.adapter = block, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.block(x))


class DADF(nn.Module):
    def __init__(self, variant: str = "vit_b", img_size: int = 1024, adapter_variant: str = "A",
                 noise_std: float = 1e-3):
        super().__init__()
        from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,
                                               TwoWayTransformer)

        dim, depth, heads, global_blocks = SAM_VARIANTS[variant]
        if img_size % 16:
            raise ValueError("DADF input size must be a multiple of 16")
        grid = img_size // 16
        self.img_size, self.noise_std = img_size, noise_std  # std 1e-3 = variance 1e-6
        self.image_encoder = ImageEncoderViT(
            img_size=img_size, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads,
            mlp_ratio=4, out_chans=256, qkv_bias=True, use_rel_pos=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), global_attn_indexes=global_blocks,
            window_size=min(14, grid))
        self.prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                            input_image_size=(img_size, img_size), mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3, transformer=TwoWayTransformer(
                depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
        # SAM's own weights: frozen (the mask decoder is fine-tuned, as in the paper)
        for module in (self.image_encoder, self.prompt_encoder):
            for param in module.parameters():
                param.requires_grad = False
        self.adapters = nn.ModuleList([MultiscaleAdapter(dim, max(8, dim // 12), adapter_variant)
                                       for _ in range(depth)])
        self.task_head = nn.Conv2d(256, 256, 1)  # a linear map per position
        self.enhancer = nn.Conv2d(256, 1, 1)
        self.cls_head = nn.Linear(1, 1)

    # --- SAM checkpoints ---------------------------------------------------------------------
    def load_sam_state_dict(self, state: dict) -> None:
        """Load an official SAM state dict (keys image_encoder.*, prompt_encoder.*, mask_decoder.*),
        resizing the position embedding and the global blocks' relative positions to this input
        size."""
        own = self.state_dict()
        fitted = {}
        for key, value in state.items():
            if key not in own:
                continue
            target = own[key]
            if value.shape != target.shape and key.endswith("pos_embed"):
                value = F.interpolate(value.permute(0, 3, 1, 2), size=target.shape[1:3],
                                      mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
            elif value.shape != target.shape and ".rel_pos_" in key:
                value = F.interpolate(value.T[None], size=target.shape[0], mode="linear",
                                      align_corners=False)[0].T
            elif value.shape != target.shape and \
                    key.endswith("positional_encoding_gaussian_matrix"):
                value = value  # identical by construction
            fitted[key] = value
        missing = [k for k in own if k.startswith(("image_encoder.", "prompt_encoder.",
                                                   "mask_decoder.")) and k not in fitted]
        if missing:
            raise ValueError(f"not a SAM checkpoint: missing {missing[:5]}...")
        self.load_state_dict(fitted, strict=False)

    # --- forward -----------------------------------------------------------------------------
    def _pixels(self, image: torch.Tensor) -> torch.Tensor:
        """The pipeline's ImageNet-normalized faces -> SAM's input size."""
        if image.shape[-1] != self.img_size:
            image = F.interpolate(image, size=(self.img_size, self.img_size), mode="bilinear",
                                  align_corners=False)
        return image

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> task-head features [B, 256, S/16, S/16]."""
        encoder = self.image_encoder
        x = encoder.patch_embed(image)
        if encoder.pos_embed is not None:
            x = x + encoder.pos_embed
        for block, adapter in zip(encoder.blocks, self.adapters):
            x = adapter(block(x))
        return self.task_head(encoder.neck(x.permute(0, 3, 1, 2)))

    def forward(self, image: torch.Tensor, labels: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """image [B, 3, S, S] -> {"mask_logits" [B, 1, S, S], "cls_logit" [B], "rec_loss" []}"""
        size = image.shape[-2:]
        image = self._pixels(image)
        features = self.encode(image)
        generator = None if self.training else torch.Generator(image.device).manual_seed(0)
        noise = torch.randn(image.shape, generator=generator, device=image.device,
                            dtype=image.dtype) * self.noise_std
        noisy = self.encode(image + noise)
        difference = (noisy - features).abs()
        batch, _, height, width = features.shape
        weights = torch.softmax(self.enhancer(difference).flatten(1), dim=1)
        attention = (weights * height * width).view(batch, 1, height, width)
        final = attention * features + features

        if labels is not None and (labels == 0).any():
            real = labels == 0
            rec_loss = F.l1_loss(noisy[real], features[real])
        else:
            rec_loss = features.new_zeros(())

        dense_pe = self.prompt_encoder.get_dense_pe()
        sparse = torch.empty(1, 0, 256, device=image.device, dtype=features.dtype)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            1, -1, height, width)
        masks = []
        for i in range(batch):  # SAM's decoder takes one image with its prompts at a time
            low_res, _ = self.mask_decoder(image_embeddings=final[i:i + 1], image_pe=dense_pe,
                                           sparse_prompt_embeddings=sparse,
                                           dense_prompt_embeddings=dense, multimask_output=False)
            masks.append(low_res)
        mask_logits = F.interpolate(torch.cat(masks), size=size, mode="bilinear",
                                    align_corners=False)
        cls_logit = self.cls_head(mask_logits.mean(dim=(2, 3))).squeeze(-1)
        return {"mask_logits": mask_logits, "cls_logit": cls_logit, "rec_loss": rec_loss}

    def trainable_share(self) -> tuple[int, int, float]:
        """(trainable parameters, SAM's parameters, share) as the paper reports it."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        sam = sum(p.numel() for m in (self.image_encoder, self.prompt_encoder, self.mask_decoder)
                  for p in m.parameters())
        return trainable, sam, trainable / sam


def dadf_loss(out: dict, mask: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """L_seg + 0.1 L_rec + 0.1 L_cls (BCE for the mask and the label)."""
    seg = F.binary_cross_entropy_with_logits(out["mask_logits"].float(), mask)
    cls = F.binary_cross_entropy_with_logits(out["cls_logit"].float(), label.float())
    total = seg + 0.1 * out["rec_loss"] + 0.1 * cls
    return total, {"seg": float(seg.detach()), "rec": float(out["rec_loss"].detach()),
                   "cls": float(cls.detach())}
