"""Finite Scalar Quantisation (Mentzer et al. 2023) as used by MotionMillion (fact sheet 3.4).

Each of the ``len(levels)`` latent dimensions is squashed with a shifted tanh, rounded to one of
``L`` levels (straight-through gradient) and scaled to [-1, 1]. The code index is the mixed-radix
number of the per-dimension level indices. There is no codebook to learn and no commitment loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def round_ste(z: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return z + (z.round() - z).detach()


class FSQ(nn.Module):
    def __init__(self, levels: list[int], dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.levels = list(levels)
        self.eps = eps
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), dim)
        levels_t = torch.tensor(levels, dtype=torch.int64)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64), dim=0)
        # Non-persistent: derived from the config, so checkpoints hold only the projections.
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash to the open range of each dimension's levels (even L shifted by half a step)."""
        levels = self._levels.to(z.dtype)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) latent -> (..., d) codes in [-1, 1], straight-through."""
        half_width = (self._levels // 2).to(z.dtype)
        return round_ste(self.bound(z)) / half_width

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        half_width = self._levels // 2
        level_idx = (codes * half_width + half_width).round().long()
        return (level_idx * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"token ids must be in [0, {self.codebook_size}), got [{indices.min()}, {indices.max()}]")
        level_idx = (indices.long().unsqueeze(-1) // self._basis) % self._levels
        half_width = self._levels // 2
        return (level_idx - half_width).float() / half_width.float()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, dim) -> (quantised (B, T, dim), indices (B, T)); quantisation runs in float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.project_in(x.float())
            codes = self.quantize(z)
            indices = self.codes_to_indices(codes)
            out = self.project_out(codes)
        return out, indices

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=indices.device.type, enabled=False):
            return self.project_out(self.indices_to_codes(indices))


def code_usage(indices: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """(fraction of codes used, perplexity exp(H)) of a set of token ids."""
    counts = torch.bincount(indices.flatten().long(), minlength=codebook_size).double()
    total = counts.sum()
    if total == 0:
        return 0.0, 0.0
    probs = counts / total
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())
