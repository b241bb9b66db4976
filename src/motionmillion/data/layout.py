"""The MotionMillion dataset layout: read it (released data works unchanged) and write it atomically.

    DATASET/motion_data/vector_272/<name>.npy          (T, 272) float32, de-normalised
    DATASET/texts/<name>.txt                           one caption per line
    DATASET/mean_std/vector_272/{mean,std}.npy         (272,) normalisation statistics
    DATASET/split/version1/<kind>/{train,val,test,all}.txt   one name per line, no extension (:mod:`splits`)

``<name>`` may contain sub-folders ("bandai/dataset-1_walk_normal_001"); a mirrored copy is a separate
clip whose *base name* carries an "M" prefix ("bandai/Mdataset-1_walk_normal_001").
Text lines in HumanML3D form (``caption#tokens#start#end``) are read as their caption only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from motionmillion.motion import FEATURE_DIM, InvalidMotionError, Normalizer, validate_features
from motionmillion.utils.io import atomic_save_npy, atomic_write_text

MOTION_DIR = Path("motion_data/vector_272")
TEXT_DIR = Path("texts")
MEAN_STD_DIR = Path("mean_std/vector_272")
SPLIT_DIR = Path("split/version1")


class DatasetLayoutError(ValueError):
    """A dataset folder or clip name that does not follow the layout."""


def check_name(name: str) -> str:
    """A clip name is a relative POSIX path without extension, "..", or empty parts."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in name:
        raise DatasetLayoutError(f"invalid clip name {name!r}: must be a relative path like 'source/clip_001'")
    return name


def mirror_name(name: str) -> str:
    """The name of the mirrored copy: "M" prefixed to the base name (folder kept)."""
    folder, _, base = check_name(name).rpartition("/")
    return f"{folder}/M{base}" if folder else f"M{base}"


def parse_caption_line(line: str) -> str | None:
    """The caption of one text line, or None for a blank line.

    A HumanML3D line ``caption#tokens#start#end`` (start/end numbers) gives its caption; any other line
    is a whole caption (MotionMillion's loaders do not split on '#').
    """
    line = line.strip()
    if not line:
        return None
    parts = line.split("#")
    if len(parts) == 4:
        try:
            float(parts[2]), float(parts[3])
        except ValueError:
            return line
        caption = parts[0].strip()
        return caption or None
    return line


class MotionDataset:
    """Read access to a dataset in the MotionMillion layout (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / MOTION_DIR).is_dir():
            raise DatasetLayoutError(f"{self.root}: not a MotionMillion dataset (no {MOTION_DIR}/ folder)")

    def motion_path(self, name: str) -> Path:
        return self.root / MOTION_DIR / f"{check_name(name)}.npy"

    def text_path(self, name: str) -> Path:
        return self.root / TEXT_DIR / f"{check_name(name)}.txt"

    def split_path(self, split: str = "all", kind: str = "t2m_60_300") -> Path:
        return self.root / SPLIT_DIR / kind / f"{split}.txt"

    def names(self, split: str = "all", kind: str = "t2m_60_300") -> list[str]:
        """Names listed in ``split/version1/<kind>/<split>.txt``.

        A dataset without any split folder (e.g. just written) lists every stored clip for "all".
        """
        path = self.split_path(split, kind)
        if path.is_file():
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if split == "all" and not (self.root / SPLIT_DIR).exists():
            return self.stored_names()
        raise DatasetLayoutError(f"{path}: split file not found (kinds here: {self.split_kinds()})")

    def split_kinds(self) -> list[str]:
        folder = self.root / SPLIT_DIR
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def stored_names(self) -> list[str]:
        """Every clip that has a motion file, sorted (walks the folder; slow for millions of clips)."""
        return sorted(iter_stored_names(self.root))

    def has(self, name: str) -> bool:
        return self.motion_path(name).is_file()

    def motion(self, name: str) -> np.ndarray:
        """The (T, 272) float32 de-normalised features of a clip."""
        path = self.motion_path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no motion for clip {name!r}")
        try:
            features = np.load(path)
        except (ValueError, OSError) as error:
            raise InvalidMotionError(f"{path}: unreadable npy ({error})") from error
        return validate_features(features, path).astype(np.float32, copy=False)

    def length(self, name: str) -> int:
        """Number of frames, read from the npy header only."""
        return int(np.load(self.motion_path(name), mmap_mode="r").shape[0])

    def texts(self, name: str) -> list[str]:
        """Captions of a clip (empty list when it has no text file)."""
        path = self.text_path(name)
        if not path.is_file():
            return []
        captions = (parse_caption_line(line) for line in path.read_text(encoding="utf-8").splitlines())
        return [caption for caption in captions if caption]

    def normalizer(self) -> Normalizer:
        folder = self.root / MEAN_STD_DIR
        if not (folder / "mean.npy").is_file():
            raise FileNotFoundError(f"{folder}: no mean.npy/std.npy (run `motionmillion data import-bvh` or compute them)")
        return Normalizer.load(folder)

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"MotionDataset({str(self.root)!r})"


def iter_stored_names(root: str | Path) -> Iterator[str]:
    """Names of all motion files under ``root/motion_data/vector_272`` (recursive, unsorted, streaming)."""
    base = Path(root) / MOTION_DIR
    stack = [base]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.name.endswith(".npy") and not entry.name.startswith("."):  # skip atomic temp files
                    yield Path(entry.path).relative_to(base).with_suffix("").as_posix()


# ----------------------------------------------------------------------------------------------------------
# Writing (every file atomic)


def write_motion(root: str | Path, name: str, features: np.ndarray) -> Path:
    features = validate_features(features, f"clip {name!r}")
    path = Path(root) / MOTION_DIR / f"{check_name(name)}.npy"
    atomic_save_npy(path, features.astype(np.float32))
    return path


def write_texts(root: str | Path, name: str, captions: Iterable[str]) -> Path:
    lines = [" ".join(caption.split()) for caption in captions]  # one caption per line, no stray newlines
    path = Path(root) / TEXT_DIR / f"{check_name(name)}.txt"
    atomic_write_text(path, "".join(f"{line}\n" for line in lines if line))
    return path


def write_clip(root: str | Path, name: str, features: np.ndarray, captions: Iterable[str]) -> None:
    """Write one clip's motion and captions. The text is written first: a clip counts as present once
    its motion file exists."""
    if np.asarray(features).shape[-1:] != (FEATURE_DIM,):
        raise InvalidMotionError(f"clip {name!r}: expected (T, {FEATURE_DIM}) features, got {np.shape(features)}")
    write_texts(root, name, captions)
    write_motion(root, name, features)


def write_split(root: str | Path, kind: str, split: str, names: Iterable[str]) -> Path:
    names = [check_name(name) for name in names]
    path = Path(root) / SPLIT_DIR / kind / f"{split}.txt"
    atomic_write_text(path, "".join(f"{name}\n" for name in names))
    return path


def write_mean_std(root: str | Path, mean: np.ndarray, std: np.ndarray) -> Path:
    folder = Path(root) / MEAN_STD_DIR
    Normalizer(mean, std).save(folder)  # validates shape and positivity, writes atomically
    return folder
