"""Typed configs of the text-motion evaluator: model shape and training settings, with named presets.

``tiny`` exists for tests, ``small`` is the CPU-sized one the bundled evaluator uses, ``base`` is larger and
``paper`` has the reference's shape (it needs a GPU to train in reasonable time). The presets differ in the
model only. ``motionmillion.training.preset(PRESETS, name)`` gives one to change and
``motionmillion.training.apply_overrides`` overrides any field with ``section.field=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from motionmillion import training


@dataclass
class EvaluatorConfig:
    latent_dim: int = 256
    text_layers: int = 2
    motion_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 512
    dropout: float = 0.1
    patch_frames: int = 4  # frames per motion token
    max_frames: int = 300  # longer motions are centre-cropped to this
    text_encoder: str = "bundled:all-MiniLM-L6-v2"
    text_max_length: int = 64
    text_dim: int = 384  # hidden size of the text encoder

    @property
    def max_motion_tokens(self) -> int:
        return -(-self.max_frames // self.patch_frames)

    @classmethod
    def from_dict(cls, data: dict) -> EvaluatorConfig:
        """From an evaluator folder's config.json, which also holds the training summary and checksum."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainConfig(training.TrainConfig):
    """The evaluator's training settings: the shared ones (motionmillion.training.TrainConfig) and the
    contrastive loss's own. Batches go through the train clips epoch by epoch (a new order each epoch)."""

    # 40 epochs of the bundled data's 4,278 train clips at batch 64 (66 steps each), validating and saving
    # once per such epoch: what the trainer did when it counted epochs.
    steps: int = 2_640
    batch_size: int = 64
    lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # fp32, as the bundled evaluator was trained; auto or bf16 on request
    seed: int = 0
    log_every: int = 10
    eval_every: int = 66  # retrieval on the val split; the best-scoring weights are the evaluator's
    save_every: int = 66
    temperature: float = 0.1
    duplicate_threshold: float = 0.85  # captions closer than this (cosine) are not each other's negatives
    crop_prob: float = 0.5  # random contiguous crop keeping at least crop_min of the clip
    crop_min: float = 0.8
    split_kind: str = "t2m_60_300"

    # preset: before the presets named whole run configs, the train section named the model's preset (the
    # model section holds the shape itself). The old epochs count is converted by the trainer, which knows
    # how many steps an epoch has (evaluation/train.py).
    LEGACY_NAMES: ClassVar[dict[str, str | None]] = {**training.TrainConfig.LEGACY_NAMES, "preset": None}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (a contrastive batch needs negatives), got {self.batch_size}")
        if not 0 < self.crop_min <= 1 or not 0 <= self.crop_prob <= 1 or self.temperature <= 0:
            raise ValueError("crop_min must be in (0, 1], crop_prob in [0, 1] and temperature positive")


@dataclass
class RunConfig(training.RunConfig):
    STAGE: ClassVar[str] = "evaluator"
    model: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS: dict[str, RunConfig] = {
    "tiny": RunConfig(EvaluatorConfig(latent_dim=64, text_layers=1, motion_layers=1, num_heads=2, ffn_dim=128)),
    # CPU-sized default: ~0.8M trainable parameters, ~0.6 s per batch of 64 on one busy core.
    "small": RunConfig(EvaluatorConfig(latent_dim=128, text_layers=2, motion_layers=2, num_heads=4, ffn_dim=256, patch_frames=8)),
    "base": RunConfig(EvaluatorConfig(latent_dim=256, text_layers=2, motion_layers=4, num_heads=4, ffn_dim=512, patch_frames=4)),
    # The reference's shape (latent 512, 4 layers each side); needs a GPU to train in reasonable time.
    "paper": RunConfig(EvaluatorConfig(latent_dim=512, text_layers=4, motion_layers=4, num_heads=4, ffn_dim=1024, patch_frames=1)),
}  # fmt: skip
