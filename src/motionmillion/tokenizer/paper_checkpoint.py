"""Load the released MotionMillion FSQ tokenizer weights (``fsq_net_6000000.pth``) into our ``paper`` model.

The release is a torch pickle holding ``{"net": state_dict}`` (or the bare state dict) with keys
``[module.]vqvae.{encoder,decoder,quantizer}...`` (fact sheet 3.2). Our modules use the same names
and indices, so the mapping strips the ``module.``/``vqvae.`` prefixes and drops the patcher's
persistent buffers (``wavelets``, ``_arange``: patch_size 1 is an identity, our patcher derives its
filters from the config). The file is read with ``weights_only=True`` (no code execution), and
everything else must match the model exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from motionmillion.tokenizer.config import PRESETS, TokenizerConfig
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.training import preset
from motionmillion.utils.model_folder import CheckpointError, check_state_dict

PATCHER_BUFFERS = ("wavelets", "_arange")


def convert_paper_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released key names -> ours; patcher buffers dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        while name.startswith("module."):
            name = name[len("module.") :]
        if name.startswith("vqvae."):
            name = name[len("vqvae.") :]
        if name.rsplit(".", 1)[-1] in PATCHER_BUFFERS:
            continue
        out[name] = value
    return out


def load_paper_checkpoint(path: str | Path, config: TokenizerConfig | None = None) -> MotionTokenizer:
    """Our MotionTokenizer (default: the ``paper`` preset) with the released weights; raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt/truncated pickles
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from error
    state = raw.get("net", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (or {{'net': state_dict}}) of tensors")
    model = MotionTokenizer(config or preset(PRESETS, "paper").model)
    converted = convert_paper_state_dict(state)
    check_state_dict(model, converted, f"{path}: does not match the tokenizer config")
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    return model.eval()
