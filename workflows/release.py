"""--stage release: the shipped model, from every real person we have, in one resumable command.

1. the face pool (`OUT/pool`): every real video and photo of `release.sources`, split by person
   (`pool.test_people` and `pool.val_people` people with videos held out);
2. held-out videos (`OUT/heldout`): the validation and test people's real videos, forged by every
   method the way third-party tools work (preprocessing/forge_videos.py), then preprocessed like
   any input (`OUT/heldout_cache`, splits val / test);
3. training on online pairs from the pool (`OUT/run`): stage 2 (the localizer), and stage 1's clip
   classifier when `release.stage1`;
4. evaluation: fusion weights and the verdict threshold fitted on the validation people's videos,
   tables on the test people's (`OUT/run/eval_test`);
5. when `release.dev_set` exists: the third-party forgeries scored and tabled (`OUT/run/eval_dev`),
   for the model card only. Nothing is selected on it, and it is never trained on;
6. robustness: the test people's videos again with their faces sharpened, blurred, upscaled,
   noised or JPEG-compressed (`OUT/run/robustness_test`; evaluation/robustness.py).

Then `--stage export --run OUT/run` packs the run into the package (models/release).
"""
from __future__ import annotations

from pathlib import Path

from delocate.common.config import Config
from delocate.common.log import Steps, info
from delocate.evaluation.evaluate import Evaluation, format_tables
from delocate.evaluation.robustness import format_robustness, run_robustness
from delocate.preprocessing.datasets import discover
from delocate.preprocessing.face_pool import assign_people, build_pool, find_sources
from delocate.preprocessing.forge_videos import forge_videos
from delocate.preprocessing.preprocess import run_preprocess
from delocate.stage1_recover.finetune import run_finetune
from delocate.stage2_localize.localize import run_localize

SHARED_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the checkout (and shared/)


def resolve(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else SHARED_ROOT / path


def build_heldout(pool_sources, out: Path, config: Config) -> Path:
    """Forged and real videos of the held-out people, preprocessed into a FaceClip cache."""
    held = [(Path(s.path), s.person, s.split) for s in pool_sources
            if s.kind == "video" and s.split in ("val", "test")]
    if not held:
        raise ValueError("no held-out people with videos: raise pool.val_people / test_people")
    manifest = forge_videos(held, out / "heldout", config.forge)
    cache = out / "heldout_cache"
    _, entries = discover(manifest)
    run_preprocess(entries, cache, config.preprocess, desc="held-out videos: preprocess")
    return cache


def evaluate_dev(dev: Path, evaluation: Evaluation, config: Config) -> dict | None:
    """Tables on the third-party forgeries (threshold and fusion from the held-out val split)."""
    manifest = dev / "manifest.csv"
    if not manifest.is_file():
        info(f"no dev set at {dev}: skipped")
        return None
    cache = evaluation.run_dir.parent / "dev_cache"
    _, entries = discover(manifest)
    run_preprocess(entries, cache, config.preprocess, desc="dev set: preprocess")
    return evaluation.tables(cache, "all", evaluation.run_dir / "eval_dev")


def run_release(out_dir: str | Path, config: Config) -> int:
    out = Path(out_dir)
    step = Steps("release")
    sources = assign_people(find_sources([resolve(s) for s in config.release.sources]),
                            config.pool)
    step("face pool", build_pool, sources, out / "pool", config.pool)
    heldout = step("held-out videos", build_heldout, sources, out, config)
    run = out / "run"
    step("stage 2 (localizer) on online pairs", run_localize, out / "pool", run, config)
    if config.release.stage1:
        step("stage 1 (clip classifier) on online clips", run_finetune, out / "pool", run, config)
    evaluation = step("fusion and threshold on the validation people", Evaluation, run, heldout)
    result = step("evaluate on the test people", evaluation.tables, heldout, "test")
    dev = step("dev set (third-party forgeries)", evaluate_dev, resolve(config.release.dev_set),
               evaluation, config)
    robustness = step("robustness on the test people (benign processing)", run_robustness,
                      heldout, run, "test", detector=evaluation.detector)
    print(f"\ntest people ({', '.join(sorted({s.person for s in sources if s.split == 'test'}))}):")
    print(format_tables(result))
    if dev is not None:
        print(f"\ndev set {resolve(config.release.dev_set)} "
              "(third-party forgeries; reported only):")
        print(format_tables(dev))
    print(f"\nrobustness: {format_robustness(robustness)}")
    print(f"\n{step.summary()}")
    print(f"\nrun: {run}\npack it into the package: python run_pipeline.py --stage export "
          f"--run {run}")
    return 0
