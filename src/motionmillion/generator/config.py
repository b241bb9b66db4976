"""Typed configs for the text-to-motion prefix-LM: model shape, training settings and presets.

The paper's presets (``llama_configs`` in the reference ``model_hf.py``) keep their exact shapes;
``cpu-tiny`` / ``cpu-small`` are sized for tests and CPU training. ``codebook_size`` and ``text_dim``
come from the tokenizer and the text encoder, so a preset only fixes the transformer's shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from motionmillion import training
from motionmillion.text.encoders import DEFAULT_TEXT_ENCODER
from motionmillion.training import config_from_dict


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
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> GeneratorConfig:
        return config_from_dict(cls, data, source)


@dataclass
class TrainConfig(training.TrainConfig):
    """The generator's training settings: the shared ones (motionmillion.training.TrainConfig) with the
    paper's optimiser (AdamW, 4e-4 peak, warm-up + cosine) scaled to CPU, and the generator's own below."""

    steps: int = 3000
    batch_size: int = 32  # per process
    lr: float = 4e-4
    warmup_steps: int = 300  # the reference hard-codes 12,000 of 240,000; here it comes from the config
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    log_every: int = 10
    save_every: int = 500
    eval_every: int = 0  # validation loss every N steps; > 0 also keeps the lowest-val-loss weights in generator_best/
    eval_batches: int = 4  # batches of the val split per validation (enough to cover it for model selection)
    token_aug_prob: float = 1 / 3  # drop one token at the head or tail, as the reference dataset does
    compile: bool = False  # torch.compile each Block (generator/parallelize.py); worth it on GPUs
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

    # val_batches: the generator's name for eval_batches before the trainers shared their field names.
    LEGACY_NAMES: ClassVar[dict[str, str | None]] = {**training.TrainConfig.LEGACY_NAMES, "val_batches": "eval_batches"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.stratum_alpha <= 1.0:
            raise ValueError(f"stratum_alpha must be in [0, 1], got {self.stratum_alpha}")
        if self.stratum_levels < 0:
            raise ValueError(f"stratum_levels must be >= 0, got {self.stratum_levels}")
        if not 0.0 <= self.context_prob <= 1.0 or self.max_context_tokens < 1:
            raise ValueError("context_prob must be in [0, 1] and max_context_tokens >= 1")
        if not 0 <= self.token_aug_prob <= 1 or self.eval_batches < 1:
            raise ValueError("token_aug_prob must be in [0, 1] and eval_batches >= 1")


@dataclass
class RunConfig(training.RunConfig):
    STAGE: ClassVar[str] = "generator"
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _shape(name: str, n_layer: int, n_head: int, n_embd: int) -> RunConfig:
    return RunConfig(model=GeneratorConfig(preset=name, n_layer=n_layer, n_head=n_head, n_embd=n_embd))


# The generator's presets: ``motionmillion.training.preset(PRESETS, name)`` gives a copy to change. They
# differ in the transformer's shape only; paper shapes from the fact sheet, table 4.2.
PRESETS: dict[str, RunConfig] = {
    "cpu-tiny": _shape("cpu-tiny", 4, 6, 192),
    "cpu-small": _shape("cpu-small", 8, 6, 384),
    "44M": _shape("44M", 8, 8, 512),
    "111M": _shape("111M", 12, 12, 768),
    "343M": _shape("343M", 24, 16, 1024),
    "775M": _shape("775M", 36, 20, 1280),
    "1B": _shape("1B", 48, 24, 1536),
    "3B": _shape("3B", 24, 32, 3200),
    "5B": _shape("5B", 24, 32, 4096),
    "7B": _shape("7B", 36, 32, 4096),
}
