"""What may be asked of the decode engine, without torch: sampling options and the token window of a duration.

Kept apart from :mod:`motionmillion.generator.engine` so that requests are checked (command line, server)
without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0  # classifier-free guidance scale; 1 = conditional only

    def __post_init__(self) -> None:
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.guidance < 0 or not math.isfinite(self.guidance):
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")


def length_window(
    seconds: float | None, frames_per_token: int, max_tokens: int, fps: float = 30.0, tolerance: float = 0.1
) -> tuple[int, int]:
    """Token range (min, max) for a target duration: END is held back below min and forced at max.

    ``seconds=None`` lets the model end by itself (at least one token, at most ``max_tokens``).
    """
    if seconds is None:
        return 1, max_tokens
    target = seconds * fps / frames_per_token
    low = max(1, math.floor(target * (1 - tolerance)))
    high = min(max_tokens, max(low, math.ceil(target * (1 + tolerance))))
    return min(low, high), high
