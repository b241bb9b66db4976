"""The text-feature cache: per-token features of every training caption, computed ONCE with the frozen
text encoder and stored as fp16 (``text_features.npy`` ragged rows + ``text_index.npz``), never inside
a Dataset item. Shared by the generator and evaluator trainers and the evaluation runners.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from motionmillion.text.encoders import sentence_embedding

log = logging.getLogger(__name__)

CACHE_FEATURES = "text_features.npy"
CACHE_INDEX = "text_index.npz"
CACHE_META = "text_cache.json"


class TextFeatureCache:
    """caption -> (L, dim) fp16 features, loaded fully in memory (captions are few and short)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / CACHE_META).read_text(encoding="utf-8"))
            index = np.load(self.folder / CACHE_INDEX, allow_pickle=False)
            self.features = np.load(self.folder / CACHE_FEATURES, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.folder}: unreadable text-feature cache ({err}); delete it to rebuild") from err
        captions = [str(c) for c in index["captions"]]
        self.rows = {c: (int(s), int(n)) for c, s, n in zip(captions, index["starts"], index["lengths"])}
        self.dim = int(self.meta["dim"])

    @staticmethod
    def fingerprint(encoder_name: str, max_length: int) -> str:
        return hashlib.sha1(f"{encoder_name}|{max_length}".encode()).hexdigest()[:12]

    @classmethod
    def build(
        cls, folder: str | Path, captions: list[str], encoder_name: str, max_length: int, batch_size: int = 64
    ) -> TextFeatureCache:
        """Encode every caption not yet cached (for this encoder and max_length) and rewrite the cache."""
        from motionmillion.text.encoders import TextEncoder
        from motionmillion.utils.io import atomic_path, atomic_save_npy, atomic_write_json

        folder = Path(folder)
        wanted = sorted({c for c in captions if c.strip()})
        existing: dict[str, np.ndarray] = {}
        fingerprint = cls.fingerprint(encoder_name, max_length)
        if (folder / CACHE_META).is_file():
            try:
                old = cls(folder)
                if old.meta.get("fingerprint") == fingerprint:
                    existing = {c: old.get(c) for c in old.rows}
            except ValueError:
                log.warning("%s: ignoring a damaged text-feature cache", folder)
        missing = [c for c in wanted if c not in existing]
        if missing or not (folder / CACHE_META).is_file():
            from tqdm.auto import tqdm

            encoder = TextEncoder(encoder_name, max_length=max_length)
            for i in tqdm(range(0, len(missing), batch_size), desc="text features", unit="batch", disable=not missing):
                chunk = missing[i : i + batch_size]
                out = encoder.encode(chunk)
                for caption, feats, mask in zip(chunk, out.features, out.mask):
                    existing[caption] = feats[mask].numpy().astype(np.float16)
            dim = encoder.dim
            names = sorted(existing)
            lengths = np.array([len(existing[c]) for c in names], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if names else lengths
            flat = np.concatenate([existing[c] for c in names]) if names else np.zeros((0, dim), np.float16)
            atomic_save_npy(folder / CACHE_FEATURES, flat)
            with atomic_path(folder / CACHE_INDEX) as tmp, open(tmp, "wb") as f:
                np.savez(f, captions=np.array(names, dtype=str), starts=starts, lengths=lengths)
            atomic_write_json(
                folder / CACHE_META,
                {"encoder": encoder_name, "max_length": max_length, "dim": dim, "fingerprint": fingerprint,
                 "captions": len(names)},
            )  # fmt: skip
            log.info("text-feature cache: %d captions encoded, %d total, in %s", len(missing), len(names), folder)
        return cls(folder)

    def get(self, caption: str) -> np.ndarray:
        try:
            start, length = self.rows[caption]
        except KeyError:
            raise KeyError(f"caption not in the text-feature cache {self.folder}: {caption[:60]!r}") from None
        return self.features[start : start + length]

    def sentence(self, captions: list[str]) -> torch.Tensor:
        """Unit-length sentence embeddings (B, dim): the mean of each caption's token features."""
        return sentence_embedding(*self.batch(captions))

    def batch(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded features (B, L, dim) float32 and mask (B, L) bool."""
        rows = [self.get(c) for c in captions]
        longest = max(len(r) for r in rows)
        features = np.zeros((len(rows), longest, self.dim), dtype=np.float32)
        mask = np.zeros((len(rows), longest), dtype=bool)
        for i, row in enumerate(rows):
            features[i, : len(row)] = row
            mask[i, : len(row)] = True
        return torch.from_numpy(features), torch.from_numpy(mask)
