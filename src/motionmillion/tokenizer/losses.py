"""Tokenizer training loss: weighted SmoothL1 terms on normalised 272 features (fact sheet 3.5).

Unlike the reference, the "velocity" term here really covers the joint velocities [74:140]; the
reference's position term [8:74] is kept under its own name, and the root term [0:8] applies always.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motionmillion.motion.representation import POSITIONS, VELOCITIES
from motionmillion.tokenizer.config import LossConfig

ROOT = slice(0, 8)  # root velocity (2) + heading delta (6)


def tokenizer_loss(pred: torch.Tensor, target: torch.Tensor, config: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its named parts (as floats, for logging); computed in float32."""
    pred, target = pred.float(), target.float()
    terms = {
        "reconstruction": (config.reconstruction, slice(None)),
        "positions": (config.positions, POSITIONS),
        "root": (config.root, ROOT),
        "velocity": (config.velocity, VELOCITIES),
    }
    total = pred.new_zeros(())
    parts: dict[str, float] = {}
    for name, (weight, block) in terms.items():
        if weight == 0:
            continue
        value = F.smooth_l1_loss(pred[..., block], target[..., block], beta=config.beta)
        total = total + weight * value
        parts[name] = float(value.detach())
    parts["loss"] = float(total.detach())
    return total, parts
