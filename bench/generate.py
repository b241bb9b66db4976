"""Benchmark the generator's sampler on CPU; prints one JSON object.

    nice -n 10 .venv/bin/python bench/generate.py [--preset cpu-small] [--frames-per-token 4] [--repeats 3] [--threads 1]
    .venv/bin/python bench/generate.py --model default [--threads 1]

With ``--model`` (a pipeline folder, or ``default`` for the bundled model) the whole pipeline call is
timed after loading (text encoding, sampling with the KV cache, tokenizer decode, de-normalisation) for
4 s and 10 s motions at batch 1 and 4 s motions at batch 32, and the sampler section below uses the
model's own shape. Without it:
Random weights (speed does not depend on them; lengths are forced with min = max tokens). Times cover
the prefix-LM sampling loop only (text features are random, the tokenizer decode is timed separately
with a random tokenizer of the matching preset), each with and without the KV cache.
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
from motionmillion.generator.sample import SamplingOptions, sample_tokens
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

    def run(batch: int, tokens: int, use_cache: bool, guidance: float = 1.0) -> float:
        features = torch.randn(batch, args.text_tokens, args.text_dim)
        mask = torch.ones(batch, args.text_tokens, dtype=torch.bool)
        options = SamplingOptions(temperature=1.0, top_p=0.95, guidance=guidance, use_cache=use_cache)
        return timed(lambda: sample_tokens(model, features, mask, list(range(batch)), [tokens] * batch,
                                           [tokens] * batch, options), args.repeats)  # fmt: skip

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
    with torch.inference_mode():
        for label, use_cache in (("kv_cache", True), ("no_cache", False)):
            s4 = run(1, tokens_4s, use_cache)
            s10 = run(1, tokens_10s, use_cache)
            s32 = run(32, tokens_4s, use_cache)
            result[label] = {
                "ms_per_token_batch1_10s": round(1000 * s10 / (tokens_10s + 1), 2),
                "seconds_per_4s_motion_batch1": round(s4, 3),
                "seconds_per_10s_motion_batch1": round(s10, 3),
                "motions_per_second_batch32_4s": round(32 / s32, 2),
            }
        result["kv_cache_speedup"] = {
            key: round(result["no_cache"][key] / result["kv_cache"][key], 2)
            for key in ("seconds_per_4s_motion_batch1", "seconds_per_10s_motion_batch1")
        }
        result["kv_cache_speedup"]["motions_per_second_batch32_4s"] = round(
            result["kv_cache"]["motions_per_second_batch32_4s"] / result["no_cache"]["motions_per_second_batch32_4s"], 2
        )
        result["kv_cache_guidance_2.5_seconds_per_4s_motion_batch1"] = round(run(1, tokens_4s, True, 2.5), 3)

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
