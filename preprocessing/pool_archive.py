"""A face pool packed small, to carry it where building one is not possible (a lent GPU machine has
no dlib, no landmark model and no copy of the footage), and unpacked back into a pool there.

A pool (preprocessing/face_pool.py) keeps every crop as raw pixels at `pool.crop_size`, most of them
upscaled from fewer source pixels: ~1.4 GB for the release pool. The archive keeps each crop at its
native size (`native_side`, never above crop_size) as a lossy WebP, and the geometry as it is:
~38 MB at quality 92. Unpacking scales each crop back up to crop_size as the pool's own crop did
(bilinear). The pixels are not the pool's: on the release pool's validation people, the shipped
model's mean score on real crops went from 0.46 to 0.55 (0.52 with lossless WebP: most of it is
the resampling) and its frame AUC on fixed pairs from 0.688 to 0.681. Train on an unpacked pool
where no pool can be built, and measure the model on held-out videos, which never pass through it.

Layout of an archive folder: `index.json` (the pool's, with `archive: {quality}` added and only the
packed splits' sources counted), and per source `<id>.npz`: webp uint8 [total bytes], offsets int64
[N + 1], landmarks, native_side, frame_index.

  python -m delocate.preprocessing.pool_archive pack POOL ARCHIVE [--quality 92]
  python -m delocate.preprocessing.pool_archive unpack ARCHIVE POOL [--workers 8]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from delocate.common.io import atomic_save_npz, atomic_write_json
from delocate.common.log import info, progress
from delocate.preprocessing.face_pool import is_pool, write_source

GEOMETRY = ("landmarks", "native_side", "frame_index")


def encode_crop(crop: np.ndarray, native_side: float, quality: int) -> bytes:
    """An RGB crop as WebP at its native size (the pixels it was made from)."""
    side = int(round(min(crop.shape[0], max(16.0, native_side))))
    if side < crop.shape[0]:  # bilinear: the crop is a bilinear upscale of these pixels
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".webp", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise ValueError("WebP encoding failed")
    return data.tobytes()


def decode_crop(data: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3] from encode_crop's bytes."""
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a WebP image")
    if image.shape[0] != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def pack(pool_dir: str | Path, out_dir: str | Path, quality: int = 92,
         splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Pack the sources of `splits` (test people are never trained on: left out) into `out_dir`."""
    pool, out = Path(pool_dir), Path(out_dir)
    if not is_pool(pool):
        raise FileNotFoundError(f"{pool} is not a face pool (make one with --stage pool)")
    index = json.loads((pool / "index.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    packed = [s for s in index["sources"] if s["split"] in splits and s["frames"] > 0]
    for source in progress(packed, "pack pool", unit="source"):
        target = out / f"{source['id']}.npz"
        if target.is_file():
            continue
        crops = np.load(pool / "sources" / f"{source['id']}.npy", mmap_mode="r")
        with np.load(pool / "sources" / f"{source['id']}.npz") as saved:
            geometry = {key: saved[key] for key in GEOMETRY}
        blobs = [encode_crop(np.asarray(crop), side, quality)
                 for crop, side in zip(crops, geometry["native_side"])]
        offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        atomic_save_npz(target, webp=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
                        **geometry)
    kept = {s["id"] for s in packed}
    sources = [dict(s, frames=s["frames"] if s["id"] in kept else 0) for s in index["sources"]]
    atomic_write_json(out / "index.json", {**index, "sources": sources,
                                           "archive": {"quality": quality}})
    size = sum(f.stat().st_size for f in out.iterdir())
    info(f"pool archive {out}: {len(packed)} sources, {sum(s['frames'] for s in packed)} crops, "
         f"{size / 1e6:.1f} MB (WebP quality {quality})")
    return out


def _unpack_source(archive: Path, folder: Path, source_id: str, size: int) -> None:
    with np.load(archive / f"{source_id}.npz") as saved:
        webp, offsets = saved["webp"], saved["offsets"]
        geometry = {key: saved[key] for key in GEOMETRY}
    crops = np.stack([decode_crop(webp[a:b], size) for a, b in zip(offsets[:-1], offsets[1:])])
    write_source(folder, source_id, crops, **geometry)


def unpack(archive_dir: str | Path, pool_dir: str | Path, workers: int = 1) -> Path:
    """A face pool in `pool_dir` from an archive (resumable; `workers` processes)."""
    archive, pool = Path(archive_dir), Path(pool_dir)
    index = json.loads((archive / "index.json").read_text())
    if "archive" not in index:
        raise ValueError(f"{archive} is not a pool archive (make one with `pack`)")
    size = int(index["config"]["crop_size"])
    folder = pool / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [s["id"] for s in index["sources"]
            if s["frames"] > 0 and not (folder / f"{s['id']}.npz").is_file()]
    # spawned, not forked: OpenCV's thread pool does not survive a fork (as in preprocess.py)
    with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"),
                             initializer=cv2.setNumThreads, initargs=(1,)) as executor:
        jobs = [executor.submit(_unpack_source, archive, folder, sid, size) for sid in todo]
        for job in progress(jobs, "unpack pool", unit="source"):
            job.result()
    atomic_write_json(pool / "index.json", {k: v for k, v in index.items() if k != "archive"})
    info(f"face pool {pool}: {len(todo)} sources unpacked from {archive}")
    return pool


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="pool -> archive")
    packing.add_argument("pool")
    packing.add_argument("archive")
    packing.add_argument("--quality", type=int, default=92,
                         help="WebP quality, 1-100 (above 100: lossless, ~5x larger)")
    unpacking = verbs.add_parser("unpack", help="archive -> pool")
    unpacking.add_argument("archive")
    unpacking.add_argument("pool")
    unpacking.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.verb == "pack":
        pack(args.pool, args.archive, args.quality)
    else:
        unpack(args.archive, args.pool, args.workers)


if __name__ == "__main__":
    main()
