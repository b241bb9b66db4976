"""Packed store: all clips of a dataset in one memory-mapped frame array plus an index.

    DATASET/packed/frames.npy   float32 (N_frames, 272), de-normalised, clips back to back
    DATASET/packed/index.npz    names (str), starts (int64), lengths (int64)
    DATASET/packed/meta.json    counts, dtype, source dataset, format version

Training reads windows with one slice of the memory map instead of opening one file per clip.
Packing streams: clip lengths come from the npy headers, the frame array is created on disk at its
final size and filled one clip at a time, so memory stays flat for millions of clips. Every file is
written through a temporary name and renamed; meta.json is written last and checked on open.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from motionmillion.data.layout import MotionDataset, iter_stored_names
from motionmillion.motion import FEATURE_DIM
from motionmillion.utils.io import atomic_path, atomic_write_json

PACKED_DIR = "packed"

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def write_packed(
    folder: str | Path,
    names: Sequence[str],
    lengths: Sequence[int] | np.ndarray,
    clips: Iterable[np.ndarray],
    meta: dict | None = None,
    progress: bool = False,
) -> Path:
    """Write a packed store from clips given in ``names`` order with known ``lengths`` (streaming)."""
    folder = Path(folder)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) != len(names):
        raise ValueError(f"write_packed: {len(names)} names but {len(lengths)} lengths")
    if (lengths <= 0).any():
        raise ValueError(f"write_packed: clip {names[int(np.argmin(lengths))]!r} has no frames")
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    total = int(lengths.sum())
    from tqdm import tqdm

    bar = tqdm(total=len(names), desc="pack", unit="clip", disable=not progress, dynamic_ncols=True)
    # meta.json goes first (removed) and last (written): a half-written store is never taken as complete
    (folder / "meta.json").unlink(missing_ok=True)
    with atomic_path(folder / "frames.npy") as tmp:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, FEATURE_DIM))
        count = 0
        for i, clip in enumerate(clips):
            if i >= len(names):
                raise ValueError("write_packed: more clips than names")
            clip = np.asarray(clip)
            if clip.shape != (lengths[i], FEATURE_DIM):
                raise ValueError(f"write_packed: clip {names[i]!r} has shape {clip.shape}, expected ({lengths[i]}, {FEATURE_DIM})")
            frames[starts[i] : starts[i] + lengths[i]] = clip
            count += 1
            bar.update(1)
        if count != len(names):
            raise ValueError(f"write_packed: got {count} clips for {len(names)} names")
        frames.flush()
        del frames
    bar.close()
    with atomic_path(folder / "index.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.asarray(list(names), dtype=str), starts=starts, lengths=lengths)
    atomic_write_json(
        folder / "meta.json",
        {"format_version": FORMAT_VERSION, "num_clips": len(names), "num_frames": total, "dtype": "float32",
         "feature_dim": FEATURE_DIM, "normalised": False, **(meta or {})},
    )  # fmt: skip
    return folder


def pack_dataset(dataset_root: str | Path, names: Sequence[str] | None = None, progress: bool = True) -> Path:
    """Pack the clips of a dataset (default: every stored clip, sorted) into ``DATASET/packed``."""
    dataset = MotionDataset(dataset_root)
    names = sorted(iter_stored_names(dataset.root)) if names is None else list(names)
    if not names:
        raise ValueError(f"{dataset.root}: no clips to pack")
    lengths = np.fromiter((dataset.length(name) for name in names), dtype=np.int64, count=len(names))

    def clips() -> Iterator[np.ndarray]:
        for name in names:
            yield dataset.motion(name)  # validated (shape, finite) on the way in

    return write_packed(dataset.root / PACKED_DIR, names, lengths, clips(), meta={"dataset": str(dataset.root.resolve())}, progress=progress)


class PackedMotions:
    """Read a packed store. ``packed[i]`` is a (T, 272) float32 view into the memory map (no copy)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        folder = path / PACKED_DIR if (path / PACKED_DIR / "meta.json").is_file() else path
        if not (folder / "meta.json").is_file():
            raise FileNotFoundError(f"{path}: no packed store (meta.json missing; run `motionmillion data pack DATASET`)")
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.frames = np.load(folder / "frames.npy", mmap_mode="r")
        with np.load(folder / "index.npz") as index:
            self.starts = index["starts"]
            self.lengths = index["lengths"]
            self._names_array = index["names"]
        if self.frames.shape != (self.meta["num_frames"], FEATURE_DIM) or len(self.starts) != self.meta["num_clips"]:
            raise ValueError(f"{folder}: frames.npy/index.npz do not match meta.json (incomplete pack?)")
        self._names: list[str] | None = None
        self._lookup: dict[str, int] | None = None

    @property
    def names(self) -> list[str]:
        if self._names is None:  # built on first use: a million-entry list costs memory a reader may not need
            self._names = self._names_array.tolist()
        return self._names

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips")
        start = int(self.starts[i])
        return self.frames[start : start + int(self.lengths[i])]

    def window(self, i: int, offset: int, length: int) -> np.ndarray:
        """Frames ``offset:offset+length`` of clip ``i`` (a view; raises if it does not fit)."""
        if offset < 0 or offset + length > int(self.lengths[i]):
            raise IndexError(f"window {offset}:{offset + length} outside clip {i} of {int(self.lengths[i])} frames")
        start = int(self.starts[i]) + offset
        return self.frames[start : start + length]

    def index_of(self, name: str) -> int:
        if self._lookup is None:
            self._lookup = {n: i for i, n in enumerate(self.names)}
        try:
            return self._lookup[name]
        except KeyError:
            raise KeyError(f"{self.folder}: no clip named {name!r}") from None

    def subset(self, names: Iterable[str]) -> np.ndarray:
        """Indices of ``names`` (e.g. a split list), in the given order."""
        return np.fromiter((self.index_of(name) for name in names), dtype=np.int64)

    def __repr__(self) -> str:
        return f"PackedMotions({str(self.folder)!r}, clips={len(self)}, frames={self.frames.shape[0]})"


class UnpackedMotions:
    """The same read interface as :class:`PackedMotions` over the per-clip ``.npy`` files of a dataset that
    was never packed (each clip is read when asked for; slower for random training windows)."""

    def __init__(self, dataset_root: str | Path, names: Sequence[str]):
        self.dataset = MotionDataset(dataset_root)
        self.folder = self.dataset.root
        self.names = [name for name in names if self.dataset.has(name)]
        self.lengths = np.array([self.dataset.length(name) for name in self.names], dtype=np.int64)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self._cache:  # split clips are few enough to keep once read (8 h of data ~ 1 GB)
            self._cache[i] = np.load(self.dataset.motion_path(self.names[i])).astype(np.float32, copy=False)
        return self._cache[i]

    def __repr__(self) -> str:
        return f"UnpackedMotions({str(self.folder)!r}, clips={len(self)})"


def open_motions(dataset_root: str | Path, names: Sequence[str] | None = None) -> PackedMotions | UnpackedMotions:
    """The clips of a dataset by index: its packed store when ``data pack`` has run, else its .npy files
    (``names`` of them, default every stored clip)."""
    root = Path(dataset_root)
    if (root / PACKED_DIR / "meta.json").is_file():
        return PackedMotions(root)
    log.info("%s is not packed: reading its .npy files (`motionmillion data pack` makes training reads faster)", root)
    return UnpackedMotions(root, names if names is not None else MotionDataset(root).stored_names())
