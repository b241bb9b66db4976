"""TMR-style text-motion evaluator: two small transformers mapping text and motion into one space.

Text side: a frozen Hugging Face encoder (the bundled MiniLM by default) gives per-token features;
a small transformer reads them after a learned summary token and the output at that token is the
embedding. Motion side: de-normalised (T, 272) features are normalised with the training data's
mean/std, grouped into patches of ``patch_frames`` frames (fewer tokens, fast on a CPU), and read by
the same kind of transformer. Both embeddings are L2-normalised, so Euclidean distances (used by
R-precision, MM-Dist, FID, Diversity) are monotone in cosine similarity.

A saved evaluator folder holds ``config.json`` (architecture, text encoder, training summary and the
SHA-256 of the weights), ``model.safetensors`` and ``normalization/{mean,std}.npy``.

``EmbeddingEvaluator`` is what the metrics see of any evaluator (this one and the paper's released one,
:mod:`motionmillion.evaluation.paper_evaluator`): cached text embeddings, validated and batched motions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from motionmillion.evaluation.config import EvaluatorConfig
from motionmillion.motion.normalization import Normalizer
from motionmillion.motion.representation import FEATURE_DIM, InvalidMotionError
from motionmillion.utils.model_folder import (
    WEIGHTS_NAME,
    file_sha256,
    load_weights,
    read_config,
    save_model_folder,
    verify_checksum,
)

log = logging.getLogger(__name__)

MODEL_TYPE = "motionmillion-evaluator"
NORMALIZATION_DIR = "normalization"


class SequenceEncoder(nn.Module):
    """Linear projection, a learned summary token in front, learned positions, a transformer encoder;
    returns the L2-normalised output at the summary token."""

    def __init__(self, in_dim: int, config: EvaluatorConfig, num_layers: int, max_tokens: int):
        super().__init__()
        d = config.latent_dim
        self.input_proj = nn.Linear(in_dim, d)
        self.summary_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.positions = nn.Parameter(torch.randn(1, max_tokens + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.num_heads, config.ffn_dim, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        self.output_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, in_dim), mask (B, L) True at real tokens -> (B, latent_dim) unit vectors."""
        if x.shape[1] + 1 > self.positions.shape[1]:
            raise ValueError(f"sequence of {x.shape[1]} tokens exceeds the encoder's {self.positions.shape[1] - 1}")
        h = self.input_proj(x)
        h = torch.cat([self.summary_token.expand(len(h), -1, -1), h], dim=1) + self.positions[:, : h.shape[1] + 1]
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        h = self.transformer(h, src_key_padding_mask=~keep)
        return F.normalize(self.output_proj(self.final_norm(h[:, 0])), dim=-1)


class EvaluatorModel(nn.Module):
    """The trainable part: text head (over frozen token features) and motion encoder."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        self.text_head = SequenceEncoder(config.text_dim, config, config.text_layers, config.text_max_length)
        self.motion_encoder = SequenceEncoder(
            FEATURE_DIM * config.patch_frames, config, config.motion_layers, config.max_motion_tokens
        )

    def encode_text_features(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.text_head(features, mask)

    def encode_motion_normalized(self, motion: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """motion (B, T, 272) normalised, zero-padded; frame_mask (B, T) True at real frames."""
        p = self.config.patch_frames
        pad = (-motion.shape[1]) % p
        if pad:
            motion = F.pad(motion, (0, 0, 0, pad))
            frame_mask = F.pad(frame_mask, (0, pad), value=False)
        b, t, _ = motion.shape
        motion = motion * frame_mask[..., None]
        tokens = motion.reshape(b, t // p, p * FEATURE_DIM)
        token_mask = frame_mask.reshape(b, t // p, p).any(-1)
        return self.motion_encoder(tokens, token_mask)


def crop_to_max(features: np.ndarray, max_frames: int) -> np.ndarray:
    """Centre crop to ``max_frames`` (documented evaluation behaviour for longer clips)."""
    if len(features) <= max_frames:
        return features
    start = (len(features) - max_frames) // 2
    return features[start : start + max_frames]


def pad_motions(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, 272) arrays into a zero-padded (B, T_max, 272) float tensor and a (B, T_max) mask."""
    longest = max(len(c) for c in clips)
    batch = np.zeros((len(clips), longest, FEATURE_DIM), dtype=np.float32)
    mask = np.zeros((len(clips), longest), dtype=bool)
    for i, clip in enumerate(clips):
        batch[i, : len(clip)] = clip
        mask[i, : len(clip)] = True
    return torch.from_numpy(batch), torch.from_numpy(mask)


class EmbeddingEvaluator:
    """What every evaluator shares: per-text caching of text embeddings and length-sorted batches of
    validated, centre-cropped, normalised motions. Subclasses embed one batch of texts (``_embed_texts``)
    and one padded batch of normalised motions (``_embed_motions``); metrics only call ``encode_text``,
    ``encode_motion``, ``dim``, ``checksum`` and ``config.max_frames``."""

    def __init__(self, normalizer: Normalizer, max_frames: int, dim: int, text_encoder_path: str, text_max_length: int,
                 text_encoder=None, checksum: str = ""):  # fmt: skip
        self.normalizer = normalizer
        self.max_frames = max_frames
        self.dim = dim
        self.checksum = checksum
        self._text_encoder_args = (text_encoder_path, text_max_length)
        self._text_encoder = text_encoder
        self._text_cache: dict[str, np.ndarray] = {}
        self._warned_crop = False

    @property
    def text_encoder(self):
        """The frozen token encoder, loaded on first use (motion-only metrics never need it)."""
        if self._text_encoder is None:
            from motionmillion.text.encoders import TextEncoder

            path, max_length = self._text_encoder_args
            self._text_encoder = TextEncoder(path, max_length=max_length)
        return self._text_encoder

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _embed_motions(self, batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """(B, D) float32 embeddings; each distinct text is embedded once."""
        if isinstance(texts, str):
            texts = [texts]
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            self._text_cache.update(zip(chunk, self._embed_texts(chunk)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._text_cache[t] for t in texts]).astype(np.float32)

    @torch.no_grad()
    def encode_motion(self, features: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(B, D) float32 embeddings of de-normalised (T, 272) motions of any length >= 1.

        Motions longer than ``max_frames`` are centre-cropped (with one warning). NaN or
        wrongly shaped motions raise InvalidMotionError naming their index.
        """
        clips = []
        for i, clip in enumerate(features):
            clip = np.asarray(clip)
            if clip.ndim != 2 or clip.shape[1] != FEATURE_DIM or len(clip) == 0:
                raise InvalidMotionError(f"motion {i}: expected a (T, {FEATURE_DIM}) array, got shape {clip.shape}")
            if not np.isfinite(clip).all():
                raise InvalidMotionError(f"motion {i}: contains NaN or infinite values")
            if len(clip) > self.max_frames and not self._warned_crop:
                log.warning("motions longer than %d frames are centre-cropped for the evaluator", self.max_frames)
                self._warned_crop = True
            clips.append(self.normalizer.normalize(crop_to_max(clip, self.max_frames).astype(np.float64)).astype(np.float32))
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sort by length so padding is small, then restore the order.
        order = np.argsort([len(c) for c in clips], kind="stable")
        out = np.zeros((len(clips), self.dim), dtype=np.float32)
        for start in range(0, len(clips), batch_size):
            idx = order[start : start + batch_size]
            batch, mask = pad_motions([clips[i] for i in idx])
            out[idx] = self._embed_motions(batch, mask).numpy()
        return out


class Evaluator(EmbeddingEvaluator):
    """Text and motion embeddings for metrics (contract 7). Inference only, CPU by default.

    >>> ev = Evaluator.from_pretrained("runs/evaluator")
    >>> t = ev.encode_text(["a person walks forward"])         # (1, D) float32, unit norm
    >>> m = ev.encode_motion([features])                       # features: (T, 272) de-normalised
    """

    def __init__(self, model: EvaluatorModel, normalizer: Normalizer, text_encoder=None, checksum: str = "", folder=None):
        config = model.config
        super().__init__(normalizer, config.max_frames, config.latent_dim, config.text_encoder, config.text_max_length,
                         text_encoder, checksum)  # fmt: skip
        self.model = model.eval()
        self.config = config
        self.folder = Path(folder) if folder is not None else None

    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> str:
        """Write config.json (+ ``extra`` such as training figures), model.safetensors and normalization/;
        returns the weights' SHA-256 (reports cite it)."""
        folder = Path(folder)
        self.normalizer.save(folder / NORMALIZATION_DIR)
        self.checksum = save_model_folder(folder, MODEL_TYPE, {**asdict(self.config), **(extra or {})},
                                          self.model.state_dict())  # fmt: skip
        return self.checksum

    @classmethod
    def from_pretrained(cls, folder: str | Path, verify: bool = True) -> Evaluator:
        folder = Path(folder)
        data = read_config(folder, "evaluator")
        if not (folder / NORMALIZATION_DIR / "mean.npy").is_file():
            raise FileNotFoundError(
                f"{folder / NORMALIZATION_DIR / 'mean.npy'}: missing; an evaluator folder needs config.json, "
                f"model.safetensors and {NORMALIZATION_DIR}/mean.npy,std.npy (train one with `motionmillion evaluator train`)"
            )
        checksum = verify_checksum(folder) if verify else file_sha256(folder / WEIGHTS_NAME)
        model = EvaluatorModel(EvaluatorConfig.from_dict(data))
        load_weights(folder, model)
        return cls(model, Normalizer.load(folder / NORMALIZATION_DIR), checksum=checksum, folder=folder)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings of the text head over the frozen encoder's token features."""
        out = self.text_encoder.encode(texts)
        return self.model.encode_text_features(out.features, out.mask).numpy()

    def _embed_motions(self, batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_motion_normalized(batch, mask)
