"""CPU speed of this checkout against another one (a worktree of the previous code), in the same run.

    git worktree add --detach /tmp/previous <commit>
    .venv/bin/python bench/side_by_side.py /tmp/previous [--rounds 2] [--out bench/results/cpu-DATE.json]

Absolute times differ between machines and with the other jobs of a shared CPU, so each round runs the
previous checkout's own ``bench/generate.py --model default --threads 1`` and then this checkout's, and
a cold ``motionmillion generate`` in a fresh process of each (bundled model, 4 s, no video). The JSON has
every round's figures, the medians and the ratios previous / this (> 1: this checkout is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
KEYS = ("seconds_per_4s_motion_batch1", "seconds_per_10s_motion_batch1", "motions_per_second_batch32_4s", "load_seconds")


def pipeline_figures(tree: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(tree / "bench/generate.py"), "--model", "default", "--threads", "1",
                          "--repeats", str(repeats)], env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {key: json.loads(out[out.index("{"):])["pipeline"][key] for key in KEYS}


def cold_generate(tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from motionmillion.cli import app; app()", "generate",
                        "a person waves with the right hand", "--seconds", "4", "--seed", "0", "--no-video",
                        "--out", f"{folder}/out"], env=env, capture_output=True, check=True)  # fmt: skip
        return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("previous", type=Path, help="a checkout of the previous code (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        entry = {}
        for name, tree in (("previous", args.previous.resolve()), ("this", HERE)):
            entry[name] = {**pipeline_figures(tree, args.repeats), "cold_generate_seconds": cold_generate(tree)}
        rounds.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    medians = {name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
               for name in ("previous", "this")}  # fmt: skip
    ratios = {}
    for key in medians["this"]:
        before, now = medians["previous"][key], medians["this"][key]
        # motions/s: higher is better; seconds: lower is better; ratio > 1 = this checkout is faster
        ratios[key] = round(now / before if key.startswith("motions_per") else before / now, 2)
    result = {"previous": str(args.previous), "rounds": rounds, "median": medians, "speedup_of_this_over_previous": ratios,
              "cpu": os.uname().machine, "load_average_at_end": os.getloadavg()}  # fmt: skip
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
