"""Load the released MotionMillion T2M checkpoints (``LLaMAHF`` state dicts, fact sheet 4.3) into MotionGPT.

Released files are ``torch.save`` dicts ``{'trans': state_dict, 'optimizer', 'scheduler', 'nb_iter', ...}``
with keys ``transformer.wte.weight``, ``transformer.h.{i}.{rms_1.scale, attn.c_attn.weight,
attn.c_proj.weight, rms_2.scale, mlp.c_fc1.weight, mlp.c_fc2.weight, mlp.c_proj.weight}``,
``transformer.ln_f.scale``, ``llama_proj.{weight,bias}`` and an untied ``lm_head.weight`` of
vocab_size - 1 rows. The text encoder is flan-T5-XL (2048-d, 150 tokens). The released models were
trained without condition dropout, so they have no null prefix and sample with guidance 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from motionmillion.generator.config import PRESETS, GeneratorConfig

PAPER_TEXT_ENCODER = "google/flan-t5-xl"
PAPER_TEXT_MAX_LENGTH = 150

_TOP_LEVEL = {
    "transformer.wte.weight": "token_embedding.weight",
    "transformer.ln_f.scale": "final_norm.weight",
    "llama_proj.weight": "text_proj.weight",
    "llama_proj.bias": "text_proj.bias",
    "lm_head.weight": "lm_head.weight",
}
_PER_LAYER = {
    "rms_1.scale": "attn_norm.weight",
    "attn.c_attn.weight": "attn.qkv.weight",
    "attn.c_proj.weight": "attn.proj.weight",
    "rms_2.scale": "mlp_norm.weight",
    "mlp.c_fc1.weight": "mlp.gate.weight",  # silu branch
    "mlp.c_fc2.weight": "mlp.up.weight",
    "mlp.c_proj.weight": "mlp.down.weight",
}
_LAYER_KEY = re.compile(r"^transformer\.h\.(\d+)\.(.+)$")


class PaperCheckpointError(ValueError):
    pass


def unwrap_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The model weights of a released file: the ``'trans'`` entry, with DDP ``module.`` prefixes removed."""
    state = checkpoint.get("trans", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise PaperCheckpointError("not a MotionMillion T2M checkpoint: expected a dict with a 'trans' state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_state_dict(
    paper_state: dict[str, torch.Tensor], n_head: int | None = None
) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Map paper keys to ours and infer the config from the shapes (n_head from the paper's presets)."""
    state = unwrap_state_dict(paper_state)
    missing = [key for key in _TOP_LEVEL if key not in state]
    if missing:
        raise PaperCheckpointError(f"not a MotionMillion T2M checkpoint: missing keys {missing}")
    ours: dict[str, torch.Tensor] = {}
    layers: set[int] = set()
    for key, value in state.items():
        if key in _TOP_LEVEL:
            ours[_TOP_LEVEL[key]] = value
            continue
        match = _LAYER_KEY.match(key)
        if match and match.group(2) in _PER_LAYER:
            layers.add(int(match.group(1)))
            ours[f"blocks.{match.group(1)}.{_PER_LAYER[match.group(2)]}"] = value
        elif not key.endswith(("rope_cache", "attn.bias", "masked_bias")):  # non-persistent caches in some dumps
            raise PaperCheckpointError(f"unexpected key in the T2M checkpoint: {key!r}")
    vocab_size, n_embd = state["transformer.wte.weight"].shape
    n_layer = len(layers)
    if layers != set(range(n_layer)):
        raise PaperCheckpointError(f"layer indices are not contiguous: {sorted(layers)}")
    preset = next((name for name, run in PRESETS.items() if (run.model.n_layer, run.model.n_embd) == (n_layer, n_embd)), None)
    if n_head is None:
        if preset is None:
            raise PaperCheckpointError(
                f"{n_layer} layers x {n_embd} is not a paper preset: pass n_head explicitly"
            )
        n_head = PRESETS[preset].model.n_head
    config = GeneratorConfig(
        preset=preset or "custom", n_layer=n_layer, n_head=n_head, n_embd=int(n_embd),
        codebook_size=int(vocab_size) - 2, text_dim=int(state["llama_proj.weight"].shape[1]),
        max_text_tokens=PAPER_TEXT_MAX_LENGTH, max_motion_tokens=150, cond_drop_prob=0.0, default_guidance=1.0,
    )  # fmt: skip
    if state["lm_head.weight"].shape[0] != config.vocab_size - 1:
        raise PaperCheckpointError(
            f"lm_head has {state['lm_head.weight'].shape[0]} rows, expected vocab_size - 1 = {config.vocab_size - 1}"
        )
    hidden = state["transformer.h.0.mlp.c_fc1.weight"].shape[0]
    if hidden != config.mlp_hidden:
        raise PaperCheckpointError(f"MLP width {hidden} differs from round_up_256(8d/3) = {config.mlp_hidden}")
    return config, ours


def load_paper_checkpoint(path: str | Path, n_head: int | None = None, dtype: torch.dtype = torch.float32):
    """A released ``.pth`` (loaded with ``weights_only=True``) as a MotionGPT in eval mode."""
    from motionmillion.generator.model import MotionGPT

    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors come in many types
        raise PaperCheckpointError(f"{path}: cannot read the checkpoint ({err})") from err
    try:
        config, state = convert_state_dict(checkpoint, n_head)
    except PaperCheckpointError as err:
        raise PaperCheckpointError(f"{path}: {err}") from err
    with torch.device("meta"):
        model = MotionGPT(config)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    model._rope = None
    return model.eval()


def convert_paper_checkpoint(path: str | Path, out: str | Path, n_head: int | None = None) -> Path:
    """Write a generator folder (config.json + model.safetensors) from a released checkpoint."""
    return load_paper_checkpoint(path, n_head).save_pretrained(out)
