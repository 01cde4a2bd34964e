"""A checkpoint back into a model: the sidecar names the builder and its arguments
(models.registry), the safetensors file holds the weights (fp16 exports load into fp32 models)."""
from __future__ import annotations

from pathlib import Path

import torch

from delocate.common.io import load_checkpoint
from delocate.models.registry import ModelSpec, build_model


def load_model(path: str | Path, device: torch.device | str = "cpu"
               ) -> tuple[torch.nn.Module, dict]:
    """(the model in eval mode on `device`, its sidecar) from a checkpoint save_checkpoint wrote."""
    tensors, sidecar = load_checkpoint(path)
    if "builder" not in sidecar:
        raise ValueError(f"{path}: its sidecar ({Path(path).with_suffix('.json').name}) names no "
                         "model builder; was it written by this project's training?")
    model = build_model(sidecar)
    model.load_state_dict(tensors)
    return model.to(device).eval(), sidecar


def start_from(model: torch.nn.Module, path: str | Path, spec: ModelSpec) -> int:
    """Load a trained checkpoint's weights into a freshly built `model` (fine-tuning a run on more
    steps or other data). The checkpoint must have been built by the same spec: a partial load
    would silently train a different model. Returns the number of tensors loaded."""
    tensors, sidecar = load_checkpoint(path)
    theirs = ModelSpec.of(sidecar)
    if theirs != spec:  # the dataclass's equality: same builder, same arguments
        raise ValueError(f"{path} holds a {theirs.builder} {theirs.kwargs}, not the "
                         f"{spec.builder} {spec.kwargs} this config builds: train with the "
                         "config it came with (config.yaml beside it)")
    model.load_state_dict(tensors)
    return len(tensors)
