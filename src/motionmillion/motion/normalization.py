"""Feature normalisation with the group-averaged std of the reference (x_norm = (x - mean) / std)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionmillion.motion.representation import FEATURE_DIM, FEATURE_GROUPS


def compute_mean_std(clips: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std over all frames; the std is then averaged within each feature group."""
    count, total, total_sq = 0, np.zeros(FEATURE_DIM), np.zeros(FEATURE_DIM)
    for clip in clips:
        clip = np.asarray(clip, dtype=np.float64)
        count += len(clip)
        total += clip.sum(axis=0)
        total_sq += np.square(clip).sum(axis=0)
    if count == 0:
        raise ValueError("compute_mean_std: no frames")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    for group in FEATURE_GROUPS:
        std[group] = std[group].mean()
    return mean, std


@dataclass(frozen=True)
class Normalizer:
    mean: np.ndarray  # (272,)
    std: np.ndarray  # (272,)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (FEATURE_DIM,) or not np.isfinite(value).all():
                raise ValueError(f"Normalizer.{name} must be a finite ({FEATURE_DIM},) array, got {value.shape}")
            object.__setattr__(self, name, value)
        if (self.std <= 0).any():
            raise ValueError("Normalizer.std must be positive")

    @classmethod
    def load(cls, folder: str | Path) -> Normalizer:
        """Read ``mean.npy`` and ``std.npy`` from a folder (e.g. ``DATASET/mean_std/vector_272``)."""
        folder = Path(folder)
        arrays = []
        for name in ("mean.npy", "std.npy"):
            try:
                arrays.append(np.load(folder / name, allow_pickle=False))
            except FileNotFoundError:
                raise FileNotFoundError(f"{folder / name}: missing (a normalisation folder holds mean.npy and std.npy)") from None
            except (OSError, ValueError) as err:  # not an .npy file, or a pickled object array
                raise ValueError(f"{folder / name}: not a numeric .npy array ({type(err).__name__})") from None
        try:
            return cls(*arrays)
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from None

    def save(self, folder: str | Path) -> None:
        from motionmillion.utils.io import atomic_save_npy

        atomic_save_npy(Path(folder) / "mean.npy", self.mean)
        atomic_save_npy(Path(folder) / "std.npy", self.std)

    def normalize(self, features):
        """Works on numpy arrays and torch tensors alike."""
        return (features - self._like(self.mean, features)) / self._like(self.std, features)

    def denormalize(self, features):
        return features * self._like(self.std, features) + self._like(self.mean, features)

    @staticmethod
    def _like(value: np.ndarray, reference):
        if isinstance(reference, np.ndarray):
            return value.astype(reference.dtype, copy=False)
        import torch

        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)
