"""Benchmark the generator's sampler on CPU; prints one JSON object.

    nice -n 10 .venv/bin/python bench/generate.py [--preset cpu-small] [--frames-per-token 4] [--repeats 3] [--threads 1]
    .venv/bin/python bench/generate.py --model default [--threads 1]

With ``--model`` (a pipeline folder, or ``default`` for the bundled model) the whole pipeline call is
timed after loading (text encoding, sampling with the KV cache, tokenizer decode, de-normalisation) for
4 s and 10 s motions at batch 1 and 4 s motions at batch 32, and the sampler section below uses the
model's own shape. Without it:
Random weights (speed does not depend on them; lengths are forced with min = max tokens). Times cover
the prefix-LM sampling loop only (text features are random, the tokenizer decode is timed separately
with a random tokenizer of the matching preset), through the engine with its CPU cache and its static
cache. With ``--split``, where a bundled-model call's time goes, stage by stage (the pipeline's own
stages timed one by one, the same work as ``pipe(...)``), and the cold start of ``motionmillion
generate`` in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from dataclasses import replace

import torch

from motionmillion.generator.config import PRESETS
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.engine import DecodeEngine
from motionmillion.generator.sampling import SamplingOptions
from motionmillion.training import preset

FPS = 30.0


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def pipeline_timings(path, repeats: int) -> tuple[dict, object, int]:
    """Seconds per whole ``pipe(...)`` call of a trained pipeline, after loading."""
    from motionmillion.pipeline import MotionPipeline

    start = time.perf_counter()
    pipe = MotionPipeline.from_pretrained(path, device="cpu")
    load_seconds = time.perf_counter() - start
    prompt = "a person walks forward and waves with the right hand"
    with torch.inference_mode():
        s4 = timed(lambda: pipe([prompt], seconds=4.0, seed=0), repeats)
        s10 = timed(lambda: pipe([prompt], seconds=10.0, seed=0), repeats)
        s32 = timed(lambda: pipe([prompt] * 32, seconds=4.0, seed=0), repeats)
    config = pipe.generator.config
    result = {
        "model": str(pipe.folder),
        "weights": "trained",
        "load_seconds": round(load_seconds, 2),
        "seconds_per_4s_motion_batch1": round(s4, 3),
        "seconds_per_10s_motion_batch1": round(s10, 3),
        "motions_per_second_batch32_4s": round(32 / s32, 2),
        "includes": "text encoding, KV-cache sampling, tokenizer decode, de-normalisation",
    }
    return result, config, pipe.frames_per_token


def stage_split(path, repeats: int) -> dict:
    """Milliseconds per stage of one pipeline call (4 s and 10 s motion, batch 1; 4 s at batch 32)."""
    import tempfile

    from motionmillion.pipeline import MotionPipeline

    pipe = MotionPipeline.from_pretrained(path, device="cpu")
    prompt = "a person walks forward and waves with the right hand"
    split = {}
    for label, seconds, batch in (("4s_batch1", 4.0, 1), ("10s_batch1", 10.0, 1), ("4s_batch32", 4.0, 32)):
        requests = list(pipe.plan([prompt] * batch, seconds, seed=0).requests)
        stages: dict[str, list[float]] = {}

        def clock(name, fn):
            start = time.perf_counter()
            value = fn()
            stages.setdefault(name, []).append(time.perf_counter() - start)
            return value

        for _ in range(repeats + 1):
            features, mask = clock("encode_text", lambda: pipe.encode_text([r.conditioning_text for r in requests]))
            chosen = clock("coverage", lambda: pipe.with_coverage(requests, features, mask))
            codes = clock("sample", lambda: pipe.sample(chosen, features, mask))
            decoded = clock("decode", lambda: pipe.decode(codes))
            consistent = clock("make_consistent", lambda: pipe.make_consistent(decoded))
            motions = clock("motions", lambda: [pipe.motion(r, c, f) for r, c, f in zip(chosen, codes, consistent)])
            with tempfile.TemporaryDirectory() as folder:
                clock("files_npy_bvh_json", lambda: motions[0].save(folder, "m", video=False))
        split[label] = {name: round(1000 * statistics.median(values[1:]), 2) for name, values in stages.items()}
        split[label]["total_without_files"] = round(sum(v for k, v in split[label].items() if k != "files_npy_bvh_json"), 2)
    return split


def cold_generate_seconds() -> float:
    """Wall time of ``motionmillion generate`` in a new process, bundled model, 4 s, no video."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "motionmillion.cli", "generate", "a person waves with the right hand",
                        "--seconds", "4", "--seed", "0", "--no-video", "--out", f"{folder}/out"],
                       check=True, capture_output=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--codebook-size", type=int, default=1000)  # the "small" tokenizer (FSQ 8,5,5,5)
    parser.add_argument("--frames-per-token", type=int, default=4)
    parser.add_argument("--text-dim", type=int, default=384)  # bundled MiniLM
    parser.add_argument("--text-tokens", type=int, default=14)  # a typical short caption
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer-preset", default="small")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--model", default=None, help="pipeline folder, or 'default' for the bundled model")
    parser.add_argument("--split", action="store_true", help="with --model: time per pipeline stage, cold generate")
    args = parser.parse_args()
    if args.threads:
        # On a shared/oversubscribed CPU, OpenMP barriers make tiny decode-step ops 100x slower with >1 thread.
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    pipeline_result = None
    if args.model:  # the sampler sections use the pipeline's own shape (its config may override the preset's)
        pipeline_result, config, args.frames_per_token = pipeline_timings(None if args.model == "default" else args.model, args.repeats)
        args.preset, args.codebook_size, args.text_dim = config.preset, config.codebook_size, config.text_dim
    else:
        config = replace(preset(PRESETS, args.preset).model, codebook_size=args.codebook_size, text_dim=args.text_dim)
    model = MotionGPT(config).eval()

    def run(batch: int, tokens: int, static: bool, guidance: float = 1.0) -> float:
        features = torch.randn(batch, args.text_tokens, args.text_dim)
        mask = torch.ones(batch, args.text_tokens, dtype=torch.bool)
        options = SamplingOptions(temperature=1.0, top_p=0.95, guidance=guidance)
        engine = DecodeEngine(model, static=static)
        return timed(lambda: list(engine.stream(features, mask, list(range(batch)), [tokens] * batch, [tokens] * batch,
                                                options)), args.repeats)  # fmt: skip

    tokens_4s = round(4 * FPS / args.frames_per_token)
    tokens_10s = round(10 * FPS / args.frames_per_token)
    result: dict = {
        "benchmark": "generator sampling (prefix-LM only)",
        "weights": "random (speed does not depend on the values; lengths forced with min = max tokens)",
        "preset": args.preset,
        "shape": {"n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd},
        "parameters_millions": round(model.num_parameters() / 1e6, 2),
        "codebook_size": args.codebook_size,
        "frames_per_token": args.frames_per_token,
        "text_prefix_tokens": args.text_tokens,
        "tokens_per_4s_motion": tokens_4s,
        "tokens_per_10s_motion": tokens_10s,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "repeats_median_of": args.repeats,
    }
    if pipeline_result is not None:
        result["pipeline"] = pipeline_result
    if args.model and args.split:
        with torch.inference_mode():
            result["stage_ms"] = stage_split(None if args.model == "default" else args.model, args.repeats)
        result["cold_generate_seconds"] = cold_generate_seconds()
    with torch.inference_mode():
        # The engine's CPU cache (attends over written positions) against its static cache (what CUDA
        # graphs replay: the whole cache attended, masked), on this CPU.
        for label, static in (("engine", False), ("engine_static_cache", True)):
            s4 = run(1, tokens_4s, static)
            s10 = run(1, tokens_10s, static)
            s32 = run(32, tokens_4s, static)
            result[label] = {
                "ms_per_token_batch1_10s": round(1000 * s10 / (tokens_10s + 1), 2),
                "seconds_per_4s_motion_batch1": round(s4, 3),
                "seconds_per_10s_motion_batch1": round(s10, 3),
                "motions_per_second_batch32_4s": round(32 / s32, 2),
            }
        if config.has_null_prefix:
            result["engine_guidance_2.5_seconds_per_4s_motion_batch1"] = round(run(1, tokens_4s, False, 2.5), 3)

        from motionmillion.tokenizer.config import PRESETS as TOKENIZER_PRESETS
        from motionmillion.tokenizer.model import MotionTokenizer

        tokenizer_config = preset(TOKENIZER_PRESETS, args.tokenizer_preset).model
        if tokenizer_config.codebook_size == args.codebook_size and tokenizer_config.frames_per_token == args.frames_per_token:
            tokenizer = MotionTokenizer(tokenizer_config).eval()
            ids = torch.randint(0, args.codebook_size, (1, tokens_10s))
            result["tokenizer_decode_seconds_per_10s_motion"] = round(timed(lambda: tokenizer.decode(ids), args.repeats), 4)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
