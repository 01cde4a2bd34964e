"""The training engine both stages use: epochs, logging, checkpoints, resume, DDP, AMP.

- one JSON line per epoch in RUN_DIR/log.jsonl, a tqdm bar per epoch;
- after every epoch: `<name>_last.safetensors` (+ JSON sidecar that rebuilds the model) and
  `<name>_state.pt` (optimizer, scheduler, scaler, RNG, epoch; loaded with weights_only=True);
  `<name>_best.safetensors` whenever the validation metric improves (never the test set);
- resume: a run dir holding a state file continues after its last finished epoch; batches and
  their randomness derive from (seed, epoch): a resumed run ends as an uninterrupted one would;
- a non-finite loss stops the run with a clear message (the last good checkpoint stays);
- sam_rho > 0: sharpness-aware steps (training/sharpness.py); bf16 autocast on CUDA;
  DistributedDataParallel when started by torchrun (gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import io
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from delocate.common.config import Config, TrainConfig, save_config
from delocate.common.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from delocate.common.log import JsonLineLog, info, progress
from delocate.models.registry import ModelSpec
from delocate.training.batches import move, start_workers
from delocate.training.sharpness import sharpness_aware_gradient


def open_run(cache: str | Path, run_dir: str | Path, config: Config) -> tuple[Path, Path]:
    """A training stage's start: (cache, run dir) as paths, the run dir created, the config saved
    in it (RUN_DIR/config.yaml: what rebuilt the run)."""
    cache, run_dir = Path(cache), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    return cache, run_dir


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class EngineResult:
    best_metric: float | None
    best_epoch: int | None  # counted from 1, as in log.jsonl
    epochs_run: int
    best_path: Path
    last_path: Path


def distributed() -> tuple[int, int]:
    """(rank, world size); initializes the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_device() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms and embeddings-like 1-D parameters (as MAE / timm)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress_ = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))
    return factor


class Engine:
    """Trains `model` with `loss_fn(model, batch) -> (loss, logs)`; selects on `evaluate_fn`."""

    def __init__(self, name: str, model: torch.nn.Module, run_dir: str | Path, cfg: TrainConfig,
                 train_set, loss_fn: Callable, spec: ModelSpec | dict,
                 evaluate_fn: Callable[[torch.nn.Module], dict] | None = None,
                 select_key: str = "val_loss", select_mode: str = "min",
                 sample_weights: np.ndarray | None = None,
                 optimizer_factory: Callable | None = None,
                 index_fn: Callable[[int, int], list[int]] | None = None,
                 wrap_ddp: bool = True):
        self.name, self.cfg, self.spec = name, cfg, ModelSpec.of(spec)
        self.run_dir = Path(run_dir)
        self.train_set, self.loss_fn, self.evaluate_fn = train_set, loss_fn, evaluate_fn
        self.select_key, self.select_mode = select_key, select_mode
        self.sample_weights = sample_weights
        self.index_fn = index_fn  # (epoch, count) -> sample order; e.g. meta-train/test halves
        self.rank, self.world = distributed()
        self.device = default_device()
        if cfg.channels_last:  # faster 2-D convolutions on CPUs and GPUs alike
            for module in model.modules():  # (a whole-model .to() refuses 5-D Conv3d weights)
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.module = self.model  # unwrapped, for saving and evaluation
        # wrap_ddp=False: the loss calls the module functionally (torch.func), bypassing DDP's
        # hooks, so gradients are averaged by hand after backward instead
        self.sync_by_hand = self.world > 1 and not wrap_ddp
        if self.world > 1 and wrap_ddp:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if not cfg.steps_per_epoch and len(train_set) > 10 ** 9:
            raise ValueError(f"{name}: the training data is endless (online pairs): set "
                             f"{name}.steps_per_epoch")
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, len(train_set) // cfg.batch_size)
        total = self.steps_per_epoch * cfg.epochs
        self.optimizer = (optimizer_factory(self.module) if optimizer_factory else
                          torch.optim.AdamW(param_groups(self.module, cfg.weight_decay), lr=cfg.lr,
                                            betas=(0.9, 0.95)))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(total, self.steps_per_epoch * cfg.warmup_epochs))
        self.use_amp = cfg.amp and self.device.type == "cuda"
        # bf16 needs no loss scaling; the scaler is kept (disabled) so the state format is fixed
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.log = JsonLineLog(self.run_dir / "log.jsonl")

    # --- paths and checkpoints -----------------------------------------------------------------
    def path(self, kind: str) -> Path:
        return self.run_dir / (f"{self.name}_{kind}.safetensors" if kind in ("last", "best")
                               else f"{self.name}_{kind}.pt")

    def _save_model(self, kind: str, epoch: int, metrics: dict) -> None:
        sidecar = {**self.spec.to_dict(), "stage": self.name, "epoch": epoch, "metrics": metrics,
                   "train_config": asdict(self.cfg)}
        save_checkpoint(self.path(kind), self.module.state_dict(), sidecar)

    def _save_state(self, epoch: int, best: float | None, best_epoch: int | None) -> None:
        # "epoch": the index of the last finished epoch (resume starts after it); "best_epoch":
        # counted from 1, as everything a person reads (log, sidecars, summary)
        state = {"epoch": epoch, "best": best if best is not None else float("nan"),
                 "best_epoch": -1 if best_epoch is None else best_epoch,
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path("state"), buffer.getvalue())

    def _resume(self) -> tuple[int, float | None, int | None]:
        if not self.path("state").is_file() or not self.path("last").is_file():
            return 0, None, None
        state = torch.load(self.path("state"), map_location="cpu", weights_only=True)
        tensors, _ = load_checkpoint(self.path("last"))
        self.module.load_state_dict(tensors)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        best = None if math.isnan(state["best"]) else float(state["best"])
        best_epoch = None if state["best_epoch"] < 0 else int(state["best_epoch"])
        if self.rank == 0:
            info(f"{self.name}: resuming after epoch {state['epoch'] + 1} from {self.run_dir}")
        return int(state["epoch"]) + 1, best, best_epoch

    # --- data ----------------------------------------------------------------------------------
    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's sample order for `epoch`: a function of (seed, epoch) only."""
        rng = np.random.default_rng([self.cfg.seed, epoch, 7])
        count = self.steps_per_epoch * self.cfg.batch_size * self.world
        n = len(self.train_set)
        if self.index_fn is not None:  # whole batches are laid out by index_fn: deal them out
            order = np.asarray(self.index_fn(epoch, count))
            return order.reshape(-1, self.world, self.cfg.batch_size)[:, self.rank].ravel().tolist()
        if self.sample_weights is not None:
            p = self.sample_weights / self.sample_weights.sum()
            order = rng.choice(n, count, p=p)
        else:
            order = np.concatenate([rng.permutation(n) for _ in range(count // n + 1)])[:count]
        return order[self.rank::self.world].tolist()

    def _better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.select_mode == "min" else value > best

    # --- the loop ------------------------------------------------------------------------------
    def _backward(self, batch: dict, epoch: int, step: int) -> torch.Tensor:
        """The batch's loss, backpropagated into the module's gradients (averaged over ranks)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            loss, _ = self.loss_fn(self.model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{self.name}: loss became {loss.item()} at epoch {epoch + 1}, step "
                f"{step + 1}; stopping. Lower the learning rate (now {self.cfg.lr}) or "
                f"check the inputs. The last good checkpoint is {self.path('last')}")
        self.scaler.scale(loss).backward()
        if self.sync_by_hand:
            for param in (p for p in self.module.parameters() if p.grad is not None):
                dist.all_reduce(param.grad)
                param.grad /= self.world
        return loss

    def fit(self) -> EngineResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start, best, best_epoch = self._resume()
        shown: dict[str, str] = {}  # the last validation numbers, kept on the progress bar
        for epoch in range(start, self.cfg.epochs):
            began = time.time()
            # reseeded per epoch: dropout & co. draw the same numbers whether or not we resumed
            torch.manual_seed(self.cfg.seed * 100003 + epoch)
            self.train_set.set_epoch(epoch)
            loader = DataLoader(self.train_set, batch_size=self.cfg.batch_size,
                                sampler=self.epoch_indices(epoch), drop_last=True,
                                num_workers=self.cfg.num_workers,
                                pin_memory=self.device.type == "cuda")
            self.model.train()
            losses: list[float] = []
            bar = progress(start_workers(loader),
                           f"{self.name} epoch {epoch + 1}/{self.cfg.epochs}", total=len(loader),
                           unit="step")
            for step, batch in enumerate(bar):
                batch = move(batch, self.device)
                self.optimizer.zero_grad(set_to_none=True)
                loss = self._backward(batch, epoch, step)
                if self.cfg.sam_rho:  # the gradient taken again where the loss rises fastest
                    sharpness_aware_gradient(self.module, self.cfg.sam_rho,
                                             lambda: self._backward(batch, epoch, step))
                if self.cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                losses.append(loss.item())
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", **shown)
            metrics = {}
            if self.rank == 0 and self.evaluate_fn is not None:
                self.module.eval()
                with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.use_amp):
                    metrics = self.evaluate_fn(self.module)
            train_loss = float(np.mean(losses)) if losses else float("nan")
            shown = {k: f"{v:.3f}" for k, v in metrics.items()
                     if k in ("val_auc", "val_iou", "val_loss") and isinstance(v, float)}
            if self.rank == 0:
                record = {"stage": self.name, "epoch": epoch + 1, "train_loss": train_loss,
                          "lr": self.optimizer.param_groups[0]["lr"],
                          "seconds": round(time.time() - began, 2), **metrics}
                self.log.write(**record)
                selected = metrics.get(self.select_key, -train_loss if self.select_mode == "max"
                                       else train_loss)
                # epochs leave the engine counted from 1, as the log and the progress bar count them
                self._save_model("last", epoch + 1, metrics)
                if self._better(selected, best):
                    best, best_epoch = float(selected), epoch + 1
                    self._save_model("best", epoch + 1, metrics)
                self._save_state(epoch, best, best_epoch)
                info(f"{self.name} epoch {epoch + 1}: train loss {train_loss:.4f}"
                     + "".join(f", {k} {v:.4f}" for k, v in metrics.items()
                               if isinstance(v, float)))
            if self.world > 1:
                dist.barrier()
        return EngineResult(best, best_epoch, self.cfg.epochs - start, self.path("best"),
                            self.path("last"))
