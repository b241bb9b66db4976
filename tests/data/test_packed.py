import json

import numpy as np
import pytest

from motionmillion.data.layout import MotionDataset, write_clip
from motionmillion.data.packed import PackedMotions, pack_dataset, write_packed
from motionmillion.data.stats import dataset_stats


@pytest.fixture
def small_dataset(tmp_path, random_clip):
    lengths = {"a/x_00": 96, "a/Mx_00": 96, "b/c/deep": 1, "b/y": 300, "z": 61}
    for k, (name, frames) in enumerate(lengths.items()):
        write_clip(tmp_path, name, random_clip(frames, k), [f"caption {k}", "another caption"])
    return tmp_path, lengths


def test_packed_store_equals_per_file_data(small_dataset):
    root, lengths = small_dataset
    folder = pack_dataset(root, progress=False)
    assert folder == root / "packed"
    packed = PackedMotions(root)
    dataset = MotionDataset(root)
    assert packed.names == sorted(lengths) and len(packed) == len(lengths)
    for i, name in enumerate(packed.names):
        assert packed.index_of(name) == i
        assert packed.lengths[i] == lengths[name]
        np.testing.assert_array_equal(packed[i], dataset.motion(name))
        assert packed[i].dtype == np.float32
    np.testing.assert_array_equal(packed.window(packed.index_of("b/y"), 100, 96), dataset.motion("b/y")[100:196])
    np.testing.assert_array_equal(packed.subset(["z", "a/x_00"]), [packed.index_of("z"), packed.index_of("a/x_00")])
    assert PackedMotions(folder).names == packed.names  # the packed folder itself opens too
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["num_clips"] == 5 and meta["num_frames"] == sum(lengths.values())
    with pytest.raises(KeyError, match="nope"):
        packed.index_of("nope")
    with pytest.raises(IndexError):
        packed.window(0, 50, 96)
    with pytest.raises(IndexError):
        packed[5]


def test_incomplete_or_missing_pack_is_refused(small_dataset, random_clip):
    root, _ = small_dataset
    with pytest.raises(FileNotFoundError, match="pack"):
        PackedMotions(root)
    with pytest.raises(ValueError, match="shape"):
        write_packed(root / "packed", ["a", "b"], [3, 4], iter([random_clip(3), random_clip(5)]))
    with pytest.raises(FileNotFoundError):
        PackedMotions(root / "packed")  # the failed write left no meta.json behind
    assert not (root / "packed/frames.npy").exists()


def test_stats_counts_clips_hours_and_captions(small_dataset):
    root, lengths = small_dataset
    stats = dataset_stats(root, examples=2)
    assert stats["clips"] == 5 and stats["mirrored_clips"] == 1
    assert stats["frames"] == sum(lengths.values())
    assert stats["hours"] == round(sum(lengths.values()) / 30 / 3600, 3)
    assert sum(entry["clips"] for entry in stats["length_histogram"]) == 5
    assert stats["captions"]["total"] == 10 and stats["captions"]["clips_without_captions"] == 0
    assert len(stats["examples"]) == 2 and all(e["captions"] for e in stats["examples"])
    json.dumps(stats)  # --json output is plain JSON
