#!/usr/bin/env python
"""Delocate: deepfake video detection and forgery localization. The one command-line entry point.

Each stage is one small function below; the work lives in the packages.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

STAGES = {
    "preprocess": "videos and images -> cached FaceClips (30 frames, a crop series per face track, "
                  "landmarks, ROIs, masks). --input DIR|GLOB|VIDEO|manifest.csv --dataset NAME "
                  "--out CACHE_DIR [--workers N]",
    "synth": "real FaceClips -> fake FaceClips with exact masks (self-blended, part, swap). "
             "--data REAL_CACHE --out FAKE_CACHE [--methods blend,part-eyes,...]",
    "pool": "real videos and photos -> a face pool for online training (wide face crops at source "
            "resolution, split by person; the stages train on it with --data POOL). "
            "--input DIR [DIR ...] --out POOL",
    "forge": "real videos -> forged videos (H.264) with full-frame masks and a manifest.csv, made "
             "as third-party tools make them (a fixed test set). --input DIR --out DIR",
    "recover": "stage 1: pretrain the space-time MAE on REAL clips (facial-part ROI masking). "
               "--data CACHE --run RUN_DIR",
    "finetune": "stage 1: fine-tune the MAE encoder as a real/fake classifier (score s1). "
                "--data CACHE|POOL --run RUN_DIR",
    "localize": "stage 2: mapping module + SE-UNet-SCSE localizer with meta-learning (score s2, "
                "masks). --data CACHE|POOL --run RUN_DIR",
    "dadf": "train the optional DADF head (SAM + multiscale adapters) alone; --stage localize "
            "trains it too when dadf.enabled. --data CACHE|POOL --run RUN_DIR",
    "evaluate": "detection (AUC, EER, ACC, AP) and localization (IoU, PBCA, IINC) tables. "
                "--data CACHE --run RUN_DIR [--split test]",
    "robustness": "AUC and verdicts after sharpening, blur, upscaling, noise, JPEG 40 of the "
                  "faces (no forgery). --data CACHE --run RUN_DIR [--split test] [--out DIR]",
    "score": "score videos and images, every face: scores.csv, results.jsonl, mask overlays, "
             "index.html. VIDEO|IMAGE|DIR|GLOB ... --out REPORT_DIR [--run RUN_DIR, default: the "
             "shipped model] [--set preprocess.max_faces=1|frame_sampling=exact|...]",
    "demo": "build the demo dataset from bundled real face videos and run every stage on it. "
            "[--out DEMO_DIR]",
    "release": "train the model the package ships from every real person (pool, held-out "
               "videos, training, evaluation, dev set). --config configs/release.yaml --out DIR",
    "export": "pack a trained, evaluated run into the package (fp16) as the shipped model. "
              "--run RUN_DIR [--out DIR, default models/release]",
}

EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    stage_help = "\n".join(f"  {name:<10} {text}" for name, text in STAGES.items())
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Delocate: two-stage deepfake video detection with per-pixel forgery masks.",
        epilog=f"stages:\n{stage_help}\n\nexit codes: 0 all good, 1 some inputs failed (the report "
               "says which), 2 bad usage or config.\nexample: python run_pipeline.py --stage "
               "preprocess --input videos/ --out cache/",
    )
    parser.add_argument("--stage", required=True, choices=list(STAGES), help="what to run (below)")
    parser.add_argument("inputs", nargs="*", help="videos, images, folders, globs (--stage score)")
    parser.add_argument("--config", help="YAML config (default: configs/cpu-tiny.yaml beside this)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set preprocess.num_frames=16")
    parser.add_argument("--input", help="preprocess: a folder, a glob, a video or a manifest .csv")
    parser.add_argument("--dataset", default="auto",
                        help="preprocess: auto, ffpp, celebdf, dfdc, deeperforensics, folder, "
                             "manifest (default: auto-detect)")
    parser.add_argument("--compression", default="c23", help="FaceForensics++: c0, c23 or c40")
    parser.add_argument("--data", help="a FaceClip cache folder (input of synth and the stages), "
                        "or a face pool (--stage pool) for finetune, localize and dadf to train "
                        "on online pairs")
    parser.add_argument("--run", help="a run folder (checkpoints, config.yaml, log.jsonl)")
    parser.add_argument("--out", help="output folder (cache, run or report, by stage)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (preprocess)")
    parser.add_argument("--retry-errors", action="store_true",
                        help="preprocess: retry videos that failed before "
                             "(default: keep the error)")
    parser.add_argument("--methods", default=None,
                        help="synth: comma-separated methods (blend, part-eyes, part-mouth, "
                             "part-nose, swap)")
    parser.add_argument("--split", default="test",
                        help="evaluate, robustness: the split to report (all: every clip)")
    parser.add_argument("--val-data", default=None,
                        help="evaluate: cache whose val split chooses the threshold (cross-dataset "
                             "mode; default: the val split of --data)")
    parser.add_argument("--aggregator", default=None, choices=["mean", "max", "confident"],
                        help="evaluate/score: frames -> video score (default from the config)")
    return parser


def _config(args):
    from delocate.common.config import load_config

    path = args.config or Path(__file__).resolve().parent / "configs" / "cpu-tiny.yaml"
    return load_config(path, args.overrides)


def _need(args, *names: str) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n)]
    if missing:
        raise UsageError(f"--stage {args.stage} needs {' and '.join(missing)}")


class UsageError(Exception):
    pass


def stage_preprocess(args, cfg) -> int:
    from delocate.common.log import info
    from delocate.preprocessing.datasets import discover
    from delocate.preprocessing.preprocess import run_preprocess

    _need(args, "input", "out")
    root, entries = discover(args.input, args.dataset, args.compression)
    info(f"{len(entries)} videos found under {root}")
    summary = run_preprocess(entries, args.out, cfg.preprocess, workers=args.workers,
                             retry_errors=args.retry_errors)
    print(f"preprocessed {summary.total} videos ({summary.done_now} now, {summary.skipped} "
          f"cached): {summary.total - summary.failed} ok, {summary.failed} failed -> "
          f"{summary.out_dir / 'index.csv'}")
    return summary.exit_code


def stage_synth(args, cfg) -> int:
    from delocate.preprocessing.synthesis import SynthOptions, run_synthesis

    _need(args, "data", "out")
    methods = args.methods.split(",") if args.methods else cfg.synth.methods
    counts = run_synthesis(args.data, args.out, [m.strip() for m in methods], cfg.synth.seed,
                           SynthOptions(cfg.synth.smoothness, cfg.synth.per_frame_flicker))
    made = ", ".join(f"{m}: {n}" for m, n in counts.items() if m != "skipped")
    print(f"synthesized fakes ({made}; {counts['skipped']} skipped) -> "
          f"{Path(args.out) / 'index.csv'}")
    return EXIT_OK


def _metric(value: float | None) -> str:
    """A selection metric for the one-line stage summaries ('n/a' when there was no validation)."""
    return "n/a" if value is None else f"{value:.4f}"


def stage_pool(args, cfg) -> int:
    from delocate.preprocessing.face_pool import assign_people, build_pool, find_sources

    _need(args, "input", "out")
    sources = assign_people(find_sources([args.input, *args.inputs]), cfg.pool)
    built = build_pool(sources, args.out, cfg.pool)
    splits = {split: sorted({s.person for s in built if s.split == split and (s.frames or
                                                                              split == "test")})
              for split in ("train", "val", "test")}
    print(f"face pool -> {args.out}: "
          + ", ".join(f"{len(p)} {k} people" for k, p in splits.items())
          + (f" (test, held out for --stage forge: {', '.join(splits['test'])})"
             if splits["test"] else ""))
    return EXIT_OK


def stage_forge(args, cfg) -> int:
    from delocate.preprocessing.face_pool import find_sources
    from delocate.preprocessing.forge_videos import forge_videos

    _need(args, "input", "out")
    videos = [(Path(s.path), s.person, "test") for s in find_sources([args.input, *args.inputs])
              if s.kind == "video"]
    if not videos:
        raise UsageError(f"no videos under {args.input}")
    manifest = forge_videos(videos, args.out, cfg.forge)
    print(f"forged videos -> {manifest} (preprocess with --input {manifest})")
    return EXIT_OK


def stage_release(args, cfg) -> int:
    from delocate.workflows.release import run_release

    _need(args, "out")
    return run_release(args.out, cfg)


def stage_export(args, cfg) -> int:
    from delocate.workflows.export import SHIPPED, export_run

    _need(args, "run")
    out = export_run(args.run, args.out or SHIPPED)
    print(f"exported {args.run} -> {out}")
    return EXIT_OK


def stage_recover(args, cfg) -> int:
    from delocate.stage1_recover.recover import gap_lines, run_recover

    _need(args, "data", "run")
    summary = run_recover(args.data, args.run, cfg)
    print(f"stage 1 pretraining: masked-patch loss on the training clips "
          f"{summary['train_loss_at_init']:.4f} at init -> {summary['train_loss_trained']:.4f}; "
          f"best validation {_metric(summary['best_val_loss'])} -> {summary['best_checkpoint']}")
    for line in gap_lines(summary["reconstruction_gap"]):
        print(f"  recovery error on {line}")
    for grid in summary["grids"]:
        print(f"  grid: {grid}")
    return EXIT_OK


def stage_finetune(args, cfg) -> int:
    from delocate.stage1_recover.finetune import run_finetune

    _need(args, "data", "run")
    summary = run_finetune(args.data, args.run, cfg)
    print(f"stage 1 fine-tuning: best validation AUC "
          f"{_metric(summary['best_val_auc'])} -> {summary['best_checkpoint']}")
    return EXIT_OK


def stage_localize(args, cfg) -> int:
    from delocate.stage2_localize.localize import run_localize

    _need(args, "data", "run")
    summary = run_localize(args.data, args.run, cfg)
    print(f"stage 2: best validation (frame AUC + fake-frame IoU) / 2 = "
          f"{_metric(summary['best_val_select'])} -> {summary['best_checkpoint']}")
    return EXIT_OK


def stage_dadf(args, cfg) -> int:
    from delocate.stage2_localize.dadf_train import run_dadf

    _need(args, "data", "run")
    summary = run_dadf(args.data, args.run, cfg)
    print(f"DADF head: best validation (frame AUC + IoU) / 2 = "
          f"{_metric(summary['best_val_select'])} -> {summary['best_checkpoint']}")
    return EXIT_OK


def stage_evaluate(args, cfg) -> int:
    from delocate.evaluation.evaluate import format_tables, run_evaluate

    _need(args, "data", "run")
    result = run_evaluate(args.data, args.run, args.split, args.val_data, args.out,
                          args.aggregator)
    print(format_tables(result))
    print(f"\nmetrics -> {Path(result['out_dir']) / 'metrics.json'}")
    return EXIT_OK


def stage_robustness(args, cfg) -> int:
    from delocate.evaluation.robustness import format_robustness, run_robustness

    _need(args, "data", "run")
    print(format_robustness(run_robustness(args.data, args.run, args.split, args.out)))
    return EXIT_OK


def stage_score(args, cfg) -> int:
    from delocate.common.config import load_config
    from delocate.evaluation.score import run_score
    from delocate.workflows.export import SHIPPED, shipped_run

    _need(args, "out")
    if not args.inputs:
        raise UsageError("--stage score needs videos, folders or globs to score")
    run = args.run or shipped_run()
    if run is None:
        raise UsageError(f"no --run given and this install ships no model ({SHIPPED} is empty): "
                         "train one (--stage demo or --stage release) and pass --run")
    if not args.run:
        print(f"using the shipped model: {run} (model card: {run / 'MODEL_CARD.md'})")
    # the run's own settings, with any preprocess.* overrides of this command (faces, sampling)
    config = load_config(Path(run) / "config.yaml",
                         [o for o in args.overrides if o.strip().startswith("preprocess.")])
    summary = run_score(args.inputs, run, args.out, args.workers, args.aggregator, config)
    inputs = f"{summary.videos} input" + ("" if summary.videos == 1 else "s")
    print(f"scored {inputs} ({summary.failed} failed, {summary.reused} reused) -> "
          f"{summary.out_dir / 'index.html'}, {summary.out_dir / 'scores.csv'}")
    return summary.exit_code


def stage_demo(args, cfg) -> int:
    from delocate.workflows.demo import run_demo

    return run_demo(args.out or "demo_output", cfg)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from delocate.common.config import ConfigError
    from delocate.preprocessing.datasets import LayoutError

    handler = globals()[f"stage_{args.stage}"]
    try:
        return handler(args, _config(args))
    except (UsageError, ConfigError, LayoutError, ValueError, FileNotFoundError) as err:
        # bad data or arguments (no clips in a split, a run dir without checkpoints, ...)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: work done is saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
