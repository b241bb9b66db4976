"""The FSQ motion autoencoder (fact sheet 3.2): patcher -> 1D conv encoder -> FSQ -> decoder -> unpatcher.

Module names and indices follow the reference (``encoder.model.{0..}``, ``decoder.model.{0..}``,
``quantizer.project_in/out``) so that the released weights map on by name (see paper_checkpoint.py).
With ``causal=True`` every convolution pads on the left only, so the frames decoded from the first
n tokens do not change when more tokens follow (streaming decode).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from motionmillion.tokenizer.config import TokenizerConfig
from motionmillion.tokenizer.fsq import FSQ
from motionmillion.tokenizer.patcher import Patcher
from motionmillion.utils.model_folder import CONFIG_NAME, load_weights, read_config, save_model_folder

if TYPE_CHECKING:
    from motionmillion.motion import Normalizer

MODEL_TYPE = "motionmillion-fsq-tokenizer"


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: output frame t sees input frames <= its stride-aligned position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.dilation[0] * (self.kernel_size[0] - 1) + 1 - self.stride[0]
        return super().forward(F.pad(x, (left, 0)))


def make_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1, causal: bool = False) -> nn.Conv1d:
    if causal:
        return CausalConv1d(c_in, c_out, kernel, stride=stride, dilation=dilation)
    # Same-length (stride 1) or exact halving (k4 s2 p1) as in the reference.
    padding = (dilation * (kernel - 1) + 1 - stride + 1) // 2
    return nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, T) tensor (per frame, hence causal-safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: LN -> ReLU -> dilated conv k3 -> LN -> ReLU -> conv k1 -> + x."""

    def __init__(self, width: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(width)
        self.conv1 = make_conv(width, width, 3, dilation=dilation, causal=causal)
        self.norm2 = ChannelLayerNorm(width)
        self.conv2 = make_conv(width, width, 1, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        h = self.conv2(F.relu(self.norm2(h)))
        return x + h


class Resnet1D(nn.Module):
    def __init__(self, width: int, depth: int, growth: int, causal: bool) -> None:
        super().__init__()
        # Largest dilation first, as the reference's reverse_dilation=True.
        blocks = [ResConv1DBlock(width, growth**d, causal) for d in range(depth)][::-1]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnPatcher(nn.Module):
    def __init__(self, patcher: Patcher) -> None:
        super().__init__()
        self.patcher = patcher

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patcher.inverse(x)


class Encoder(nn.Module):
    def __init__(self, c: TokenizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            Patcher(c.patch_size, c.patch_method),
            make_conv(c.input_dim * c.patch_size, c.width, 3, causal=c.causal),
            nn.ReLU(),
        ]
        for _ in range(c.down_t):
            layers.append(nn.Sequential(
                make_conv(c.width, c.width, 4, stride=2, causal=c.causal),
                Resnet1D(c.width, c.depth, c.dilation_growth, c.causal),
            ))  # fmt: skip
        layers.append(make_conv(c.width, c.width, 3, causal=c.causal))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, c: TokenizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [make_conv(c.width, c.width, 3, causal=c.causal), nn.ReLU()]
        for _ in range(c.down_t):
            layers.append(nn.Sequential(
                Resnet1D(c.width, c.depth, c.dilation_growth, c.causal),
                nn.Upsample(scale_factor=2, mode="nearest"),
                make_conv(c.width, c.width, 3, causal=c.causal),
            ))  # fmt: skip
        layers += [
            make_conv(c.width, c.width, 3, causal=c.causal),
            nn.ReLU(),
            make_conv(c.width, c.input_dim * c.patch_size, 3, causal=c.causal),
            UnPatcher(Patcher(c.patch_size, c.patch_method)),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MotionTokenizer(nn.Module):
    """Normalised motion (B, T, 272) <-> token ids (B, T / frames_per_token)."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = FSQ(config.levels, config.width)
        self.decoder = Decoder(config)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def frames_per_token(self) -> int:
        return self.config.frames_per_token

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected motion (B, T, {self.config.input_dim}), got {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % self.frames_per_token:
            raise ValueError(
                f"sequence length {x.shape[1]} must be a positive multiple of frames_per_token {self.frames_per_token}"
            )

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)  # (B, N, width)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, 272) normalised -> (reconstruction (B, T, 272), ids (B, T / frames_per_token))."""
        quantised, ids = self.quantizer(self.encode_latent(x))
        return self.decode_latent(quantised.to(x.dtype)), ids

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        _, ids = self.quantizer(self.encode_latent(x))
        return ids

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2:
            raise ValueError(f"expected token ids (B, N), got {tuple(ids.shape)}")
        return self.decode_latent(self.quantizer.dequantize(ids))

    @torch.no_grad()
    def decoder_reach(self) -> int | None:
        """How many tokens before and after a token its decoded frames depend on (0 after it for a causal
        decoder), found by changing one token in a probe sequence; None when the decoder sees (nearly) the
        whole sequence, which timelines and streaming cannot work with."""
        probe_len, middle = 96, 48
        device = next(self.parameters()).device
        ids = torch.arange(probe_len, device=device)[None] % self.codebook_size
        changed = ids.clone()
        changed[0, middle] = (changed[0, middle] + 1) % self.codebook_size
        difference = (self.decode(ids) - self.decode(changed)).abs().amax(-1)[0]
        frames = torch.nonzero(difference > 0).flatten()
        if len(frames) == 0:
            return 0
        after = int(frames.max()) // self.frames_per_token - middle
        before = middle - int(frames.min()) // self.frames_per_token
        return None if max(before, after) >= middle - 1 else max(after, before)

    # --- folders: config.json + model.safetensors ------------------------------------------------

    def save_pretrained(self, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        # codebook_size and frames_per_token are derived; written for readers, checked on loading.
        config = {**asdict(self.config), "codebook_size": self.codebook_size, "frames_per_token": self.frames_per_token}
        save_model_folder(folder, MODEL_TYPE, config, state_dict if state_dict is not None else self.state_dict())

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> MotionTokenizer:
        from motionmillion.tokenizer.config import tokenizer_config_from_dict

        folder = Path(folder)
        config = tokenizer_config_from_dict(read_config(folder, "tokenizer"), folder / CONFIG_NAME)
        model = cls(config)
        load_weights(folder, model)
        return model.to(map_location).eval()


def stored_normalization(folder: str | Path) -> Normalizer | None:
    """The normalisation a tokenizer folder's weights read and write features in:
    ``normalization/`` in the folder (a training run) or beside it (a bundle's ``tokenizer/``); None if neither."""
    from motionmillion.motion import Normalizer

    folder = Path(folder)
    for candidate in (folder / "normalization", folder.parent / "normalization"):
        if (candidate / "mean.npy").is_file():
            return Normalizer.load(candidate)
    return None
