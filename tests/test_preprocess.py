"""The batch runner: bad input never crashes a batch, exit codes, resume after a kill."""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from delocate.preprocessing.sample_cache import FaceClip, read_index
from delocate.run_pipeline import main

from conftest import ROOT, make_video


def _write_manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "method", "source", "split"])
        for rel, label in rows:
            writer.writerow([rel, label, "", "", ""])
    return path


def test_bad_inputs_in_one_batch(tmp_path, carphone, bigbuckbunny):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "random.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    (videos / "notes.txt").write_text("this is not a video\n")
    make_video(bigbuckbunny, videos / "noface.mp4", frames=20)
    make_video(carphone, videos / "five.mp4", frames=5)
    make_video(carphone, videos / "gray.mp4", frames=12, pix_fmt="gray")
    make_video(carphone, videos / "huge.mp4", frames=4, vf="scale=3840:2160")
    make_video(carphone, videos / "good.mp4", frames=24)
    names = ["zero.mp4", "random.mp4", "notes.txt", "missing.mp4", "noface.mp4", "five.mp4",
             "gray.mp4", "huge.mp4", "good.mp4"]
    manifest = _write_manifest(videos / "manifest.csv", [(n, "real") for n in names])
    cache = tmp_path / "cache"

    code = main(["--stage", "preprocess", "--input", str(manifest), "--out", str(cache),
                 "--set", "preprocess.num_frames=8"])
    assert code == 1  # some failed

    rows = {r["video"]: r for r in read_index(cache)}
    assert set(rows) == set(names)
    failed = {"zero.mp4": "empty", "random.mp4": "not a readable video",
              "notes.txt": "not a readable video", "missing.mp4": "not found",
              "noface.mp4": "no face found"}
    for name, reason in failed.items():
        assert rows[name]["status"] == "error", name
        assert reason in rows[name]["error"], (name, rows[name]["error"])
        assert "\n" not in rows[name]["error"]
    # the face-less video was searched at every detection pass, and the time it took is reported
    assert re.search(r"searched at \d+ px / \d+ px / \d+ px; \d+\.\d s\)",
                     rows["noface.mp4"]["error"])
    for name in ["five.mp4", "gray.mp4", "huge.mp4", "good.mp4"]:
        assert rows[name]["status"] == "ok", (name, rows[name]["error"])
        clip = FaceClip.load(cache / f"{rows[name]['clip']}.npz")
        assert clip.frames.shape[1:] == (224, 224, 3)
        assert int(rows[name]["face_frames"]) >= clip.num_frames - 1
    five = FaceClip.load(cache / f"{rows['five.mp4']['clip']}.npz")
    assert five.frame_index.tolist() == [0, 1, 2, 3, 4] and five.meta["short_video"]
    huge = FaceClip.load(cache / f"{rows['huge.mp4']['clip']}.npz")
    assert huge.meta["source_size"] == [3840, 2160]
    assert huge.crop_box[:, 2].max() > 1000  # crop box in source pixels, not decoded pixels

    # a second run redoes nothing: every video, failed or not, is already settled
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert main(["--stage", "preprocess", "--input", str(manifest), "--out", str(cache),
                 "--set", "preprocess.num_frames=8"]) == 1
    after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {k: v for k, v in after.items() if k.endswith(".npz")} == \
        {k: v for k, v in before.items() if k.endswith(".npz")}


def test_good_batch_exits_zero_and_changed_parameters_redo(tmp_path, short_carphone):
    code = main(["--stage", "preprocess", "--input", str(short_carphone), "--out",
                 str(tmp_path / "c"), "--set", "preprocess.num_frames=6"])
    assert code == 0
    (row,) = read_index(tmp_path / "c")
    clip = FaceClip.load(tmp_path / "c" / f"{row['clip']}.npz")
    assert clip.num_frames == 6
    assert main(["--stage", "preprocess", "--input", str(short_carphone), "--out",
                 str(tmp_path / "c"), "--set", "preprocess.num_frames=4"]) == 0
    assert FaceClip.load(tmp_path / "c" / f"{row['clip']}.npz").num_frames == 4


def test_bad_usage_exits_two(tmp_path):
    assert main(["--stage", "preprocess", "--out", str(tmp_path)]) == 2
    assert main(["--stage", "preprocess", "--input", str(tmp_path / "none"), "--out",
                 str(tmp_path)]) == 2
    assert main(["--stage", "preprocess", "--input", str(tmp_path), "--out", str(tmp_path),
                 "--set", "preprocess.no_such_key=1"]) == 2


def test_killed_run_resumes_without_redoing_finished_videos(tmp_path, short_carphone):
    videos = tmp_path / "videos"
    for i in range(8):
        make_video(short_carphone, videos / f"v{i}.mp4", vf=f"crop=iw-{2 * i}:ih-{2 * i}")
    cache = tmp_path / "cache"
    cmd = [sys.executable, str(ROOT / "run_pipeline.py"), "--stage", "preprocess", "--input",
           str(videos), "--out", str(cache)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*.npz"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert 2 <= len(finished) < 8, "the kill should land half-way through the batch"
    for name in finished:  # what was finished is whole: it loads
        FaceClip.load(cache / name)

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(finished)} of 8 videos already in" in result.stderr
    rows = read_index(cache)
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    for name, mtime in finished.items():
        assert (cache / name).stat().st_mtime_ns == mtime  # not redone
