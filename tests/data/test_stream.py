"""Block-shuffled windows from a packed store (data/stream.py): right frames, one window per clip and
epoch, sharded without overlap, deterministic and resumable, also through DataLoader workers."""

import numpy as np
import pytest
import torch

from motionmillion.data.packed import write_packed
from motionmillion.data.stream import BlockShuffledWindows, StreamConfig, window_loader


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """300 clips of 5-60 frames; feature 0 = clip index, feature 1 = frame index inside the clip."""
    folder = tmp_path_factory.mktemp("stream") / "packed"
    lengths = np.random.default_rng(0).integers(5, 61, size=300)

    def clips():
        for k, length in enumerate(lengths):
            clip = np.zeros((length, 272), dtype=np.float32)
            clip[:, 0], clip[:, 1], clip[:, 2] = k, np.arange(length), 1.0
            yield clip

    write_packed(folder, [f"c{k:03d}" for k in range(len(lengths))], lengths, clips())
    return folder, lengths


CONFIG = StreamConfig(window=16, batch_size=8, min_frames=10, block_frames=200, shuffle_blocks=3, seed=5)


def all_batches(dataset, workers=0):
    loader = window_loader(dataset, workers) if workers else dataset
    return list(loader)


def test_windows_are_real_frames_one_per_clip_per_epoch(store):
    folder, lengths = store
    batches = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=1))
    assert all(b.frames.shape == (8, 16, 272) for b in batches)
    seen = torch.cat([b.clips for b in batches]).tolist()
    eligible = set(np.flatnonzero(lengths >= 10).tolist())
    assert len(seen) == len(set(seen)) and set(seen) <= eligible
    assert len(seen) >= len(eligible) - 8 * 15  # only each group's partial batch is dropped
    for batch in batches:
        for frames, real, clip in zip(batch.frames, batch.lengths.tolist(), batch.clips.tolist()):
            assert real == min(16, lengths[clip])
            assert (frames[:real, 0] == clip).all() and (frames[:real, 2] == 1).all()
            start = int(frames[0, 1])
            assert torch.equal(frames[:real, 1], torch.arange(start, start + real, dtype=torch.float32))
            assert 0 <= start <= lengths[clip] - real and (frames[real:] == 0).all()  # short clips: zero padding


def test_order_is_shuffled_deterministic_and_resumable(store):
    folder, _ = store
    straight = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=2))
    again = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=2))
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(straight, again))
    first_clips = torch.cat([b.clips for b in straight[:4]])
    assert not torch.equal(first_clips, first_clips.sort().values)  # not in store order
    resumed = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=2, start_batch=11))
    assert len(resumed) == len(straight) - 11
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(straight[11:], resumed))


def test_ranks_read_disjoint_clips(store):
    folder, _ = store
    ranks = [torch.cat([b.clips for b in all_batches(BlockShuffledWindows(folder, CONFIG, rank=r, world=2, epochs=1))])
             for r in (0, 1)]  # fmt: skip
    assert not set(ranks[0].tolist()) & set(ranks[1].tolist())
    assert abs(len(ranks[0]) - len(ranks[1])) <= 8 * 3 * 2


def test_two_loader_workers_share_the_blocks_and_resume(store):
    folder, _ = store
    workers = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=1), workers=2)
    clips = torch.cat([b.clips for b in workers]).tolist()
    assert len(clips) == len(set(clips)) > 150
    resumed = all_batches(BlockShuffledWindows(folder, CONFIG, epochs=1, start_batch=5), workers=2)
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(workers[5:], resumed))


def test_bad_settings_are_named(store):
    folder, _ = store
    with pytest.raises(ValueError, match="batch_size"):
        StreamConfig(batch_size=0)
    with pytest.raises(ValueError, match="no clip has >= 1000 frames"):
        BlockShuffledWindows(folder, StreamConfig(min_frames=1000))
    with pytest.raises(ValueError, match="rank 2"):
        BlockShuffledWindows(folder, CONFIG, rank=2, world=2)
    with pytest.raises(ValueError, match="fewer windows than one batch of 200"):  # before any worker starts
        window_loader(BlockShuffledWindows(folder, StreamConfig(batch_size=200, min_frames=10, block_frames=200)), 2)
