"""--stage score: videos and images in, a report out (scores.csv, results.jsonl, overlays, plots,
index.html).

Every face track of a video is scored on its own; the video's score is the highest of them (the
forged face decides), and the report shows each face with its score, plot and mask overlay. Videos
are preprocessed on the fly into REPORT_DIR/cache with the run's own preprocessing settings (cached
and resumable), then scored one by one. A bad file becomes a row with its error and the batch goes
on; a video already scored by the same model (same run id) is not scored again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from delocate.common.config import Config
from delocate.common.io import atomic_save_npz, atomic_write_json
from delocate.common.log import info, progress
from delocate.evaluation.detector import Detector
from delocate.evaluation.report import (overlay_strip, score_plot, write_index_html, write_jsonl,
                                        write_scores_csv)
from delocate.evaluation.rows import FaceScore, ScoreRow
from delocate.preprocessing.datasets import LayoutError, VideoEntry, discover, media_under
from delocate.preprocessing.preprocess import clip_params, run_preprocess
from delocate.preprocessing.sample_cache import (FaceClip, clip_id_for, face_count, face_path,
                                                 read_index)
from delocate.preprocessing.video_io import VideoError, sample_frames


@dataclass
class ScoreSummary:
    videos: int
    failed: int
    reused: int
    out_dir: Path

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def collect_entries(inputs: list[str]) -> list[VideoEntry]:
    """Videos and images named by files, folders and globs; a path that does not exist becomes an
    entry too, so that it is reported as a failed row rather than stopping the batch."""
    entries: list[VideoEntry] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():  # every video file below it, whatever the layout
            videos = media_under(path)
            if not videos:
                info(f"{spec}: no videos or images found in this folder")
            entries.extend(VideoEntry(v, str(v), -1, "unknown", v.stem) for v in videos)
            continue
        try:
            _, found = discover(spec)
            entries.extend(found)
        except LayoutError:
            entries.append(VideoEntry(path, str(path), -1, "unknown", path.stem))
    unique: dict[str, VideoEntry] = {}
    for entry in entries:  # one row per file even when two inputs name it
        entry.rel = str(entry.path.resolve()) if entry.path.exists() else str(entry.path)
        unique.setdefault(entry.rel, entry)
    return list(unique.values())


def _source_frames(entry: VideoEntry, clip: FaceClip, detector: Detector
                   ) -> tuple[np.ndarray, float] | None:
    """The original sampled frames (to paste masks back where they belong) and their scale."""
    try:
        source = sample_frames(entry.path, indices=clip.frame_index,
                               max_side=detector.config.preprocess.max_decode_side)
    except VideoError:
        return None
    return source.frames, source.scale


def _media_name(clip_id: str, face: int, kind: str) -> str:
    return f"{clip_id}_{kind}" if face == 0 else f"{clip_id}_face{face}_{kind}"


def _score_face(detector: Detector, entry: VideoEntry, clip: FaceClip, clip_id: str, out: Path,
                threshold: float, source: tuple[np.ndarray, float] | None, faces: int
                ) -> FaceScore:
    """One face track: its scores, mask overlay strip, score plot and masks file."""
    face = int(clip.meta.get("face", 0))
    pred = detector.predict_clip(clip)
    verdict = "fake" if pred.fused >= threshold else "real"
    media = out / "media"
    overlay = media / _media_name(clip_id, face, "overlay.png")
    plot = media / _media_name(clip_id, face, "scores.png")
    masks_file = media / _media_name(clip_id, face, "masks.npz")
    frame_labels = [f"#{int(i)}" + (f" s2={pred.s2_frames[t]:.2f}" if pred.s2_frames is not None
                                    else "") for t, i in enumerate(clip.frame_index)]
    if pred.masks is not None:
        if source is not None:
            frames, boxes = source[0], clip.crop_box * source[1]
        else:
            frames, boxes = clip.frames, np.tile([0, 0, clip.size, clip.size], (clip.num_frames, 1))
        count = min(len(frames), clip.num_frames)
        overlay_strip(frames[:count], pred.masks[:count].astype(np.float32), boxes[:count],
                      frame_labels[:count], overlay)
        atomic_save_npz(masks_file, mask=(pred.masks.astype(np.float32) * 255).round()
                        .astype(np.uint8), crop_box=clip.crop_box, frame_index=clip.frame_index)
    who = f" face {face + 1} of {faces}" if faces > 1 else ""
    score_plot(clip.frame_index, {"s1": pred.s1_frames, "s2": pred.s2_frames,
                                  "dadf": pred.dadf_frames, "fused": pred.frame_fused()},
               threshold, plot,
               f"{Path(entry.rel).name}{who}: fused {pred.fused:.3f} ({verdict})")
    frames_info = [{"frame_index": int(clip.frame_index[t]), "face_found": bool(clip.face_found[t]),
                    "detect_pass": int(clip.detect_pass[t]),
                    "s1": None if pred.s1_frames is None else float(pred.s1_frames[t]),
                    "s2": None if pred.s2_frames is None else float(pred.s2_frames[t]),
                    "dadf": None if pred.dadf_frames is None else float(pred.dadf_frames[t]),
                    "fused": float(pred.frame_fused()[t])} for t in range(clip.num_frames)]
    boxes = clip.crop_box[clip.face_found] if clip.face_found.any() else clip.crop_box
    # the crop square's side is preprocessing's margin x the landmark box's larger side
    face_px = float(np.median(boxes[:, 2] - boxes[:, 0])) / detector.config.preprocess.margin
    return FaceScore(face, pred.fused, verdict, pred.s1, pred.s2, pred.dadf,
                     int(clip.face_found.sum()), [round(float(v), 1) for v in boxes.mean(axis=0)],
                     frames_info, str(overlay.relative_to(out)) if overlay.exists() else "",
                     str(plot.relative_to(out)),
                     str(masks_file.relative_to(out)) if masks_file.exists() else "",
                     round(face_px, 1))


def _score_one(detector: Detector, entry: VideoEntry, clip_id: str, faces: int, cache: Path,
               out: Path, threshold: float) -> ScoreRow:
    """Every face of a video scored; the video's score is the highest (the forged face decides)."""
    clips = [FaceClip.load(face_path(cache, clip_id, face)) for face in range(faces)]
    source = _source_frames(entry, clips[0], detector)  # every face shares the sampled frames
    records = [_score_face(detector, entry, clip, clip_id, out, threshold, source, faces)
               for clip in clips]
    main = clips[0]
    return ScoreRow.scored(
        entry.rel, clip_id, records, main.num_frames, detector.config.evaluate.min_face_px,
        threshold=threshold,
        aggregator=detector.aggregator, model_run_id=detector.run_id,
        input="image" if main.meta.get("decoder") == "image" else "video",
        sampling=main.meta.get("sampling", "exact"), preprocessing=main.meta.get("preprocess", {}))


def _earlier_row(path: Path) -> ScoreRow | None:
    """The row this report saved for an input before (None when there is none or it is unusable)."""
    try:
        return ScoreRow.from_dict(json.loads(path.read_text())) if path.is_file() else None
    except (ValueError, TypeError):
        return None


def run_score(inputs: list[str], run_dir: str | Path, out_dir: str | Path,
              workers: int | None = None, aggregator: str | None = None,
              config: Config | None = None) -> ScoreSummary:
    """Score `inputs` with the run's model; `config`: the run's config with changes (e.g. to
    preprocessing: how many faces, which sampling), else the run's own."""
    out = Path(out_dir)
    detector = Detector(run_dir, config=config, aggregator=aggregator)
    threshold, threshold_source = detector.threshold
    entries = collect_entries(inputs)
    if not entries:
        raise LayoutError("no videos to score")
    cache = out / "cache"
    run_preprocess(entries, cache, detector.config.preprocess, workers=workers,
                   desc="score: preprocess")
    index = {row["clip"]: row for row in read_index(cache)}
    params = clip_params(detector.config.preprocess)
    rows, failed, reused = [], 0, 0
    for entry in progress(entries, "score", unit="video"):
        clip_id = clip_id_for(entry.rel)
        result_file = out / "results" / f"{clip_id}.json"
        pre = index.get(clip_id, {"status": "error", "error": "not preprocessed"})
        earlier = _earlier_row(result_file)
        if pre["status"] != "ok":
            row = ScoreRow.failed(entry.rel, clip_id, pre["error"], detector.run_id)
            failed += 1
        elif (earlier is not None and earlier.model_run_id == detector.run_id
              and earlier.threshold == threshold and earlier.aggregator == detector.aggregator
              and earlier.preprocessing == params):
            row = earlier  # already scored by this model, threshold, aggregator and preprocessing
            row.set_caution(detector.config.evaluate.min_face_px)
            reused += 1
        else:
            try:
                row = _score_one(detector, entry, clip_id, face_count(pre), cache, out, threshold)
            except Exception as exc:  # one broken video must not end the batch
                row = ScoreRow.failed(entry.rel, clip_id,
                                      f"scoring failed: {type(exc).__name__}: {exc}",
                                      detector.run_id)
                failed += 1
            else:
                atomic_write_json(result_file, row.to_dict())
        rows.append(row.to_dict())
    if reused:
        info(f"{reused} videos already scored by model {detector.run_id}: reused")
    write_scores_csv(out / "scores.csv", rows)
    write_jsonl(out / "results.jsonl", rows)
    write_index_html(out / "index.html", rows, {
        "model run": str(Path(run_dir).resolve()), "model run id": detector.run_id,
        "threshold": f"{threshold:.4f} ({threshold_source})", "aggregator": detector.aggregator,
        "branches": ", ".join(detector.branches),
        "fused score": detector.fusion.describe(),
        "preprocessing": json.dumps(clip_params(detector.config.preprocess)),
        "videos": len(rows), "failed": failed})
    return ScoreSummary(len(rows), failed, reused, out)
