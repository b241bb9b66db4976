"""Dataset statistics: clips and hours per split, length histogram, caption coverage and examples; the
training data's skeleton; stratum weights for balanced sampling."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np

from motionmillion.data.layout import MEAN_STD_DIR, DatasetLayoutError, MotionDataset, iter_stored_names
from motionmillion.data.splits import SPLITS
from motionmillion.motion import FPS

LENGTH_BINS = (0, 30, 60, 96, 120, 150, 200, 250, 300, 450, 600, 10**9)  # frames at 30 fps


def _lengths(dataset: MotionDataset, names: list[str]) -> dict[str, int]:
    """Clip lengths, from the packed index when it is there (fast), else from the npy headers."""
    from motionmillion.data.packed import PackedMotions

    try:
        packed = PackedMotions(dataset.root)
        lengths = dict(zip(packed.names, packed.lengths.tolist()))
        if all(name in lengths for name in names):
            return {name: lengths[name] for name in names}
    except (FileNotFoundError, ValueError):
        pass
    return {name: dataset.length(name) for name in names}


def dataset_stats(root: str | Path, examples: int = 5, seed: int = 0) -> dict:
    dataset = MotionDataset(root)
    names = sorted(iter_stored_names(dataset.root))
    if not names:
        raise ValueError(f"{dataset.root}: the dataset has no clips")
    lengths = _lengths(dataset, names)
    frames = np.array([lengths[n] for n in names])
    by_source = Counter(name.split("/", 1)[0] if "/" in name else "." for name in names)
    mirrored = sum(name.rpartition("/")[2].startswith("M") for name in names)

    splits: dict[str, dict] = {}
    for kind in dataset.split_kinds():
        splits[kind] = {}
        for split in SPLITS:
            try:
                members = dataset.names(split, kind)
            except ValueError:
                continue
            total = sum(lengths.get(n, 0) for n in members)
            splits[kind][split] = {"clips": len(members), "hours": round(total / FPS / 3600, 3)}

    caption_counts = []
    words: Counter[str] = Counter()
    for name in names:
        captions = dataset.texts(name)
        caption_counts.append(len(captions))
        for caption in captions:
            words.update(caption.lower().strip(".").replace(",", " ").split())
    caption_counts_array = np.array(caption_counts)

    histogram = []
    counts, _ = np.histogram(frames, bins=LENGTH_BINS)
    for low, high, count in zip(LENGTH_BINS[:-1], LENGTH_BINS[1:], counts):
        label = f"{low}-{high - 1}" if high < 10**9 else f">={low}"
        histogram.append({"frames": label, "clips": int(count)})

    rng = random.Random(seed)
    originals = [n for n in names if not n.rpartition("/")[2].startswith("M")] or names
    sample = rng.sample(originals, min(examples, len(originals)))
    return {
        "root": str(dataset.root),
        "clips": len(names),
        "mirrored_clips": int(mirrored),
        "clips_by_source": dict(sorted(by_source.items())),
        "frames": int(frames.sum()),
        "hours": round(float(frames.sum()) / FPS / 3600, 3),
        "length_frames": {"min": int(frames.min()), "median": float(np.median(frames)), "mean": round(float(frames.mean()), 1), "max": int(frames.max())},
        "clips_in_no_split": _unsplit(dataset, names),
        "length_histogram": histogram,
        "splits": splits,
        "captions": {
            "total": int(caption_counts_array.sum()),
            "per_clip_mean": round(float(caption_counts_array.mean()), 2),
            "clips_without_captions": int((caption_counts_array == 0).sum()),
            "vocabulary": len(words),
        },
        "has_mean_std": (dataset.root / MEAN_STD_DIR / "mean.npy").is_file(),
        "examples": [{"name": n, "frames": lengths[n], "captions": dataset.texts(n)} for n in sample],
    }  # fmt: skip


def _unsplit(dataset: MotionDataset, names: list[str]) -> int:
    listed: set[str] = set()
    for kind in dataset.split_kinds():
        try:
            listed.update(dataset.names("all", kind))
        except ValueError:
            continue
    return sum(name not in listed for name in names) if listed else len(names)


def print_stats(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    console.print(f"[bold]{stats['root']}[/bold]: {stats['clips']} clips ({stats['mirrored_clips']} mirrored), "
                  f"{stats['frames']} frames = {stats['hours']} h at 30 fps; mean/std: {'yes' if stats['has_mean_std'] else 'missing'}")  # fmt: skip
    console.print("by source: " + ", ".join(f"{k} {v}" for k, v in stats["clips_by_source"].items()))
    length = stats["length_frames"]
    console.print(f"length (frames): min {length['min']}, median {length['median']:.0f}, mean {length['mean']}, max {length['max']}; "
                  f"in no split (too short/long for every kind): {stats['clips_in_no_split']}")  # fmt: skip

    table = Table(title="splits (clips / hours)")
    table.add_column("kind")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for kind, row in stats["splits"].items():
        table.add_row(kind, *(f"{row[s]['clips']} / {row[s]['hours']:.2f}" if s in row else "-" for s in SPLITS))
    console.print(table)

    top = max(entry["clips"] for entry in stats["length_histogram"]) or 1
    console.print("[bold]length histogram[/bold] (frames at 30 fps)")
    for entry in stats["length_histogram"]:
        bar = "#" * round(40 * entry["clips"] / top)
        console.print(f"  {entry['frames']:>9} {entry['clips']:>7} {bar}")
    c = stats["captions"]
    console.print(f"captions: {c['total']} ({c['per_clip_mean']} per clip), {c['clips_without_captions']} clips without, vocabulary {c['vocabulary']} words")
    for example in stats["examples"]:
        console.print(f"[cyan]{example['name']}[/cyan] ({example['frames']} frames)")
        for caption in example["captions"]:
            console.print(f"    {caption}")


def dataset_skeleton(root: str | Path, split: str = "train", max_clips: int = 1000) -> tuple[np.ndarray, int]:
    """The training data's rigid skeleton: (22, 3) median offsets of up to ``max_clips`` clips of
    ``split`` (evenly spread over the sorted names; mirrored clips have the same bones), and how many
    clips it used. Written as ``skeleton.json`` into pipeline folders."""
    from motionmillion.motion.consistency import typical_skeleton

    dataset = MotionDataset(root)
    try:
        names = sorted(dataset.names(split))
    except DatasetLayoutError:  # no split files yet: every stored clip
        names = dataset.stored_names()
    if len(names) > max_clips:
        names = [names[i] for i in np.linspace(0, len(names) - 1, max_clips).round().astype(int)]
    return typical_skeleton(dataset.motion(name).astype(np.float64) for name in names), len(names)


def stratum_weights(strata: list[str], alpha: float, levels: int = 0) -> np.ndarray:
    """Per-item probabilities that give each stratum (e.g. a content/style) a share proportional to its
    size**alpha, as multilingual LMs temper language sizes: alpha 1 keeps the data as it is, 0 makes every
    stratum equally likely. ``levels`` > 0 keeps only the first levels of a "source/content/style" stratum
    (2 = per content). Used by the tokenizer's windows and the generator's rows, so rare movements (one
    take of a kick) are seen often enough to be learnt."""
    keys = ["/".join(key.split("/")[:levels]) for key in strata] if levels > 0 else list(strata)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** (alpha - 1.0)
    return weights / weights.sum()
