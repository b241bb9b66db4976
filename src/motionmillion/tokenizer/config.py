"""Typed configs of the motion tokenizer: model, loss and training, with named presets.

A preset name means the same thing everywhere: ``paper`` is the released MotionMillion FSQ-VAE
(512 wide, FSQ [8,8,8,5,5,5] = 64,000 codes, 2 frames per token, no patch), ``small`` is our CPU
preset, ``tiny`` exists for tests. ``motionmillion.training.preset(PRESETS, name)`` gives one to change and
``motionmillion.training.apply_overrides`` overrides any field with ``section.field=value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from motionmillion import training
from motionmillion.motion.representation import FEATURE_DIM
from motionmillion.training import check_choice, config_from_dict

PATCH_METHODS = ("haar", "db2", "rearrange")


@dataclass
class TokenizerConfig:
    """Architecture of the FSQ autoencoder (what ``config.json`` of a tokenizer folder holds)."""

    levels: list[int] = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    width: int = 512
    depth: int = 3  # residual blocks per Resnet1D
    dilation_growth: int = 3  # dilations growth**d for d < depth, applied in reverse order
    down_t: int = 1  # number of stride-2 down-sampling stages (1 -> 2x, 2 -> 4x)
    causal: bool = False  # left-only padding: a decoded frame depends on current and past tokens only
    patch_size: int = 1  # frames folded by the patcher before the encoder (power of 2; 1 = none)
    patch_method: str = "haar"
    input_dim: int = FEATURE_DIM

    def __post_init__(self) -> None:
        self.levels = [int(level) for level in self.levels]
        if not self.levels or any(level < 2 for level in self.levels):
            raise ValueError(f"FSQ levels must be integers >= 2, got {self.levels}")
        if self.width < 1 or self.depth < 1 or self.dilation_growth < 1 or self.down_t < 0:
            raise ValueError(f"bad tokenizer sizes: width={self.width} depth={self.depth} down_t={self.down_t}")
        if self.patch_size < 1 or self.patch_size & (self.patch_size - 1):
            raise ValueError(f"patch_size must be a power of 2, got {self.patch_size}")
        if self.patch_method not in PATCH_METHODS:
            raise ValueError(f"patch_method must be one of {PATCH_METHODS}, got {self.patch_method!r}")
        if self.causal and self.patch_size > 1 and self.patch_method == "db2":
            raise ValueError("a causal tokenizer needs a block-local patcher (haar or rearrange), not db2")
        if self.frames_per_token < 2:
            raise ValueError("frames_per_token (patch_size * 2**down_t) must be at least 2")

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    @property
    def frames_per_token(self) -> int:
        return self.patch_size * 2**self.down_t


@dataclass
class LossConfig:
    """Weights of the SmoothL1 terms on normalised features (0 switches a term off)."""

    beta: float = 1.0  # SmoothL1 transition point
    reconstruction: float = 1.0  # all 272 features
    positions: float = 0.5  # local joint positions [8:74] (the reference's so-called "velocity" loss)
    root: float = 0.0  # root velocity + heading [0:8]
    velocity: float = 0.0  # joint velocities [74:140] (the real velocity block)
    # Kinematic terms on the de-normalised motion (tokenizer/losses.py), in metres or m/s^2.
    bones: float = 0.0  # decoded bone lengths against the clip's
    forward_kinematics: float = 0.0  # joints posed by the decoded rotations against the clip's joints
    acceleration: float = 0.0  # joint accelerations against the clip's (jitter)
    trajectory: float = 0.0  # the window's decoded world joints against the clip's (root and heading drift)
    foot_contact: float = 0.0  # decoded foot speed where the clip's feet are in contact (foot skating)

    def __post_init__(self) -> None:
        weights = (self.reconstruction, self.positions, self.root, self.velocity, self.bones,
                   self.forward_kinematics, self.acceleration, self.trajectory, self.foot_contact)  # fmt: skip
        if self.beta <= 0 or min(weights) < 0:
            raise ValueError(f"loss weights must be >= 0 and beta > 0: {self}")

    @property
    def has_kinematic_terms(self) -> bool:
        return any(w > 0 for w in (self.bones, self.forward_kinematics, self.acceleration, self.trajectory,
                                   self.foot_contact))  # fmt: skip


@dataclass
class TrainConfig(training.TrainConfig):
    """The tokenizer's training settings: the shared ones (motionmillion.training.TrainConfig) with the
    paper's values as defaults, and the tokenizer's own below them."""

    steps: int = 6_048_000
    batch_size: int = 64  # per process
    lr: float = 5e-5
    warmup_steps: int = 48_000
    schedule: str = "multistep"
    min_lr_ratio: float = 0.1
    milestones: list[int] = field(default_factory=lambda: [300_000])
    gamma: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    eval_every: int = 3_000  # MPJPE of eval_clips val clips
    save_every: int = 10_000
    window: int = 96  # frames per training window
    eval_clips: int = 64  # val clips used by each validation's MPJPE (whole clips)
    snapshot_minutes: list[float] = field(default_factory=list)  # keep a model copy at these minutes
    # random: each window read where it lies (fast while the packed store fits in RAM); stream: shuffled
    # contiguous blocks (data/stream.py) for a packed store larger than RAM
    reader: str = "random"
    # Share of each content/style stratum of the windows ~ size**alpha (1 = uniform clips; reader random only)
    stratum_alpha: float = 1.0
    # Fine-tuning: start from a tokenizer folder's weights (same architecture, same normalisation) and, with
    # decoder_only, train its decoder alone: the token ids stay the same, so a generator trained on them
    # still fits (as Stable Diffusion's VAE decoder was fine-tuned without touching its latents).
    init_from: str = ""
    decoder_only: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decoder_only and not self.init_from:
            raise ValueError("decoder_only needs init_from (the tokenizer whose encoder and codes are kept)")
        if not 0.0 <= self.stratum_alpha <= 1.0:
            raise ValueError(f"stratum_alpha must be in [0, 1], got {self.stratum_alpha}")
        if self.stratum_alpha != 1.0 and self.reader != "random":
            raise ValueError("stratum_alpha needs reader=random (the stream reader reads contiguous blocks)")
        check_choice("reader", self.reader, ("random", "stream"))
        if self.window < 2:
            raise ValueError(f"window must be at least 2 frames, got {self.window}")


@dataclass
class RunConfig(training.RunConfig):
    STAGE: ClassVar[str] = "tokenizer"
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        fpt = self.model.frames_per_token
        if self.train.window % fpt:
            raise ValueError(f"window {self.train.window} must be a multiple of frames_per_token {fpt}")


def tokenizer_config_from_dict(data: dict, path: str | Path) -> TokenizerConfig:
    """A TokenizerConfig from a saved dict (``path`` only names the file in errors)."""
    data = dict(data.get("model", data))
    derived = {key: data.pop(key) for key in ("model_type", "codebook_size", "frames_per_token") if key in data}
    config = config_from_dict(TokenizerConfig, data, path)
    for key in ("codebook_size", "frames_per_token"):
        if key in derived and derived[key] != getattr(config, key):
            raise ValueError(f"{path}: {key} {derived[key]} does not match the levels/patch/down_t ({getattr(config, key)})")
    return config


# The tokenizer's presets: ``motionmillion.training.preset(PRESETS, name)`` gives a copy to change.
PRESETS: dict[str, RunConfig] = {
    "paper": RunConfig(),
    # CPU preset (tuned in 4-minute runs on this shared 2-core machine, see the tokenizer report): a narrow
    # net, 1,000 codes, a real Haar patch of 2 frames + one 2x stage = 4 frames/token. Many small steps beat
    # few big ones here: 16 x 48-frame windows (the paper: 64 x 96); lr 2e-3 collapsed the codebook,
    # 5e-4 did not. root weight 2: heading/root errors accumulate over whole clips in the MPJPE.
    # Session 5 (10k-step trials, val MPJPE / acceleration error): windows balanced over content/style
    # strata (alpha 0.5) and mild kinematic terms gave 40.4 mm / 2,860 mm/s^2 against 42.5 / 6,562 with
    # balance alone; acceleration weight 0.02 alone: 46.5 / 2,081 (smooth but blurred).
    "small": RunConfig(
        model=TokenizerConfig(levels=[8, 5, 5, 5], width=128, depth=3, dilation_growth=3, down_t=1, patch_size=2),
        loss=LossConfig(positions=0.5, root=2.0, velocity=0.5, bones=1.0, forward_kinematics=1.0, acceleration=0.005),
        train=TrainConfig(
            batch_size=16, window=48, lr=5e-4, warmup_steps=50, schedule="cosine", min_lr_ratio=0.05,
            steps=25_000, max_minutes=60.0, grad_clip=1.0, log_every=50, eval_every=2_500, eval_clips=32,
            save_every=1_000, snapshot_minutes=[10.0, 30.0, 60.0], stratum_alpha=0.5,
        ),
    ),
    "tiny": RunConfig(
        model=TokenizerConfig(levels=[5, 5, 5], width=32, depth=2, dilation_growth=2, down_t=1, patch_size=2),
        loss=LossConfig(positions=0.5, root=0.5, velocity=0.5),
        train=TrainConfig(
            batch_size=4, window=16, lr=1e-3, warmup_steps=2, schedule="cosine", steps=8, log_every=2,
            eval_every=4, eval_clips=2, save_every=4,
        ),
    ),
}  # fmt: skip
