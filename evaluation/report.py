"""What a person opens: scores.csv, results.jsonl, per-video mask overlays and score plots,
index.html."""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np

from delocate.common.io import atomic_write_bytes, atomic_write_text
from delocate.preprocessing.faces import crop_affine

# s1 / s2 / dadf / face_frames are those of the face that decided (decided_by: 0 = the main face)
CSV_COLUMNS = ["video", "fake_score", "verdict", "s1", "s2", "dadf", "frames", "face_frames",
               "faces", "decided_by", "status", "error", "caution"]
SCORE_COLUMNS = ("fake_score", "s1", "s2", "dadf")


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def write_scores_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: _fmt(row.get(k)) for k in SCORE_COLUMNS}})
    atomic_write_text(path, buffer.getvalue())


def write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def paste_heatmap(frame: np.ndarray, prob: np.ndarray, crop_box: np.ndarray) -> np.ndarray:
    """Overlay a crop-space mask probability [S, S] on the full frame [H, W, 3] (RGB) through the
    crop box (in the frame's pixels): red-yellow where the detector sees a forgery."""
    size = prob.shape[0]
    inverse = cv2.invertAffineTransform(crop_affine(crop_box, size))
    height, width = frame.shape[:2]
    full = cv2.warpAffine(prob.astype(np.float32), inverse, (width, height),
                          flags=cv2.INTER_LINEAR, borderValue=0)
    heat = cv2.cvtColor(cv2.applyColorMap((np.clip(full, 0, 1) * 255).astype(np.uint8),
                                          cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    # invisible below 0.3, fully drawn from 0.7: the mask claims a forgery where p > 0.5
    alpha = (np.clip((full - 0.3) / 0.4, 0, 1) * 0.65)[..., None]
    out = frame.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha
    x0, y0, x1, y1 = [int(round(v)) for v in crop_box]
    out = np.clip(out, 0, 255).astype(np.uint8)
    cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 255), max(1, width // 400))
    return out


def overlay_strip(frames: np.ndarray, probs: np.ndarray, crop_boxes: np.ndarray,
                  labels: list[str], path: Path, height: int = 180, max_frames: int = 8) -> None:
    """A PNG strip of up to `max_frames` sampled frames with the predicted mask over each."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int))
    tiles = []
    for i in picks:
        tile = paste_heatmap(frames[i], probs[i], crop_boxes[i])
        scale = height / tile.shape[0]
        tile = cv2.resize(tile, (max(1, int(tile.shape[1] * scale)), height),
                          interpolation=cv2.INTER_AREA)
        cv2.putText(tile, labels[i], (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    atomic_write_bytes(path, png.tobytes())


def score_plot(frame_index: np.ndarray, curves: dict[str, np.ndarray], threshold: float,
               path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.2), dpi=100)
    for name, values in curves.items():
        if values is not None:
            ax.plot(frame_index, values, marker="o", markersize=3, label=name)
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("fake score")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_index_html(path: Path, rows: list[dict], info: dict) -> None:
    """A static page: the scores table, then each video's overlay strip and score plot."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in CSV_COLUMNS)
    body = []
    for row in rows:
        values = [_fmt(row.get(c)) if c in SCORE_COLUMNS else row.get(c, "") for c in CSV_COLUMNS]
        cells = "".join(f"<td>{esc(str(value))}</td>" for value in values)
        klass = "error" if row["status"] != "ok" else (
            "fake" if row["verdict"] == "fake" else "real")
        body.append(f'<tr class="{klass}">{cells}</tr>')
    sections = []
    for row in rows:
        if row["status"] != "ok":
            continue
        faces = row.get("face_scores") or [row]
        parts = []
        for face in faces:
            if len(faces) > 1:
                decides = " (decides the video)" if face.get("face") == row.get("decided_by") \
                    else ""
                box = ", ".join(f"{v:.0f}" for v in face.get("box", []))
                parts.append(f'<h4>face {face["face"] + 1} of {len(faces)} at [{esc(box)}] &mdash; '
                             f'{esc(face["verdict"])} ({_fmt(face["fake_score"])}){decides}</h4>')
            if face.get("overlay"):
                parts.append(f'<img class="strip" src="{esc(face["overlay"])}" '
                             f'alt="mask overlay of {esc(row["video"])}">')
            parts.append(f'<img class="plot" src="{esc(face["plot"])}" '
                         f'alt="per-frame scores of {esc(row["video"])}">')
        caution = f'<p class="caution">{esc(row["caution"])}</p>' if row.get("caution") else ""
        sections.append(
            f'<section class="video" id="{esc(row["clip"])}"><h3>{esc(row["video"])} &mdash; '
            f'{esc(row["verdict"])} ({_fmt(row["fake_score"])})</h3>{caution}{"".join(parts)}'
            '</section>')
    details = "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in info.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Delocate report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; }}
tr.fake td:nth-child(3) {{ color: #b00; font-weight: bold; }}
tr.real td:nth-child(3) {{ color: #070; font-weight: bold; }}
tr.error {{ background: #fee; }}
section.video {{ margin: 1.2em 0; }}
img.strip {{ max-width: 100%; display: block; }}
img.plot {{ display: block; margin-top: 4px; }}
p.caution {{ color: #a60; margin: 0.2em 0; }}
</style></head><body>
<h1>Delocate report</h1>
<ul>{details}</ul>
<h2>Scores</h2>
<table id="scores"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>Where: predicted forgery masks</h2>
{''.join(sections)}
</body></html>
"""
    atomic_write_text(path, page)
