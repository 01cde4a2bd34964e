"""Stage-2 losses: L_map (mapped face vs stage 1's recovered face), L_loc (mask), L_cls (real/fake).

Masks are compared as probabilities in [0, 1]; metrics binarize them at 0.5 elsewhere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def map_loss(mapped: torch.Tensor, recovered: torch.Tensor) -> torch.Tensor:
    """MSE between the mapped face [B, 3, m, m] and the recovered face (resized to m x m)."""
    if recovered.shape[-2:] != mapped.shape[-2:]:
        recovered = F.interpolate(recovered, size=mapped.shape[-2:], mode="bilinear",
                                  align_corners=False)
    return F.mse_loss(mapped.float(), recovered.float())


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice over the whole batch. Per image, a real face's empty mask would make any faint
    positive anywhere cost as much as missing a whole forged region; over the batch, a real face's
    false positives count as false positives and nothing more."""
    inter = (prob * target).sum()
    total = prob.sum() + target.sum()
    return 1 - (2 * inter + eps) / (total + eps)


def loc_loss(mask_logits: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """mask_logits [B, 1, S, S] vs target [B, 1, S, S] in [0, 1]. kind: mse (paper) | bce (Face
    X-ray's pixel-wise cross-entropy) | bce_dice."""
    mask_logits = mask_logits.float()
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(mask_logits), target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(mask_logits, target)
    if kind == "bce_dice":
        return F.binary_cross_entropy_with_logits(mask_logits, target) + \
            dice_loss(torch.sigmoid(mask_logits), target)
    raise ValueError(f"unknown localization loss {kind!r} (mse, bce or bce_dice)")


def cls_loss(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit.float(), label.float())


def pair_loss(logit: torch.Tensor, label: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each fake's logit above its own real frame's: mean softplus(real - fake) over the batch's
    online pairs (items 2p and 2p + 1 of one pair sit side by side, real first). Unlike the
    label's BCE, it gives nothing for scoring a person's real faces low as a whole, only for what
    the forgery changed."""
    real, fake = logit[0::2].float(), logit[1::2].float()
    if logit.shape[0] % 2 or not (torch.equal(index[0::2] // 2, index[1::2] // 2)
                                  and bool((label[0::2] == 0).all() and (label[1::2] == 1).all())):
        raise ValueError("the pair loss needs online pairs (--data POOL) in batches of whole pairs")
    return F.softplus(real - fake).mean()


def stage2_loss(out: dict, batch: dict, loc_kind: str = "mse", w_map: float = 1.0,
                w_loc: float = 1.0, w_cls: float = 1.0,
                w_pair: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts for one batch of stage-2 outputs."""
    parts = {"cls": cls_loss(out["cls_logit"], batch["label"]),
             "loc": loc_loss(out["mask_logits"], batch["mask"], loc_kind)}
    if "mapped" in out and "recovered" in batch:
        parts["map"] = map_loss(out["mapped"], batch["recovered"])
    if w_pair:
        parts["pair"] = pair_loss(out["cls_logit"], batch["label"], batch["index"])
    total = w_cls * parts["cls"] + w_loc * parts["loc"] + w_map * parts.get("map", 0.0) + \
        w_pair * parts.get("pair", 0.0)
    return total, {k: float(v.detach()) for k, v in parts.items()}
