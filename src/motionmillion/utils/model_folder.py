"""A trained model's files: ``config.json`` + ``model.safetensors``, one format for every model.

``config.json`` holds ``{"model_type": ..., <config fields>}``; the safetensors header carries the same
``model_type``. Each model class owns its ``save_pretrained``/``from_pretrained`` and calls these
helpers, so every folder is written atomically and every damaged or mismatched file is reported the
same way (a ValueError naming the file). Never pickle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A model folder whose files are missing, corrupt, truncated or do not match the config."""


def save_model_folder(
    folder: str | Path, model_type: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write the weights (contiguous, on CPU; floating tensors as ``dtype``, fp32 unless weights only exist
    in lower precision, e.g. fp16 copies brought back from a GPU machine: loading casts them to the
    model's dtype), then the config with their SHA-256; returns it."""
    from safetensors.torch import save_file

    from motionmillion.utils.io import atomic_path, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous() for k, v in state_dict.items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "model_type": model_type})
        checksum = file_sha256(tmp)
    atomic_write_json(folder / CONFIG_NAME, {"model_type": model_type, **config, "weights_sha256": checksum})
    return checksum


def read_config(folder: str | Path, what: str) -> dict[str, Any]:
    """The config dict of a model folder (``model_type`` removed); ``what`` names the model in errors."""
    folder = Path(folder)
    for path in (folder / CONFIG_NAME, folder / WEIGHTS_NAME):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (the {what} folder must hold {CONFIG_NAME} and {WEIGHTS_NAME})")
    path = folder / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable JSON config ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    for header in ("model_type", "format", "weights_sha256"):  # "format": older generator folders
        data.pop(header, None)
    return data


def verify_checksum(folder: str | Path) -> str:
    """SHA-256 of the weights; raises CheckpointError when config.json records a different one."""
    folder = Path(folder)
    checksum = file_sha256(folder / WEIGHTS_NAME)
    try:
        expected = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        expected = None
    if expected and expected != checksum:
        raise CheckpointError(
            f"{folder / WEIGHTS_NAME}: SHA-256 {checksum[:12]}... does not match {CONFIG_NAME} ({expected[:12]}...); "
            "the file is damaged or was replaced"
        )
    return checksum


def check_state_dict(model: nn.Module, state: dict, problem: str) -> None:
    """Raise CheckpointError(``problem`` + details) unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]  # fmt: skip
    if missing or unexpected or wrong:
        raise CheckpointError(f"{problem}: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}")


def load_weights(folder: str | Path, model: nn.Module, device: str | torch.device = "cpu") -> None:
    """Load ``folder/model.safetensors`` into ``model`` after checking keys, shapes and finiteness."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from err
    check_state_dict(model, state, f"{path}: weights do not match {Path(folder) / CONFIG_NAME}")
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {key} holds NaN/infinite values")
    model.load_state_dict(state, strict=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
