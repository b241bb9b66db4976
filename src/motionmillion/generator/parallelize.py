"""How the generator is trained on many devices, kept outside the model (torchtitan's ``parallelize`` shape).

``MotionGPT`` is plain single-device PyTorch; this module wraps an instance for training, in
torchtitan's order: activation checkpointing -> ``torch.compile`` of each block -> FSDP2 sharding.

- :func:`apply_activation_checkpointing` recomputes each Block's activations in backward
  (``checkpoint_wrapper``; state-dict keys do not change).
- :func:`apply_compile` compiles each Block in place (``nn.Module.compile``: one compiled graph that
  every layer reuses, state-dict keys unchanged). The text prefix, embedding and head stay eager.
- :func:`shard_model` applies FSDP2 ``fully_shard`` per Block, then to the root; parameters become
  DTensor shards over a 1-D mesh of all processes. :func:`full_model_state_dict`,
  :func:`save_full_checkpoint` and :func:`load_full_checkpoint` gather and scatter them, so FSDP
  checkpoints are full, unsharded safetensors (resumable with any process count).

DDP and DeepSpeed ZeRO-2 need none of this: Accelerate wraps the model itself (``accelerator.prepare``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn


def apply_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Recompute every Block in backward instead of keeping its activations (memory for ~30% more compute)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for index, block in enumerate(model.blocks):
        model.blocks[index] = checkpoint_wrapper(block, preserve_rng_state=False)
    return model


def apply_compile(model: nn.Module) -> nn.Module:
    """Compile each Block in place. All Blocks have the same code and shapes, so they share one graph and
    the compile time does not grow with depth."""
    for block in model.blocks:
        block.compile(fullgraph=True)
    return model


def parallelize(
    model: nn.Module,
    *,
    device_type: str,
    fsdp: bool = False,
    reshard_after_forward: bool = True,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> nn.Module:
    """Everything that changes how the generator runs for training, in the order that composes."""
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    if compile:
        apply_compile(model)
    if fsdp:
        shard_model(model, device_type, reshard_after_forward)
    return model


# ------------------------------------------------------------------------------------------------ FSDP2
def shard_model(model: nn.Module, device_type: str, reshard_after_forward: bool = True) -> nn.Module:
    """FSDP2 around the unchanged model: one unit per Block (all-gathered just before it runs, freed after),
    then the root (embeddings, text projection, null prefix, final norm, head)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device_type, (torch.distributed.get_world_size(),))
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def full_model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The gathered, unsharded weights on CPU; complete on rank 0, empty on the others."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_full_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, is_main: bool) -> None:
    """Gather model and AdamW state (every rank takes part); rank 0 writes ``model.safetensors``,
    ``optimizer.safetensors`` (tensors keyed "<param name>/<state key>") and ``optimizer.json`` (param groups)."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    from motionmillion.utils.io import atomic_path, atomic_write_json

    model_state = full_model_state_dict(model)
    optim_state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_main:
        return
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model_state.items()}, str(tmp), metadata={"format": "pt"})
    tensors = {f"{name}/{key}": value.contiguous() for name, state in optim_state["state"].items() for key, value in state.items()}
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / "optimizer.json", {"param_groups": optim_state["param_groups"]})


def load_full_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, is_main: bool) -> None:
    """Rank 0 reads a ``save_full_checkpoint`` folder and broadcasts; each rank keeps its own shards."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    files = [folder / "model.safetensors", folder / "optimizer.safetensors", folder / "optimizer.json"]
    if not all(f.is_file() for f in files):
        raise ValueError(f"{folder}: not an FSDP checkpoint (needs {', '.join(f.name for f in files)}); "
                         "resume a run with the launch configuration that started it")  # fmt: skip
    model_state, optim_state = {}, {}
    if is_main:
        model_state = load_file(str(files[0]))
        state: dict[str, dict[str, torch.Tensor]] = {}
        for flat, value in load_file(str(files[1])).items():
            name, key = flat.rsplit("/", 1)
            state.setdefault(name, {})[key] = value
        optim_state = {"state": state, **json.loads(files[2].read_text(encoding="utf-8"))}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def adamw(model: nn.Module, lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
          device_type: str) -> torch.optim.AdamW:  # fmt: skip
    """AdamW with the fused (single-kernel) update on CUDA, where it is several times faster than the
    per-tensor loop; elsewhere torch's default implementation, so CPU runs stay bit-identical to before."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             fused=device_type == "cuda" or None)  # fmt: skip
