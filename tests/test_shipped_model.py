"""The model the package ships (models/release): it loads, scores a clip, and is what --stage score
uses without --run."""
import csv
import html
import json

import numpy as np
from safetensors import safe_open

from delocate.common.config import PreprocessConfig, load_config
from delocate.evaluation.detector import Detector
from delocate.evaluation.rows import FaceScore
from delocate.preprocessing.datasets import VideoEntry
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.run_pipeline import main
from delocate.workflows.export import MAX_BYTES, shipped_run


def test_the_shipped_model_is_in_the_package_as_fp16_with_its_card():
    run = shipped_run()
    assert run is not None, "models/release holds no localize_best.safetensors"
    weights = sorted(run.glob("*.safetensors"))
    assert sum(w.stat().st_size for w in weights) <= MAX_BYTES
    for path in weights:
        with safe_open(str(path), "pt") as handle:
            dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
        assert {str(d) for d in dtypes} <= {"torch.float16", "torch.int64"}, path
    threshold = json.loads((run / "threshold.json").read_text())
    assert "val" in threshold["chosen_on"]  # chosen on validation data, never on a test set
    assert (run / "MODEL_CARD.md").is_file() and (run / "config.yaml").is_file()


def test_the_shipped_model_loads_and_scores_a_clip(carphone):
    detector = Detector(shipped_run())
    clip = preprocess_video(VideoEntry(carphone, "carphone.mp4", -1),
                            PreprocessConfig(num_frames=8), FaceAnalyzer())
    pred = detector.predict_clip(clip)
    assert 0.0 <= pred.fused <= 1.0 and np.isfinite(pred.s2)
    assert pred.masks.shape == (8, clip.size, clip.size)
    assert np.isfinite(pred.frame_fused()).all() and len(pred.frame_fused()) == 8


def test_stage2_reads_frames_at_the_evaluate_input_size(carphone):
    clip = preprocess_video(VideoEntry(carphone, "carphone.mp4", -1),
                            PreprocessConfig(num_frames=2), FaceAnalyzer())
    config = load_config(shipped_run() / "config.yaml")
    seen, run_ids = {}, set()
    for size in (0, 192):
        config.evaluate.input_size = size
        detector = Detector(shipped_run(), config)

        def record(module, args, size=size):
            seen.setdefault(size, tuple(args[0].shape[-2:]))

        detector.stage2.register_forward_pre_hook(record)
        pred = detector.predict_clip(clip)
        assert pred.masks.shape == (2, clip.size, clip.size)  # masks come back at crop size
        run_ids.add(detector.run_id)
    trained = config.localize.img_size
    assert seen == {0: (trained, trained), 192: (192, 192)}
    assert len(run_ids) == 2  # a report scored at one size is not reused for the other


def test_score_without_run_uses_the_shipped_model(short_carphone, tmp_path, capsys):
    code = main(["--stage", "score", str(short_carphone), "--out", str(tmp_path / "report")])
    assert code == 0
    assert "using the shipped model" in capsys.readouterr().out
    with (tmp_path / "report" / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and 0 <= float(rows[0]["fake_score"]) <= 1
    assert (tmp_path / "report" / "index.html").is_file()
    # the carphone face (176x144 video) is far under the shipped model's min_face_px (its card:
    # small real faces are called fake): the row says its score is unproven, on the page as well
    (result,) = [json.loads(line) for line in
                 (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    face_px = result["face_scores"][0]["face_px"]
    assert 30 < face_px < 80
    assert rows[0]["caution"].startswith(f"face ~{face_px:.0f} px, smaller than this model's "
                                         "min_face_px (120)")
    assert html.escape(rows[0]["caution"]) in (tmp_path / "report" / "index.html").read_text()


def test_a_caution_only_for_faces_under_the_size():
    face = FaceScore(0, 0.9, "fake", None, 0.9, None, 8, [0, 0, 64, 64], [], "", "", "",
                     face_px=49.0)
    assert face.caution(0) == ""  # off
    assert face.caution(49) == ""  # not under
    assert "~49 px, smaller than this model's min_face_px (50)" in face.caution(50)
    assert FaceScore(**{**face.__dict__, "face_px": 0.0}).caution(120) == ""  # size unknown
