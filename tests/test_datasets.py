"""Dataset layouts built from short real clips: discovery (labels, methods, splits, mask sources)
and the masks that preprocessing derives from them."""
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from delocate.common.config import PreprocessConfig
from delocate.preprocessing.datasets import LayoutError, detect_dataset, discover
from delocate.preprocessing.entries import hash_split
from delocate.preprocessing.faces import FaceAnalyzer
from delocate.preprocessing.preprocess import preprocess_video
from delocate.preprocessing.sample_cache import FaceClip, face_path, write_index
from delocate.training.inputs import select_rows

from conftest import make_video

# the manipulated region in source pixels of the 176x144 carphone clip (over the mouth)
BOX = dict(x=66, y=82, w=40, h=24)
FAKE_VF = "drawbox=x={x}:y={y}:w={w}:h={h}:color=white@0.7:t=fill".format(**BOX)
MASK_VF = ("drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill,"
           "drawbox=x={x}:y={y}:w={w}:h={h}:color=white:t=fill").format(**BOX)
CFG = PreprocessConfig(num_frames=6)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, carphone):
    folder = tmp_path_factory.mktemp("src")
    return {
        "real": make_video(carphone, folder / "real.mp4", frames=16),
        "real_b": make_video(carphone, folder / "real_b.mp4", frames=16, vf="hflip"),
        "fake": make_video(carphone, folder / "fake.mp4", frames=16, vf=FAKE_VF),
        "mask": make_video(carphone, folder / "mask.mp4", frames=16, vf=MASK_VF),
    }


def _put(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory, clips):
    root = tmp_path_factory.mktemp("ffpp")
    originals = root / "original_sequences/youtube/c23/videos"
    for vid in ["000", "001", "002", "003"]:
        _put(clips["real"], originals / f"{vid}.mp4")
    for method in ["Deepfakes", "Face2Face"]:
        for pair in ["000_001", "001_000", "002_003", "003_002"]:
            _put(clips["fake"], root / f"manipulated_sequences/{method}/c23/videos/{pair}.mp4")
    _put(clips["mask"], root / "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4")
    (root / "splits").mkdir()
    (root / "splits/train.json").write_text(json.dumps([["000", "001"]]))
    (root / "splits/test.json").write_text(json.dumps([["002", "003"]]))
    return root


def _expected_mask_in_crop(clip) -> np.ndarray:
    """The drawn box mapped through each frame's crop_box into crop pixels: bool [T, S, S]."""
    size = clip.size
    out = np.zeros((clip.num_frames, size, size), bool)
    for t, (x0, y0, x1, y1) in enumerate(clip.crop_box):
        scale = size / (x1 - x0)
        bx0, by0 = (BOX["x"] - x0) * scale, (BOX["y"] - y0) * scale
        bx1, by1 = (BOX["x"] + BOX["w"] - x0) * scale, (BOX["y"] + BOX["h"] - y0) * scale
        out[t, max(0, int(by0)):int(by1), max(0, int(bx0)):int(bx1)] = True
    return out


def _mask_matches_box(clip, min_iou: float) -> None:
    expected = _expected_mask_in_crop(clip)
    got = clip.mask > 127
    iou = (expected & got).sum() / (expected | got).sum()
    assert iou >= min_iou, iou


def test_ffpp_discovery(ffpp):
    assert detect_dataset(ffpp) == "ffpp"
    root, entries = discover(ffpp)
    by_rel = {e.rel: e for e in entries}
    assert len(entries) == 4 + 8
    real = by_rel["original_sequences/youtube/c23/videos/002.mp4"]
    assert (real.label, real.method, real.split, real.source) == (0, "real", "test", "002")
    fake = by_rel["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"]
    assert (fake.label, fake.method, fake.split, fake.source) == (1, "Deepfakes", "train", "000")
    assert fake.mask_video is not None and fake.source_video.name == "000.mp4"
    f2f = by_rel["manipulated_sequences/Face2Face/c23/videos/003_002.mp4"]
    assert (f2f.method, f2f.split, f2f.mask_video) == ("Face2Face", "test", None)
    assert {e.method for e in entries} == {"real", "Deepfakes", "Face2Face"}


def test_ffpp_masks_from_mask_video_and_from_difference(ffpp):
    _, entries = discover(ffpp)
    by_rel = {e.rel: e for e in entries}
    analyzer = FaceAnalyzer()
    with_mask_video = preprocess_video(
        by_rel["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"], CFG, analyzer)
    assert with_mask_video.meta["mask_source"] == "mask_video"
    _mask_matches_box(with_mask_video, 0.8)
    from_difference = preprocess_video(
        by_rel["manipulated_sequences/Face2Face/c23/videos/001_000.mp4"], CFG, analyzer)
    assert from_difference.meta["mask_source"] == "difference"
    _mask_matches_box(from_difference, 0.6)


def test_ffpp_missing_parts_are_named(tmp_path):
    (tmp_path / "original_sequences").mkdir()
    with pytest.raises(LayoutError) as err:
        discover(tmp_path, "ffpp")
    assert "original videos" in str(err.value) and "manipulated videos" in str(err.value)
    with pytest.raises(LayoutError, match="compression"):
        discover(tmp_path, "ffpp", compression="c99")


def test_celebdf_discovery_and_difference_masks(tmp_path, clips):
    root = tmp_path / "Celeb-DF-v2"
    _put(clips["real"], root / "Celeb-real/id0_0000.mp4")
    _put(clips["real_b"], root / "Celeb-real/id1_0000.mp4")
    _put(clips["fake"], root / "Celeb-synthesis/id0_id1_0000.mp4")
    _put(clips["real_b"], root / "YouTube-real/00000.mp4")
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n")
    assert detect_dataset(root) == "celebdf"
    _, entries = discover(root)
    by_rel = {e.rel: e for e in entries}
    fake = by_rel["Celeb-synthesis/id0_id1_0000.mp4"]
    assert (fake.label, fake.split, fake.source) == (1, "test", "id0")
    assert fake.source_video.name == "id0_0000.mp4"
    assert by_rel["YouTube-real/00000.mp4"].split == "test"
    assert by_rel["Celeb-real/id1_0000.mp4"].label == 0
    assert by_rel["Celeb-real/id1_0000.mp4"].split in {"train", "val"}
    clip = preprocess_video(fake, CFG, FaceAnalyzer())
    assert clip.meta["mask_source"] == "difference"
    _mask_matches_box(clip, 0.6)


def test_celebdf_without_test_list_says_so(tmp_path):
    (tmp_path / "Celeb-real").mkdir()
    (tmp_path / "Celeb-synthesis").mkdir()
    with pytest.raises(LayoutError, match="List_of_testing_videos.txt"):
        discover(tmp_path, "celebdf")


def test_dfdc_discovery(tmp_path, clips):
    part = tmp_path / "dfdc_train_part_0"
    _put(clips["real"], part / "aaa.mp4")
    _put(clips["fake"], part / "bbb.mp4")
    (part / "metadata.json").write_text(json.dumps({
        "aaa.mp4": {"label": "REAL", "split": "train"},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
    }))
    assert detect_dataset(tmp_path) == "dfdc"
    _, entries = discover(tmp_path)
    by_rel = {e.rel: e for e in entries}
    real, fake = by_rel["dfdc_train_part_0/aaa.mp4"], by_rel["dfdc_train_part_0/bbb.mp4"]
    assert (real.label, fake.label) == (0, 1)
    assert real.source == fake.source == "aaa"  # a fake and its original share one split
    assert real.split == fake.split and real.split in {"train", "val"}
    assert fake.source_video == part / "aaa.mp4"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match="metadata.json"):
        discover(empty, "dfdc")


def test_deeperforensics_and_plain_folder(tmp_path, clips):
    df = tmp_path / "df"
    _put(clips["real"], df / "source_videos/M004/front.mp4")
    _put(clips["fake"], df / "manipulated_videos/end_to_end/000_M004.mp4")
    (df / "lists/splits").mkdir(parents=True)
    (df / "lists/splits/test.txt").write_text("end_to_end/000_M004.mp4\n")
    _, entries = discover(df)
    methods = {e.rel: (e.label, e.method, e.split) for e in entries}
    assert methods["manipulated_videos/end_to_end/000_M004.mp4"] == (1, "end_to_end", "test")
    assert methods["source_videos/M004/front.mp4"][:2] == (0, "real")

    plain = tmp_path / "plain"
    _put(clips["real"], plain / "real/a.mp4")
    _put(clips["fake"], plain / "fake/FaceSwap/b.mp4")
    _, entries = discover(plain)
    assert {(e.rel, e.label, e.method) for e in entries} == {
        ("real/a.mp4", 0, "real"), ("fake/FaceSwap/b.mp4", 1, "FaceSwap")}


def test_one_split_rule_from_discovery_to_training(tmp_path):
    """A source its dataset leaves unassigned gets its split once, at discovery (70/15/15 by source
    id, a fake with its real source); a cache written before that (empty split column) is read with
    the very same rule by training."""
    drawn = Counter(hash_split(f"person{i}") for i in range(3000))
    assert {k: round(v / 3000, 2) for k, v in drawn.items()} == pytest.approx(
        {"train": 0.7, "val": 0.15, "test": 0.15}, abs=0.03)
    assert {hash_split(f"person{i}", 0.1, test_share=0) for i in range(300)} == {"train", "val"}

    manifest = tmp_path / "manifest.csv"
    people = [f"person{i}" for i in range(12)]
    lines = ["path,label,method,source"]
    for person in people:
        lines += [f"{person}.mp4,0,real,{person}", f"{person}_fake.mp4,1,blend,{person}"]
    manifest.write_text("\n".join(lines) + "\n")
    _, entries = discover(manifest)
    split_of = {e.rel: e.split for e in entries}
    for person in people:
        assert split_of[f"{person}.mp4"] == split_of[f"{person}_fake.mp4"] == hash_split(person)
    assert len(set(split_of.values())) > 1

    cache = tmp_path / "old_cache"
    for person in people[:4]:
        clip = FaceClip(frames=np.zeros((2, 8, 8, 3), np.uint8),
                        landmarks=np.zeros((2, 68, 2), np.float32),
                        rois=np.zeros((2, 3, 4), np.int16),
                        face_found=np.ones(2, bool), frame_index=np.arange(2, dtype=np.int32),
                        crop_box=np.zeros((2, 4), np.float32), meta={"source": person})
        clip.save(face_path(cache, person))
    write_index(cache, [{"clip": p, "video": f"{p}.mp4", "label": 0, "method": "real", "split": "",
                         "status": "ok"} for p in people[:4]])
    assert {r.clip: r.split for r in select_rows(cache)} == {p: hash_split(p) for p in people[:4]}


def test_manifest_identity_column_names_the_source(tmp_path):
    """Where a manifest keeps provenance in `source` and the person in `identity`, the person is
    the source id (splits and by-source tables group a fake with its person's real video);
    without `identity`, `source` is, and without either, the file name."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,method,identity,source\n"
                        "real/ann.mp4,real,real,ann,in/ann_1.mp4 (repo@abc)\n"
                        "fake/swap/ann.mp4,fake,swap,ann,target=in/ann_1.mp4; donors=bob:48\n"
                        "real/bob.mp4,real,real,,bob_src\n"
                        "real/cid.mp4,real,real,,\n")
    _, entries = discover(manifest)
    assert [e.source for e in entries] == ["ann", "ann", "bob_src", "cid"]
    assert entries[0].split == entries[1].split == hash_split("ann")
