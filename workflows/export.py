"""--stage export: a trained run -> the model the package ships (models/release by default).

Only what scoring needs goes in: each branch's best checkpoint in fp16 safetensors with its JSON
sidecar (a branch whose fitted fusion weight is 0 adds nothing and is left out), config.yaml,
threshold.json and fusion.json (both chosen on validation data by --stage evaluate), the metrics of
evaluate's tables and of --stage robustness on the test split for the model card, and people.json
(who trained, who was held out) when the run comes from --stage release. At most 30 MB.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from delocate.common.io import atomic_write_json, load_checkpoint, save_checkpoint
from delocate.common.log import info
from delocate.evaluation.fusion import Fusion

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "release"
BRANCH_FILES = {"s1": "finetune_best", "s2": "localize_best", "dadf": "dadf_best"}
MAX_BYTES = 30 * 1024 * 1024


def shipped_run() -> Path | None:
    """The shipped model's folder, when this install has one."""
    return SHIPPED if (SHIPPED / "localize_best.safetensors").is_file() else None


def export_run(run_dir: str | Path, out_dir: str | Path = SHIPPED) -> Path:
    run, out = Path(run_dir), Path(out_dir)
    for needed in ("config.yaml", "threshold.json"):
        if not (run / needed).is_file():
            raise FileNotFoundError(f"{run / needed} missing: run --stage evaluate on this run "
                                    "first (it chooses the threshold and fusion on validation "
                                    "data)")
    fusion = Fusion.load(run / "fusion.json")
    out.mkdir(parents=True, exist_ok=True)
    shipped = []
    for branch, name in BRANCH_FILES.items():
        path = run / f"{name}.safetensors"
        if not path.is_file():
            continue
        if fusion.mode == "fitted" and fusion.weights.get(branch, 0.0) <= 0:
            info(f"export: {branch} left out (fusion weight 0)")
            continue
        tensors, sidecar = load_checkpoint(path)
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_checkpoint(out / path.name, half, {**sidecar, "dtype": "float16",
                                                "exported_from": str(run.resolve())})
        shipped.append(branch)
    if "s2" not in shipped:
        raise ValueError(f"{run} has no stage-2 model to ship (localize_best.safetensors)")
    for name in ("config.yaml", "threshold.json", "fusion.json"):
        if (run / name).is_file():
            shutil.copyfile(run / name, out / name)
    # the release layout: who trained, who was held out
    pool_index = run.parent / "pool" / "index.json"
    if pool_index.is_file():
        sources = json.loads(pool_index.read_text())["sources"]
        atomic_write_json(out / "people.json", {
            split: sorted({s["person"] for s in sources if s["split"] == split
                           and (s["frames"] or split == "test")})
            for split in ("train", "val", "test")})
    metrics = {}
    for split, name in (("eval_test", "metrics.json"), ("eval_dev", "metrics.json"),
                        ("robustness_test", "robustness.json")):
        if (run / split / name).is_file():
            metrics[split] = json.loads((run / split / name).read_text())
    atomic_write_json(out / "metrics.json", metrics)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    if size > MAX_BYTES:
        raise ValueError(f"the exported weights take {size / 2**20:.1f} MB: over the 30 MB the "
                         "package may ship")
    info(f"export: {', '.join(shipped)} -> {out} ({size / 2**20:.1f} MB of fp16 weights)")
    return out
