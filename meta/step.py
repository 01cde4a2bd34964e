"""One meta-learning step with torch.func (MLDG-style, as Delocate's stage 2 trains).

learn2learn does not build on Python 3.11, so the inner update is written with
torch.func.functional_call and torch.autograd.grad instead:
  theta' = theta - inner_lr * grad L_meta_train(theta)
  total  = L_meta_train(theta) + test_weight * L_meta_test(theta')
Second order by default (the meta-test gradient flows through the inner step); first_order=True
treats the inner gradient as a constant.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import functional_call


def meta_step_loss(model: torch.nn.Module, loss_of: Callable[[dict], torch.Tensor],
                   train_batch: dict, test_batch: dict, inner_lr: float, test_weight: float = 1.0,
                   first_order: bool = False) -> tuple[torch.Tensor, dict]:
    """`loss_of(outputs, batch)` computes a scalar from model outputs. Returns (total, parts)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    train_loss = loss_of(functional_call(model, (params, buffers), (train_batch["input"],)),
                         train_batch)
    if test_weight == 0:
        return train_loss, {"meta_train": float(train_loss.detach()), "meta_test": 0.0}
    # retain_graph: the total loss backpropagates through the meta-train loss once more
    grads = torch.autograd.grad(train_loss, list(params.values()), create_graph=not first_order,
                                retain_graph=True,
                                allow_unused=True)  # smp's last attention block gets no gradient
    adapted = {name: (param if grad is None else
                      param - inner_lr * (grad.detach() if first_order else grad))
               for (name, param), grad in zip(params.items(), grads)}
    test_loss = loss_of(functional_call(model, (adapted, buffers), (test_batch["input"],)),
                        test_batch)
    total = train_loss + test_weight * test_loss
    return total, {"meta_train": float(train_loss.detach()), "meta_test": float(test_loss.detach())}
