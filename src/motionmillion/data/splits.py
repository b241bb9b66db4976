"""Splits: the split kinds with their length ranges, and which clips go to train, val and test.

Every clip of one take group lands in the same split (a take's windows and its mirrored copies are
near-duplicates); groups are split 80/10/10 within each stratum (a content/style, a CMU category). A
split kind lists the clips whose length fits its range. The files are ``split/version1/<kind>/<split>.txt``
(:mod:`layout`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from motionmillion.data.captions import clip_rng
from motionmillion.data.layout import write_split
from motionmillion.utils.io import atomic_write_json

# Split kind -> length range (frames at 30 fps; None: no upper limit), as in MotionMillion's split names.
SPLIT_KINDS: dict[str, tuple[int, int | None]] = {"t2m_60_300": (60, 300), "tokenizer_96": (96, None)}
SPLITS = ("train", "val", "test", "all")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test (by take groups, within each stratum)


def assign_splits(groups_by_stratum: dict[str, list[str]], fractions=SPLIT_FRACTIONS) -> dict[str, str]:
    """Group -> "train" | "val" | "test", deterministic, within each stratum.

    A stratum with one group goes to train (it cannot be both trained on and tested); with two, one is
    test; with three or more, val and test get at least one group each.
    """
    assignment: dict[str, str] = {}
    for stratum in sorted(groups_by_stratum):
        groups = sorted(set(groups_by_stratum[stratum]))
        clip_rng(f"split:{stratum}").shuffle(groups)
        n = len(groups)
        if n == 1:
            n_val = n_test = 0
        elif n == 2:
            n_val, n_test = 0, 1
        else:
            n_test = max(1, round(fractions[2] * n))
            n_val = max(1, round(fractions[1] * n))
        for k, group in enumerate(groups):
            assignment[group] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return assignment


def write_splits(out: str | Path, table: list[dict]) -> dict[str, dict[str, int]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for row in table:
        groups[row["stratum"]].append(row["group"])
    assignment = assign_splits(groups)
    counts: dict[str, dict[str, int]] = {}
    for kind, (low, high) in SPLIT_KINDS.items():
        lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for row in table:
            if row["frames"] >= low and (high is None or row["frames"] <= high):
                lists[assignment[row["group"]]].append(row["name"])
        lists["all"] = sorted(lists["train"] + lists["val"] + lists["test"])
        for split, names in lists.items():
            write_split(out, kind, split, names)
        counts[kind] = {split: len(names) for split, names in lists.items()}
    atomic_write_json(Path(out) / "meta/split_groups.json", assignment)
    return counts
