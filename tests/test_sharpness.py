"""Sharpness-aware steps (training/sharpness.py): the gradient applied is the one at
w + rho * g / |g|, the weights go back to w, BatchNorm counts the batch once, and the engine takes
such steps when sam_rho > 0."""
import json
from dataclasses import replace

import pytest
import torch

from delocate.common.config import TrainConfig, load_config
from delocate.common.sections import ConfigError
from delocate.training.engine import Engine
from delocate.training.sharpness import sharpness_aware_gradient

from test_engine import CFG, RandomClips, make_model, toy_loss

CURVATURE = torch.tensor([1.0, 3.0, 0.5])


class Bowl(torch.nn.Module):
    """loss(w) = sum(c * w^2): its gradient anywhere is known, 2 c w."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.4, -0.2, 1.0]))

    def backward(self) -> torch.Tensor:
        loss = (CURVATURE * self.w ** 2).sum()
        loss.backward()
        return loss


def test_the_gradient_is_the_one_at_the_ascended_weights_and_the_weights_come_back():
    bowl, rho = Bowl(), 0.1
    w = bowl.w.detach().clone()
    bowl.backward()
    g = 2 * CURVATURE * w
    ascended = w + rho * g / g.norm()
    loss = sharpness_aware_gradient(bowl, rho, bowl.backward)
    assert torch.allclose(bowl.w.detach(), w, atol=1e-7)
    assert torch.allclose(bowl.w.grad, 2 * CURVATURE * ascended, atol=1e-6)
    assert not torch.allclose(bowl.w.grad, g, atol=1e-3)  # it did move
    assert loss.item() == pytest.approx((CURVATURE * ascended ** 2).sum().item(), rel=1e-5)


def test_weights_come_back_when_the_second_pass_fails():
    bowl = Bowl()
    w = bowl.w.detach().clone()
    bowl.backward()

    def fails():
        raise RuntimeError("second pass")
    with pytest.raises(RuntimeError):
        sharpness_aware_gradient(bowl, 0.5, fails)
    assert torch.allclose(bowl.w.detach(), w, atol=1e-7)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_statistics_count_the_batch_once(momentum):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3, momentum=momentum))
    batch = torch.randn(16, 4) * 3 + 1

    def backward():
        loss = model(batch).pow(2).mean()
        loss.backward()
        return loss
    backward()
    norm = model[1]
    after_one = norm.running_mean.clone(), norm.running_var.clone()
    sharpness_aware_gradient(model, 0.05, backward)
    assert torch.equal(norm.running_mean, after_one[0])
    assert torch.equal(norm.running_var, after_one[1])
    assert norm.momentum == momentum
    assert int(norm.num_batches_tracked) == 1  # a cumulative average (momentum None) reads it
    assert not torch.equal(after_one[0], torch.zeros(3))  # the first pass did count it


def test_the_engine_takes_two_passes_a_step_and_still_learns(tmp_path):
    calls = {"n": 0}

    def counted(model, batch):
        calls["n"] += 1
        return toy_loss(model, batch)
    cfg = replace(CFG, sam_rho=0.05)
    torch.manual_seed(0)
    Engine("toy", make_model(), tmp_path, cfg, RandomClips(), counted, {"builder": "toy"}).fit()
    assert calls["n"] == 2 * cfg.epochs * cfg.steps_per_epoch
    losses = [json.loads(line)["train_loss"]
              for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.5 * losses[0]


def test_config_refuses_a_negative_rho_and_sam_with_multi_scale_batches():
    with pytest.raises(ConfigError, match="sam_rho"):
        replace(TrainConfig(), sam_rho=-0.1)
    with pytest.raises(ConfigError, match="sam_rho"):
        load_config(None, ["localize.meta=false", "localize.use_mapping=false",
                           "localize.train_sizes=[160,192]", "localize.sam_rho=0.05"])
    assert load_config(None, ["localize.sam_rho=0.05"]).localize.sam_rho == 0.05
