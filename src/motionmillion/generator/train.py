"""Train the prefix-LM on encoded motion tokens with Hugging Face Accelerate (DDP, FSDP, DeepSpeed).

FSDP: launched with an FSDP accelerate config (``ACCELERATE_USE_FSDP=true``), the trainer shards the
unchanged model itself with FSDP2 ``fully_shard`` (one unit per Block, then the root), on CPU (gloo) and
GPU alike (generator/parallelize.py, which also applies activation checkpointing and torch.compile); accelerate then only launches, sets up the process group and reduces logged values.
Its checkpoints are full, unsharded safetensors written by rank 0 (resumable with any process count).

Plain PyTorch loop: AdamW, linear warm-up + cosine, bf16 autocast over fp32 master weights, gradient
clipping, TensorBoard, tqdm, resumable checkpoints. Batches are a pure function of (seed, step, rank),
so ``train`` on an existing RUN folder continues from its last checkpoint and ends with the same
weights as an uninterrupted run.

RUN/
  generator/{config.json, model.safetensors}     the trained model (what a pipeline folder holds)
  run.json                                       settings, codebook, frames_per_token, text encoder
  checkpoints/step_<N>/ + checkpoints/latest.json  resumable state (accelerate.save_state; under FSDP
                                                 model.safetensors + optimizer.safetensors/.json, full)
  text_cache/                                    fp16 text features, one row per unique caption
  tensorboard/, train.log
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch

from motionmillion.generator.config import GeneratorConfig, TrainConfig, default_mixed_precision
from motionmillion.generator.data import TokenDataset, open_encoded
from motionmillion.text import TextFeatureCache
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.parallelize import (
    adamw, full_model_state_dict, load_full_checkpoint, parallelize, save_full_checkpoint,
)

log = logging.getLogger("motionmillion.generator.train")


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up from 0 to ``lr`` over ``warmup_steps``, then cosine down to ``min_lr_ratio * lr``."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def _setup_logging(out: Path, is_main: bool) -> None:
    log.setLevel(logging.INFO)
    for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:  # a previous run in this process
        log.removeHandler(old)
        old.close()
    if is_main:
        handler = logging.FileHandler(out / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)


def latest_checkpoint(out: Path) -> tuple[Path, int] | None:
    pointer = out / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text(encoding="utf-8"))
    path = out / "checkpoints" / info["dir"]
    return (path, int(info["step"])) if path.is_dir() else None


def train(
    model_config: GeneratorConfig,
    train_config: TrainConfig,
    tokens: str | Path,
    out: str | Path,
    cpu: bool = False,
    max_steps_this_run: int | None = None,
    on_finish=None,
) -> Path:
    """Train (or resume) into ``out``; returns ``out / "generator"``.

    ``max_steps_this_run`` stops early after that many steps (a planned interruption, used by tests).
    ``on_finish(model, accelerator)`` runs on every rank after the last step (e.g. to compare ranks).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    out = Path(out)
    mixed = train_config.mixed_precision if train_config.mixed_precision != "auto" else default_mixed_precision()
    on_gpu = torch.cuda.is_available() and not cpu
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if fsdp:
        # We shard ourselves (see shard_model): accelerate must set up plain DDP-style processes, not wrap the
        # model. (On CPU it would otherwise silently run unsharded DDP; on GPU it would apply its own FSDP.)
        os.environ["ACCELERATE_USE_FSDP"] = "false"
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    # CPU DDP needs Accelerator(cpu=True) (gloo). DeepSpeed must not get it (accelerate would drop DeepSpeed);
    # on CPU it needs the gloo backend named, or accelerate counts a single process.
    handlers = []
    if deepspeed and not on_gpu:
        from accelerate.utils import InitProcessGroupKwargs

        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(cpu=not on_gpu and not deepspeed, mixed_precision=mixed, kwargs_handlers=handlers)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise RuntimeError(f"launched {launched} processes but accelerate joined {accelerator.num_processes}")
    if fsdp and not torch.distributed.is_initialized():
        raise ValueError("FSDP needs a multi-process launch (accelerate launch --config_file "
                         "configs/accelerate/fsdp.yaml, or ACCELERATE_USE_FSDP=true torchrun ...)")  # fmt: skip
    is_main = accelerator.is_main_process
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    _setup_logging(out, is_main)

    encoded = open_encoded(tokens)
    model_config = dataclasses.replace(
        model_config, codebook_size=int(encoded.codebook_size), max_text_tokens=train_config.text_max_length
    )
    data = TokenDataset(encoded, train_config.split, model_config.max_motion_tokens, train_config.stratum_alpha,
                        train_config.stratum_levels)
    try:  # a val split is optional
        val_data = TokenDataset(encoded, "val", model_config.max_motion_tokens)
    except ValueError:
        val_data = None
    captions = data.all_captions() + (val_data.all_captions() if val_data else [])
    cache_dir = out / "text_cache"
    if is_main:
        TextFeatureCache.build(cache_dir, captions, train_config.text_encoder, train_config.text_max_length)
    accelerator.wait_for_everyone()
    cache = TextFeatureCache(cache_dir)
    model_config = dataclasses.replace(model_config, text_dim=cache.dim)

    run_info = {
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
        "tokens": str(Path(tokens).resolve()),
        "codebook_size": int(encoded.codebook_size),
        "frames_per_token": int(encoded.frames_per_token),
        "text_encoder": {"name_or_path": train_config.text_encoder, "max_length": train_config.text_max_length},
        "mixed_precision": mixed,
        "num_processes": accelerator.num_processes,
        "distributed_type": "FSDP2" if fsdp else str(accelerator.distributed_type.value),
        "train_items": len(data),
    }
    encoded_config = Path(tokens) / "config.json"
    if encoded_config.is_file():
        run_info["encoded"] = json.loads(encoded_config.read_text(encoding="utf-8"))
    if is_main:
        from motionmillion.utils.io import atomic_write_json

        atomic_write_json(out / "run.json", run_info)

    set_seed(train_config.seed)
    model = MotionGPT(model_config)
    model = parallelize(
        model.to(accelerator.device) if fsdp else model, device_type=accelerator.device.type, fsdp=fsdp,
        reshard_after_forward=os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true",
        activation_checkpointing=model_config.gradient_checkpointing, compile=train_config.compile,
    )  # fmt: skip
    optimizer = adamw(model, train_config.lr, train_config.betas, train_config.eps, train_config.weight_decay,
                      accelerator.device.type)  # fmt: skip
    if accelerator.state.deepspeed_plugin is not None:  # no DataLoader is prepared, so say the batch size
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = train_config.batch_size
        ds_config["train_batch_size"] = train_config.batch_size * accelerator.num_processes * int(
            ds_config.get("gradient_accumulation_steps", 1) if str(ds_config.get("gradient_accumulation_steps")) != "auto" else 1
        )
    if not fsdp:
        model, optimizer = accelerator.prepare(model, optimizer)

    start_step = 0
    resume = latest_checkpoint(out)
    if resume is not None:
        if fsdp:
            load_full_checkpoint(resume[0], model, optimizer, accelerator.is_main_process)
        else:
            accelerator.load_state(str(resume[0]))
        start_step = resume[1]
        log.info("resumed from %s at step %d", resume[0], start_step)
    if is_main:
        n_params = accelerator.unwrap_model(model).num_parameters()
        log.info("model %s: %.2fM parameters; %d training items; %d processes; mixed precision %s",
                 model_config.preset, n_params / 1e6, len(data), accelerator.num_processes, mixed)  # fmt: skip

    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    end_step = train_config.steps
    if max_steps_this_run is not None:
        end_step = min(end_step, start_step + max_steps_this_run)
    bar = tqdm(total=train_config.steps, initial=start_step, desc="generator", unit="step", disable=not is_main)
    rank, world = accelerator.process_index, accelerator.num_processes
    model.train()
    started, loss_sum, loss_count = time.time(), 0.0, 0
    for step in range(start_step, end_step):
        lr = learning_rate(step, train_config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data.make_batch(
            cache, train_config.seed, step, rank, world, train_config.batch_size,
            train_config.token_aug_prob, model_config.cond_drop_prob,
        )  # fmt: skip
        device = accelerator.device
        with accelerator.autocast():  # prepared models autocast themselves; a model we sharded does not
            logits = model(batch.text_features.to(device), batch.text_mask.to(device), batch.tokens.to(device),
                           batch.drop_text.to(device))  # fmt: skip
        loss = MotionGPT.loss(accelerator.unwrap_model(model), logits, batch.tokens.to(device))
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), train_config.grad_clip) if train_config.grad_clip else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, loss_count = loss_sum + loss.detach().float(), loss_count + 1
        done = step + 1
        if done % train_config.log_every == 0 or done == end_step:
            mean_loss = accelerator.reduce(torch.as_tensor(loss_sum / loss_count, device=device), "mean").item()
            loss_sum, loss_count = 0.0, 0
            if is_main:
                writer.add_scalar("train/loss", mean_loss, done)
                writer.add_scalar("train/lr", lr, done)
                if grad_norm is not None:
                    writer.add_scalar("train/grad_norm", float(grad_norm), done)
                bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
                log.info("step %d loss %.4f lr %.3e (%.1f steps/s)", done, mean_loss, lr,
                         (done - start_step) / (time.time() - started))  # fmt: skip
        bar.update(1)
        if val_data is not None and train_config.val_every and done % train_config.val_every == 0:
            value = _validate(model, accelerator, val_data, cache, train_config, writer, done)
            _keep_if_best(model, accelerator, model_config, out, done, value, fsdp)
        if done % train_config.save_every == 0 or done == end_step:
            _save_checkpoint(accelerator, model, optimizer, out, done, train_config.keep_checkpoints, fsdp)
    bar.close()
    if end_step == train_config.steps and val_data is not None:
        _validate(model, accelerator, val_data, cache, train_config, writer, end_step)
    if on_finish is not None:
        on_finish(model, accelerator)
    state_dict = full_model_state_dict(model) if fsdp else accelerator.get_state_dict(model)
    if is_main:
        accelerator.unwrap_model(model).save_pretrained(out / "generator", state_dict)
        writer.close()
        log.info("saved %s after step %d", out / "generator", end_step)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return out / "generator"


@torch.no_grad()
def _validate(model, accelerator, val_data, cache, train_config, writer, step: int) -> float:
    """Mean next-token loss over ``val_batches`` fixed val batches (same on every rank, no augmentation)."""
    model.eval()
    device = accelerator.device
    losses = []
    for i in range(min(train_config.val_batches, math.ceil(len(val_data) / train_config.batch_size))):
        batch = val_data.make_batch(cache, 0, i, 0, 1, train_config.batch_size, 0.0, 0.0, augment=False)
        with accelerator.autocast():
            logits = model(batch.text_features.to(device), batch.text_mask.to(device), batch.tokens.to(device))
        losses.append(MotionGPT.loss(accelerator.unwrap_model(model), logits, batch.tokens.to(device)).item())
    model.train()
    value = sum(losses) / len(losses)
    if writer is not None:
        writer.add_scalar("val/loss", value, step)
        log.info("step %d val loss %.4f", step, value)
    return value


def _keep_if_best(model, accelerator, model_config, out: Path, step: int, val_loss: float, fsdp: bool) -> None:
    """Keep the weights with the lowest validation loss so far in ``out/generator_best`` (+ val.json).

    A small model on a small dataset overfits long before a cosine schedule ends (the default model's
    run: val loss 3.40 at step 1,000, 4.46 at step 3,000), so the best checkpoint is kept as it goes."""
    from motionmillion.utils.io import atomic_write_json

    best_file = out / "generator_best" / "val.json"
    best = json.loads(best_file.read_text())["val_loss"] if best_file.is_file() else math.inf
    if val_loss >= best:
        return
    state_dict = full_model_state_dict(model) if fsdp else accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(out / "generator_best", state_dict)
        atomic_write_json(best_file, {"val_loss": val_loss, "step": step})
        log.info("step %d: new best val loss %.4f -> %s", step, val_loss, out / "generator_best")
    accelerator.wait_for_everyone()


def _save_checkpoint(accelerator, model, optimizer, out: Path, step: int, keep: int, fsdp: bool) -> None:
    """State into step_<N>.tmp, renamed when complete; latest.json flips atomically."""
    from motionmillion.utils.io import atomic_write_json

    folder = out / "checkpoints"
    tmp = folder / f"step_{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if fsdp:
        save_full_checkpoint(tmp, model, optimizer, accelerator.is_main_process)
    else:
        accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = folder / f"step_{step:07d}"
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        atomic_write_json(folder / "latest.json", {"dir": final.name, "step": step})
        old = sorted(p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for stale in old[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()

