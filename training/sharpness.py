"""Sharpness-aware minimization (SAM; Foret et al., ICLR 2021), the optimizer SBI (Shiohara &
Yamasaki, CVPR 2022) trains its self-blend detector with: each step's gradient is taken again at
the nearby weights where the loss rises fastest, w + rho * g / |g|, and applied at w, which favours
flat minima over ones that fit the training faces alone. Neither torch nor timm ships it, so it is
written here, around whatever optimizer the stage uses (AdamW here; SBI wraps SGD). A step costs
two forward-backward passes on the same batch. The second pass draws its own dropout masks (the
localizer has no dropout or drop-path; stage 1's classifier may have dropout).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def norm_statistics_frozen(model: torch.nn.Module) -> Iterator[None]:
    """BatchNorm still normalizes with the batch's statistics, but its running statistics stay
    as they are: the second pass of a step sees the same batch, which must not count twice. Its
    batch count too: with momentum None (a cumulative average) it weighs every later batch."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    counts = [m.num_batches_tracked.clone() for m in norms]
    for norm in norms:
        norm.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for norm, momentum, count in zip(norms, momenta, counts):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(count)


def sharpness_aware_gradient(model: torch.nn.Module, rho: float,
                             backward: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Replaces the gradients the step's first backward left in `model` by the gradients at
    w + rho * g / |g| (g: those gradients, |g| their norm over all parameters), then puts the
    weights back at w, for the optimizer to step from there. `backward()` computes the loss on the
    same batch again and backpropagates it; its loss is returned."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return backward()
    with torch.no_grad():
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        shifts = [p.grad * (rho / (norm + 1e-12)) for p in params]
        torch._foreach_add_(params, shifts)
    for param in params:
        param.grad = None
    try:
        with norm_statistics_frozen(model):
            loss = backward()
    finally:  # the weights go back to w even when the second pass fails
        with torch.no_grad():
            torch._foreach_sub_(params, shifts)
    return loss
