"""Training data for the generator: encoded motion tokens + captions, and a text-feature cache.

Text features are computed ONCE per unique caption with the frozen text encoder and stored as fp16
(``text_features.npy`` ragged rows + ``text_index.npz``), never inside a Dataset item. Batches are a
pure function of (seed, step, rank), so an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionmillion.generator.text_encoders import sentence_embedding

log = logging.getLogger(__name__)

CACHE_FEATURES = "text_features.npy"
CACHE_INDEX = "text_index.npz"
CACHE_META = "text_cache.json"


def open_encoded(folder: str | Path):
    """The tokenizer's EncodedTokens reader (contract 5); a missing or damaged folder raises ValueError."""
    from motionmillion.tokenizer.encoded import EncodedTokens

    return EncodedTokens(folder)


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
        from motionmillion.generator.text_encoders import TextEncoder
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


@dataclass
class TokenBatch:
    text_features: torch.Tensor  # (B, L, dim)
    text_mask: torch.Tensor  # (B, L)
    tokens: torch.Tensor  # (B, N) codes, END, then PAD
    drop_text: torch.Tensor  # (B,)
    captions: list[str]


class TokenDataset:
    """Motion token sequences of one split with their captions, and deterministic batches."""

    def __init__(self, encoded, split: str, max_motion_tokens: int, stratum_alpha: float = 1.0,
                 stratum_levels: int = 0):
        names = encoded.names
        try:
            indices = list(range(len(names))) if split == "all" else encoded.split(split)
        except KeyError as err:
            raise ValueError(str(err).strip("'\"")) from None
        self.codes: list[np.ndarray] = []
        self.captions: list[list[str]] = []
        kept_names: list[str] = []
        skipped = truncated = 0
        for i in indices:
            codes = np.asarray(encoded.codes(i), dtype=np.int64)
            texts = [t for t in encoded.texts(names[i]) if t.strip()]
            if len(codes) == 0 or not texts:
                skipped += 1
                continue
            if len(codes) > max_motion_tokens:
                codes, truncated = codes[:max_motion_tokens], truncated + 1
            self.codes.append(codes)
            self.captions.append(texts)
            kept_names.append(names[i])
        if skipped or truncated:
            log.warning("split %s: skipped %d items without tokens or captions, truncated %d", split, skipped, truncated)
        if not self.codes:
            raise ValueError(f"split {split!r} of the encoded tokens has no usable item (tokens + captions)")
        self.codebook_size = int(encoded.codebook_size)
        self.sampling_weights = self._stratum_weights(encoded, kept_names, stratum_alpha, stratum_levels)

    @staticmethod
    def _stratum_weights(encoded, names: list[str], alpha: float, levels: int = 0) -> np.ndarray | None:
        """Per-item probabilities that give each stratum (e.g. content/style) a share proportional to
        its size**alpha, as multilingual LMs temper language sizes: alpha 1 keeps the data as it is,
        0 makes every stratum equally likely. ``levels`` > 0 keeps only the first levels of a
        "source/content/style" stratum (2 = per content). None means plain shuffled epochs."""
        if alpha == 1.0:
            return None
        strata = encoded.strata()
        if not strata:
            log.warning("stratum_alpha=%s ignored: %s has no strata.json (re-encode the tokens)", alpha, encoded.folder)
            return None
        keys = [strata.get(name, name) for name in names]
        if levels > 0:
            keys = ["/".join(key.split("/")[:levels]) for key in keys]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        weights = counts[inverse].astype(np.float64) ** (alpha - 1.0)
        return weights / weights.sum()

    def __len__(self) -> int:
        return len(self.codes)

    def all_captions(self) -> list[str]:
        return [c for texts in self.captions for c in texts]

    def item_order(self, seed: int, step: int, rank: int, world: int, batch_size: int) -> list[int]:
        """Indices for this rank at this step: an endless stream of shuffled epochs, cut into global batches."""
        global_batch = batch_size * world
        first = step * global_batch + rank * batch_size
        order = []
        for position in range(first, first + batch_size):
            epoch, offset = divmod(position, len(self))
            order.append(int(self._epoch_permutation(seed, epoch)[offset]))
        return order

    def _epoch_permutation(self, seed: int, epoch: int) -> np.ndarray:
        if getattr(self, "_permutation_key", None) != (seed, epoch):
            rng = np.random.default_rng([seed, epoch])
            if self.sampling_weights is None:
                self._permutation = rng.permutation(len(self))
            else:  # an "epoch" of len(self) draws with replacement from the tempered distribution
                self._permutation = rng.choice(len(self), size=len(self), p=self.sampling_weights)
            self._permutation_key = (seed, epoch)
        return self._permutation

    def make_batch(
        self,
        cache: TextFeatureCache,
        seed: int,
        step: int,
        rank: int,
        world: int,
        batch_size: int,
        token_aug_prob: float,
        cond_drop_prob: float,
        augment: bool = True,
    ) -> TokenBatch:
        rng = np.random.default_rng([seed, 1, step, rank])  # per-step randomness: exact resume for free
        end_id, pad_id = self.codebook_size, self.codebook_size + 1
        sequences, captions, drops = [], [], []
        for index in self.item_order(seed, step, rank, world, batch_size):
            codes = self.codes[index]
            caption = self.captions[index][rng.integers(len(self.captions[index]))]
            # The reference's augmentation: with probability 1/3 drop one token at the head or the tail.
            if augment and len(codes) > 1 and rng.random() < token_aug_prob:
                codes = codes[1:] if rng.random() < 0.5 else codes[:-1]
            drops.append(bool(augment and rng.random() < cond_drop_prob))
            sequences.append(np.append(codes, end_id))
            captions.append(caption)
        longest = max(len(s) for s in sequences)
        tokens = np.full((len(sequences), longest), pad_id, dtype=np.int64)
        for i, seq in enumerate(sequences):
            tokens[i, : len(seq)] = seq
        features, mask = cache.batch(captions)
        return TokenBatch(features, mask, torch.from_numpy(tokens), torch.tensor(drops), captions)
