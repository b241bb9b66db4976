"""Motion clips for the tokenizer: random training windows and whole clips, read from the packed store
(or from the .npy files of a dataset that was not packed).

Windows are a pure function of (seed, step, rank), so a resumed run sees exactly the batches the
uninterrupted run would have seen, without saving sampler state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from motionmillion.motion import Normalizer

log = logging.getLogger(__name__)

def dataset_split(root: str | Path, split: str, kind: str) -> tuple[list[str], Normalizer]:
    """The clip names of a split and the dataset's normaliser (the layout is the data package's)."""
    from motionmillion.data.layout import MotionDataset

    dataset = MotionDataset(root)
    return dataset.names(split, kind=kind), dataset.normalizer()


class MotionClips:
    """The clips of one split that are usable: at least ``min_frames`` long and free of NaN/inf.

    Skipped clips are logged by name and kept in ``.skipped`` as (name, reason).
    """

    def __init__(self, root: str | Path, split: str, kind: str = "tokenizer_96", min_frames: int = 1,
                 packed=None, names: list[str] | None = None) -> None:  # fmt: skip
        from motionmillion.data.packed import open_motions

        self.root = Path(root)
        split_names, self.normalizer = dataset_split(root, split, kind)
        wanted = names if names is not None else split_names
        self.packed = packed if packed is not None else open_motions(root, wanted)
        position = {name: i for i, name in enumerate(self.packed.names)}
        self.skipped: list[tuple[str, str]] = []
        self.names: list[str] = []
        self.indices: list[int] = []
        for name in wanted:
            i = position.get(name)
            if i is None:
                self.skipped.append((name, "no motion stored"))
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
        self.clip_weights: np.ndarray | None = None  # None: uniform clips (see balance)
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

    def balance(self, alpha: float) -> None:
        """Draw clips so that each content/style stratum of the import records gets a share ~ size**alpha
        (1 = uniform clips, as the reference). With uniform clips the one take of a kick is 4 windows in
        3,000 and the codebook never learns a raised foot (issue 15)."""
        from motionmillion.data.stats import stratum_weights
        from motionmillion.tokenizer.encode import clip_strata

        self.clip_weights = None
        if alpha == 1.0:
            return
        strata = clip_strata(self.root, self.names)
        if not strata:
            log.warning("stratum_alpha=%s ignored: %s has no import records to take strata from", alpha, self.root)
            return
        self.clip_weights = stratum_weights([strata.get(name, name) for name in self.names], alpha)

    def sample_windows(self, batch_size: int, window: int, seed: int, step: int, rank: int = 0) -> np.ndarray:
        """(B, window, 272) normalised float32 windows: a clip (uniform, or by :meth:`balance`), uniform start."""
        rng = np.random.default_rng([seed, step, rank])
        if self.clip_weights is None:
            ks = rng.integers(0, len(self), size=batch_size)
        else:
            ks = rng.choice(len(self), size=batch_size, p=self.clip_weights)
        out = np.empty((batch_size, window, self.packed[self.indices[0]].shape[-1]), dtype=np.float32)
        for b, k in enumerate(ks):
            start = rng.integers(0, self.lengths[k] - window + 1)
            out[b] = self.packed[self.indices[k]][start : start + window]
        return self.normalizer.normalize(out).astype(np.float32, copy=False)

    def window_stream(self, batch_size: int, window: int, seed: int, start_step: int = 0, rank: int = 0,
                      world: int = 1, workers: int = 2) -> Iterator[np.ndarray]:  # fmt: skip
        """Normalised (B, window, 272) float32 batches read from the packed store in shuffled contiguous blocks
        by ``workers`` loader processes (data/stream.py), for stores larger than RAM. Batch k of a rank is a
        pure function of (seed, k, rank, world), so ``start_step`` resumes exactly."""
        from motionmillion.data.packed import PackedMotions
        from motionmillion.data.stream import BlockShuffledWindows, StreamConfig, window_loader

        if not isinstance(self.packed, PackedMotions):
            raise ValueError(f"{self.root}: reader 'stream' needs a packed dataset (motionmillion data pack {self.root})")
        config = StreamConfig(window=window, batch_size=batch_size, min_frames=window, seed=seed)
        dataset = BlockShuffledWindows(self.packed.folder, config, clips=np.asarray(self.indices), rank=rank,
                                       world=world, transform=self.normalizer.normalize, start_batch=start_step)  # fmt: skip
        for batch in window_loader(dataset, workers):
            yield batch.frames.numpy()
