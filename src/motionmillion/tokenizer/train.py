"""Tokenizer training with Hugging Face Accelerate: one CPU, many CPUs (gloo) or many GPUs, same loop.

RUN/ (the output folder) holds:
    config.json + model.safetensors     the latest weights as a loadable tokenizer folder
    run_config.json                     the full RunConfig (model, loss, train)
    normalization/{mean,std}.npy        copied from the dataset, so RUN is self-contained
    checkpoints/step_XXXXXXXX/          tokenizer folder + accelerate state (optimizer, RNG) +
                                        trainer_state.json (step, elapsed time); checkpoints/latest names the newest
    snapshots/min_XXX/                  model copies at the configured wall-clock minutes
    train.log, tb/                      text log and TensorBoard events

Resume: run the same command again; it continues from checkpoints/latest. Batches depend only on
(seed, step, rank) and the LR only on the step, so a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch

from motionmillion.tokenizer.config import RunConfig, TrainConfig
from motionmillion.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("motionmillion.tokenizer.train")

# Training fields that may change when a run is resumed (they do not change what a step computes).
RESUMABLE_CHANGES = {"max_steps", "max_minutes", "log_every", "eval_every", "eval_clips", "save_every", "snapshot_minutes"}
KEEP_CHECKPOINTS = 2


def lr_at(step: int, train: TrainConfig) -> float:
    """Linear warm-up from lr/(warmup+1) (as the reference), then cosine / multistep / constant."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / (train.warmup_steps + 1)
    if train.schedule == "constant":
        return train.lr
    if train.schedule == "multistep":
        return train.lr * train.gamma ** sum(step >= m for m in train.milestones)
    progress = min(1.0, (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps))
    floor = train.min_lr_ratio
    return train.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def bf16_supported() -> bool:
    """bf16 autocast helps only with native bf16 math: CUDA with bf16, or a CPU with AVX512-BF16/AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def _setup_logging(out_dir: Path, is_main: bool) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if is_main:
        handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        data_log = logging.getLogger("motionmillion.tokenizer.data")
        data_log.addHandler(handler)


def _check_resume_config(saved: RunConfig, requested: RunConfig, path: Path) -> RunConfig:
    s, r = saved.to_dict(), requested.to_dict()
    changed = [f"{section}.{key}" for section in s for key in s[section] if s[section][key] != r[section][key]
               and not (section == "train" and key in RESUMABLE_CHANGES)]  # fmt: skip
    if changed:
        raise ValueError(f"{path}: this run was started with a different config ({', '.join(changed)}); "
                         "use a new --out folder or the original settings")  # fmt: skip
    return requested


def train(config: RunConfig, data_root: str | Path, out_dir: str | Path, bf16: bool | None = None,
          progress: bool = True) -> torch.nn.Module:  # fmt: skip
    """Train (or resume) a tokenizer run in ``out_dir``; returns this process's trained model."""
    from accelerate import Accelerator
    from accelerate.utils import broadcast
    from tqdm.auto import tqdm

    from motionmillion.tokenizer.data import MotionClips
    from motionmillion.tokenizer.evaluate import evaluate_clips
    from motionmillion.tokenizer.losses import tokenizer_loss
    from motionmillion.tokenizer.model import MotionTokenizer

    out_dir = Path(out_dir)
    use_bf16 = bf16_supported() if bf16 is None else bf16
    # Autocast is ours (not Accelerate's mixed_precision) so bf16 can be chosen per run in one process.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes != launched:
        raise RuntimeError(
            f"{launched} processes were launched but Accelerate formed a group of {accelerator.num_processes}; "
            "on CPU launch with configs/accelerate/cpu_ddp.yaml (accelerate launch --multi_gpu)"
        )
    is_main = accelerator.is_main_process
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    _setup_logging(out_dir, is_main)

    run_config_path = out_dir / "run_config.json"
    latest_path = out_dir / "checkpoints" / "latest"
    resume_dir = out_dir / "checkpoints" / latest_path.read_text().strip() if latest_path.is_file() else None
    if run_config_path.is_file() and resume_dir is not None:
        saved = RunConfig.from_dict(json.loads(run_config_path.read_text(encoding="utf-8")))
        config = _check_resume_config(saved, config, run_config_path)
    tc = config.train

    clips = MotionClips(data_root, "train", min_frames=tc.window)
    val_clips = MotionClips(data_root, "val", min_frames=config.model.frames_per_token)
    if is_main:
        atomic_write_json(run_config_path, config.to_dict())
        clips.normalizer.save(out_dir / "normalization")

    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    model = MotionTokenizer(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr_at(0, tc), betas=tc.betas, weight_decay=tc.weight_decay)
    if accelerator.state.deepspeed_plugin is not None:  # no DataLoader is prepared, so say the batch size
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = tc.batch_size
    model, optimizer = accelerator.prepare(model, optimizer)

    step, elapsed_before = 0, 0.0
    if resume_dir is not None:
        accelerator.load_state(str(resume_dir / "state"))
        state = json.loads((resume_dir / "trainer_state.json").read_text(encoding="utf-8"))
        step, elapsed_before = int(state["step"]), float(state["elapsed_seconds"])
        log.info("resumed from %s at step %d (%.1f min)", resume_dir, step, elapsed_before / 60)

    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))
        n_params = sum(p.numel() for p in model.parameters())
        log.info("config %s", json.dumps(config.to_dict()))
        log.info("%d train clips, %d val clips, %d parameters, %d process(es), bf16=%s, device=%s",
                 len(clips), len(val_clips), n_params, accelerator.num_processes, use_bf16, accelerator.device)  # fmt: skip

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - start_time

    def save_checkpoint() -> None:
        state_dict = accelerator.get_state_dict(model)
        name = f"step_{step:08d}"
        final = out_dir / "checkpoints" / name
        tmp = out_dir / "checkpoints" / f".{name}.tmp"
        if is_main and tmp.exists():
            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp / "state"))
        accelerator.wait_for_everyone()  # every rank's RNG file is written before the folder is renamed
        if is_main:
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.save_pretrained(tmp, state_dict)
            atomic_write_json(tmp / "trainer_state.json", {"step": step, "elapsed_seconds": elapsed(),
                                                          "num_processes": accelerator.num_processes})  # fmt: skip
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            atomic_write_text(latest_path, name + "\n")
            unwrapped.save_pretrained(out_dir, state_dict)
            old = sorted(p for p in final.parent.glob("step_*") if p.is_dir())[:-KEEP_CHECKPOINTS]
            for path in old:
                shutil.rmtree(path, ignore_errors=True)
            log.info("checkpoint %s", final)
        accelerator.wait_for_everyone()

    def save_snapshot(minute: float) -> None:
        state_dict = accelerator.get_state_dict(model)
        if is_main:
            folder = out_dir / "snapshots" / f"min_{minute:g}"
            accelerator.unwrap_model(model).save_pretrained(folder, state_dict)
            atomic_write_json(folder / "trainer_state.json", {"step": step, "elapsed_seconds": elapsed()})
            log.info("snapshot at %.1f min (step %d): %s", elapsed() / 60, step, folder)

    def run_eval() -> dict:
        result = {}
        if is_main:
            result = evaluate_clips(accelerator.unwrap_model(model), val_clips, max_clips=tc.eval_clips,
                                    device=accelerator.device)  # fmt: skip
            for key in ("mpjpe_mm", "root_error_mm", "accel_error_mm_s2", "code_usage", "perplexity"):
                if key in result:
                    writer.add_scalar(f"val/{key}", result[key], step)
            log.info("step %d val %s", step, json.dumps({k: round(v, 4) for k, v in result.items() if isinstance(v, float)}))
        accelerator.wait_for_everyone()
        return result

    pending_snapshots = sorted(m for m in tc.snapshot_minutes if m * 60 > elapsed_before)
    start_time = time.monotonic()
    bar = tqdm(total=tc.max_steps, initial=step, disable=not (is_main and progress), desc="tokenizer", dynamic_ncols=True)
    last_val = float("nan")
    positions = slice(8, 74)
    std = torch.as_tensor(clips.normalizer.std[positions], dtype=torch.float32, device=accelerator.device)
    model.train()
    while step < tc.max_steps:
        batch = clips.sample_windows(tc.batch_size, tc.window, tc.seed, step, accelerator.process_index)
        x = torch.from_numpy(batch).to(accelerator.device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, tc)
        with torch.autocast(device_type=accelerator.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            recon, ids = model(x)
        loss, parts = tokenizer_loss(recon, x, config.loss)
        accelerator.backward(loss)
        if tc.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        if is_main and (step % tc.log_every == 0 or step == 1):
            # Cheap training MPJPE on the local (pelvis-relative, heading-free) joint positions, mm.
            with torch.no_grad():
                p = (recon.detach().float()[..., positions] * std).unflatten(-1, (22, 3))
                g = (x[..., positions] * std).unflatten(-1, (22, 3))
                batch_mpjpe = float(((p - p[..., :1, :]) - (g - g[..., :1, :])).norm(dim=-1).mean() * 1000)
            parts.update(batch_mpjpe_mm=batch_mpjpe, lr=optimizer.param_groups[0]["lr"])
            for key, value in parts.items():
                writer.add_scalar(f"train/{key}", value, step)
            usage = ids.unique().numel() / config.model.codebook_size
            writer.add_scalar("train/batch_code_usage", usage, step)
            log.info("step %d %.1fmin %s", step, elapsed() / 60, json.dumps({k: round(v, 6) for k, v in parts.items()}))
            bar.set_postfix(loss=f"{parts['loss']:.4f}", mpjpe=f"{batch_mpjpe:.1f}", val=f"{last_val:.1f}")
        bar.update(1)

        # Every rank must take the same stop/snapshot decision: rank 0's clock decides.
        now = broadcast(torch.tensor([elapsed()], dtype=torch.float64, device=accelerator.device), 0).item() \
            if accelerator.num_processes > 1 else elapsed()  # fmt: skip
        time_up = tc.max_minutes > 0 and now >= tc.max_minutes * 60
        while pending_snapshots and now >= pending_snapshots[0] * 60:
            save_snapshot(pending_snapshots.pop(0))
        if step % tc.eval_every == 0:
            last_val = run_eval().get("mpjpe_mm", last_val)
        if step % tc.save_every == 0 or step == tc.max_steps or time_up:
            save_checkpoint()
        if time_up:
            log.info("time limit %.1f min reached at step %d", tc.max_minutes, step)
            break
    bar.close()
    final = run_eval()
    if is_main:
        log.info("finished at step %d after %.1f min; val MPJPE %.2f mm", step, elapsed() / 60, final.get("mpjpe_mm", float("nan")))
        writer.close()
    accelerator.end_training()
    return accelerator.unwrap_model(model)

