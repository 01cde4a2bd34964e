"""Dataset layouts -> a list of VideoEntry (path, label, method, source, split, mask/source videos).

Each `discover_*` checks the layout first and raises LayoutError naming everything that is missing,
instead of failing half-way through a long preprocessing run.

Supported: FaceForensics++ (original + Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter;
c0/c23/c40; official splits/{train,val,test}.json), Celeb-DF v2, DFDC (metadata.json),
DeeperForensics-1.0, a plain folder with real/ and fake/, and a CSV manifest (path, label, method,
source, split).
"""
from __future__ import annotations

import csv
import glob
import json
import os
import re
from pathlib import Path

from delocate.preprocessing.entries import (SPLITS, VIDEO_EXTENSIONS, LayoutError, VideoEntry,
                                            fill_splits, hash_split, media_under, relative_name,
                                            require_layout, videos_under)
from delocate.preprocessing.video_io import IMAGE_EXTENSIONS

FFPP_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]


# --- FaceForensics++ ------------------------------------------------------------------------------

def discover_ffpp(root: Path, compression: str = "c23") -> list[VideoEntry]:
    """root/original_sequences/youtube/<comp>/videos/XXX.mp4,
    root/manipulated_sequences/<Method>/<comp>/videos/XXX_YYY.mp4 (+
    <Method>/masks/videos/XXX_YYY.mp4), optional root/splits/{train,val,test}.json (official lists
    of [target, source] id pairs)."""
    if compression not in {"c0", "c23", "c40", "raw"}:
        raise LayoutError(f"FaceForensics++ compression must be c0, c23 or c40, got {compression}")
    original = root / "original_sequences" / "youtube" / compression / "videos"
    problems = []
    if not original.is_dir():
        problems.append(f"original videos: {relative_name(original, root)}/")
    methods = [m for m in FFPP_METHODS
               if (root / "manipulated_sequences" / m / compression / "videos").is_dir()]
    if not methods:
        problems.append(f"manipulated videos: manipulated_sequences/<{'|'.join(FFPP_METHODS)}>/"
                        f"{compression}/videos/")
    require_layout(problems, "FaceForensics++", root)

    split_of: dict[str, str] = {}
    for split in SPLITS:
        split_file = root / "splits" / f"{split}.json"
        if split_file.is_file():
            for pair in json.loads(split_file.read_text()):
                for vid in pair:
                    split_of[str(vid)] = split
                split_of["_".join(pair)] = split_of["_".join(reversed(pair))] = split

    entries = []
    for path in videos_under(original):
        vid = path.stem
        entries.append(VideoEntry(path, relative_name(path, root), 0, "real", vid,
                                  split_of.get(vid, ""), dataset="ffpp"))
    for method in methods:
        base = root / "manipulated_sequences" / method
        for path in videos_under(base / compression / "videos"):
            target = path.stem.split("_")[0]
            mask = base / "masks" / "videos" / path.name
            source = original / f"{target}{path.suffix}"
            entries.append(VideoEntry(
                path, relative_name(path, root), 1, method, target, split_of.get(path.stem, ""),
                mask_video=mask if mask.is_file() else None,
                source_video=source if source.is_file() else None, dataset="ffpp"))
    return entries


# --- Celeb-DF v2 ----------------------------------------------------------------------------------

def discover_celebdf(root: Path) -> list[VideoEntry]:
    """root/{Celeb-real,Celeb-synthesis,YouTube-real}/*.mp4 and List_of_testing_videos.txt (lines
    "<1 real | 0 fake> <folder>/<name>.mp4"). Fakes are id<target>_id<source>_<n>.mp4 made from the
    real id<target>_<n>.mp4. Videos not in the test list are train (10% of identities: val)."""
    folders = ["Celeb-real", "Celeb-synthesis", "YouTube-real"]
    problems = [f"{f}/" for f in folders[:2] if not (root / f).is_dir()]
    test_list = root / "List_of_testing_videos.txt"
    if not test_list.is_file():
        problems.append("List_of_testing_videos.txt")
    require_layout(problems, "Celeb-DF v2", root)
    listed = [line.split() for line in test_list.read_text().splitlines()]
    test_videos = {fields[1] for fields in listed if len(fields) == 2}

    entries = []
    for folder in folders:
        if not (root / folder).is_dir():
            continue
        for path in videos_under(root / folder):
            rel = relative_name(path, root)
            fake = folder == "Celeb-synthesis"
            match = re.match(r"(id\d+)_(?:id\d+_)?(\d+)", path.stem)
            identity = match.group(1) if match else path.stem
            source_video = None
            if fake and match:
                candidate = root / "Celeb-real" / f"{match.group(1)}_{match.group(2)}{path.suffix}"
                source_video = candidate if candidate.is_file() else None
            split = "test" if rel in test_videos else hash_split(identity, 0.1, test_share=0)
            entries.append(VideoEntry(path, rel, int(fake), "celebdf" if fake else "real",
                                      identity, split, source_video=source_video,
                                      dataset="celebdf"))
    return entries


# --- DFDC -----------------------------------------------------------------------------------------

def discover_dfdc(root: Path) -> list[VideoEntry]:
    """Folders holding metadata.json ({"x.mp4": {"label": "FAKE"|"REAL", "original": "y.mp4",
    "split": ...}}), e.g. dfdc_train_part_*/; the folder root itself may be one."""
    metadata_files = sorted(root.rglob("metadata.json"))
    if not metadata_files:
        raise LayoutError(f"DFDC layout not found under {root}:\n"
                          "  - metadata.json (in each part folder)")
    entries = []
    missing = []
    for meta_path in metadata_files:
        folder = meta_path.parent
        metadata = json.loads(meta_path.read_text())
        for name, info in sorted(metadata.items()):
            path = folder / name
            if not path.is_file():
                missing.append(relative_name(path, root))
                continue
            fake = str(info.get("label", "")).upper() == "FAKE"
            original = info.get("original") or name
            source = Path(original).stem
            split = str(info.get("split", "")).lower()
            split = {"train": hash_split(source, 0.1, test_share=0),
                     "validation": "val"}.get(split, split)
            source_video = folder / original if fake and (folder / original).is_file() else None
            entries.append(VideoEntry(path, relative_name(path, root), int(fake),
                                      "dfdc" if fake else "real", source, split,
                                      source_video=source_video, dataset="dfdc"))
    if missing and not entries:
        require_layout([f"videos listed in metadata.json: {', '.join(missing[:5])}"], "DFDC", root)
    return entries


# --- DeeperForensics-1.0 --------------------------------------------------------------------------

def discover_deeperforensics(root: Path) -> list[VideoEntry]:
    """root/manipulated_videos/<variant>/<name>.mp4 (names start with the target's id, e.g.
    000_M101.mp4), root/source_videos/**.mp4 (real), optional root/lists/splits/{train,val,test}.txt
    (file names of manipulated videos). The variant folder (end_to_end, reenact_postprocess, ...)
    becomes the method."""
    manipulated, sources = root / "manipulated_videos", root / "source_videos"
    problems = [f"{relative_name(p, root)}/" for p in (manipulated, sources) if not p.is_dir()]
    require_layout(problems, "DeeperForensics-1.0", root)
    split_of: dict[str, str] = {}
    for split in SPLITS:
        split_file = root / "lists" / "splits" / f"{split}.txt"
        if split_file.is_file():
            for line in split_file.read_text().split():
                split_of[Path(line).name] = split
    entries = [VideoEntry(p, relative_name(p, root), 0, "real", p.relative_to(sources).parts[0], "",
                          dataset="deeperforensics") for p in videos_under(sources)]
    for path in videos_under(manipulated):
        variant = path.relative_to(manipulated).parts[0]
        target = path.stem.split("_")[0]
        entries.append(VideoEntry(path, relative_name(path, root), 1, variant, target,
                                  split_of.get(path.name, ""), dataset="deeperforensics"))
    return entries


# --- plain folder and CSV manifest ----------------------------------------------------------------

def discover_folder(root: Path) -> list[VideoEntry]:
    """root/real/**/*.mp4 and root/fake/**/*.mp4 (images too: one-frame inputs); a subfolder of
    fake/ names the method. Without real/ and fake/, every video and image under root is taken with
    an unknown label (scoring)."""
    real, fake = root / "real", root / "fake"
    if not real.is_dir() and not fake.is_dir():
        videos = media_under(root)
        if not videos:
            kinds = ", ".join(sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS))
            raise LayoutError(f"no videos or images ({kinds}) under {root}")
        return [VideoEntry(p, relative_name(p, root), -1, "unknown", p.stem) for p in videos]
    entries = [VideoEntry(p, relative_name(p, root), 0, "real", p.stem) for p in
               (media_under(real) if real.is_dir() else [])]
    for path in media_under(fake) if fake.is_dir() else []:
        parts = path.relative_to(fake).parts
        entries.append(VideoEntry(path, relative_name(path, root), 1,
                                  parts[0] if len(parts) > 1 else "fake", path.stem))
    return entries


def _parse_label(value: str, where: str) -> int:
    value = value.strip().lower()
    labels = {"0": 0, "real": 0, "1": 1, "fake": 1, "-1": -1, "": -1, "unknown": -1}
    if value not in labels:
        raise LayoutError(f"{where}: label must be 0/1/real/fake, got {value!r}")
    return labels[value]


def discover_manifest(csv_path: Path) -> list[VideoEntry]:
    """A CSV with columns path, label[, method, source, identity, split, mask_path]; paths relative
    to the CSV's folder. The source id (who the video shows: splits and per-source tables group by
    it) is `identity` where the CSV has one, else `source`, else the file name; a manifest that
    keeps `source` for provenance (e.g. "target=in/a.mp4; donors=b") names the person in
    `identity`. mask_path: a fake's full-frame masks, one per video frame (.npz with key `mask`,
    uint8 [T, H, W], > 127 = forged; or a mask video). Listed files that do not exist are kept:
    preprocessing reports each as a failed row."""
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"path", "label"} <= columns:
            raise LayoutError(f"{csv_path}: manifest needs columns path,label "
                              f"(optional method,source,identity,split); found {sorted(columns)}")
        entries = []
        for line, row in enumerate(reader, start=2):
            path = Path(row["path"])
            full = path if path.is_absolute() else csv_path.parent / path
            label = _parse_label(row["label"], f"{csv_path.name} line {line}")
            method = (row.get("method") or "").strip() or ("real" if label == 0 else "fake")
            split = (row.get("split") or "").strip().lower()
            if split and split not in SPLITS:
                raise LayoutError(f"{csv_path.name} line {line}: split must be one of {SPLITS}")
            mask = (row.get("mask_path") or "").strip()
            mask_path = None if not mask else Path(mask) if Path(mask).is_absolute() \
                else csv_path.parent / mask
            source = (row.get("identity") or "").strip() or (row.get("source") or "").strip()
            entry = VideoEntry(full, row["path"], label, method, source or path.stem, split,
                               dataset="manifest")
            if mask_path is not None and mask_path.suffix.lower() in (".npz", ".npy"):
                entry.mask_file = mask_path
            elif mask_path is not None:
                entry.mask_video = mask_path
            entries.append(entry)
    return entries


DISCOVERERS = {
    "ffpp": discover_ffpp, "celebdf": discover_celebdf, "dfdc": discover_dfdc,
    "deeperforensics": discover_deeperforensics, "folder": discover_folder,
}
DATASET_NAMES = ["auto", *DISCOVERERS, "manifest"]


def detect_dataset(root: Path) -> str:
    """Guess the layout of a folder from its marker files."""
    if (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir():
        return "ffpp"
    if (root / "Celeb-synthesis").is_dir() or (root / "List_of_testing_videos.txt").is_file():
        return "celebdf"
    if (root / "manipulated_videos").is_dir() and (root / "source_videos").is_dir():
        return "deeperforensics"
    if (root / "metadata.json").is_file() or any(root.glob("*/metadata.json")):
        return "dfdc"
    return "folder"


def discover(input_spec: str | Path, dataset: str = "auto", compression: str = "c23"
             ) -> tuple[Path, list[VideoEntry]]:
    """Resolve --input (folder, glob, single video, or manifest .csv) into (root, entries), each
    with its split: the dataset's own, else the one hash rule (entries.hash_split)."""
    root, entries = _locate(input_spec, dataset, compression)
    return root, fill_splits(entries)


def _locate(input_spec: str | Path, dataset: str, compression: str
            ) -> tuple[Path, list[VideoEntry]]:
    spec = str(input_spec)
    path = Path(spec)
    if dataset == "manifest" or (path.suffix.lower() == ".csv" and path.is_file()):
        if not path.is_file():
            raise LayoutError(f"manifest not found: {path}")
        return path.parent, discover_manifest(path)
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p).resolve() for p in glob.glob(spec, recursive=True)
                         if Path(p).is_file())
        if not matches:
            raise LayoutError(f"no file matches {spec}")
        root = Path(os.path.commonpath([str(p.parent) for p in matches]))
        return root, [VideoEntry(p, relative_name(p, root), -1, "unknown", p.stem) for p in matches]
    if path.is_file() or (not path.exists()
                          and path.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS):
        # a single file, even a missing one: reported as a failed row, not a usage error
        return path.parent, [VideoEntry(path, path.name, -1, "unknown", path.stem)]
    if not path.is_dir():
        raise LayoutError(f"input not found: {path}")
    name = detect_dataset(path) if dataset == "auto" else dataset
    if name not in DISCOVERERS:
        raise LayoutError(f"unknown dataset {dataset!r}; choose from {DATASET_NAMES}")
    if name == "ffpp":
        return path, discover_ffpp(path, compression)
    return path, DISCOVERERS[name](path)
