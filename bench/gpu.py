"""Benchmark: the generator's decode path and training step, the tokenizer, at the paper's shapes on one GPU.

    python3 bench/gpu.py --prepare              # here: copy ../shared/tools + ../shared/peer into bench/gpu_kit/
    python3 bench/gpu.py --out DIR              # on the GPU machine, from the repository root (~5 min on an H200)
    .venv/bin/python bench/gpu.py --smoke --out DIR   # any CPU: tiny shapes, the whole script end to end

Random weights. Writes ONE JSON, DIR/gpu.json, rewritten after every section (a timeout keeps the finished
ones) and printed at the end; each section records its own error instead of stopping the run.

Sections:
  env          torch/CUDA/GPU, measured device-copy bandwidth (the decode bound) and bf16 matmul TFLOP/s
  decode       the bundled model's shape and the 1B and 7B presets in bf16, length condition on, batch 1 and
               32, a 10 s motion (150 tokens), without and with 1 s of context codes, all through the one
               engine (generator/engine.py): graph-captured against the same loop uncaptured; ms/token,
               tokens/s, fraction of the bandwidth bound (all weights read once per step), motions/s
  train        the 1B preset's training step as the trainer runs it (bf16 autocast over fp32 weights, fused
               AdamW, grad clip), eager / per-Block torch.compile / compile + activation checkpointing
               (generator/parallelize.py), a micro-batch sweep: tokens/s, MFU, peak memory, and the
               micro-batch and gradient accumulation to use for a global batch of --global-batch sequences;
               the attention alone with the prefix-LM mask against causal flash attention
  tokenizer    the paper-preset tokenizer: encode and decode frames/s, fp32 and bf16 autocast
  decode_limit ../shared/tools/decode_limit.py: a LLaMA-shaped static-cache decode step, eager and graphed
  same_weights ../shared/tools/bench_same_weights.py: the project against the paper's code, same weights

The two shared tools and the paper's files are read from ``bench/gpu_kit/`` when it exists (made by
``--prepare``; git-ignored: carry it to the GPU machine with the checkout), else from ``../shared``.
Nothing here needs the project to be installed: ``src/`` is put on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
KIT = ROOT / "bench" / "gpu_kit"
SHARED = ROOT.parent / "shared"
KIT_FILES = {"tools/decode_limit.py": "tools/decode_limit.py", "tools/bench_same_weights.py": "tools/bench_same_weights.py",
             "peer/motionmillion-codes": "peer/motionmillion-codes"}  # fmt: skip
SECTIONS = ("env", "decode", "train", "tokenizer", "decode_limit", "same_weights")
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # FLOP/s, dense, by GPU name
VOCAB_CODES, TEXT_DIM, TEXT_TOKENS = 64000, 2048, 20  # FSQ 64,000 codes; flan-T5-XL features, as the paper

T0 = time.perf_counter()
torch = None  # imported in main()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {message}", flush=True)


def sig(value: float, digits: int = 4) -> float:
    return float(f"{float(value):.{digits}g}")


class Report:
    def __init__(self, out: Path):
        self.path = out / "gpu.json"
        self.data: dict = {}

    def save(self) -> None:
        from motionmillion.utils.io import atomic_write_json

        atomic_write_json(self.path, self.data)


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median seconds of ``reps`` runs after ``warmup`` runs, synchronised around each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def free() -> None:
    import gc

    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()


def peak_gib() -> float | None:
    return sig(torch.cuda.max_memory_allocated() / 2**30, 3) if DEVICE.type == "cuda" else None


# ------------------------------------------------------------------------------------------------ sections
def section_env(report: Report, smoke: bool) -> dict:
    env = {"torch": torch.__version__, "python": sys.version.split()[0], "device": str(DEVICE), "smoke": smoke}
    if DEVICE.type != "cuda":
        return env
    env.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
               gpu_memory_gib=sig(torch.cuda.get_device_properties(0).total_memory / 2**30, 3))  # fmt: skip
    x = torch.empty(2 * 1024**3, dtype=torch.uint8, device=DEVICE)
    y = torch.empty_like(x)
    seconds = timed(lambda: y.copy_(x), 10, 3)
    env["copy_bandwidth_GBps"] = sig(2 * x.numel() / seconds / 1e9)  # read + write
    del x, y
    a = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    seconds = timed(lambda: a @ a, 20, 3)
    env["matmul_bf16_TFLOPs"] = sig(2 * 8192**3 / seconds / 1e12)
    del a
    free()
    return env


def random_generator(preset: str, dtype, smoke: bool):
    from dataclasses import replace

    from motionmillion.generator.config import PRESETS
    from motionmillion.generator.model import MotionGPT
    from motionmillion.training import preset as get_preset

    shape = dict(codebook_size=510, text_dim=64) if smoke else dict(codebook_size=VOCAB_CODES, text_dim=TEXT_DIM)
    if preset == "bundled":  # the shipped model's own shape (6 x 256, 1,000 codes, MiniLM text), random weights
        from motionmillion.generator.config import GeneratorConfig

        from motionmillion.utils.model_folder import read_config

        config = GeneratorConfig.from_dict(read_config(ROOT / "src/motionmillion/assets/default_model/generator", "generator"))
    else:
        config = replace(get_preset(PRESETS, preset).model, **shape, length_condition=True)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = MotionGPT(config)
    return model.to(dtype)


def section_decode(report: Report, smoke: bool) -> dict:
    """Every shape through the one engine, length condition on, without and with 1 s of context codes."""
    from motionmillion.generator.engine import DecodeEngine
    from motionmillion.generator.sampling import SamplingOptions

    result: dict = {}
    report.data["decode"] = result
    bandwidth = report.data.get("env", {}).get("copy_bandwidth_GBps")
    dtype = torch.float32 if smoke else torch.bfloat16
    tokens = 12 if smoke else 150  # a 10 s motion at 2 frames per token
    context_tokens = 4 if smoke else 15  # 1 s at 2 frames per token
    uncaptured_tokens = 12 if smoke else 50  # the per-token cost without a graph is flat; 50 keeps it short
    for preset in ("cpu-tiny",) if smoke else ("bundled", "1B", "7B"):
        model = random_generator(preset, dtype, smoke).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        for batch, context in ((1, 0), (1, context_tokens), (4 if smoke else 32, 0), (4 if smoke else 32, context_tokens)):
            entry: dict = {"preset": preset, "batch": batch, "dtype": str(dtype), "tokens": tokens,
                           "context_tokens": context, "length_condition": True, "weights_GB": sig(weight_bytes / 1e9)}  # fmt: skip
            result[f"{preset}_b{batch}_ctx{context}"] = entry
            try:
                generator = torch.Generator().manual_seed(batch)
                features = torch.randn(batch, TEXT_TOKENS, model.config.text_dim, generator=generator).to(DEVICE, dtype)
                mask = torch.ones(batch, TEXT_TOKENS, dtype=torch.bool, device=DEVICE)
                codes = torch.randint(0, model.config.codebook_size, (batch, context), generator=generator)
                seeds = list(range(batch))
                graphed = DecodeEngine(model)  # static cache + CUDA graph on CUDA (what the pipeline uses)
                plain = DecodeEngine(model, static=False, compile_blocks=False)  # the same loop, no graph

                def run(engine, count: int, temperature: float):
                    options = SamplingOptions(temperature=temperature, top_k=None if temperature == 0 else 200)
                    wanted = [count] * batch
                    return lambda: list(engine.stream(features, mask, seeds, wanted, wanted, options, codes, wanted))

                reps = 1 if smoke or preset == "7B" else 2
                entry["uncaptured_greedy_ms_per_token"] = sig(1000 * timed(run(plain, uncaptured_tokens, 0.0), reps) / uncaptured_tokens)
                report.save()
                for name, temperature in (("greedy", 0.0), ("t1_top200", 1.0)):
                    seconds = timed(run(graphed, tokens, temperature), reps + 1)  # the first call captures the graph
                    entry[f"{name}_ms_per_token"] = sig(1000 * seconds / tokens)
                    entry[f"{name}_tokens_per_s_per_row"] = sig(tokens / seconds)
                    if batch > 1:
                        entry[f"{name}_motions_per_s"] = sig(batch / seconds)
                        entry[f"{name}_frames_per_s"] = sig(batch * tokens * 2 / seconds)
                entry["speedup_graph_vs_uncaptured_greedy"] = sig(entry["uncaptured_greedy_ms_per_token"] / entry["greedy_ms_per_token"], 3)
                entry["cuda_graph"] = DEVICE.type == "cuda"
                if bandwidth:
                    bound_ms = weight_bytes / (bandwidth * 1e9) * 1000
                    entry["bandwidth_bound_ms_per_step"] = sig(bound_ms)
                    entry["greedy_fraction_of_bound"] = sig(bound_ms / entry["greedy_ms_per_token"], 3)
            except Exception as err:  # keep the other shapes (e.g. out of memory)
                entry["error"] = f"{type(err).__name__}: {err}"[:400]
            log(f"decode {preset} b{batch} ctx{context}: {entry}")
            report.save()
        del model
        engine_cache_clear()
        free()
    return result


def engine_cache_clear() -> None:
    from motionmillion.generator import engine

    engine._ENGINES.clear()



def section_train(report: Report, smoke: bool, global_batch: int, budget_s: float, smoke_compile: bool) -> dict:
    from motionmillion.generator.parallelize import adamw, parallelize

    started = time.perf_counter()
    preset = "cpu-tiny" if smoke else "1B"
    motion_tokens = 24 if smoke else 150
    sequence = TEXT_TOKENS + motion_tokens
    autocast_dtype = torch.bfloat16
    peak = next((v for k, v in DENSE_BF16_PEAK.items() if DEVICE.type == "cuda" and k in torch.cuda.get_device_name()), None)
    peak = peak or (report.data.get("env", {}).get("matmul_bf16_TFLOPs") or 0) * 1e12 or None
    result: dict = {"preset": preset, "text_tokens": TEXT_TOKENS, "motion_tokens": motion_tokens,
                    "precision": "bf16 autocast over fp32 weights", "optimizer": "AdamW (fused on CUDA)",
                    "peak_flops": peak, "runs": []}  # fmt: skip
    report.data["train"] = result
    # FlexAttention with the prefix-LM block mask was tried here (H200, 2026-11-30): 0.269 MFU at micro-batch
    # 128 against 0.387 for SDPA with the dense mask, both compiled, so the model keeps SDPA.
    variants = [("eager", False, False), ("compile", True, False), ("compile+checkpointing", True, True)]
    if smoke and not smoke_compile:  # compiling takes a minute on a small CPU
        variants = [("eager", False, False), ("checkpointing", False, True)]
    micro_batches = (2, 4) if smoke else (16, 32, 64, 128)
    for name, compile_blocks, checkpointing in variants:
        model = random_generator(preset, torch.float32, smoke).train()
        config = model.config
        n_params = model.num_parameters()
        flops_per_token = 6 * (n_params - model.token_embedding.weight.numel()) + 12 * config.n_layer * config.n_embd * sequence
        parallelize(model, device_type=DEVICE.type, activation_checkpointing=checkpointing, compile=compile_blocks)
        optimizer = adamw(model, 4e-4, (0.9, 0.999), 1e-8, 1e-6, DEVICE.type)
        # eager sweeps every size; the compiled variants try the largest two (where per-kernel overhead matters
        # least), checkpointing only the largest (where it buys memory)
        sizes = micro_batches if name == "eager" else micro_batches[-1:] if checkpointing else micro_batches[-2:]
        for micro in sizes:
            if time.perf_counter() - started > budget_s:
                result["runs"].append({"variant": name, "micro_batch": micro, "skipped": "time budget"})
                continue
            run: dict = {"variant": name, "micro_batch": micro}
            result["runs"].append(run)
            try:
                generator = torch.Generator().manual_seed(micro)
                features = torch.randn(micro, TEXT_TOKENS, config.text_dim, generator=generator).to(DEVICE)
                mask = torch.ones(micro, TEXT_TOKENS, dtype=torch.bool, device=DEVICE)
                tokens = torch.randint(0, config.codebook_size, (micro, motion_tokens), generator=generator).to(DEVICE)
                drop = torch.rand(micro, generator=generator).to(DEVICE) < config.cond_drop_prob

                def step():
                    with torch.autocast(DEVICE.type, dtype=autocast_dtype):
                        logits = model(features, mask, tokens, drop)
                    loss = model.loss(logits, tokens)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)

                if DEVICE.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                compile_started = time.perf_counter()
                step()  # includes compiling for this shape
                run["first_step_s"] = sig(time.perf_counter() - compile_started)
                seconds = timed(step, 2 if smoke else 5, 1)
                tokens_per_s = micro * sequence / seconds
                run.update(step_s=sig(seconds), tokens_per_s=sig(tokens_per_s), peak_memory_gib=peak_gib())
                if peak:
                    run["mfu"] = sig(flops_per_token * tokens_per_s / peak, 3)
            except Exception as err:
                run["error"] = f"{type(err).__name__}: {err}"[:400]
                optimizer.zero_grad(set_to_none=True)
                free()
            log(f"train {run}")
            report.save()
        del model, optimizer
        free()
    try:
        result["attention"] = attention_share(preset, micro_batches[1], sequence, smoke)
    except Exception as err:
        result["attention"] = {"error": f"{type(err).__name__}: {err}"[:400]}
    done = [r for r in result["runs"] if "tokens_per_s" in r]
    if done:
        best = max(done, key=lambda r: r["tokens_per_s"])
        result["best"] = best
        result["recommendation"] = {
            "variant": best["variant"], "micro_batch": best["micro_batch"],
            "grad_accumulation_for_global_batch": max(1, global_batch // best["micro_batch"]),
            "global_batch_sequences": global_batch,
            "note": "per process; with N processes divide the accumulation by N",
        }  # fmt: skip
    return result


def attention_share(preset: str, batch: int, sequence: int, smoke: bool) -> dict:
    """Forward + backward of the attention alone at the training shape: with the prefix-LM mask the model
    needs (SDPA picks a kernel that takes a mask) against plain causal attention (flash), which bounds
    what a flash-style prefix-LM kernel (e.g. FlexAttention) could save."""
    import torch.nn.functional as F

    from motionmillion.generator.config import PRESETS
    from motionmillion.generator.model import MotionGPT

    shape = PRESETS[preset].model
    n_layer, n_head, n_embd = shape.n_layer, shape.n_head, shape.n_embd
    dtype = torch.float32 if smoke else torch.bfloat16
    shape = (batch, n_head, sequence, n_embd // n_head)
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype, requires_grad=True) for _ in range(3))
    valid = torch.ones(batch, TEXT_TOKENS, dtype=torch.bool, device=DEVICE)
    valid[: batch // 2, : TEXT_TOKENS // 4] = False  # left padding, as short prompts have
    mask = MotionGPT.prefix_lm_mask(valid, sequence - TEXT_TOKENS)

    def masked():
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()

    def causal():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    reps = 3 if smoke else 20
    masked_ms, causal_ms = 1000 * timed(masked, reps, 2), 1000 * timed(causal, reps, 2)
    return {"batch": batch, "sequence": sequence, "layers": n_layer, "prefix_lm_mask_ms_per_layer": sig(masked_ms),
            "causal_flash_ms_per_layer": sig(causal_ms), "all_layers_masked_ms": sig(masked_ms * n_layer),
            "all_layers_causal_ms": sig(causal_ms * n_layer)}  # fmt: skip


def section_tokenizer(report: Report, smoke: bool) -> dict:
    from motionmillion.tokenizer.config import PRESETS
    from motionmillion.tokenizer.model import MotionTokenizer
    from motionmillion.training import preset

    torch.manual_seed(0)
    model = MotionTokenizer(preset(PRESETS, "tiny" if smoke else "paper").model).to(DEVICE).eval()
    batch, frames = (2, 96) if smoke else (64, 96)
    x = torch.randn(batch, frames, 272, device=DEVICE)
    result: dict = {"preset": "tiny" if smoke else "paper", "batch": batch, "frames": frames}
    with torch.inference_mode():
        ids = model.encode(x)
        for precision in ("fp32", "bf16"):
            context = torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def encode():
                with context:
                    model.encode(x)

            def decode():
                with context:
                    model.decode(ids)

            result[f"{precision}_encode_frames_per_s"] = sig(batch * frames / timed(encode, 3 if smoke else 10, 2))
            result[f"{precision}_decode_frames_per_s"] = sig(batch * frames / timed(decode, 3 if smoke else 10, 2))
    del model
    free()
    return result


def kit_path(relative: str) -> Path:
    """A shared file from bench/gpu_kit/ (carried to the GPU machine) or else ../shared."""
    inside = KIT / KIT_FILES[relative]
    return inside if inside.exists() else SHARED / relative


def run_tool(command: list[str], out: Path, timeout_s: float, result_file: str) -> dict:
    log(f"running {' '.join(command)} (timeout {timeout_s:.0f} s)")
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)
        status = {"returncode": proc.returncode, "tail": (proc.stdout + proc.stderr)[-1500:]}
    except subprocess.TimeoutExpired as err:
        status = {"returncode": "timeout", "tail": str(err.stdout or "")[-1500:] if err.stdout else ""}
    status["seconds"] = round(time.perf_counter() - started, 1)
    written = out / result_file
    if written.is_file():
        status["result"] = json.loads(written.read_text())
    return status


# decode_limit.py's step indexes its mask with a 0-d CUDA tensor, which Python turns into an int (a host sync)
# and which invalidates the CUDA-graph capture on torch 2.11 (every graphed shape then fails). The patched
# copy does the same write without leaving the device; it is run only when the original fails that way.
DECODE_LIMIT_SYNC = "mask[..., pos] = True"
DECODE_LIMIT_FIX = "mask.index_fill_(-1, pos.view(1), True)"


def section_decode_limit(report: Report, smoke: bool, out: Path, timeout_s: float) -> dict:
    folder = out / "decode_limit"
    folder.mkdir(exist_ok=True)
    tool = kit_path("tools/decode_limit.py")
    command = [sys.executable, str(tool), "--out", str(folder)] + (["--smoke"] if smoke else [])
    status = run_tool(command, folder, timeout_s, "decode_limit.json")
    failed = [k for k, v in status.get("result", {}).items() if isinstance(v, dict) and "capture" in v.get("error", "")]
    source = tool.read_text()
    if failed and DECODE_LIMIT_SYNC in source:
        import tempfile

        patched_folder = out / "decode_limit_patched"
        patched_folder.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            patched = Path(tmp) / "decode_limit_patched.py"
            patched.write_text(source.replace(DECODE_LIMIT_SYNC, DECODE_LIMIT_FIX))
            command = [sys.executable, str(patched), "--out", str(patched_folder)] + (["--smoke"] if smoke else [])
            status["patched"] = run_tool(command, patched_folder, timeout_s, "decode_limit.json")
        status["patched"]["patch"] = f"{DECODE_LIMIT_SYNC!r} -> {DECODE_LIMIT_FIX!r}; failed before: {failed}"
    return status


def section_same_weights(report: Report, smoke: bool, out: Path, timeout_s: float, sections: str | None) -> dict:
    folder = out / "same_weights"
    folder.mkdir(exist_ok=True)
    command = [sys.executable, str(kit_path("tools/bench_same_weights.py")), "--proj", str(ROOT),
               "--peer", str(kit_path("peer/motionmillion-codes")), "--out", str(folder),
               "--budget-s", str(max(30, int(timeout_s - 30)))] + (["--smoke"] if smoke else [])  # fmt: skip
    if sections:
        command += ["--sections", sections]
    return run_tool(command, folder, timeout_s, "gpu_bench.json")


def summary(data: dict) -> dict:
    """The issue's targets next to what this run measured."""
    decode, train = data.get("decode", {}), data.get("train", {})
    get = lambda entry, key: decode.get(entry, {}).get(key)  # noqa: E731
    same = data.get("same_weights", {}).get("result", {}).get("summary", {})
    limit_run = data.get("decode_limit", {})
    limit = limit_run.get("patched", limit_run).get("result", {})
    return {
        "7B_b1_tokens_per_s (length condition)": get("7B_b1_ctx0", "greedy_tokens_per_s_per_row"),
        "7B_b1_fraction_of_bandwidth_bound (target >= 0.7)": get("7B_b1_ctx0", "greedy_fraction_of_bound"),
        "7B_b1_ctx_fraction_of_bandwidth_bound (1 s of context)": get("7B_b1_ctx15", "greedy_fraction_of_bound"),
        "1B_b1_tokens_per_s": get("1B_b1_ctx0", "greedy_tokens_per_s_per_row"),
        "1B_b32_motions_per_s": get("1B_b32_ctx0", "greedy_motions_per_s"),
        "7B_b32_motions_per_s (target >= 10x 4.5 = 45)": get("7B_b32_ctx0", "greedy_motions_per_s"),
        "bundled_b1_tokens_per_s": get("bundled_b1_ctx0", "greedy_tokens_per_s_per_row"),
        "1B_train_best_mfu (target >= 0.45, was 0.387)": train.get("best", {}).get("mfu"),
        "1B_train_best_variant": train.get("best", {}).get("variant"),
        "same_weights_1B_bf16_speedup_vs_paper_b1 (target >= 10)": same.get("1B_bf16_speedup_ours_kv_vs_paper"),
        "same_weights_sampling_cases_failed": same.get("sampling_cases_failed"),
        "decode_limit_7B_b1_graph_fraction_of_bound": limit.get("7B_b1", {}).get("graph_fraction_of_bound"),
        "decode_limit_1B_b1_graph_ms_per_step": limit.get("1B_b1", {}).get("graph_ms_per_step"),
    }


def prepare() -> dict:
    """Copy the shared tools and the paper's files into bench/gpu_kit/ (git-ignored) to carry to a GPU."""
    copied = {}
    for relative, inside in KIT_FILES.items():
        source, target = SHARED / relative, KIT / inside
        if not source.exists():
            raise SystemExit(f"{source}: missing; --prepare needs ../shared next to the checkout")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
        copied[relative] = str(target.relative_to(ROOT))
    return {"prepared": copied, "carry": str(KIT.relative_to(ROOT))}


def main() -> None:
    global torch, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "gpu_out")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (checks the script)")
    parser.add_argument("--prepare", action="store_true", help="copy the shared tools into bench/gpu_kit/ and stop")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list from {','.join(SECTIONS)}")
    parser.add_argument("--global-batch", type=int, default=256, help="sequences per optimiser step (train advice)")
    parser.add_argument("--smoke-compile", action="store_true", help="also torch.compile in --smoke (about a minute)")
    parser.add_argument("--train-budget-s", type=float, default=120.0)
    parser.add_argument("--decode-limit-timeout-s", type=float, default=60.0)
    parser.add_argument("--same-weights-timeout-s", type=float, default=150.0)
    parser.add_argument("--same-weights-sections", default=None, help="bench_same_weights.py's --sections (default all)")
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(), indent=1))
        return
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    import torch as torch_module

    torch = torch_module
    DEVICE = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if DEVICE.type == "cpu" and not args.smoke:
        raise SystemExit("no CUDA device: run with --smoke on a CPU")
    if args.smoke:
        torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out)
    runners = {
        "env": lambda: section_env(report, args.smoke),
        "decode": lambda: section_decode(report, args.smoke),
        "train": lambda: section_train(report, args.smoke, args.global_batch, args.train_budget_s, args.smoke_compile),
        "tokenizer": lambda: section_tokenizer(report, args.smoke),
        "decode_limit": lambda: section_decode_limit(report, args.smoke, args.out, args.decode_limit_timeout_s),
        "same_weights": lambda: section_same_weights(report, args.smoke, args.out, args.same_weights_timeout_s,
                                                     args.same_weights_sections),
    }
    for name in SECTIONS:
        if name not in sections:
            continue
        log(f"section {name}")
        started = time.perf_counter()
        try:
            report.data[name] = runners[name]()
        except Exception as err:
            report.data[name] = {"error": f"{type(err).__name__}: {err}"[:600], "traceback": traceback.format_exc()[-2000:]}
        if isinstance(report.data[name], dict):
            report.data[name]["section_seconds"] = round(time.perf_counter() - started, 1)
        report.save()
    report.data["summary"] = summary(report.data)
    report.data["wall_seconds"] = round(time.perf_counter() - T0, 1)
    report.save()
    print(json.dumps(report.data, indent=1))


DEVICE = None

if __name__ == "__main__":
    main()
