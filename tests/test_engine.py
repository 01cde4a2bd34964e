"""The shared training engine: resume equivalence, non-finite loss, checkpoints, 2-process DDP."""
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from delocate.common.config import TrainConfig
from delocate.common.io import load_checkpoint, save_checkpoint
from delocate.models.registry import ModelSpec, register
from delocate.training.checkpoints import load_model
from delocate.training.engine import Engine, NonFiniteLossError
from delocate.training.stage import StageData, train_stage

from conftest import ROOT


class RandomClips(Dataset):
    """Deterministic toy data: item i is a fixed random vector and a linear target of it."""

    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=g)
        self.y = self.x @ (torch.arange(6.0) / 5) + 0.05 * torch.randn(n, generator=g)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 1))


def toy_loss(model, batch):
    return torch.nn.functional.mse_loss(model(batch["x"]).squeeze(-1), batch["y"]), {}


CFG = TrainConfig(epochs=4, steps_per_epoch=5, batch_size=8, lr=3e-2, warmup_epochs=1)


def train(run_dir, loss_fn=toy_loss, cfg=CFG, evaluate=None):
    torch.manual_seed(123)
    engine = Engine("toy", make_model(), run_dir, cfg, RandomClips(), loss_fn, {"builder": "toy"},
                    evaluate_fn=evaluate, select_key="val", select_mode="min")
    return engine, engine.fit()


def weights(engine):
    return {k: v.clone() for k, v in engine.module.state_dict().items()}


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path):
    full, _ = train(tmp_path / "full")

    calls = {"n": 0}

    def dies_in_epoch_three(model, batch):
        calls["n"] += 1
        if calls["n"] == 2 * CFG.steps_per_epoch + 3:
            raise KeyboardInterrupt  # the process is killed half-way through epoch 3
        return toy_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", dies_in_epoch_three)
    state = torch.load(tmp_path / "resumed" / "toy_state.pt", weights_only=True)
    assert state["epoch"] == 1  # epochs 1 and 2 finished and saved
    resumed, result = train(tmp_path / "resumed")
    assert result.epochs_run == 2
    for key, value in weights(full).items():
        assert torch.equal(value, weights(resumed)[key]), key
    log_lines = (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in log_lines]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]


def test_loss_falls_and_checkpoints_rebuild(tmp_path):
    engine, result = train(tmp_path, evaluate=lambda m: {"val": float(np.random.rand())})
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < 0.5 * log[0]["train_loss"]
    tensors, sidecar = load_checkpoint(result.best_path)
    assert sidecar["builder"] == "toy" and sidecar["stage"] == "toy"
    assert sidecar["epoch"] == result.best_epoch
    best_record = min(log, key=lambda r: r["val"])
    assert result.best_metric == pytest.approx(best_record["val"])  # on validation, not training
    assert result.best_epoch == best_record["epoch"]  # the log's count, from 1
    register("toy", make_model)
    model, sidecar = load_model(result.best_path)
    assert not model.training and sidecar["epoch"] == result.best_epoch
    for key, value in model.state_dict().items():
        assert torch.equal(value, tensors[key]), key
    save_checkpoint(tmp_path / "bare.safetensors", tensors, {})
    with pytest.raises(ValueError, match="names no model builder"):
        load_model(tmp_path / "bare.safetensors")


def test_any_stage_starts_from_a_checkpoint_of_the_same_model_only(tmp_path):
    _, first = train(tmp_path / "first")
    (start, _), data = load_checkpoint(first.best_path), StageData(RandomClips())
    # lr 0: the weights stay what init_from loaded (the fresh model's own init differs)
    further = replace(CFG, epochs=1, lr=0.0, init_from=str(first.best_path))
    model = make_model()
    assert not torch.equal(model.state_dict()["0.weight"], start["0.weight"])
    train_stage("toy", model, ModelSpec("toy"), tmp_path / "further", further, data, toy_loss)
    after, _ = load_checkpoint(tmp_path / "further" / "toy_last.safetensors")
    assert after.keys() == start.keys() and all(torch.equal(after[k], start[k]) for k in start)
    with pytest.raises(ValueError, match="not the toy"):
        train_stage("toy", make_model(), ModelSpec("toy", {"hidden": 8}), tmp_path / "other",
                    further, data, toy_loss)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    calls = {"n": 0}

    def explodes(model, batch):
        calls["n"] += 1
        loss, logs = toy_loss(model, batch)
        return (loss * float("nan") if calls["n"] == 7 else loss), logs

    message = r"loss became nan at epoch 2, step 2.*learning rate"
    with pytest.raises(NonFiniteLossError, match=message):
        train(tmp_path, explodes)
    assert (tmp_path / "toy_last.safetensors").is_file()  # the last good epoch is kept


@pytest.mark.parametrize("sam_rho", [0.0, 0.05])  # plain steps; sharpness-aware steps
def test_two_process_gloo_training(tmp_path, sam_rho):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / "_ddp_train.py"), str(tmp_path), str(sam_rho)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}_of_2.pt", weights_only=True) for r in range(2)]
    assert torch.equal(ranks[0], ranks[1])  # DDP kept both replicas in sync
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(log) == 2  # only rank 0 logs
    assert (tmp_path / "toy_best.safetensors").is_file()


class ThreadsSeen(RandomClips):
    """Toy items that also say how many threads OpenCV had where they were made."""

    def __getitem__(self, i):
        import cv2

        cv2.GaussianBlur(np.zeros((64, 64), np.float32), (5, 5), 1)  # OpenCV's pool at work
        return {**super().__getitem__(i), "threads": cv2.getNumThreads()}


def test_data_workers_make_items_on_one_opencv_thread(tmp_path):
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        cv2.GaussianBlur(np.zeros((64, 64), np.float32), (5, 5), 1)  # the parent's pool runs
        seen = []

        def loss(model, batch):
            seen.extend(batch["threads"].tolist())
            return toy_loss(model, batch)

        engine = Engine("toy", make_model(), tmp_path, replace(CFG, epochs=1, num_workers=2),
                        ThreadsSeen(), loss, {"builder": "toy"})
        engine.fit()  # (setting the count inside a forked worker instead would hang here)
        assert seen and set(seen) == {1}
        assert cv2.getNumThreads() == 2  # the parent's own count is given back
    finally:
        cv2.setNumThreads(before)
