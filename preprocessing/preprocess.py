"""Videos and images -> cached FaceClips: sampling, face tracks, crops, ROIs, masks; batch runner
with resume.

Each video's outcome is persisted on its own, atomically: `<clip>.npz` on success,
`<clip>.error.json` with a one-line reason on failure. index.csv is rebuilt from those outcomes, so
a run killed half-way loses nothing, and a re-run skips every video already done with the same
parameters.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from delocate.common.config import PreprocessConfig
from delocate.common.io import atomic_write_json
from delocate.common.log import info, progress
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import (FaceAnalyzer, FaceTrack, crop_square, to_crop_coords,
                                          warp_crop)
from delocate.preprocessing.masks import (masks_from_difference, masks_from_mask_file,
                                          masks_from_mask_video)
from delocate.preprocessing.regions import clip_rois
from delocate.preprocessing.sample_cache import (FORMAT_VERSION, ClipCache, FaceClip, clip_id_for,
                                                 face_path, params_digest, write_index)
from delocate.preprocessing.video_io import SampledFrames, VideoError, sample_frames

# parameters that change what a FaceClip contains (workers does not)
_CLIP_PARAMS = ["num_frames", "crop_size", "margin", "detect_max_side", "detect_upsample",
                "detect_escalation", "min_face_size", "max_faces", "min_track_fraction",
                "min_face_score", "frame_sampling", "max_decode_side", "mask_threshold"]


def clip_params(cfg: PreprocessConfig) -> dict:
    params = {k: getattr(cfg, k) for k in _CLIP_PARAMS}
    params["format_version"] = FORMAT_VERSION
    return params


def crop_track(frames: np.ndarray, track: FaceTrack, cfg: PreprocessConfig):
    """Crops of one face track over decoded frames [T, H, W, 3]: (crops, landmarks, rois, boxes).

    Boxes are in the pixels of `frames`; landmarks and ROIs in crop pixels.
    """
    size = cfg.crop_size
    boxes = np.stack([crop_square(points, cfg.margin) for points in track.landmarks])
    crops = np.stack([warp_crop(frame, box, size) for frame, box in zip(frames, boxes)])
    landmarks = np.stack([to_crop_coords(points, box, size)
                          for points, box in zip(track.landmarks, boxes)])
    return crops, landmarks, clip_rois(landmarks, size), boxes


class _MaskSource:
    """Where a video's ground-truth masks come from, read once for all its faces."""

    def __init__(self, entry: VideoEntry, sampled: SampledFrames, cfg: PreprocessConfig):
        self.entry, self.sampled, self.cfg = entry, sampled, cfg
        self.kind, self.frames = "none", None
        if entry.label == 0:
            self.kind = "real"
        elif entry.mask_video is not None:
            self.kind = "mask_video"
            self.frames = sample_frames(entry.mask_video, cfg.num_frames, cfg.max_decode_side,
                                        indices=sampled.frame_index)
        elif entry.mask_file is not None:
            self.kind = "mask_file"
        elif entry.source_video is not None:
            self.kind = "difference"
            self.frames = sample_frames(entry.source_video, cfg.num_frames, cfg.max_decode_side,
                                        indices=sampled.frame_index)

    def masks(self, crop_box: np.ndarray, count: int) -> np.ndarray | None:
        """uint8 [T, S, S] masks of the face whose crop square (source pixels) is `crop_box`."""
        size, sampled = self.cfg.crop_size, self.sampled
        if self.kind == "real":
            return np.zeros((count, size, size), np.uint8)
        if self.kind == "mask_video":
            return _pad_frames(masks_from_mask_video(self.frames, crop_box, size), count)
        if self.kind == "mask_file":
            return masks_from_mask_file(self.entry.mask_file, sampled.frame_index, crop_box,
                                        sampled.scale, size)
        if self.kind == "difference":
            return masks_from_difference(sampled, self.frames, crop_box, size,
                                         self.cfg.mask_threshold)
        return None


def preprocess_faces(entry: VideoEntry, cfg: PreprocessConfig, analyzer: FaceAnalyzer,
                     sampled: SampledFrames | None = None, max_faces: int | None = None
                     ) -> list[FaceClip]:
    """One video (or image) -> a FaceClip per face track, the main face first. Raises VideoError /
    ValueError with a one-line reason.

    `sampled`: frames already decoded from entry.path (e.g. one time segment of it).
    """
    if sampled is None:
        sampled = sample_frames(entry.path, cfg.num_frames, cfg.max_decode_side,
                                sampling=cfg.frame_sampling)
    tracks = analyzer.tracks(sampled.frames, max_faces=max_faces)
    truth = _MaskSource(entry, sampled, cfg)
    meta = {
        "video": entry.rel, "label": entry.label, "method": entry.method, "source": entry.source,
        "split": entry.split, "dataset": entry.dataset, "fps": sampled.fps,
        "total_frames": sampled.total_frames, "source_size": list(sampled.source_size),
        "short_video": sampled.short_video, "decoder": sampled.backend,
        "sampling": sampled.sampling, "mask_source": truth.kind, "crop_size": cfg.crop_size,
        "preprocess": clip_params(cfg), "params_digest": params_digest(clip_params(cfg)),
        "faces": len(tracks),
    }
    clips = []
    for face, track in enumerate(tracks):
        crops, landmarks, rois, boxes = crop_track(sampled.frames, track, cfg)
        crop_box = (boxes / sampled.scale).astype(np.float32)  # back to source-frame pixels
        clips.append(FaceClip(frames=crops, landmarks=landmarks, rois=rois,
                              face_found=track.face_found,
                              frame_index=sampled.frame_index.astype(np.int32), crop_box=crop_box,
                              meta={**meta, "face": face}, mask=truth.masks(crop_box, len(crops)),
                              detect_pass=track.detect_pass))
    return clips


def preprocess_video(entry: VideoEntry, cfg: PreprocessConfig, analyzer: FaceAnalyzer,
                     sampled: SampledFrames | None = None) -> FaceClip:
    """One video -> the FaceClip of its main face (what training reads)."""
    return preprocess_faces(entry, cfg, analyzer, sampled, max_faces=1)[0]


def _pad_frames(mask: np.ndarray, count: int) -> np.ndarray:
    if len(mask) >= count:
        return mask[:count]
    pad = np.zeros((count - len(mask), *mask.shape[1:]), mask.dtype)
    return np.concatenate([mask, pad])


# --- batch runner ---------------------------------------------------------------------------------

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
    _WORKER["analyzer"] = FaceAnalyzer.from_config(cfg)


def _error_row(job: Job, reason: str) -> dict:
    return {"clip": job.clip, "video": job.entry.rel, "label": job.entry.label,
            "method": job.entry.method, "split": job.entry.split, "face_frames": 0,
            "status": "error", "error": " ".join(reason.split())[:300]}


def _run_job(job: Job) -> dict:
    """Process one video in a worker; persist its outcome; return its index row."""
    cfg: PreprocessConfig = _WORKER["cfg"]
    err_file = job.out_dir / f"{job.clip}.error.json"
    try:
        clips = preprocess_faces(job.entry, cfg, _WORKER["analyzer"])
    except (VideoError, ValueError, OSError) as exc:
        row = _error_row(job, str(exc))
    except Exception as exc:  # an unexpected bug must not stop the batch either: report it
        row = _error_row(job, f"internal error {type(exc).__name__}: {exc}")
        row["traceback"] = traceback.format_exc(limit=5)
    else:
        for stale in ClipCache(job.out_dir).other_faces(job.clip):  # from a run with more faces
            stale.unlink()
        for face in range(len(clips) - 1, -1, -1):  # the main face last: it marks the video done
            clips[face].save(face_path(job.out_dir, job.clip, face))
        if err_file.exists():
            err_file.unlink()
        return row_for_clip(job.clip, clips[0])
    atomic_write_json(err_file, {**row, "params_digest": params_digest(clip_params(cfg))})
    row.pop("traceback", None)
    return row


def row_for_clip(clip_id: str, clip: FaceClip) -> dict:
    meta = clip.meta
    return {"clip": clip_id, "video": meta["video"], "label": meta["label"],
            "method": meta["method"], "split": meta.get("split", ""),
            "face_frames": int(clip.face_found.sum()), "faces": int(meta.get("faces", 1)),
            "status": "ok", "error": ""}


def _cached_row(job: Job, digest: str, retry_errors: bool) -> dict | None:
    """The index row of a video already done with the same parameters, else None."""
    npz = face_path(job.out_dir, job.clip)
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
    """Preprocess `entries` into `out_dir`, resuming; return counts. Never raises for a bad
    video."""
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
    row = _error_row(job, "not processed yet (run interrupted; run the same command again to "
                          "resume)")
    row["status"] = "pending"
    return row
