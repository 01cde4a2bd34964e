"""Videos -> cached FaceClips: sampling, face track, crops, ROIs, masks; batch runner with resume.

Each video's outcome is persisted on its own, atomically: `<clip>.npz` on success, `<clip>.error.json`
with a one-line reason on failure. index.csv is rebuilt from those outcomes, so a run killed half-way
loses nothing, and a re-run skips every video already done with the same parameters.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import PreprocessConfig
from common.io import atomic_write_json
from common.log import info, progress
from preprocessing.datasets import VideoEntry
from preprocessing.faces import FaceAnalyzer, crop_square, to_crop_coords, warp_crop
from preprocessing.masks import (masks_from_difference, masks_from_mask_file,
                                 masks_from_mask_video)
from preprocessing.regions import clip_rois
from preprocessing.sample_cache import (FORMAT_VERSION, FaceClip, clip_id_for, params_digest,
                                        write_index)
from preprocessing.video_io import SampledFrames, VideoError, sample_frames

# parameters that change what a FaceClip contains (workers does not)
_CLIP_PARAMS = ["num_frames", "crop_size", "margin", "detect_max_side", "detect_upsample",
                "max_decode_side", "mask_threshold"]


def clip_params(cfg: PreprocessConfig) -> dict:
    params = {k: getattr(cfg, k) for k in _CLIP_PARAMS}
    params["format_version"] = FORMAT_VERSION
    return params


def faceclip_from_frames(frames: np.ndarray, analyzer: FaceAnalyzer, cfg: PreprocessConfig):
    """Face track + crops of decoded frames [T, H, W, 3]: (crops, landmarks, rois, found, boxes).

    Boxes are in the pixels of `frames`; landmarks and ROIs in crop pixels.
    """
    track = analyzer.track(frames)
    size = cfg.crop_size
    boxes = np.stack([crop_square(points, cfg.margin) for points in track.landmarks])
    crops = np.stack([warp_crop(frame, box, size) for frame, box in zip(frames, boxes)])
    landmarks = np.stack([to_crop_coords(points, box, size)
                          for points, box in zip(track.landmarks, boxes)])
    return crops, landmarks, clip_rois(landmarks, size), track.face_found, boxes


def preprocess_video(entry: VideoEntry, cfg: PreprocessConfig, analyzer: FaceAnalyzer,
                     sampled: SampledFrames | None = None) -> FaceClip:
    """One video -> FaceClip. Raises VideoError / ValueError with a one-line reason.

    `sampled`: frames already decoded from entry.path (e.g. one time segment of it).
    """
    if sampled is None:
        sampled = sample_frames(entry.path, cfg.num_frames, cfg.max_decode_side)
    crops, landmarks, rois, found, boxes = faceclip_from_frames(sampled.frames, analyzer, cfg)
    crop_box = (boxes / sampled.scale).astype(np.float32)  # back to source-frame pixels

    mask, mask_source = None, "none"
    if entry.label == 0:
        mask, mask_source = np.zeros(crops.shape[:3], np.uint8), "real"
    elif entry.mask_video is not None:
        mask_frames = sample_frames(entry.mask_video, cfg.num_frames, cfg.max_decode_side,
                                    indices=sampled.frame_index)
        mask = masks_from_mask_video(mask_frames, crop_box, cfg.crop_size)
        mask = _pad_frames(mask, len(crops))
        mask_source = "mask_video"
    elif entry.mask_file is not None:
        mask = masks_from_mask_file(entry.mask_file, sampled.frame_index, crop_box, sampled.scale,
                                    cfg.crop_size)
        mask_source = "mask_file"
    elif entry.source_video is not None:
        source = sample_frames(entry.source_video, cfg.num_frames, cfg.max_decode_side,
                               indices=sampled.frame_index)
        mask = masks_from_difference(sampled, source, crop_box, cfg.crop_size, cfg.mask_threshold)
        mask_source = "difference"

    meta = {
        "video": entry.rel, "label": entry.label, "method": entry.method, "source": entry.source,
        "split": entry.split, "dataset": entry.dataset, "fps": sampled.fps,
        "total_frames": sampled.total_frames, "source_size": list(sampled.source_size),
        "short_video": sampled.short_video, "decoder": sampled.backend, "mask_source": mask_source,
        "crop_size": cfg.crop_size, "preprocess": clip_params(cfg),
        "params_digest": params_digest(clip_params(cfg)),
    }
    return FaceClip(frames=crops, landmarks=landmarks, rois=rois, face_found=found,
                    frame_index=sampled.frame_index.astype(np.int32), crop_box=crop_box,
                    meta=meta, mask=mask)


def _pad_frames(mask: np.ndarray, count: int) -> np.ndarray:
    if len(mask) >= count:
        return mask[:count]
    pad = np.zeros((count - len(mask), *mask.shape[1:]), mask.dtype)
    return np.concatenate([mask, pad])


# --- batch runner ----------------------------------------------------------------------------------

@dataclass
class Job:
    entry: VideoEntry
    clip: str
    out_dir: Path


_WORKER: dict = {}


def _init_worker(cfg: PreprocessConfig) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: no oversubscription
    _WORKER["cfg"] = cfg
    _WORKER["analyzer"] = FaceAnalyzer(cfg.detect_max_side, cfg.detect_upsample)


def _error_row(job: Job, reason: str) -> dict:
    return {"clip": job.clip, "video": job.entry.rel, "label": job.entry.label,
            "method": job.entry.method, "split": job.entry.split, "face_frames": 0,
            "status": "error", "error": " ".join(reason.split())[:300]}


def _run_job(job: Job) -> dict:
    """Process one video in a worker; persist its outcome; return its index row."""
    cfg: PreprocessConfig = _WORKER["cfg"]
    npz, err_file = job.out_dir / f"{job.clip}.npz", job.out_dir / f"{job.clip}.error.json"
    try:
        clip = preprocess_video(job.entry, cfg, _WORKER["analyzer"])
    except (VideoError, ValueError, OSError) as exc:
        row = _error_row(job, str(exc))
    except Exception as exc:  # an unexpected bug must not stop the batch either: report it
        row = _error_row(job, f"internal error {type(exc).__name__}: {exc}")
        row["traceback"] = traceback.format_exc(limit=5)
    else:
        clip.save(npz)
        if err_file.exists():
            err_file.unlink()
        return row_for_clip(job.clip, clip)
    atomic_write_json(err_file, {**row, "params_digest": params_digest(clip_params(cfg))})
    row.pop("traceback", None)
    return row


def row_for_clip(clip_id: str, clip: FaceClip) -> dict:
    meta = clip.meta
    return {"clip": clip_id, "video": meta["video"], "label": meta["label"],
            "method": meta["method"], "split": meta.get("split", ""),
            "face_frames": int(clip.face_found.sum()), "status": "ok", "error": ""}


def _cached_row(job: Job, digest: str, retry_errors: bool) -> dict | None:
    """The index row of a video already done with the same parameters, else None."""
    npz = job.out_dir / f"{job.clip}.npz"
    if npz.is_file():
        try:
            clip = FaceClip.load(npz, frames=False)
            if clip.meta.get("params_digest") == digest:
                return row_for_clip(job.clip, clip)
        except Exception:  # unreadable leftovers are redone
            return None
    err_file = job.out_dir / f"{job.clip}.error.json"
    if err_file.is_file() and not retry_errors:
        try:
            row = json.loads(err_file.read_text())
        except ValueError:
            return None
        if row.get("params_digest") == digest:
            row.pop("params_digest", None)
            return row
    return None


@dataclass
class PreprocessSummary:
    total: int
    done_now: int
    skipped: int
    failed: int
    out_dir: Path

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_preprocess(entries: list[VideoEntry], out_dir: str | Path, cfg: PreprocessConfig,
                   workers: int | None = None, retry_errors: bool = False,
                   desc: str = "preprocess") -> PreprocessSummary:
    """Preprocess `entries` into `out_dir`, resuming; return counts. Never raises for a bad video."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or cfg.workers)
    digest = params_digest(clip_params(cfg))
    atomic_write_json(out_dir / "preprocess.json", {"params": clip_params(cfg), "digest": digest})

    jobs, seen = [], set()
    for entry in entries:
        clip = clip_id_for(entry.rel)
        if clip not in seen:
            seen.add(clip)
            jobs.append(Job(entry, clip, out_dir))
    rows = {}
    todo = []
    for job in jobs:
        cached = _cached_row(job, digest, retry_errors)
        if cached is None:
            todo.append(job)
        else:
            rows[job.clip] = cached
    if rows:
        info(f"{len(rows)} of {len(jobs)} videos already in {out_dir} with the same parameters: "
             "skipped")
    try:
        if workers == 1 or len(todo) <= 1:
            _init_worker(cfg)
            results = map(_run_job, todo)
            for row in progress(results, desc, total=len(todo), unit="video"):
                rows[row["clip"]] = row
        else:
            # fork would share dlib/decord state and OpenMP pools with the parent: spawn is safer
            context = mp.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
                results = pool.imap_unordered(_run_job, todo)
                for row in progress(results, desc, total=len(todo), unit="video"):
                    rows[row["clip"]] = row
    finally:
        # rebuilt even when interrupted: every finished video is already on disk
        write_index(out_dir, list(rows.values()) + [_interrupted_row(j) for j in todo
                                                    if j.clip not in rows])
    failed = sum(r["status"] != "ok" for r in rows.values())
    return PreprocessSummary(len(jobs), len(todo), len(jobs) - len(todo), failed, out_dir)


def _interrupted_row(job: Job) -> dict:
    row = _error_row(job, "not processed yet (run interrupted; run the same command again to resume)")
    row["status"] = "pending"
    return row

