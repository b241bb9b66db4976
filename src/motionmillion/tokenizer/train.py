"""Tokenizer training with Hugging Face Accelerate: one CPU, many CPUs (gloo) or many GPUs, same loop.

RUN/ (the output folder) holds:
    config.json + model.safetensors     the latest weights as a loadable tokenizer folder
    run_config.json                     the full RunConfig (model, loss, train)
    normalization/{mean,std}.npy        copied from the dataset, so RUN is self-contained
    checkpoints/step_XXXXXXXX/          tokenizer folder + accelerate state (optimizer, RNG) +
                                        trainer_state.json; checkpoints/latest.json names the newest
    snapshots/min_XXX/                  model copies at the configured wall-clock minutes
    train.log, tensorboard/             text log and TensorBoard events

Resume: run the same command again; it continues from the latest checkpoint. Batches depend only on
(seed, step, rank) and the LR only on the step, so a resumed run reproduces the uninterrupted one.
Schedules, precision, logging and checkpoint folders come from :mod:`motionmillion.training`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from motionmillion.tokenizer.config import RunConfig
from motionmillion.training import Checkpoints, RunLog, TimeBudget, check_resume, resolve_mixed_precision
from motionmillion.utils.io import atomic_write_json

log = logging.getLogger("motionmillion.tokenizer.train")

# Training fields that may change when a run is resumed (they do not change what a step computes).
RESUMABLE_CHANGES = {"steps", "max_minutes", "log_every", "eval_every", "eval_clips", "save_every", "snapshot_minutes",
                     "keep_checkpoints", "mixed_precision"}  # fmt: skip
POSITIONS = slice(8, 74)  # local joint positions in the 272 features


class TokenizerTrainer:
    """setup (data, model, optimizer, resume) -> fit (the loop) -> validate / save_checkpoint as it goes."""

    def __init__(self, config: RunConfig, data_root: str | Path, out_dir: str | Path, progress: bool = True) -> None:
        self.config, self.data_root, self.out = config, Path(data_root), Path(out_dir)
        self.progress = progress
        self.step, self.elapsed_before = 0, 0.0

    # ------------------------------------------------------------ setup
    def setup(self) -> TokenizerTrainer:
        from accelerate import Accelerator

        from motionmillion.tokenizer.data import MotionClips
        from motionmillion.tokenizer.model import MotionTokenizer

        # Autocast is ours (not Accelerate's mixed_precision) so it can be chosen per run in one process.
        self.accelerator = accelerator = Accelerator(cpu=not torch.cuda.is_available())
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and accelerator.num_processes != launched:
            raise RuntimeError(
                f"{launched} processes were launched but Accelerate formed a group of {accelerator.num_processes}; "
                "on CPU launch with configs/accelerate/cpu_ddp.yaml (accelerate launch --multi_gpu)"
            )
        self.is_main = accelerator.is_main_process
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        self.run_log = RunLog(self.out, self.is_main)
        self.checkpoints = Checkpoints(self.out, self.config.train.keep_checkpoints)
        resume = self.checkpoints.latest()
        run_config_path = self.out / "run_config.json"
        if resume is not None and run_config_path.is_file():
            saved = RunConfig.from_dict(json.loads(run_config_path.read_text(encoding="utf-8")), run_config_path)
            check_resume(saved.to_dict(), self.config.to_dict(), run_config_path, RESUMABLE_CHANGES)
        tc = self.config.train
        recorded = resume[1].get("mixed_precision") if resume is not None else None
        self.mixed = resolve_mixed_precision(tc.mixed_precision, recorded)
        self.bf16 = self.mixed == "bf16"

        self.clips = MotionClips(self.data_root, "train", min_frames=tc.window)
        self.clips.balance(tc.stratum_alpha)
        self.val_clips = MotionClips(self.data_root, "val", min_frames=self.config.model.frames_per_token)
        if self.is_main:
            atomic_write_json(run_config_path, self.config.to_dict())
            self.clips.normalizer.save(self.out / "normalization")

        torch.manual_seed(tc.seed)  # identical initial weights on every rank
        model = MotionTokenizer(self.config.model)
        if tc.init_from and resume is None:  # a resumed run has the fine-tuned weights in its checkpoint
            load_initial_weights(model, tc.init_from, self.clips.normalizer)
        if tc.decoder_only:
            model.encoder.requires_grad_(False)
            model.quantizer.requires_grad_(False)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=tc.learning_rate(0), betas=tc.betas, eps=tc.eps,
                                      weight_decay=tc.weight_decay)  # fmt: skip
        if accelerator.state.deepspeed_plugin is not None:  # no DataLoader is prepared, so say the batch size
            accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = tc.batch_size
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        if resume is not None:
            folder, state = resume
            accelerator.load_state(str(folder / "state"))
            self.step, self.elapsed_before = int(state["step"]), float(state["elapsed_seconds"])
            log.info("resumed from %s at step %d (%.1f min)", folder, self.step, self.elapsed_before / 60)
        log.info("config %s", json.dumps(self.config.to_dict()))
        log.info("%d train clips, %d val clips, %d parameters (%d trained), %d process(es), bf16=%s, device=%s",
                 len(self.clips), len(self.val_clips), sum(p.numel() for p in model.parameters()),
                 sum(p.numel() for p in trainable), accelerator.num_processes, self.bf16, accelerator.device)  # fmt: skip
        return self

    # ------------------------------------------------------------ fit
    def fit(self) -> torch.nn.Module:
        from tqdm.auto import tqdm

        from motionmillion.tokenizer.losses import tokenizer_loss

        accelerator, tc = self.accelerator, self.config.train
        pending_snapshots = sorted(m for m in tc.snapshot_minutes if m * 60 > self.elapsed_before)
        self.budget = TimeBudget(tc.max_minutes, self.elapsed_before, accelerator)
        bar = tqdm(total=tc.steps, initial=self.step, disable=not (self.is_main and self.progress), desc="tokenizer",
                   dynamic_ncols=True)  # fmt: skip
        last_val = float("nan")
        normalization = tuple(torch.as_tensor(a, dtype=torch.float32, device=accelerator.device)
                              for a in (self.clips.normalizer.mean, self.clips.normalizer.std))  # fmt: skip
        std = normalization[1][POSITIONS]
        self.model.train()
        stream = None
        if tc.reader == "stream":
            stream = self.clips.window_stream(tc.batch_size, tc.window, tc.seed, self.step, accelerator.process_index,
                                              accelerator.num_processes)  # fmt: skip
        while self.step < tc.steps:
            if stream is not None:
                batch = next(stream)
            else:
                batch = self.clips.sample_windows(tc.batch_size, tc.window, tc.seed, self.step, accelerator.process_index)
            x = torch.from_numpy(batch).to(accelerator.device)
            for group in self.optimizer.param_groups:
                group["lr"] = tc.learning_rate(self.step)
            with torch.autocast(device_type=accelerator.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                recon, ids = self.model(x)
            loss, parts = tokenizer_loss(recon, x, self.config.loss, normalization)
            accelerator.backward(loss)
            if tc.grad_clip > 0:
                accelerator.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1

            if self.is_main and (self.step % tc.log_every == 0 or self.step == 1):
                # Cheap training MPJPE on the local (pelvis-relative, heading-free) joint positions, mm.
                with torch.no_grad():
                    p = (recon.detach().float()[..., POSITIONS] * std).unflatten(-1, (22, 3))
                    g = (x[..., POSITIONS] * std).unflatten(-1, (22, 3))
                    batch_mpjpe = float(((p - p[..., :1, :]) - (g - g[..., :1, :])).norm(dim=-1).mean() * 1000)
                parts.update(batch_mpjpe_mm=batch_mpjpe, lr=self.optimizer.param_groups[0]["lr"],
                             batch_code_usage=ids.unique().numel() / self.config.model.codebook_size)  # fmt: skip
                self.run_log.scalars(parts, self.step)
                log.info("step %d %.1fmin %s", self.step, self.budget.elapsed() / 60,
                         json.dumps({k: round(v, 6) for k, v in parts.items()}))  # fmt: skip
                bar.set_postfix(loss=f"{parts['loss']:.4f}", mpjpe=f"{batch_mpjpe:.1f}", val=f"{last_val:.1f}")
            bar.update(1)

            now, time_up = self.budget.check()  # rank 0's clock: every rank stops/snapshots at the same step
            while pending_snapshots and now >= pending_snapshots[0] * 60:
                self.save_snapshot(pending_snapshots.pop(0))
            if tc.eval_every and self.step % tc.eval_every == 0:
                last_val = self.validate().get("mpjpe_mm", last_val)
            if self.step % tc.save_every == 0 or self.step == tc.steps or time_up:
                self.save_checkpoint()
            if time_up:
                log.info("time limit %.1f min reached at step %d", tc.max_minutes, self.step)
                break
        bar.close()
        final = self.validate()
        log.info("finished at step %d after %.1f min; val MPJPE %.2f mm", self.step, self.budget.elapsed() / 60,
                 final.get("mpjpe_mm", float("nan")))  # fmt: skip
        self.run_log.close()
        accelerator.end_training()
        return accelerator.unwrap_model(self.model)

    # ------------------------------------------------------------ validate / save
    def validate(self) -> dict:
        from motionmillion.tokenizer.evaluate import evaluate_clips

        result = {}
        if self.is_main:
            result = evaluate_clips(self.accelerator.unwrap_model(self.model), self.val_clips,
                                    max_clips=self.config.train.eval_clips, device=self.accelerator.device)  # fmt: skip
            keys = ("mpjpe_mm", "root_error_mm", "accel_error_mm_s2", "code_usage", "perplexity")
            self.run_log.scalars({k: result[k] for k in keys if k in result}, self.step, prefix="val")
            log.info("step %d val %s", self.step,
                     json.dumps({k: round(v, 4) for k, v in result.items() if isinstance(v, float)}))  # fmt: skip
        self.accelerator.wait_for_everyone()
        return result

    def save_checkpoint(self) -> None:
        accelerator = self.accelerator
        state_dict = accelerator.get_state_dict(self.model)
        unwrapped = accelerator.unwrap_model(self.model)

        def write(folder: Path) -> None:
            accelerator.save_state(str(folder / "state"))
            if self.is_main:
                unwrapped.save_pretrained(folder, state_dict)

        final = self.checkpoints.save(
            self.step, write, {"elapsed_seconds": self.budget.elapsed(), "num_processes": accelerator.num_processes,
                               "mixed_precision": self.mixed},
            self.is_main, accelerator.wait_for_everyone,
        )  # fmt: skip
        if self.is_main:
            unwrapped.save_pretrained(self.out, state_dict)  # the run folder itself stays a loadable tokenizer
            log.info("checkpoint %s", final)

    def save_snapshot(self, minute: float) -> None:
        state_dict = self.accelerator.get_state_dict(self.model)
        if self.is_main:
            folder = self.out / "snapshots" / f"min_{minute:g}"
            self.accelerator.unwrap_model(self.model).save_pretrained(folder, state_dict)
            atomic_write_json(folder / "trainer_state.json", {"step": self.step, "elapsed_seconds": self.budget.elapsed()})
            log.info("snapshot at %.1f min (step %d): %s", self.budget.elapsed() / 60, self.step, folder)


def load_initial_weights(model: torch.nn.Module, folder: str | Path, normalizer) -> None:
    """Copy a tokenizer folder's weights into ``model`` (same architecture) for fine-tuning; the folder's
    stored normalisation, if any, must be the dataset's (the weights read and write features normalised so)."""
    import numpy as np

    from motionmillion.tokenizer.model import MotionTokenizer, stored_normalization

    folder = Path(folder)
    source = MotionTokenizer.from_pretrained(folder)
    if source.config != model.config:
        raise ValueError(f"train.init_from {folder}: its architecture {source.config} is not this run's {model.config}")
    saved = stored_normalization(folder)
    if saved is not None and not (np.allclose(saved.mean, normalizer.mean) and np.allclose(saved.std, normalizer.std)):
        raise ValueError(f"train.init_from {folder}: it was trained with another mean/std than the dataset's")
    model.load_state_dict(source.state_dict())
    log.info("initial weights from %s", folder)


def train(config: RunConfig, data_root: str | Path, out_dir: str | Path, progress: bool = True) -> torch.nn.Module:
    """Train (or resume) a tokenizer run in ``out_dir``; returns this process's trained model."""
    return TokenizerTrainer(config, data_root, out_dir, progress).setup().fit()
