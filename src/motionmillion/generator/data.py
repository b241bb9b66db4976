"""Training data for the generator: encoded motion tokens + captions (text features come from
:class:`motionmillion.text.TextFeatureCache`). Batches are a pure function of (seed, step, rank), so an
interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionmillion.text import TextFeatureCache

log = logging.getLogger(__name__)


def open_encoded(folder: str | Path):
    """The tokenizer's EncodedTokens reader (contract 5); a missing or damaged folder raises ValueError."""
    from motionmillion.tokenizer.encoded import EncodedTokens

    return EncodedTokens(folder)


@dataclass
class TokenBatch:
    text_features: torch.Tensor  # (B, L, dim)
    text_mask: torch.Tensor  # (B, L)
    tokens: torch.Tensor  # (B, N) codes, END, then PAD
    drop_text: torch.Tensor  # (B,)
    captions: list[str]
    # (B, N + 1) motion tokens still to come, counting the one each position predicts; -1 = unknown (PAD
    # positions, and rows whose length condition was dropped). Used by length-conditioned generators.
    remaining: torch.Tensor | None = None
    # (B, N) what the loss compares with: ``tokens`` with the cross-clip context positions set to PAD.
    targets: torch.Tensor | None = None


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
        """Tempered per-item probabilities (data.stats.stratum_weights); None means plain shuffled epochs."""
        from motionmillion.data.stats import stratum_weights

        if alpha == 1.0:
            return None
        strata = encoded.strata()
        if not strata:
            log.warning("stratum_alpha=%s ignored: %s has no strata.json (re-encode the tokens)", alpha, encoded.folder)
            return None
        return stratum_weights([strata.get(name, name) for name in names], alpha, levels)

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
        length_drop_prob: float = 0.0,
        context_prob: float = 0.0,
        max_context_tokens: int = 8,
        max_motion_tokens: int | None = None,
    ) -> TokenBatch:
        rng = np.random.default_rng([seed, 1, step, rank])  # per-step randomness: exact resume for free
        # Streams of their own, so the length-condition dropout and the context leave the other draws (and
        # old runs) unchanged.
        length_rng = np.random.default_rng([seed, 2, step, rank])
        context_rng = np.random.default_rng([seed, 3, step, rank])
        end_id, pad_id = self.codebook_size, self.codebook_size + 1
        sequences, captions, drops, context_lengths = [], [], [], []
        for index in self.item_order(seed, step, rank, world, batch_size):
            codes = self.codes[index]
            caption = self.captions[index][rng.integers(len(self.captions[index]))]
            # The reference's augmentation: with probability 1/3 drop one token at the head or the tail.
            if augment and len(codes) > 1 and rng.random() < token_aug_prob:
                codes = codes[1:] if rng.random() < 0.5 else codes[:-1]
            drops.append(bool(augment and rng.random() < cond_drop_prob))
            context = np.zeros(0, dtype=np.int64)
            if augment and context_rng.random() < context_prob:  # a window of another clip comes first
                other = self.codes[context_rng.integers(len(self))]
                length = int(context_rng.integers(1, min(max_context_tokens, len(other)) + 1))
                start = int(context_rng.integers(0, len(other) - length + 1))
                context = other[start : start + length]
                if max_motion_tokens is not None:  # context + clip must fit where sampling puts them
                    codes = codes[: max(1, max_motion_tokens - length)]
            context_lengths.append(len(context))
            sequences.append(np.concatenate([context, codes, [end_id]]))
            captions.append(caption)
        longest = max(len(s) for s in sequences)
        tokens = np.full((len(sequences), longest), pad_id, dtype=np.int64)
        remaining = np.full((len(sequences), longest + 1), -1, dtype=np.int64)
        for i, seq in enumerate(sequences):
            tokens[i, : len(seq)] = seq
            if not (augment and length_rng.random() < length_drop_prob):
                remaining[i, : len(seq)] = np.arange(len(seq) - 1, -1, -1)  # 0 where END is the target
        targets = tokens.copy()
        for i, length in enumerate(context_lengths):
            targets[i, :length] = pad_id  # the context is given, not predicted
        features, mask = cache.batch(captions)
        return TokenBatch(features, mask, torch.from_numpy(tokens), torch.tensor(drops), captions,
                          torch.from_numpy(remaining), torch.from_numpy(targets))
