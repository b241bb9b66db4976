"""Tokenizer speed and memory on this machine; prints JSON.

    .venv/bin/python bench/tokenizer.py [--presets paper small] [--batch 64] [--frames 96] [--repeats 3] [--threads N]

For each preset (each in a fresh child process, so peak memory is its own): encode and decode
frames/second at batch x frames, training steps/second (forward + backward + AdamW at the preset's
training batch and window), peak resident memory, parameter count, with and without bf16 autocast
where the CPU/GPU supports it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(preset: str, batch: int, frames: int, repeats: int, bf16: bool, threads: int) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from motionmillion.tokenizer.config import PRESETS
    from motionmillion.tokenizer.losses import tokenizer_loss
    from motionmillion.tokenizer.model import MotionTokenizer
    from motionmillion.training import preset as get_preset

    config = get_preset(PRESETS, preset)
    torch.manual_seed(0)
    model = MotionTokenizer(config.model)
    x = torch.randn(batch, frames - frames % model.frames_per_token, 272)

    def timed(fn) -> float:
        fn()  # warm-up (kernel selection)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    model.eval()
    with autocast():
        ids = model.encode(x)
        encode_s = timed(lambda: model.encode(x))
        decode_s = timed(lambda: model.decode(ids))

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    window = torch.randn(config.train.batch_size, config.train.window, 272)

    def step() -> None:
        with autocast():
            recon, _ = model(window)
        loss, _ = tokenizer_loss(recon, window, config.loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step_s = timed(step)
    return {
        "preset": preset, "bf16": bf16, "parameters": sum(p.numel() for p in model.parameters()),
        "codebook_size": model.codebook_size, "frames_per_token": model.frames_per_token,
        "encode_frames_per_s": x.shape[0] * x.shape[1] / encode_s,
        "decode_frames_per_s": x.shape[0] * x.shape[1] / decode_s,
        "eval_batch": [x.shape[0], x.shape[1]],
        "train_steps_per_s": 1 / step_s, "train_batch": [config.train.batch_size, config.train.window],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["paper", "small"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--bf16", action="store_true", help="(child) measure with bf16 autocast")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch, args.frames, args.repeats, args.bf16, args.threads)))
        return

    from motionmillion.training import bf16_is_fast

    results = []
    for preset in args.presets:
        for bf16 in [False, True] if bf16_is_fast() else [False]:
            command = [sys.executable, __file__, "--child", preset, "--batch", str(args.batch),
                       "--frames", str(args.frames), "--repeats", str(args.repeats), "--threads", str(args.threads)] + (["--bf16"] if bf16 else [])  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "tokenizer", "bf16_supported": bf16_is_fast(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
