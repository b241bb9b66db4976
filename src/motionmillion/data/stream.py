"""Training windows from a packed store larger than memory: block-shuffled contiguous reads.

Random windows read straight from a memory-mapped store cost one random disk read each once the store is
bigger than the page cache (``bench/pack.py``: ~70 windows/s on 1M clips). :class:`BlockShuffledWindows`
reads the store in large contiguous blocks instead (consecutive clips, ``block_frames`` frames, one
``pread`` each, the next block announced to the kernel with ``posix_fadvise(WILLNEED)`` so the disk
works while windows are cut), visits the blocks in a random order per epoch and mixes the windows of
``shuffle_blocks`` blocks in a shuffle buffer before batching. That is what WebDataset, MosaicML
streaming and Hugging Face ``IterableDataset`` shuffling do (shards read sequentially + shuffle buffer),
without converting the store into another format or adding a dependency: the same ``packed/`` folder
serves random access (evaluation, encoding) and streaming (training).

Sharding: blocks are dealt out to ``world`` ranks x DataLoader workers, so every process reads only its
own part of the store. Order: a pure function of (seed, epoch, shard); ``start_batch`` resumes a stream
where an interrupted run stopped (whole groups of blocks are skipped without reading them). Each
shuffle group yields whole batches only (its last partial batch is dropped: < batch_size windows per
group, and different clips each epoch).

Every clip gives one window per epoch: ``window`` frames at a random offset; a clip shorter than
``window`` (at least ``min_frames``) gives all its frames, zero-padded, and ``lengths`` says how many are real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from motionmillion.data.packed import PackedMotions


@dataclass
class StreamConfig:
    window: int = 96
    batch_size: int = 64
    min_frames: int = 1  # shorter clips are skipped; set to ``window`` for full windows only
    block_frames: int = 16384  # ~18 MB of 272-dim float32 per contiguous read
    shuffle_blocks: int = 16  # blocks whose windows are mixed before batching
    seed: int = 0
    # Drop each block from the page cache once read: a store larger than RAM would only push it out later,
    # at more cost to the kernel (and to everything else cached on the machine).
    drop_read_blocks: bool = True

    def __post_init__(self) -> None:
        for name in ("window", "batch_size", "min_frames", "block_frames", "shuffle_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"stream {name} must be >= 1, got {getattr(self, name)}")


class WindowBatch(NamedTuple):  # a NamedTuple: DataLoader pins and moves its tensors
    frames: torch.Tensor  # (B, window, 272) float32, de-normalised (or as ``transform`` left them)
    lengths: torch.Tensor  # (B,) real frames in each window (< window only for short clips)
    clips: torch.Tensor  # (B,) clip index in the store


class BlockShuffledWindows(torch.utils.data.IterableDataset):
    """Batches of random windows, reading a packed store in shuffled contiguous blocks (see module doc).

    ``clips``: store indices to use (e.g. a split, default all); ``rank``/``world``: this process among the
    data-parallel processes; ``transform``: applied to each (B, window, 272) array in the worker (e.g. a
    Normalizer's ``normalize``); ``epochs``: None = forever.
    """

    def __init__(self, store: str | Path, config: StreamConfig | None = None, clips: np.ndarray | None = None,
                 rank: int = 0, world: int = 1, transform=None, epochs: int | None = None,
                 start_batch: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.config = config or StreamConfig()
        packed = PackedMotions(store)
        self.path = packed.folder / "frames.npy"
        self.offset = packed.frames.offset  # bytes of the .npy header
        self.row_bytes = packed.frames.shape[1] * packed.frames.itemsize
        self.dim = packed.frames.shape[1]
        chosen = np.arange(len(packed)) if clips is None else np.unique(np.asarray(clips, dtype=np.int64))
        chosen = chosen[packed.lengths[chosen] >= self.config.min_frames]
        if len(chosen) == 0:
            raise ValueError(f"{packed.folder}: no clip has >= {self.config.min_frames} frames")
        self.starts = packed.starts[chosen]
        self.lengths = packed.lengths[chosen]
        self.clip_ids = chosen
        self.rank, self.world = rank, world
        self.block_edges = self._split_blocks(world)
        self.transform, self.epochs, self.start_batch = transform, epochs, start_batch
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")

    def _split_blocks(self, shards: int) -> np.ndarray:
        """Clip ranges of the blocks: consecutive clips whose first frame falls in the same aligned stretch of
        ``block_frames`` frames (shorter stretches for a small store, so that every reader gets blocks)."""
        span = int(self.starts[-1] + self.lengths[-1] - self.starts[0])
        size = max(1, min(self.config.block_frames, span // (2 * shards)))
        key = (self.starts - self.starts[0]) // size
        edges = np.flatnonzero(np.r_[True, key[1:] != key[:-1], True])
        if len(edges) - 1 < shards:
            raise ValueError(f"{self.path.parent}: {len(self.clip_ids)} clips cannot feed {shards} readers "
                             "(processes x loader workers); use fewer")  # fmt: skip
        return edges

    @property
    def num_blocks(self) -> int:
        return len(self.block_edges) - 1

    def __len__(self) -> int:
        """Windows per epoch (all shards together, before dropping partial batches)."""
        return len(self.clip_ids)

    def _groups(self, shard: int, shards: int, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.num_blocks)
        mine = order[shard::shards]
        size = self.config.shuffle_blocks
        return [mine[i : i + size] for i in range(0, len(mine), size)]

    def _span(self, block: int) -> tuple[int, int, int]:
        """A block's first frame, its byte offset in the file and its size in bytes."""
        first, last = self.block_edges[block], self.block_edges[block + 1] - 1
        begin, end = int(self.starts[first]), int(self.starts[last] + self.lengths[last])
        return begin, self.offset + begin * self.row_bytes, (end - begin) * self.row_bytes

    def _read(self, fd: int, block: int) -> tuple[np.ndarray, int]:
        begin, where, size = self._span(block)
        data = os.pread(fd, size, where)
        if self.config.drop_read_blocks:
            os.posix_fadvise(fd, where, size, os.POSIX_FADV_DONTNEED)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dim), begin

    def _announce(self, fd: int, block: int) -> None:
        """Ask the kernel to start reading a block we will need next (asynchronous read-ahead)."""
        _, where, size = self._span(block)
        os.posix_fadvise(fd, where, size, os.POSIX_FADV_WILLNEED)

    def _group_windows(self, group: np.ndarray) -> int:
        return int(sum(self.block_edges[b + 1] - self.block_edges[b] for b in group))

    def __iter__(self) -> Iterator[WindowBatch]:
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info is not None else 1
        # DataLoader takes batches from its workers round-robin, starting with worker 0. Resuming at global
        # batch ``start_batch`` (which came from worker start_batch % workers), worker w plays the part of
        # worker (w + start_batch) % workers of the uninterrupted run.
        worker = ((info.id if info is not None else 0) + self.start_batch) % workers
        shard, shards = self.rank * workers + worker, self.world * workers
        skip = self._worker_skip(worker, workers)
        self.block_edges = self._split_blocks(shards)  # this process's copy: blocks for this many readers
        cfg = self.config
        fd = os.open(self.path, os.O_RDONLY)
        try:
            epoch = 0
            while self.epochs is None or epoch < self.epochs:
                groups = self._groups(shard, shards, epoch)
                self._check_share(groups, shard, shards)
                for g, group in enumerate(groups):
                    batches = self._group_windows(group) // cfg.batch_size
                    if skip >= batches:  # resume: skipped without reading
                        skip -= batches
                        continue
                    rng = np.random.default_rng([cfg.seed, epoch, shard, g])
                    yield from self._group_batches(fd, group, groups[g + 1] if g + 1 < len(groups) else None, rng, skip)
                    skip = 0
                epoch += 1
        finally:
            os.close(fd)

    def _check_share(self, groups: list[np.ndarray], shard: int, shards: int) -> None:
        if sum(self._group_windows(g) // self.config.batch_size for g in groups) == 0:  # it would never yield
            raise ValueError(f"{self.path.parent}: reader {shard} of {shards} gets fewer windows than one batch of "
                             f"{self.config.batch_size} per epoch; use a smaller batch or fewer readers")  # fmt: skip

    def check(self, workers: int) -> None:
        """Raise a one-line ValueError here, before worker processes start, if some reader would get no batch."""
        shards = self.world * max(1, workers)
        saved, self.block_edges = self.block_edges, self._split_blocks(shards)
        try:
            for shard in range(self.rank * max(1, workers), (self.rank + 1) * max(1, workers)):
                self._check_share(self._groups(shard, shards, 0), shard, shards)
        finally:
            self.block_edges = saved

    def _worker_skip(self, worker: int, workers: int) -> int:
        """Batches this worker skips to resume at global batch ``start_batch`` (DataLoader deals batches
        to its workers round-robin)."""
        return max(0, -(-(self.start_batch - worker) // workers))

    def _group_batches(self, fd: int, group: np.ndarray, following: np.ndarray | None, rng, skip: int):
        cfg = self.config
        if following is not None:
            for block in following:
                self._announce(fd, block)
        pieces, clip_rows = [], []
        for block in group:
            data, begin = self._read(fd, block)
            pieces.append((data, begin))
            clip_rows.append(np.arange(self.block_edges[block], self.block_edges[block + 1]))
        rows = np.concatenate(clip_rows)
        owner = np.repeat(np.arange(len(group)), [len(r) for r in clip_rows])
        lengths = self.lengths[rows]
        size = np.minimum(lengths, cfg.window)
        offsets = (rng.random(len(rows)) * (lengths - size + 1)).astype(np.int64)
        order = rng.permutation(len(rows))
        in_worker = torch.utils.data.get_worker_info() is not None
        for b in range(skip, len(rows) // cfg.batch_size):
            chosen = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = torch.empty((len(chosen), cfg.window, self.dim), dtype=torch.float32)
            if in_worker:  # filled in shared memory: handing it to the trainer's process copies nothing
                batch.share_memory_()
            frames = batch.numpy()
            for j, k in enumerate(chosen):
                data, begin = pieces[owner[k]]
                at = int(self.starts[rows[k]]) - begin + int(offsets[k])
                frames[j, : size[k]] = data[at : at + size[k]]
                frames[j, size[k] :] = 0
            if self.transform is not None:
                frames[:] = self.transform(frames)
            yield WindowBatch(batch, torch.from_numpy(size[chosen]), torch.from_numpy(self.clip_ids[rows[chosen]]))


def window_loader(dataset: BlockShuffledWindows, workers: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over the stream: batches are made in the workers, so none is re-collated here."""
    dataset.check(workers)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=torch.cuda.is_available(),
                                       persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)  # fmt: skip
