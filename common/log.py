"""Progress bars and the one-JSON-line-per-epoch log."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it"
             ) -> Iterable[T]:
    """A tqdm bar on stderr; quiet when stderr is not a terminal unless DELOCATE_PROGRESS=1."""
    disable = not (sys.stderr.isatty() or os.environ.get("DELOCATE_PROGRESS") == "1")
    return tqdm(items, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True)


def info(message: str) -> None:
    """One human-readable status line on stderr (stdout stays for tables and results)."""
    print(f"[delocate] {message}", file=sys.stderr, flush=True)


class JsonLineLog:
    """Appends one JSON object per line (e.g. per epoch) to `path`, flushed immediately."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record) -> None:
        record.setdefault("time", round(time.time(), 3))
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_json_lines(path: str | Path) -> list[dict]:
    """What a JsonLineLog wrote to `path`, oldest first (none when the file is not there)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Steps:
    """Runs the named steps of a long job (the demo, the release), saying each as it starts and
    keeping its time for the closing summary."""

    def __init__(self, job: str):
        self.job, self.began, self.timings = job, time.time(), {}

    def __call__(self, name: str, fn, *args, **kwargs):
        start = time.time()
        info(f"{self.job}: {name} ...")
        result = fn(*args, **kwargs)
        self.timings[name] = time.time() - start
        return result

    def summary(self) -> str:
        return ("time per step: " + ", ".join(f"{k} {v:.0f}s" for k, v in self.timings.items())
                + f"; total {time.time() - self.began:.0f}s")
