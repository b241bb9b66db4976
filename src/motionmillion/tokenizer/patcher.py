"""Temporal patchers: fold ``patch_size`` frames into channels before the encoder, exactly invertibly.

- ``haar`` / ``db2``: orthonormal wavelet analysis, log2(patch_size) levels; every level splits
  every channel into a low- and a high-pass band at half the frame rate (a full wavelet-packet
  tree), so (B, C, T) -> (B, C * patch_size, T / patch_size). Orthonormal filters with periodic
  extension make the synthesis (the adjoint) the exact inverse. Haar touches only the frames of one
  patch, so it keeps a causal model causal; db2 mixes neighbouring patches (wrapping at the ends).
- ``rearrange``: frames of a patch stacked on channels, no transform.

Unlike the reference (patch_size 1 = identity, log2 levels), these really transform when patch_size > 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_SQRT3 = math.sqrt(3.0)
WAVELET_LOWPASS = {
    "haar": [1 / math.sqrt(2), 1 / math.sqrt(2)],
    "db2": [(1 + _SQRT3) / (4 * math.sqrt(2)), (3 + _SQRT3) / (4 * math.sqrt(2)),
            (3 - _SQRT3) / (4 * math.sqrt(2)), (1 - _SQRT3) / (4 * math.sqrt(2))],
}  # fmt: skip


def _filters(method: str) -> torch.Tensor:
    """(2, L) analysis filters [low; high] with the quadrature-mirror high pass g[n] = (-1)^n h[L-1-n]."""
    low = torch.tensor(WAVELET_LOWPASS[method], dtype=torch.float64)
    signs = torch.tensor([(-1.0) ** n for n in range(len(low))], dtype=torch.float64)
    return torch.stack([low, signs * low.flip(0)])


class Patcher(nn.Module):
    def __init__(self, patch_size: int, method: str = "haar") -> None:
        super().__init__()
        self.patch_size = patch_size
        self.method = method
        self.levels = int(math.log2(patch_size))
        if 2**self.levels != patch_size:
            raise ValueError(f"patch_size must be a power of 2, got {patch_size}")
        if method in WAVELET_LOWPASS:
            self.register_buffer("filters", _filters(method), persistent=False)  # float64, cast at use
        elif method != "rearrange":
            raise ValueError(f"unknown patch method {method!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C * p, T / p); T must be a multiple of p."""
        if x.shape[-1] % self.patch_size:
            raise ValueError(f"sequence length {x.shape[-1]} is not a multiple of patch_size {self.patch_size}")
        if self.method == "rearrange":
            b, c, t = x.shape
            return x.reshape(b, c, t // self.patch_size, self.patch_size).transpose(2, 3).reshape(b, c * self.patch_size, -1)
        for _ in range(self.levels):
            x = self._analysis(x)
        return x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C * p, T / p) -> (B, C, T)."""
        if self.method == "rearrange":
            b, cp, n = y.shape
            c = cp // self.patch_size
            return y.reshape(b, c, self.patch_size, n).transpose(2, 3).reshape(b, c, n * self.patch_size)
        for _ in range(self.levels):
            y = self._synthesis(y)
        return y

    def _analysis(self, x: torch.Tensor) -> torch.Tensor:
        # Channel c -> bands (2c, 2c+1) = (low, high); periodic extension by L-2 frames on the right.
        b, c, t = x.shape
        filters = self.filters.to(x.dtype)
        taps = filters.shape[-1]
        x = x.reshape(b * c, 1, t)
        if taps > 2:
            x = torch.cat([x, x[..., : taps - 2]], dim=-1)
        y = F.conv1d(x, filters.unsqueeze(1), stride=2)  # (B*C, 2, T/2)
        return y.reshape(b, 2 * c, t // 2)

    def _synthesis(self, y: torch.Tensor) -> torch.Tensor:
        b, c2, n = y.shape
        filters = self.filters.to(y.dtype)
        taps = filters.shape[-1]
        t = 2 * n
        x = F.conv_transpose1d(y.reshape(b * c2 // 2, 2, n), filters.unsqueeze(1), stride=2)  # (B*C, 1, T+L-2)
        if taps > 2:  # fold the periodic extension back onto the start
            x = torch.cat([x[..., : taps - 2] + x[..., t:], x[..., taps - 2 : t]], dim=-1)
        return x.reshape(b, c2 // 2, t)
