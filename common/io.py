"""Atomic file writes and checkpoints.

Every file a run produces is written to a temporary name in the same folder and renamed into place,
so a killed process leaves either the old file or the new one, never half of one. Checkpoints are
safetensors (no pickle, so loading one cannot execute code) plus a JSON sidecar that names the model
builder and its arguments.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _atomic_write(path: str | Path, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, lambda h: h.write(data), "wb")


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic_write(path, lambda h: h.write(text), "w")


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npz(path: str | Path, **arrays: Any) -> Path:
    """np.savez_compressed into memory, then one atomic write (np.savez appends .npz to names)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def save_checkpoint(path: str | Path, tensors: dict, sidecar: dict) -> Path:
    """Write `path` (.safetensors) and `path.json` (how to rebuild the model, training state)."""
    from safetensors.torch import save as save_safetensors

    path = Path(path)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save_safetensors(contiguous))
    atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Read a checkpoint written by save_checkpoint: (tensors, sidecar)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
    return load_file(str(path)), sidecar
