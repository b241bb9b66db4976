"""Typed configs for the text-to-motion prefix-LM: model presets and training settings.

The paper's presets (``llama_configs`` in the reference ``model_hf.py``) keep their exact shapes;
``cpu-tiny`` / ``cpu-small`` are sized for tests and CPU training. ``codebook_size`` and ``text_dim``
come from the tokenizer and the text encoder, so a preset only fixes the transformer's shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from motionmillion.text.encoders import DEFAULT_TEXT_ENCODER
from motionmillion.training import MIXED_PRECISION, check_choice


def round_up(value: int, multiple: int) -> int:
    return ((value + multiple - 1) // multiple) * multiple


@dataclass
class GeneratorConfig:
    """Shape of the prefix-LM. ``vocab_size = codebook_size + 2``: END = codebook_size, PAD = +1."""

    preset: str = "cpu-small"
    n_layer: int = 8
    n_head: int = 6
    n_embd: int = 384
    codebook_size: int = 512
    text_dim: int = 384
    max_text_tokens: int = 150  # text prefix budget (the paper truncates flan-T5 to 150 tokens)
    max_motion_tokens: int = 150  # + END; 300 frames at 2 frames per token
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    # Classifier-free guidance: with cond_drop_prob > 0 the model learns a "null" prefix that sampling
    # uses as the unconditional branch. 0 reproduces the paper (no null prefix, no guidance).
    cond_drop_prob: float = 0.1
    default_guidance: float = 1.0
    # One extra prefix position: the text encoder's mean-pooled, unit-norm sentence embedding, projected.
    # Sentence encoders (MiniLM) place paraphrases close together, which per-token features alone do not
    # give a small model trained on few wordings. The paper's models have none.
    sentence_token: bool = False
    # Length condition: a learned embedding of the motion tokens still to come (before END) is added to
    # every position that predicts a motion token, so a requested duration ends where it should rather
    # than being cut. Rows trained with length_drop_prob see "unknown" and learn to end by themselves.
    # Generators saved before this existed have none and keep the tolerance window of the sampler.
    length_condition: bool = False
    length_drop_prob: float = 0.1
    # Read by the trainer (generator/parallelize.py); the model itself does not know about it.
    gradient_checkpointing: bool = False

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + 2

    @property
    def end_id(self) -> int:
        return self.codebook_size

    @property
    def pad_id(self) -> int:
        return self.codebook_size + 1

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        # LLaMA's SwiGLU width as in the reference: round_up_256(int(8d/3)).
        return round_up(int(8 * self.n_embd / 3), 256)

    @property
    def has_null_prefix(self) -> bool:
        return self.cond_drop_prob > 0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.head_dim % 2:
            raise ValueError(f"head dim {self.head_dim} must be even for RoPE")
        if not 0 <= self.cond_drop_prob < 1:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        if not 0 <= self.length_drop_prob <= 1:
            raise ValueError(f"length_drop_prob must be in [0, 1], got {self.length_drop_prob}")
        for name in ("n_layer", "n_head", "n_embd", "codebook_size", "text_dim", "max_text_tokens", "max_motion_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {unknown}")
        return cls(**{k: v for k, v in data.items() if k in known})


# name -> (n_layer, n_head, n_embd). Paper shapes from the fact sheet, table 4.2.
PRESETS: dict[str, tuple[int, int, int]] = {
    "cpu-tiny": (4, 6, 192),
    "cpu-small": (8, 6, 384),
    "44M": (8, 8, 512),
    "111M": (12, 12, 768),
    "343M": (24, 16, 1024),
    "775M": (36, 20, 1280),
    "1B": (48, 24, 1536),
    "3B": (24, 32, 3200),
    "5B": (24, 32, 4096),
    "7B": (36, 32, 4096),
}
DEFAULT_PRESET = "cpu-small"


def generator_preset(name: str, **overrides: Any) -> GeneratorConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown generator preset {name!r}; choose one of {', '.join(PRESETS)}")
    n_layer, n_head, n_embd = PRESETS[name]
    return GeneratorConfig(preset=name, n_layer=n_layer, n_head=n_head, n_embd=n_embd, **overrides)


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults follow the paper (AdamW, 4e-4 peak, warm-up + cosine) scaled to CPU."""

    steps: int = 3000
    batch_size: int = 32  # per process
    lr: float = 4e-4
    min_lr_ratio: float = 0.0
    warmup_steps: int = 300  # the reference hard-codes 12,000 of 240,000; here it comes from the config
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0
    token_aug_prob: float = 1 / 3  # drop one token at the head or tail, as the reference dataset does
    mixed_precision: str = "auto"  # "auto" | "bf16" | "no"
    compile: bool = False  # torch.compile each Block (generator/parallelize.py); worth it on GPUs
    seed: int = 123
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    val_every: int = 0  # 0 = only at the end; > 0 also keeps the lowest-val-loss weights in generator_best/
    val_batches: int = 4  # batches of the val split per validation (enough to cover it for model selection)
    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_max_length: int = 150
    split: str = "train"
    # Share of each stratum (content/style, from the encoded strata.json) ~ size**alpha: 1 = as the data
    # comes, 0.5 = rare contents much more often (the Bandai set has 1-2 takes of some contents).
    stratum_alpha: float = 1.0
    stratum_levels: int = 0  # 0 = whole stratum names; 2 = "bandai-2/walk" for "bandai-2/walk/happy"
    # Cross-clip context: this share of the rows start with 1..max_context_tokens tokens of another clip
    # (not in the loss), so the model learns to leave any pose for what the caption says, as a timeline
    # segment or a continuation must (issue 14: seams and segment content).
    context_prob: float = 0.0
    max_context_tokens: int = 8

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives lists
        if not 0.0 <= self.stratum_alpha <= 1.0:
            raise ValueError(f"stratum_alpha must be in [0, 1], got {self.stratum_alpha}")
        if self.stratum_levels < 0:
            raise ValueError(f"stratum_levels must be >= 0, got {self.stratum_levels}")
        if not 0.0 <= self.context_prob <= 1.0 or self.max_context_tokens < 1:
            raise ValueError("context_prob must be in [0, 1] and max_context_tokens >= 1")
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.warmup_steps < 0 or not 0 <= self.token_aug_prob <= 1:
            raise ValueError("warmup_steps must be >= 0 and token_aug_prob in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_overrides(model: GeneratorConfig, train: TrainConfig, overrides: list[str]) -> tuple[GeneratorConfig, TrainConfig]:
    """``key=value`` / ``model.key=value`` / ``train.key=value`` overrides (motionmillion.training syntax)."""
    from motionmillion.training import apply_overrides as apply

    sections = apply({"model": model, "train": train}, overrides)
    return sections["model"], sections["train"]


__all__ = [
    "DEFAULT_PRESET", "PRESETS", "GeneratorConfig", "TrainConfig", "apply_overrides", "generator_preset", "round_up",
]  # fmt: skip
