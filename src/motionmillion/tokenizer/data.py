"""Motion clips for the tokenizer: random training windows and whole clips, read from the packed store.

Windows are a pure function of (seed, step, rank), so a resumed run sees exactly the batches the
uninterrupted run would have seen, without saving sampler state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from motionmillion.motion import Normalizer

log = logging.getLogger(__name__)

SPLIT_DIR = Path("split/version1")
MEAN_STD_DIR = Path("mean_std/vector_272")


def read_split(root: str | Path, split: str, kind: str) -> list[str]:
    path = Path(root) / SPLIT_DIR / kind / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_normalizer(root: str | Path) -> Normalizer:
    folder = Path(root) / MEAN_STD_DIR
    if not (folder / "mean.npy").is_file():
        raise FileNotFoundError(f"{folder}: no mean.npy/std.npy (run `motionmillion data stats` first)")
    return Normalizer.load(folder)


def open_packed(root: str | Path):
    from motionmillion.data.packed import PackedMotions

    return PackedMotions(root)


class MotionClips:
    """The clips of one split that are usable: at least ``min_frames`` long and free of NaN/inf.

    Skipped clips are logged by name and kept in ``.skipped`` as (name, reason).
    """

    def __init__(self, root: str | Path, split: str, kind: str = "tokenizer_96", min_frames: int = 1,
                 packed=None, names: list[str] | None = None) -> None:  # fmt: skip
        self.root = Path(root)
        self.packed = packed if packed is not None else open_packed(root)
        self.normalizer = load_normalizer(root)
        wanted = names if names is not None else read_split(root, split, kind)
        position = {name: i for i, name in enumerate(self.packed.names)}
        self.skipped: list[tuple[str, str]] = []
        self.names: list[str] = []
        self.indices: list[int] = []
        for name in wanted:
            i = position.get(name)
            if i is None:
                self.skipped.append((name, "not in the packed store"))
                continue
            length = int(self.packed.lengths[i])
            if length < min_frames:
                self.skipped.append((name, f"{length} frames < {min_frames}"))
                continue
            frames = np.asarray(self.packed[i])
            if not np.isfinite(frames).all():
                bad = np.nonzero(~np.isfinite(frames).all(axis=1))[0]
                self.skipped.append((name, f"NaN/infinite values in {len(bad)} frame(s), first at frame {bad[0]}"))
                continue
            self.names.append(name)
            self.indices.append(i)
        self.lengths = np.array([int(self.packed.lengths[i]) for i in self.indices], dtype=np.int64)
        if self.skipped:
            shown = "; ".join(f"{n} ({why})" for n, why in self.skipped[:5])
            log.warning("%s split %s/%s: skipped %d clip(s): %s%s", self.root, kind, split, len(self.skipped),
                        shown, " ..." if len(self.skipped) > 5 else "")  # fmt: skip
        if not self.names:
            raise ValueError(f"{self.root}: split {kind}/{split} has no usable clip (>= {min_frames} frames, finite)")

    def __len__(self) -> int:
        return len(self.names)

    def clip(self, k: int) -> np.ndarray:
        """De-normalised (T, 272) float32 features of the k-th usable clip."""
        return np.asarray(self.packed[self.indices[k]], dtype=np.float32)

    def sample_windows(self, batch_size: int, window: int, seed: int, step: int, rank: int = 0) -> np.ndarray:
        """(B, window, 272) normalised float32 windows: uniform clip, uniform start (as the reference)."""
        rng = np.random.default_rng([seed, step, rank])
        ks = rng.integers(0, len(self), size=batch_size)
        out = np.empty((batch_size, window, self.packed[self.indices[0]].shape[-1]), dtype=np.float32)
        for b, k in enumerate(ks):
            start = rng.integers(0, self.lengths[k] - window + 1)
            out[b] = self.packed[self.indices[k]][start : start + window]
        return self.normalizer.normalize(out).astype(np.float32, copy=False)
