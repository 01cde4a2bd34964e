"""Meta-train / meta-test splits over manipulation types.

Rule (documented, tested):
- With two or more fake methods, the methods are shuffled and split about 7:3 (at least one each
  side): a manipulation type is never on both sides. Real clips are assigned by SOURCE (identity),
  all real clips of one source to the same side, drawn with the probability of that side's share of
  the methods, so each side sees real faces too. A fake's real source may sit on the other side: the
  split is over types, not sources.
- With a single fake method, the split is a random 7:3 split of the SOURCES, and every clip, real or
  fake, goes with its source's side: a fake is never separated from its real source.
Splits are redrawn every epoch from (seed, epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class MetaSplit:
    train_methods: list[str]
    test_methods: list[str]
    train: list[int]  # indices into the rows given
    test: list[int]


def split_by_method(methods: list[str], sources: list[str], labels: list[int],
                    rng: np.random.Generator, train_share: float = 0.7) -> MetaSplit:
    """methods/sources/labels are per clip (method of a real clip is ignored)."""
    fake_methods = sorted({m for m, y in zip(methods, labels) if y == 1})
    all_sources = sorted(set(sources))
    if len(fake_methods) >= 2:
        order = [fake_methods[i] for i in rng.permutation(len(fake_methods))]
        n_train = min(len(order) - 1, max(1, math.ceil(train_share * len(order)) - 0))
        n_train = min(n_train, len(order) - 1)
        train_methods, test_methods = sorted(order[:n_train]), sorted(order[n_train:])
        real_share = len(train_methods) / len(fake_methods)
        source_side = {s: ("train" if rng.random() < real_share else "test") for s in all_sources}
        train = [i for i, (m, s, y) in enumerate(zip(methods, sources, labels))
                 if (y == 1 and m in train_methods) or (y == 0 and source_side[s] == "train")]
        test = [i for i, (m, s, y) in enumerate(zip(methods, sources, labels))
                if (y == 1 and m in test_methods) or (y == 0 and source_side[s] == "test")]
    else:
        train_methods = test_methods = fake_methods
        order = [all_sources[i] for i in rng.permutation(len(all_sources))]
        cut = max(1, min(len(order) - 1, round(train_share * len(order))))
        train_sources = set(order[:cut])
        train = [i for i, s in enumerate(sources) if s in train_sources]
        test = [i for i, s in enumerate(sources) if s not in train_sources]
    return MetaSplit(train_methods, test_methods, train, test)
