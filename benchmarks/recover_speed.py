"""Stage-1 pretraining speed (the space-time MAE of --stage recover), against baselines run in the
same process:

(a) the tubelet embedding as one matmul over the cubes (what the model does) against the same
    Conv3d applied as a convolution (baseline): forward + backward of the embedding alone, and a
    whole MAE training step (forward + backward + AdamW) with each;
(b) the clip colour jitter as a per-channel lookup table (training/inputs.colour_jitter) against the
    same arithmetic on every pixel (baseline); the two give the same bytes, checked here.

Prints milliseconds of each (medians of three alternating rounds) and the ratios baseline / ours.
Usage:
  python -m benchmarks.recover_speed [--config configs/cpu-tiny.yaml] [--steps 20]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from delocate.common.config import load_config
from delocate.models.registry import ModelSpec, build_model
from delocate.models.st_mae import TubeletEmbed
from delocate.stage1_recover.recover import input_kwargs, make_masker
from delocate.training.inputs import colour_jitter

ROOT = Path(__file__).resolve().parents[1]


def conv_embed(self: TubeletEmbed, video: torch.Tensor) -> torch.Tensor:
    """Baseline: the embedding's Conv3d run as a convolution."""
    return rearrange(self.proj(video), "b d t h w -> b (t h w) d")


def arithmetic_jitter(frames: np.ndarray, contrast: float, gains: np.ndarray, shift: float
                      ) -> np.ndarray:
    """Baseline: colour_jitter's formula evaluated on every pixel."""
    mean = frames.mean(dtype=np.float32)
    out = ((frames.astype(np.float32) - mean) * contrast + mean) * gains + shift
    return np.clip(out, 0, 255).astype(np.uint8)


def millis(fn, repeats: int) -> float:
    fn()  # warm-up, not counted
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu-tiny.yaml"))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = load_config(args.config).recover
    torch.manual_seed(0)
    model = build_model(ModelSpec("st_mae", {**input_kwargs(cfg), "norm_pix_loss": True}))
    masker = make_masker(cfg, model)
    rng = np.random.default_rng(0)
    size, frames = cfg.img_size, cfg.num_frames
    video = torch.randn(cfg.batch_size, 3, frames, size, size)
    boxes = np.array([[0.3, 0.35, 0.7, 0.5], [0.35, 0.5, 0.65, 0.7], [0.3, 0.7, 0.7, 0.85]])
    rois = np.tile((boxes * size).astype(np.float32), (frames, 1, 1))
    token_mask = torch.stack([torch.from_numpy(masker(rois, rng)[0])
                              for _ in range(cfg.batch_size)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    embed = model.encoder.patch_embed

    def embed_step():
        embed(video).sum().backward()

    def mae_step():
        loss, _ = model(video, token_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    print(f"stage-1 MAE ({cfg.model}, batch {cfg.batch_size} x {frames} frames at {size} px), "
          f"{torch.get_num_threads()} threads")
    conv, matmul = conv_embed, TubeletEmbed.forward
    times: dict[str, dict[str, list[float]]] = {"matmul": {}, "Conv3d": {}}
    try:
        for _ in range(3):  # alternating rounds, so drift in the machine's speed hits both alike
            for way, forward in (("matmul", matmul), ("Conv3d", conv)):
                TubeletEmbed.forward = forward
                times[way].setdefault("embedding", []).append(millis(embed_step, args.steps * 5))
                times[way].setdefault("step", []).append(millis(mae_step, args.steps))
    finally:
        TubeletEmbed.forward = matmul
    ours = {name: float(np.median(t)) for name, t in times["matmul"].items()}
    base = {name: float(np.median(t)) for name, t in times["Conv3d"].items()}
    for name in ("embedding", "step"):
        print(f"  {name:<10} matmul {ours[name]:7.1f} ms   Conv3d {base[name]:7.1f} ms   "
              f"Conv3d / matmul {base[name] / ours[name]:.2f}x")

    clip = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    # drawn as augment_clip draws them (numpy float64 scalars, which make the arithmetic float64)
    draw = (rng.uniform(0.8, 1.2), rng.uniform(0.85, 1.15, 3).astype(np.float32),
            rng.uniform(-20, 20))
    assert np.array_equal(colour_jitter(clip, *draw), arithmetic_jitter(clip, *draw))
    table = millis(lambda: colour_jitter(clip, *draw), 200)
    pixels = millis(lambda: arithmetic_jitter(clip, *draw), 200)
    print(f"colour jitter of one clip ({frames} x {size} px; same bytes): lookup table "
          f"{table:.2f} ms   per pixel {pixels:.2f} ms   per pixel / table {pixels / table:.2f}x")


if __name__ == "__main__":
    main()
