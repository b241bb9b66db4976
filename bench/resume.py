"""Does every trainer resume bit-exactly after a kill? Prints JSON.

For the tokenizer, the generator and the evaluator: one straight run, and one run killed with SIGKILL
as soon as its first checkpoint past ``--kill-after`` exists, then started again with the same command.
The final weights of the two are compared tensor by tensor (``bit_exact``).

    python bench/resume.py --data DATASET                # a MotionMillion dataset, e.g. the shared data imported
    python bench/resume.py --data DATASET --work /tmp/resume --steps 20 --kill-after 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MOTIONMILLION = [sys.executable, "-m", "motionmillion.cli"]


def run(args: list[str]) -> None:
    subprocess.run(MOTIONMILLION + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def killed_then_resumed(args: list[str], pointer: Path, kill_after: int) -> int:
    """Run, SIGKILL once ``pointer`` (checkpoints/latest.json) names a step >= kill_after, run again."""
    process = subprocess.Popen(MOTIONMILLION + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = -1
    while process.poll() is None:
        if pointer.is_file():
            step = json.loads(pointer.read_text())["step"]
            if step >= kill_after:
                process.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.2)
    process.wait()
    run(args)
    return killed_at


def same_weights(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="MotionMillion dataset folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/motionmillion_resume"))
    parser.add_argument("--steps", type=int, default=20, help="tokenizer and generator steps")
    parser.add_argument("--kill-after", type=int, default=10, help="kill once a checkpoint at or past this step exists")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    common = ["--threads", "1"]
    # The three trainers share these settings' names (motionmillion.training.TrainConfig).
    steps = ["--set", f"steps={args.steps}", "--set", "save_every=5", "--set", "warmup_steps=5"]
    trainers = {
        "tokenizer": (["tokenizer", "train", "--config", "small", "--data", str(args.data), "--no-progress", *common, *steps,
                       "--set", "eval_every=1000", "--set", "snapshot_minutes=[]"], "model.safetensors"),
        "generator": (["generator", "train", "--config", "cpu-tiny", "--tokens", str(args.work / "tokens"), *common,
                       *steps], "generator/model.safetensors"),
        # validated (and its best weights kept) every 5 steps; a kill inside an epoch of the train clips
        "evaluator": (["evaluator", "train", "--config", "tiny", "--data", str(args.data), "--no-progress", *common,
                       *steps, "--set", "eval_every=5"], "model.safetensors"),
    }  # fmt: skip
    report = {"data": str(args.data), "steps": args.steps}
    for name, (command, weights) in trainers.items():
        if name == "generator":
            run(["tokenizer", "encode", "--data", str(args.data), "--out", str(args.work / "tokens"), "--no-progress"])
        straight, resumed = args.work / f"{name}_straight", args.work / f"{name}_resumed"
        started = time.perf_counter()
        run(command + ["--out", str(straight)])
        seconds = time.perf_counter() - started
        killed_at = killed_then_resumed(command + ["--out", str(resumed)], resumed / "checkpoints" / "latest.json",
                                        args.kill_after)  # fmt: skip
        report[name] = {"killed_after_checkpoint_step": killed_at, "straight_run_s": round(seconds, 1),
                        "bit_exact": same_weights(straight / weights, resumed / weights)}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
