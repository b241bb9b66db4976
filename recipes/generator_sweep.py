"""Train several generators at once on one GPU machine that starts bare, and bring their weights back.

The GPU machine gets the working tree and up to 64 MiB of carried files, and gives back at most 8 files
of 16 MiB. So:

    python recipes/generator_sweep.py prepare --tokens TOKENS --text-cache RUN/text_cache --kit work/gpu_gen
        here: copy the encoded tokens and the caption features (int8 per row: 1% error, half the bytes)
    python3 recipes/generator_sweep.py run --kit work/gpu_gen --out $OUT [--runs a,b] [--smoke]
        there (carry work/gpu_gen): rebuild the fp16 text-feature cache, train every run of SWEEP at the
        same time (one process each; these models are far too small to fill an H200 alone), then write
        each run's lowest-val-loss and final weights as fp16 safetensors, split into parts of 15 MiB,
        with one sweep.json of every run's settings, val curve and speed
    python recipes/generator_sweep.py unpack --from FILES_AT --to work/sweep
        here: join the parts and write each run as a loadable generator folder (fp16 weights, as they came)

--smoke runs every run for a few steps on whatever device there is (the CPU here), end to end.
Nothing is downloaded: the caption features travel, the text encoder stays behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PART_BYTES = 15 * 2**20
# Shared by every run: the default model's recipe (recipes/default_model.sh, stage 5), scaled for a GPU.
BASE = ["batch_size=64", "lr=8e-4", "warmup_steps=200", "save_every=1000", "eval_every=250", "eval_batches=9", "keep_checkpoints=10",
        "length_condition=true", "length_drop_prob=0.5", "context_prob=0.3", "max_context_tokens=8",
        "log_every=100"]  # fmt: skip
# name -> (preset, overrides). Issue 15: do rare contents become reachable with a larger model, more
# steps and stronger balancing (stratum_alpha: share of a content/style ~ size**alpha)? The first sweep
# (tokens of the session-4 tokenizer): every run's val loss was lowest at step 500 (batch 64), the
# weights of step 6,000 (train loss 0.15: the training set memorised) got more contents right.
SWEEP: dict[str, tuple[str, list[str]]] = {
    "tiny": ("cpu-tiny", ["steps=6000", "stratum_alpha=0.5"]),
    "mid": ("cpu-tiny", ["n_layer=6", "n_head=8", "n_embd=256", "steps=6000", "stratum_alpha=0.5", "weight_decay=0.1"]),
    "mid_a03": ("cpu-tiny", ["n_layer=6", "n_head=8", "n_embd=256", "steps=6000", "stratum_alpha=0.3", "weight_decay=0.1"]),
    # issue 15 item 5: "mid" on tokens whose splits leave out five content-style pairs (recipes/heldout_combos.sh)
    "heldout": ("cpu-tiny", ["n_layer=6", "n_head=8", "n_embd=256", "steps=6000", "stratum_alpha=0.5", "weight_decay=0.1"]),
}  # fmt: skip
TOKENS_OF = {"heldout": "tokens_heldout"}  # runs on other tokens than kit/tokens (prepare --extra-tokens NAME=PATH)
# What comes back of each run (the machine gives back 64 MiB): "best" (lowest val loss), "final", or a step.
BRING: dict[str, list[str | int]] = {"tiny": ["best"], "mid": ["best", 2000, "final"], "mid_a03": ["final"], "heldout": ["final"]}


def prepare(tokens: Path, text_cache: Path, kit: Path, extra_tokens: list[str]) -> None:
    from motionmillion.text.feature_cache import CACHE_FEATURES, CACHE_INDEX, CACHE_META

    kit.mkdir(parents=True, exist_ok=True)
    for name, source in [("tokens", str(tokens))] + [item.split("=", 1) for item in extra_tokens]:
        shutil.rmtree(kit / name, ignore_errors=True)
        shutil.copytree(source, kit / name)
    features = np.load(text_cache / CACHE_FEATURES).astype(np.float32)
    scale = np.abs(features).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    np.save(kit / "text_features_int8.npy", np.round(features / scale).astype(np.int8))
    np.save(kit / "text_scale.npy", scale.astype(np.float32))
    shutil.copy(text_cache / CACHE_INDEX, kit / CACHE_INDEX)
    shutil.copy(text_cache / CACHE_META, kit / CACHE_META)
    size = sum(f.stat().st_size for f in kit.rglob("*") if f.is_file())
    print(f"kit {kit}: {size / 2**20:.1f} MiB")


def rebuild_cache(kit: Path, folder: Path) -> None:
    from motionmillion.text.feature_cache import CACHE_FEATURES, CACHE_INDEX, CACHE_META

    folder.mkdir(parents=True, exist_ok=True)
    features = np.load(kit / "text_features_int8.npy").astype(np.float32) * np.load(kit / "text_scale.npy")
    np.save(folder / CACHE_FEATURES, features.astype(np.float16))
    shutil.copy(kit / CACHE_INDEX, folder / CACHE_INDEX)
    shutil.copy(kit / CACHE_META, folder / CACHE_META)


def train_one(name: str, kit: Path, work: Path, smoke: bool) -> None:
    from motionmillion.generator.config import PRESETS
    from motionmillion.generator.train import train
    from motionmillion.training import apply_overrides, preset

    preset_name, overrides = SWEEP[name]
    smoke_steps = ["steps=6", "eval_every=3", "eval_batches=1", "save_every=2", "log_every=2"]
    overrides = BASE + overrides + (smoke_steps if smoke else [])
    run_config = apply_overrides(preset(PRESETS, preset_name), overrides)
    out = work / name
    if not (out / "text_cache").exists():
        shutil.copytree(work / "text_cache", out / "text_cache")
    train(run_config, kit / TOKENS_OF.get(name, "tokens"), out)


def run(kit: Path, out: Path, names: list[str], smoke: bool, limit_s: float) -> None:
    import torch

    work = Path("/tmp/generator_sweep") if not smoke else out / "work"
    started = time.time()
    rebuild_cache(kit, work / "text_cache")
    print(f"[{time.time() - started:.0f}s] text cache rebuilt; cuda={torch.cuda.is_available()}", flush=True)
    procs = {}
    for name in names:
        log = open(work / f"{name}.log", "w")
        env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "one", "--name", name, "--kit", str(kit), "--work", str(work)] + (["--smoke"] if smoke else []),
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    while any(p.poll() is None for p in procs.values()) and time.time() - started < limit_s:
        time.sleep(5)
    for name, p in procs.items():
        if p.poll() is None:
            p.terminate()
            print(f"{name}: stopped at the time limit", flush=True)
    print(f"[{time.time() - started:.0f}s] training done", flush=True)
    collect(work, out, names, smoke)


def collect(work: Path, out: Path, names: list[str], smoke: bool = False) -> None:
    import torch
    from safetensors.torch import load_file, save

    out.mkdir(parents=True, exist_ok=True)
    summary, blobs, serialised = {}, {}, {}
    for name in names:
        run_dir = work / name
        info = {"log_tail": (work / f"{name}.log").read_text(errors="replace")[-1500:]}
        log_text = (run_dir / "train.log").read_text(errors="replace") if (run_dir / "train.log").is_file() else ""
        info["val"] = [line.split("INFO ")[-1] for line in log_text.splitlines() if "val loss" in line]
        info["speed"] = [line.split("INFO ")[-1] for line in log_text.splitlines() if "steps/s" in line][-1:]
        if (run_dir / "run.json").is_file():
            info["run"] = json.loads((run_dir / "run.json").read_text())
        for kind in BRING.get(name, ["best"]):
            if isinstance(kind, int) and smoke:
                kind = 2  # the smoke run's steps
            if isinstance(kind, int):  # a checkpoint's weights (accelerate's model.safetensors), the run's config
                weights, config_folder = run_dir / "checkpoints" / f"step_{kind:08d}" / "model.safetensors", run_dir / "generator_best"
            else:
                config_folder = run_dir / ("generator_best" if kind == "best" else "generator")
                weights = config_folder / "model.safetensors"
            if weights.is_file() and (config_folder / "config.json").is_file():
                state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
                key = f"{name}.{kind}"
                serialised[key] = save(state)
                val = config_folder / "val.json"
                blobs[key] = {"config": json.loads((config_folder / "config.json").read_text()),
                              "val": json.loads(val.read_text()) if kind == "best" and val.is_file() else None}  # fmt: skip
        summary[name] = info
    # One stream of all weights, cut into parts (the machine gives back 8 files of 16 MiB).
    stream = bytearray()
    layout = {}
    for key, data in serialised.items():
        layout[key] = [len(stream), len(data)]
        stream += data
    parts = [stream[i : i + PART_BYTES] for i in range(0, len(stream), PART_BYTES)]
    if len(parts) > 7:
        raise SystemExit(f"{len(stream) / 2**20:.0f} MiB of weights: more than 7 parts; bring back fewer runs")
    for i, part in enumerate(parts):
        (out / f"weights.part{i}").write_bytes(part)
    (out / "sweep.json").write_text(json.dumps({"runs": summary, "weights": blobs, "layout": layout, "parts": len(parts)}, indent=1))
    print(json.dumps({name: {"val": info["val"][-3:], "speed": info["speed"]} for name, info in summary.items()}, indent=1))


def unpack(source: Path, dest: Path) -> None:
    import torch
    from safetensors.torch import load

    from motionmillion.utils.model_folder import save_model_folder

    meta = json.loads((source / "sweep.json").read_text())
    stream = b"".join((source / f"weights.part{i}").read_bytes() for i in range(meta["parts"]))
    for key, (start, length) in meta["layout"].items():
        state = load(stream[start : start + length])
        folder = dest / key
        config = {k: v for k, v in meta["weights"][key]["config"].items() if k not in ("model_type", "weights_sha256")}
        # Kept as the fp16 they came back in (fp32 would add bytes, not information); loading casts to fp32.
        save_model_folder(folder, meta["weights"][key]["config"]["model_type"], config, state, dtype=torch.float16)
        if meta["weights"][key]["val"]:
            (folder / "val.json").write_text(json.dumps(meta["weights"][key]["val"]))
        print(key, "->", folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["prepare", "run", "one", "unpack"])
    parser.add_argument("--kit", type=Path, default=ROOT / "work" / "gpu_gen")
    parser.add_argument("--tokens", type=Path)
    parser.add_argument("--text-cache", type=Path)
    parser.add_argument("--extra-tokens", action="append", default=[], help="NAME=PATH: more tokens folders (TOKENS_OF)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", default=",".join(SWEEP))
    parser.add_argument("--name")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--limit-s", type=float, default=420.0)
    parser.add_argument("--from", dest="source", type=Path)
    parser.add_argument("--to", type=Path)
    args = parser.parse_args()
    if args.action == "prepare":
        prepare(args.tokens, args.text_cache, args.kit, args.extra_tokens)
    elif args.action == "run":
        run(args.kit, args.out, args.runs.split(","), args.smoke, args.limit_s)
    elif args.action == "one":
        train_one(args.name, args.kit, args.work, args.smoke)
    else:
        unpack(args.source, args.to)


if __name__ == "__main__":
    main()
