"""Train the prefix-LM on encoded motion tokens with Hugging Face Accelerate (DDP, FSDP, DeepSpeed).

FSDP: launched with an FSDP accelerate config (``ACCELERATE_USE_FSDP=true``), the trainer shards the
unchanged model itself with FSDP2 ``fully_shard`` (one unit per Block, then the root), on CPU (gloo) and
GPU alike (generator/parallelize.py, which also applies activation checkpointing and torch.compile); accelerate then only launches, sets up the process group and reduces logged values.
Its checkpoints are full, unsharded safetensors written by rank 0 (resumable with any process count).

Plain PyTorch loop: AdamW, linear warm-up + cosine, bf16 autocast over fp32 master weights where it is
fast, gradient clipping, TensorBoard, tqdm, resumable checkpoints (schedule, precision, logging and
checkpoint folders from :mod:`motionmillion.training`). Batches are a pure function of (seed, step,
rank), so ``train`` on an existing RUN folder continues from its last checkpoint and ends with the same
weights as an uninterrupted run; a changed config is refused.

RUN/
  generator/{config.json, model.safetensors}     the trained model (what a pipeline folder holds)
  generator_best/                                the lowest-val-loss weights (with eval_every > 0)
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
import time
from pathlib import Path

import torch

from motionmillion.generator.config import RunConfig
from motionmillion.generator.data import TokenDataset, open_encoded
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.parallelize import (
    adamw,
    full_model_state_dict,
    load_full_checkpoint,
    parallelize,
    save_full_checkpoint,
)
from motionmillion.text import TextFeatureCache
from motionmillion.training import Checkpoints, RunLog, TimeBudget, check_resume, resolve_mixed_precision
from motionmillion.utils.io import atomic_write_json

log = logging.getLogger("motionmillion.generator.train")

# Training fields that may change when a run is resumed (they do not change what a step computes).
RESUMABLE_CHANGES = {"steps", "max_minutes", "log_every", "save_every", "keep_checkpoints", "eval_every", "eval_batches"}


class GeneratorTrainer:
    """setup (accelerate, data, text cache, model, resume) -> fit (the loop) -> validate / save as it goes."""

    def __init__(self, config: RunConfig, tokens: str | Path, out: str | Path, cpu: bool = False) -> None:
        self.model_config, self.train_config = config.model, config.train
        self.tokens, self.out, self.cpu = Path(tokens), Path(out), cpu
        self.start_step, self.elapsed_before = 0, 0.0

    # ------------------------------------------------------------ setup
    def setup(self) -> GeneratorTrainer:
        self.encoded = open_encoded(self.tokens)  # a bad tokens folder is reported before anything starts
        self._setup_accelerator()
        self._setup_data()
        self._setup_model()
        return self

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator

        on_gpu = torch.cuda.is_available() and not self.cpu
        self.checkpoints = Checkpoints(self.out, self.train_config.keep_checkpoints)
        self.resume = self.checkpoints.latest()
        recorded = self.resume[1].get("mixed_precision") if self.resume is not None else None
        self.mixed = resolve_mixed_precision(self.train_config.mixed_precision, recorded)
        self.fsdp = fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        if fsdp:
            # We shard ourselves (parallelize.py): accelerate must set up plain DDP-style processes, not wrap the
            # model. (On CPU it would otherwise silently run unsharded DDP; on GPU it would apply its own FSDP.)
            os.environ["ACCELERATE_USE_FSDP"] = "false"
        deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        # CPU DDP needs Accelerator(cpu=True) (gloo). DeepSpeed must not get it (accelerate would drop DeepSpeed);
        # on CPU it needs the gloo backend named, or accelerate counts a single process.
        handlers = []
        if deepspeed and not on_gpu:
            from accelerate.utils import InitProcessGroupKwargs

            handlers.append(InitProcessGroupKwargs(backend="gloo"))
        self.accelerator = accelerator = Accelerator(cpu=not on_gpu and not deepspeed, mixed_precision=self.mixed,
                                                     kwargs_handlers=handlers)  # fmt: skip
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if accelerator.num_processes != launched:
            raise RuntimeError(f"launched {launched} processes but accelerate joined {accelerator.num_processes}")
        if fsdp and not torch.distributed.is_initialized():
            raise ValueError("FSDP needs a multi-process launch (accelerate launch --config_file "
                             "configs/accelerate/fsdp.yaml, or ACCELERATE_USE_FSDP=true torchrun ...)")  # fmt: skip
        self.is_main = accelerator.is_main_process
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        self.run_log = RunLog(self.out, self.is_main)

    def _setup_data(self) -> None:
        accelerator, train_config, encoded = self.accelerator, self.train_config, self.encoded
        model_config = dataclasses.replace(
            self.model_config, codebook_size=int(encoded.codebook_size), max_text_tokens=train_config.text_max_length
        )
        self.data = TokenDataset(encoded, train_config.split, model_config.max_motion_tokens, train_config.stratum_alpha,
                                 train_config.stratum_levels)  # fmt: skip
        try:  # a val split is optional
            self.val_data = TokenDataset(encoded, "val", model_config.max_motion_tokens)
        except ValueError:
            self.val_data = None
        captions = self.data.all_captions() + (self.val_data.all_captions() if self.val_data else [])
        cache_dir = self.out / "text_cache"
        if self.is_main:
            TextFeatureCache.build(cache_dir, captions, train_config.text_encoder, train_config.text_max_length)
        accelerator.wait_for_everyone()
        self.cache = TextFeatureCache(cache_dir)
        self.model_config = dataclasses.replace(model_config, text_dim=self.cache.dim)

        run_info = {
            "model": self.model_config.to_dict(),
            "train": train_config.to_dict(),
            "tokens": str(self.tokens.resolve()),
            "codebook_size": int(encoded.codebook_size),
            "frames_per_token": int(encoded.frames_per_token),
            "text_encoder": {"name_or_path": train_config.text_encoder, "max_length": train_config.text_max_length},
            "mixed_precision": self.mixed,
            "num_processes": accelerator.num_processes,
            "distributed_type": "FSDP2" if self.fsdp else str(accelerator.distributed_type.value),
            "train_items": len(self.data),
        }
        encoded_config = self.tokens / "config.json"
        if encoded_config.is_file():
            run_info["encoded"] = json.loads(encoded_config.read_text(encoding="utf-8"))
        run_json = self.out / "run.json"
        if self.resume is not None and run_json.is_file():
            saved = json.loads(run_json.read_text(encoding="utf-8"))
            # Read as a RunConfig, so a run.json of an older version (val_every, no schedule ...) compares by meaning.
            saved = RunConfig.from_dict({"model": saved["model"], "train": saved["train"]}, run_json).to_dict()
            check_resume(saved, {"model": run_info["model"], "train": run_info["train"]}, run_json, RESUMABLE_CHANGES)
        if self.is_main:
            atomic_write_json(run_json, run_info)

    def _setup_model(self) -> None:
        from accelerate.utils import set_seed

        accelerator, train_config, model_config = self.accelerator, self.train_config, self.model_config
        set_seed(train_config.seed)
        model = MotionGPT(model_config)
        model = parallelize(
            model.to(accelerator.device) if self.fsdp else model, device_type=accelerator.device.type, fsdp=self.fsdp,
            reshard_after_forward=os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true",
            activation_checkpointing=model_config.gradient_checkpointing, compile=train_config.compile,
        )  # fmt: skip
        optimizer = adamw(model, train_config.lr, train_config.betas, train_config.eps, train_config.weight_decay,
                          accelerator.device.type)  # fmt: skip
        if accelerator.state.deepspeed_plugin is not None:  # no DataLoader is prepared, so say the batch size
            ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
            ds_config["train_micro_batch_size_per_gpu"] = train_config.batch_size
            accumulation = ds_config.get("gradient_accumulation_steps", 1)
            ds_config["train_batch_size"] = train_config.batch_size * accelerator.num_processes * int(
                accumulation if str(accumulation) != "auto" else 1
            )
        if not self.fsdp:
            model, optimizer = accelerator.prepare(model, optimizer)
        self.model, self.optimizer = model, optimizer
        if self.resume is not None:
            folder, state = self.resume
            if self.fsdp:
                load_full_checkpoint(folder, model, optimizer, self.is_main)
            else:
                accelerator.load_state(str(folder))
            self.start_step = int(state["step"])
            self.elapsed_before = float(state.get("elapsed_seconds", 0.0))  # checkpoints before max_minutes: none
            log.info("resumed from %s at step %d", folder, self.start_step)
        log.info("model %s: %.2fM parameters; %d training items; %d processes; mixed precision %s",
                 model_config.preset, accelerator.unwrap_model(model).num_parameters() / 1e6, len(self.data),
                 accelerator.num_processes, self.mixed)  # fmt: skip

    # ------------------------------------------------------------ fit
    def fit(self, max_steps_this_run: int | None = None, on_finish=None) -> Path:
        from tqdm.auto import tqdm

        accelerator, train_config, model_config = self.accelerator, self.train_config, self.model_config
        model, optimizer, data, device = self.model, self.optimizer, self.data, accelerator.device
        end_step = train_config.steps
        if max_steps_this_run is not None:
            end_step = min(end_step, self.start_step + max_steps_this_run)
        bar = tqdm(total=train_config.steps, initial=self.start_step, desc="generator", unit="step",
                   disable=not self.is_main)  # fmt: skip
        rank, world = accelerator.process_index, accelerator.num_processes
        model.train()
        started, loss_sum, loss_count = time.time(), 0.0, 0
        self.budget = TimeBudget(train_config.max_minutes, self.elapsed_before, accelerator)
        validated_at, done, time_up = None, self.start_step, False
        for step in range(self.start_step, end_step):
            lr = train_config.learning_rate(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = data.make_batch(
                self.cache, train_config.seed, step, rank, world, train_config.batch_size,
                train_config.token_aug_prob, model_config.cond_drop_prob, length_drop_prob=model_config.length_drop_prob,
                context_prob=train_config.context_prob, max_context_tokens=train_config.max_context_tokens,
                max_motion_tokens=model_config.max_motion_tokens,
            )  # fmt: skip
            with accelerator.autocast():  # prepared models autocast themselves; a model we sharded does not
                logits = model(batch.text_features.to(device), batch.text_mask.to(device), batch.tokens.to(device),
                               batch.drop_text.to(device), batch.remaining.to(device))  # fmt: skip
            loss = MotionGPT.loss(accelerator.unwrap_model(model), logits, batch.targets.to(device))
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), train_config.grad_clip) if train_config.grad_clip else None
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum, loss_count = loss_sum + loss.detach().float(), loss_count + 1
            done = step + 1
            if done % train_config.log_every == 0 or done == end_step:
                mean_loss = accelerator.reduce(torch.as_tensor(loss_sum / loss_count, device=device), "mean").item()
                loss_sum, loss_count = 0.0, 0
                values = {"loss": mean_loss, "lr": lr, **({"grad_norm": float(grad_norm)} if grad_norm is not None else {})}
                self.run_log.scalars(values, done)
                if self.is_main:
                    bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
                    log.info("step %d loss %.4f lr %.3e (%.1f steps/s)", done, mean_loss, lr,
                             (done - self.start_step) / (time.time() - started))  # fmt: skip
            bar.update(1)
            if self.val_data is not None and train_config.eval_every and done % train_config.eval_every == 0:
                self.keep_if_best(done, self.validate(done))
                validated_at = done
            # rank 0's clock decides, so every rank stops at the same step (no collective without a budget)
            time_up = train_config.max_minutes > 0 and self.budget.check()[1]
            if done % train_config.save_every == 0 or done == end_step or time_up:
                self.save_checkpoint(done)
            if time_up:
                log.info("time limit %.1f min reached at step %d", train_config.max_minutes, done)
                break
        bar.close()
        finished = done == train_config.steps or time_up  # not a planned interruption (max_steps_this_run)
        if finished and self.val_data is not None and validated_at != done:
            # A run shorter than eval_every (or ending between validations) is validated at its end, so
            # generator_best/ exists whenever eval_every is on.
            value = self.validate(done)
            if train_config.eval_every:
                self.keep_if_best(done, value)
        if on_finish is not None:
            on_finish(model, accelerator)
        self.save_model(self.out / "generator")
        log.info("saved %s after step %d", self.out / "generator", done)
        self.run_log.close()
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return self.out / "generator"

    # ------------------------------------------------------------ validate / save
    @torch.no_grad()
    def validate(self, step: int) -> float:
        """Mean next-token loss over ``eval_batches`` fixed val batches (same on every rank, no augmentation)."""
        accelerator, train_config, model, device = self.accelerator, self.train_config, self.model, self.accelerator.device
        model.eval()
        losses = []
        for i in range(min(train_config.eval_batches, math.ceil(len(self.val_data) / train_config.batch_size))):
            batch = self.val_data.make_batch(self.cache, 0, i, 0, 1, train_config.batch_size, 0.0, 0.0, augment=False)
            with accelerator.autocast():
                logits = model(batch.text_features.to(device), batch.text_mask.to(device), batch.tokens.to(device),
                               remaining=batch.remaining.to(device))  # fmt: skip
            losses.append(MotionGPT.loss(accelerator.unwrap_model(model), logits, batch.tokens.to(device)).item())
        model.train()
        value = sum(losses) / len(losses)
        self.run_log.scalars({"loss": value}, step, prefix="val")
        log.info("step %d val loss %.4f", step, value)
        return value

    def keep_if_best(self, step: int, val_loss: float) -> None:
        """Keep the weights with the lowest validation loss so far in ``out/generator_best`` (+ val.json).

        A small model on a small dataset overfits long before a cosine schedule ends (the default model's
        run: val loss 3.40 at step 1,000, 4.46 at step 3,000), so the best weights are kept as it goes."""
        best_file = self.out / "generator_best" / "val.json"
        best = json.loads(best_file.read_text())["val_loss"] if best_file.is_file() else math.inf
        if val_loss >= best:
            return
        self.save_model(self.out / "generator_best")
        if self.is_main:
            atomic_write_json(best_file, {"val_loss": val_loss, "step": step})
            log.info("step %d: new best val loss %.4f -> %s", step, val_loss, self.out / "generator_best")
        self.accelerator.wait_for_everyone()

    def save_model(self, folder: Path) -> None:
        """A generator folder (every rank takes part in gathering the weights; rank 0 writes)."""
        accelerator = self.accelerator
        state_dict = full_model_state_dict(self.model) if self.fsdp else accelerator.get_state_dict(self.model)
        if self.is_main:
            accelerator.unwrap_model(self.model).save_pretrained(folder, state_dict)

    def save_checkpoint(self, step: int) -> None:
        accelerator = self.accelerator

        def write(folder: Path) -> None:
            if self.fsdp:
                save_full_checkpoint(folder, self.model, self.optimizer, self.is_main)
            else:
                accelerator.save_state(str(folder), safe_serialization=True)

        state = {"num_processes": accelerator.num_processes, "mixed_precision": self.mixed,
                 "elapsed_seconds": self.budget.elapsed()}  # fmt: skip
        self.checkpoints.save(step, write, state, self.is_main, accelerator.wait_for_everyone)


def train(
    config: RunConfig,
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
    trainer = GeneratorTrainer(config, tokens, out, cpu).setup()
    return trainer.fit(max_steps_this_run, on_finish)
