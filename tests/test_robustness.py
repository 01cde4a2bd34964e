"""--stage robustness: benign processings of the face crops, scored by a run at its threshold."""
import json
import zlib
from dataclasses import replace

import cv2
import numpy as np
import pytest

from delocate.common.config import PreprocessConfig
from delocate.evaluation.detector import Detector
from delocate.evaluation.robustness import (PROCESSINGS, processed, run_robustness,
                                            summarize)
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.sample_cache import write_index
from delocate.run_pipeline import main
from delocate.workflows.export import shipped_run


@pytest.fixture(scope="module")
def clip(carphone):
    return preprocess_video(VideoEntry(carphone, "carphone.mp4", 0), PreprocessConfig(num_frames=6),
                            FaceAnalyzer())


def _detail(frames: np.ndarray) -> float:
    """High-frequency energy: the variance of the Laplacian, averaged over frames."""
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                          for f in frames]))


def test_each_processing_changes_the_face_as_named(clip):
    base = _detail(clip.frames)
    out = {name: processed(clip, name, np.random.default_rng(0)).frames for name in PROCESSINGS}
    assert out["none"] is clip.frames
    for name, frames in out.items():
        assert frames.shape == clip.frames.shape and frames.dtype == np.uint8, name
        if name != "none":
            assert np.abs(frames.astype(int) - clip.frames).mean() > 0.2, name
    assert _detail(out["sharpen"]) > 1.5 * base
    assert _detail(out["blur"]) < 0.8 * base and _detail(out["upscaled"]) < base
    again = processed(clip, "noise", np.random.default_rng(0)).frames
    assert np.array_equal(again, out["noise"])  # the same clip's noise on every run


def test_a_row_counts_verdicts_at_the_threshold():
    row = summarize(np.array([0, 0, 0, 1, 1]), np.array([0.2, 0.6, 0.7, 0.65, 0.9]), 0.6, 0)
    assert row["real_called_fake"] == 2 and row["fake_called_fake"] == 2
    assert row["auc"] == pytest.approx(5 / 6) and row["mean_real"] == pytest.approx(0.5)
    assert "auc_ci95" not in row


def test_the_stage_scores_every_processing_with_the_runs_threshold(clip, tmp_path, capsys):
    cache = tmp_path / "cache"
    fake = clip.frames.copy()
    fake[:, 60:120, 60:160] = 255 - fake[:, 60:120, 60:160]  # any other picture will do
    rows = []
    for name, frames, label in (("real", clip.frames, 0), ("fake", fake, 1)):
        replace(clip, frames=frames).save(cache / f"{name}.npz")
        rows.append({"clip": name, "video": f"{name}.mp4", "label": label,
                     "method": "real" if label == 0 else "blend", "split": "test", "faces": 1,
                     "face_frames": clip.num_frames, "status": "ok"})
    write_index(cache, rows)
    run = shipped_run()
    code = main(["--stage", "robustness", "--data", str(cache), "--run", str(run),
                 "--out", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert set(result["processings"]) == set(PROCESSINGS)
    assert all(f"\n  {name} " in printed for name in PROCESSINGS)
    detector = Detector(run)
    threshold = detector.threshold[0]
    assert result["threshold"] == pytest.approx(threshold)
    for name, row in result["processings"].items():
        rng = np.random.default_rng(zlib.crc32(b"real"))  # as the stage draws a clip's noise
        real = detector.predict_clip(processed(clip, name, rng)).fused
        assert row["mean_real"] == pytest.approx(real, abs=1e-6), name
        assert row["real_called_fake"] == int(real >= threshold), name
    # --stage release hands over the detector its evaluation loaded: the same rows
    again = run_robustness(cache, run, out_dir=tmp_path / "again", detector=detector)
    assert again["processings"] == result["processings"]
