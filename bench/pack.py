"""Benchmark: random window reads per second from the packed store vs one np.load per clip.

    nice -n 10 .venv/bin/python bench/pack.py --dataset /work/scratch/datasets/mm

Prints one JSON object. Two data sets:

(a) the real imported dataset (``--dataset``): 96-frame windows at random offsets of random clips of
    at least 96 frames, from ``DATASET/packed`` (built first if missing) and from the per-clip npy files;
(b) a synthetic dataset of ``--synthetic-clips`` (default 1,000,000) short clips of 20-40 frames
    (float32, 272 dims: ~1 KB per frame, so 1M clips of 96+ frames would need >100 GB of disk).
    Its packed store is written directly with ``write_packed``; the per-file side is a sample of
    ``--perfile-sample`` clips with the same length distribution, stored as npy files in the dataset
    layout (one million files would cost ~35 GB and hours of file creation here). The clips are
    shorter than 96 frames, so a "window" there is min(96, T) = the whole clip; the JSON says so.

Each measurement runs in its own process (its peak RSS, see :func:`peak_rss_mb`, is reported) and
is done twice: "cold" after asking the kernel to drop the files from the page cache
(posix_fadvise DONTNEED, no root needed), then "warm" right after. The synthetic packed store is
larger than this machine's RAM, so its reads stay mostly cold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WINDOW = 96


def evict(paths) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` survives fork + exec on Linux (a worker started by a
    big driver would report the driver's peak), so the kernel's per-address-space high-water mark
    VmHWM is used where it exists; getrusage otherwise."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# ---------------------------------------------------------------------------------------------------------
# Workers (run in a child process each)


def worker_packed(store: str, reads: int, min_frames: int, seed: int, seconds: float, indices_file: str = "") -> dict:
    from motionmillion.data.packed import PackedMotions

    rss_before = peak_rss_mb()
    opened = time.perf_counter()
    packed = PackedMotions(store)
    open_seconds = time.perf_counter() - opened
    eligible = np.flatnonzero(packed.lengths >= min_frames)
    if indices_file:  # read only these clips (the same ones the per-file sample holds)
        eligible = np.array([int(i) for i in Path(indices_file).read_text().split()], dtype=np.int64)
    rng = np.random.default_rng(seed)
    clips = rng.choice(eligible, size=reads)
    checksum, frames_read, done = 0.0, 0, 0
    started = time.perf_counter()
    for i in clips:
        length = int(packed.lengths[i])
        size = min(WINDOW, length)
        offset = int(rng.integers(0, length - size + 1))
        window = np.array(packed.window(int(i), offset, size))  # copy = the bytes really read
        checksum += float(window[0, 0])
        frames_read += size
        done += 1
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - started
    return {"reads": done, "seconds": round(elapsed, 3), "reads_per_s": round(done / elapsed, 1),
            "mb_per_s": round(frames_read * 272 * 4 / elapsed / 1e6, 1), "mean_window_frames": round(frames_read / done, 1),
            "open_seconds": round(open_seconds, 3), "clips_in_store": len(packed), "eligible_clips": int(len(eligible)),
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_open_mb": round(rss_before, 1), "checksum": checksum}  # fmt: skip


def worker_perfile(list_file: str, reads: int, seed: int, seconds: float) -> dict:
    rss_before = peak_rss_mb()
    paths = Path(list_file).read_text().split("\n")
    paths = [p for p in paths if p]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(paths), size=reads)
    checksum, frames_read, done = 0.0, 0, 0
    started = time.perf_counter()
    for k in picks:
        motion = np.load(paths[k])  # what a per-clip Dataset does: load the file, then crop
        size = min(WINDOW, len(motion))
        offset = int(rng.integers(0, len(motion) - size + 1))
        window = motion[offset : offset + size]
        checksum += float(window[0, 0])
        frames_read += size
        done += 1
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - started
    return {"reads": done, "seconds": round(elapsed, 3), "reads_per_s": round(done / elapsed, 1),
            "mb_per_s": round(frames_read * 272 * 4 / elapsed / 1e6, 1), "mean_window_frames": round(frames_read / done, 1),
            "files_in_pool": len(paths), "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_mb": round(rss_before, 1),
            "checksum": checksum}  # fmt: skip


def run_worker(kind: str, kwargs: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(kwargs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, kwargs: dict, files_to_evict: list[str]) -> dict:
    evict(files_to_evict)
    cold = run_worker(kind, kwargs)
    warm = run_worker(kind, {**kwargs, "seed": kwargs["seed"] + 1})  # new random reads, caches as left
    return {"cold": cold, "warm": warm}


# ---------------------------------------------------------------------------------------------------------


def bench_real(dataset: Path, workdir: Path, reads: int, seconds: float) -> dict:
    from motionmillion.data.layout import MOTION_DIR, iter_stored_names
    from motionmillion.data.packed import PackedMotions, pack_dataset

    result: dict = {"dataset": str(dataset)}
    if not (dataset / "packed/meta.json").is_file():
        started = time.perf_counter()
        pack_dataset(dataset, progress=False)
        result["pack_seconds"] = round(time.perf_counter() - started, 1)
    packed = PackedMotions(dataset)
    eligible = [name for name, length in zip(packed.names, packed.lengths.tolist()) if length >= WINDOW]
    result.update({"clips": len(packed), "clips_with_96_frames": len(eligible), "frames": int(packed.lengths.sum()),
                   "packed_bytes": os.path.getsize(packed.folder / "frames.npy")})  # fmt: skip
    names = set(iter_stored_names(dataset))
    assert names == set(packed.names), "packed store is stale: re-run `motionmillion data pack`"
    list_file = workdir / "real_perfile_list.txt"
    paths = [str(dataset / MOTION_DIR / f"{name}.npy") for name in eligible]
    list_file.write_text("\n".join(paths))
    frames_file = str(packed.folder / "frames.npy")
    result["packed"] = measure("packed", dict(store=str(dataset), reads=reads, min_frames=WINDOW, seed=0, seconds=seconds), [frames_file])
    result["per_file"] = measure("perfile", dict(list_file=str(list_file), reads=reads, seed=0, seconds=seconds), paths)
    return result


def bench_synthetic(workdir: Path, clips: int, sample: int, reads: int, seconds: float, keep: bool) -> dict:
    from motionmillion.data.packed import write_packed
    from motionmillion.utils.io import atomic_save_npy

    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 41, size=clips).astype(np.int64)
    need = int(lengths.sum()) * 272 * 4
    free = shutil.disk_usage(workdir).free
    if free < need + 15e9:
        raise SystemExit(f"{workdir}: {free / 1e9:.1f} GB free, the synthetic store needs {need / 1e9:.1f} GB + 15 GB margin; "
                         f"use --synthetic-clips N")  # fmt: skip
    store = workdir / "synthetic_packed"
    names = [f"syn/{k // 1000:04d}/{k:07d}" for k in range(clips)]
    base = rng.standard_normal((1 << 16, 272)).astype(np.float32)

    def clip_stream():
        for k, length in enumerate(lengths):
            start = (k * 7919) % (len(base) - 64)
            yield base[start : start + length] + np.float32(k % 1000) * 1e-3  # distinct, non-zero pages

    started = time.perf_counter()
    write_packed(store, names, lengths, clip_stream(), meta={"synthetic": True})
    write_seconds = time.perf_counter() - started

    perfile_root = workdir / "synthetic_perfile"
    picks = np.sort(rng.choice(clips, size=min(sample, clips), replace=False))
    paths = []
    started = time.perf_counter()
    for k in picks:
        path = perfile_root / f"{names[k]}.npy"
        if not path.is_file():
            start = (int(k) * 7919) % (len(base) - 64)
            atomic_save_npy(path, base[start : start + lengths[k]] + np.float32(k % 1000) * 1e-3)
        paths.append(str(path))
    perfile_seconds = time.perf_counter() - started
    list_file = workdir / "synthetic_perfile_list.txt"
    list_file.write_text("\n".join(paths))
    indices_file = workdir / "synthetic_sample_indices.txt"
    indices_file.write_text("\n".join(str(int(k)) for k in picks))

    result = {
        "clips": clips, "frames": int(lengths.sum()), "clip_frames": "uniform 20-40",
        "window_frames": "min(96, T) = whole clip (clips are shorter than 96 frames)",
        "packed_bytes": os.path.getsize(store / "frames.npy"), "packed_write_seconds": round(write_seconds, 1),
        "per_file_sample_clips": len(paths), "per_file_sample_write_seconds": round(perfile_seconds, 1),
    }  # fmt: skip
    frames_file = [str(store / "frames.npy")]
    packed_kwargs = dict(store=str(store), reads=reads, min_frames=1, seed=0, seconds=seconds)
    result["packed"] = measure("packed", packed_kwargs, frames_file)
    # the same clips as the per-file sample, from the packed store: equal data, different storage
    result["packed_sample_clips"] = measure("packed", {**packed_kwargs, "indices_file": str(indices_file)}, frames_file)
    result["per_file_sample"] = measure("perfile", dict(list_file=str(list_file), reads=reads, seed=0, seconds=seconds), paths)
    if not keep:
        shutil.rmtree(store)
        shutil.rmtree(perfile_root)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, kwargs = sys.argv[2], json.loads(sys.argv[3])
        out = worker_packed(**kwargs) if kind == "packed" else worker_perfile(**kwargs)
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="real dataset (MotionMillion layout)")
    parser.add_argument("--workdir", type=Path, default=Path("/work/scratch/bench_pack"))
    parser.add_argument("--synthetic-clips", type=int, default=1_000_000)
    parser.add_argument("--perfile-sample", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=20_000, help="random reads per measurement (at most)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic data")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    result: dict = {"benchmark": "random 96-frame window reads: packed store vs per-file np.load", "window": WINDOW,
                    "cpu_count": os.cpu_count(), "disk_free_gb_before": round(shutil.disk_usage(args.workdir).free / 1e9, 1)}  # fmt: skip
    if args.dataset:
        result["real"] = bench_real(args.dataset, args.workdir, args.reads, args.seconds)
    if not args.skip_synthetic:
        result["synthetic"] = bench_synthetic(args.workdir, args.synthetic_clips, args.perfile_sample, args.reads, args.seconds, args.keep)
    result["peak_rss_mb_driver"] = round(peak_rss_mb(), 1)
    print(json.dumps(result, indent=2))
    if args.output:
        from motionmillion.utils.io import atomic_write_json

        atomic_write_json(args.output, result)


if __name__ == "__main__":
    main()
