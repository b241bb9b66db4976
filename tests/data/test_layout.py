import numpy as np
import pytest

from motionmillion.data.layout import (
    DatasetLayoutError,
    MotionDataset,
    check_name,
    mirror_name,
    parse_caption_line,
    write_clip,
    write_mean_std,
    write_split,
)
from motionmillion.motion import InvalidMotionError


def test_round_trip_with_subfolder_names(tmp_path, random_clip):
    clips = {"bandai/dataset-1_walk_normal_001": random_clip(70, 1), "a/b/c/deep": random_clip(5, 2), "flat": random_clip(3, 3)}
    for name, features in clips.items():
        write_clip(tmp_path, name, features, [f"caption of {name}", "second  caption\nwith newline"])
    dataset = MotionDataset(tmp_path)
    assert dataset.names() == sorted(clips)  # no split folder yet: every stored clip
    for name, features in clips.items():
        np.testing.assert_array_equal(dataset.motion(name), features)
        assert dataset.motion(name).dtype == np.float32
        assert dataset.length(name) == len(features)
        assert dataset.texts(name) == [f"caption of {name}", "second caption with newline"]
    assert (tmp_path / "motion_data/vector_272/bandai/dataset-1_walk_normal_001.npy").is_file()
    assert (tmp_path / "texts/a/b/c/deep.txt").read_text() == "caption of a/b/c/deep\nsecond caption with newline\n"


def test_splits_and_mean_std(tmp_path, random_clip):
    write_clip(tmp_path, "x/one", random_clip(10), ["a"])
    write_clip(tmp_path, "x/two", random_clip(10), ["b"])
    write_split(tmp_path, "t2m_60_300", "train", ["x/one"])
    write_split(tmp_path, "t2m_60_300", "all", ["x/one", "x/two"])
    mean, std = np.arange(272.0), np.full(272, 2.0)
    write_mean_std(tmp_path, mean, std)
    dataset = MotionDataset(tmp_path)
    assert dataset.names("train") == ["x/one"]
    assert dataset.names("all") == ["x/one", "x/two"]
    assert dataset.split_kinds() == ["t2m_60_300"]
    with pytest.raises(DatasetLayoutError, match="tokenizer_96"):
        dataset.names("train", "tokenizer_96")
    normalizer = dataset.normalizer()
    np.testing.assert_array_equal(normalizer.mean, mean)
    np.testing.assert_array_equal(normalizer.std, std)
    assert not list(tmp_path.rglob("*.tmp*")), "atomic writes leave no temp files"


def test_humanml3d_and_motionmillion_text_lines(tmp_path, random_clip):
    write_clip(tmp_path, "000001", random_clip(4), [])
    (tmp_path / "texts/000001.txt").write_text(
        "a man kicks something with his left leg.#a/DET man/NOUN kick/VERB#0.0#0.0\n"
        "\n"
        "a person walks#a/DET person/NOUN walk/VERB#1.5#4.0\n"
        "the number #1 dancer spins around\n"  # a '#' that is not HumanML3D format stays in the caption
    )
    assert MotionDataset(tmp_path).texts("000001") == [
        "a man kicks something with his left leg.",
        "a person walks",
        "the number #1 dancer spins around",
    ]
    assert parse_caption_line("   ") is None
    assert parse_caption_line("a#b#c#d") == "a#b#c#d"


def test_names_and_mirror_names():
    assert mirror_name("bandai/dataset-1_walk_normal_001") == "bandai/Mdataset-1_walk_normal_001"
    assert mirror_name("000001") == "M000001"
    for bad in ("", "/abs", "a/../b", "a//b", "a\\b"):
        with pytest.raises(DatasetLayoutError):
            check_name(bad)


def test_bad_motions_are_refused_with_the_file_named(tmp_path, random_clip):
    with pytest.raises(InvalidMotionError, match="272"):
        write_clip(tmp_path, "bad", np.zeros((10, 263)), ["x"])
    bad = random_clip(10)
    bad[3, 7] = np.nan
    with pytest.raises(InvalidMotionError, match="NaN"):
        write_clip(tmp_path, "bad", bad, ["x"])
    write_clip(tmp_path, "good", random_clip(10), ["x"])
    path = tmp_path / "motion_data/vector_272/broken.npy"
    np.save(path, np.full((5, 272), np.inf, dtype=np.float32))
    with pytest.raises(InvalidMotionError, match="broken.npy"):
        MotionDataset(tmp_path).motion("broken")
    with pytest.raises(FileNotFoundError, match="missing"):
        MotionDataset(tmp_path).motion("missing")
    with pytest.raises(DatasetLayoutError, match="not a MotionMillion dataset"):
        MotionDataset(tmp_path / "nowhere")
