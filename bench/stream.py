"""Benchmark: training windows per second from a packed store larger than RAM (data/stream.py).

    nice -n 10 .venv/bin/python bench/stream.py --store /work/scratch/stream_bench/synthetic_packed [--build]

Prints one JSON object. ``--build`` first writes the synthetic store of ``bench/pack.py`` (``--clips``,
default 1,000,000 clips of 20-40 frames: 32.6 GB of float32, more than this machine's RAM); ``--delete``
removes it afterwards. The store is dropped from the page cache first (posix_fadvise DONTNEED), then
``BlockShuffledWindows`` batches are pulled through a torch DataLoader with ``--workers`` worker
processes for ``--seconds``: windows/s and MB/s sustained over that time (after the first batch),
time to the first batch, and for comparison random single-window reads from the memory map (what a
map-style Dataset does) for ``--baseline-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pack import evict, peak_rss_mb  # noqa: E402  (bench/pack.py: the same cache eviction and RSS)


def build_synthetic(store: Path, clips: int, lengths_range: tuple[int, int] = (20, 40)) -> float:
    """bench/pack.py's synthetic store (default lengths uniform 20-40 frames), distinct non-zero pages."""
    from motionmillion.data.packed import write_packed

    rng = np.random.default_rng(0)
    lengths = rng.integers(lengths_range[0], lengths_range[1] + 1, size=clips).astype(np.int64)
    names = [f"syn/{k // 1000:04d}/{k:07d}" for k in range(clips)]
    base = rng.standard_normal((1 << 16, 272)).astype(np.float32)

    def clip_stream():
        for k, length in enumerate(lengths):
            start = (k * 7919) % (len(base) - lengths_range[1])
            yield base[start : start + length] + np.float32(k % 1000) * 1e-3

    started = time.perf_counter()
    store.mkdir(parents=True, exist_ok=True)
    write_packed(store, names, lengths, clip_stream(), meta={"synthetic": True})
    return time.perf_counter() - started


def stream_rate(store: Path, workers: int, seconds: float, batch_size: int, window: int, min_frames: int) -> dict:
    import torch

    from motionmillion.data.stream import BlockShuffledWindows, StreamConfig, window_loader

    torch.set_num_threads(1)
    dataset = BlockShuffledWindows(store, StreamConfig(window=window, batch_size=batch_size, min_frames=min_frames))
    loader = window_loader(dataset, workers)
    started = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    first_batch_s = time.perf_counter() - started
    windows, frames, checksum = 0, 0, 0.0
    clips_seen = set()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch = next(iterator)
        windows += len(batch.lengths)
        frames += int(batch.lengths.sum())
        checksum += float(batch.frames[:, 0, 0].sum())
        clips_seen.update(batch.clips[:4].tolist())
    elapsed = time.perf_counter() - t0
    del iterator, loader
    return {"workers": workers, "batch_size": batch_size, "window": window, "min_frames": min_frames,
            "clips_used": len(dataset), "seconds": round(elapsed, 1),
            "windows": windows, "windows_per_s": round(windows / elapsed, 1),
            "mb_per_s_of_window_frames": round(frames * 272 * 4 / elapsed / 1e6, 1),
            "first_batch_s": round(first_batch_s, 2), "first_batch_shape": list(first.frames.shape),
            "blocks": dataset.num_blocks, "distinct_clips_sampled": len(clips_seen),
            "peak_rss_mb_main": round(peak_rss_mb(), 1), "checksum": checksum}  # fmt: skip


def random_rate(store: Path, seconds: float, window: int, min_frames: int) -> dict:
    """Random windows straight from the memory map, one clip at a time (the map-style baseline)."""
    from motionmillion.data.packed import PackedMotions

    packed = PackedMotions(store)
    rng = np.random.default_rng(1)
    eligible = np.flatnonzero(packed.lengths >= min_frames)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        i = int(eligible[rng.integers(len(eligible))])
        length = int(packed.lengths[i])
        size = min(window, length)
        offset = int(rng.integers(0, length - size + 1))
        np.array(packed.window(i, offset, size))
        done += 1
    elapsed = time.perf_counter() - t0
    return {"reads": done, "seconds": round(elapsed, 1), "windows_per_s": round(done / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("/work/scratch/stream_bench/synthetic_packed"))
    parser.add_argument("--build", action="store_true", help="write the synthetic store first (if missing)")
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--clip-frames", default="20-40", help="synthetic clip lengths, uniform in MIN-MAX")
    parser.add_argument("--delete", action="store_true", help="remove the store afterwards")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--window", type=int, default=96)
    parser.add_argument("--min-frames", type=int, default=1, help="skip shorter clips (96 = full windows only)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    result: dict = {"benchmark": "block-shuffled training windows from a packed store (data/stream.py)",
                    "cpu_count": os.cpu_count()}  # fmt: skip
    if args.build and not (args.store / "meta.json").is_file():
        low, high = (int(x) for x in args.clip_frames.split("-"))
        result["build_seconds"] = round(build_synthetic(args.store, args.clips, (low, high)), 1)
        result["clip_frames"] = args.clip_frames
    frames_file = args.store / "frames.npy"
    meta = json.loads((args.store / "meta.json").read_text())
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    result.update({"store": str(args.store), "clips": meta["num_clips"], "frames": meta["num_frames"],
                   "store_gb": round(frames_file.stat().st_size / 1e9, 2), "ram_gb": round(pages / 1e9, 2)})  # fmt: skip
    evict([str(frames_file)])
    result["stream"] = stream_rate(args.store, args.workers, args.seconds, args.batch_size, args.window, args.min_frames)
    if args.baseline_seconds > 0:
        evict([str(frames_file)])
        result["random_memmap_reads"] = random_rate(args.store, args.baseline_seconds, args.window, args.min_frames)
    evict([str(frames_file)])  # leave the page cache to the others on this machine
    if args.delete:
        shutil.rmtree(args.store)
        result["deleted"] = True
    print(json.dumps(result, indent=2))
    if args.output:
        from motionmillion.utils.io import atomic_write_json

        atomic_write_json(args.output, result)


if __name__ == "__main__":
    main()
