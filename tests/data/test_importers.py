import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from motionmillion.data.importers import finalize_dataset, import_bvh
from motionmillion.data.recipes import BANDAI_WINDOWS, CMU_WINDOWS, WindowPolicy
from motionmillion.data.records import clip_labels, load_records
from motionmillion.data.splits import assign_splits
from motionmillion.data.layout import MotionDataset, write_clip
from motionmillion.motion import decode_joints, mirror_272

FIXTURE_BVH = Path(__file__).parent.parent / "fixtures" / "bvh"


@pytest.fixture(scope="module")
def bandai_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bandai")
    report = import_bvh(FIXTURE_BVH / "bandai", out, "bandai", workers=1, progress=False)
    return out, report


def test_bandai_import_writes_clips_mirrors_captions(bandai_dataset):
    out, report = bandai_dataset
    assert len(report.imported) == 3 and not report.failed and report.clips_written == 6
    dataset = MotionDataset(out)
    name = "bandai/dataset-1_bye_normal_001"
    features = dataset.motion(name)
    assert features.shape == (100, 272)
    np.testing.assert_allclose(dataset.motion("bandai/Mdataset-1_bye_normal_001"), mirror_272(features), atol=1e-6)
    captions = dataset.texts(name)
    assert 3 <= len(captions) <= 5 and all("right" in c and "left" not in c for c in captions)
    mirrored = dataset.texts("bandai/Mdataset-1_bye_normal_001")
    assert all("left" in c and "right" not in c for c in mirrored)
    joints = decode_joints(features)
    assert 1.2 < joints[..., 1].max() < 2.0 and abs(joints[..., 1].min()) < 1e-6  # a person standing on y = 0
    walk = decode_joints(dataset.motion("bandai/dataset-1_walk_normal_001"))
    assert walk[-1, 0, 2] - walk[0, 0, 2] > 1.0  # walks forward, along +Z
    normalizer = dataset.normalizer()
    assert normalizer.mean.shape == (272,) and (normalizer.std > 0).all()
    assert len(dataset.names("all", "tokenizer_96")) == 6


def test_clip_labels_come_from_the_import_records(bandai_dataset):
    out, _ = bandai_dataset
    labels = clip_labels(out)
    assert len(labels) == 6
    wave = labels["bandai/dataset-2_wave-left-hand_normal_001"]
    mirrored = labels["bandai/Mdataset-2_wave-left-hand_normal_001"]
    assert (wave.content, wave.style, wave.mirrored) == ("wave-left-hand", "normal", False)
    assert (mirrored.content, mirrored.mirrored) == ("wave-right-hand", True)  # the mirror waves the other hand
    assert wave.recipe != mirrored.recipe and wave.group == mirrored.group


def test_second_import_resumes_without_redoing(bandai_dataset):
    out, _ = bandai_dataset
    motion = out / "motion_data/vector_272/bandai/dataset-1_walk_normal_001.npy"
    before = motion.stat().st_mtime_ns
    report = import_bvh(FIXTURE_BVH / "bandai", out, "bandai", workers=1, progress=False)
    assert report.imported == [] and len(report.resumed) == 3 and report.clips_written == 0
    assert motion.stat().st_mtime_ns == before


def test_bad_files_are_skipped_and_listed(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURE_BVH / "bandai/Bandai-Namco-Research-Motiondataset-1", src / "d1")
    good = (src / "d1/data/dataset-1_walk_normal_001.bvh").read_text()
    (src / "d1/data/dataset-1_bow_normal_001.bvh").write_text(good.split("MOTION")[0])  # no motion section
    (src / "d1/data/dataset-1_run_normal_001.bvh").write_text(good.replace("Frames:\t100", "Frames:\t0").split("Frame Time")[0] + "Frame Time: 0.0333333\n")
    nan_text = good.splitlines()
    nan_text[-5] = " ".join(["nan"] * len(nan_text[-5].split()))
    (src / "d1/data/dataset-1_dash_normal_001.bvh").write_text("\n".join(nan_text) + "\n")
    (src / "d1/data/dataset-1_fly_normal_001.bvh").write_text(good)  # unknown content label
    report = import_bvh(src, tmp_path / "out", "bandai", workers=2, progress=False)
    failed = dict(report.failed)
    assert len(report.imported) == 2, report
    assert set(Path(p).stem for p in failed) == {"dataset-1_bow_normal_001", "dataset-1_run_normal_001", "dataset-1_dash_normal_001", "dataset-1_fly_normal_001"}
    for path, error in failed.items():
        assert Path(path).name in error, error  # the message names the file
    assert MotionDataset(tmp_path / "out").has("bandai/dataset-1_walk_normal_001")
    last_run = json.loads((tmp_path / "out/meta/import/bandai/last_run.json").read_text())
    assert len(last_run["failed"]) == 4


def test_cmu_import_uses_category_fps_and_cuts_windows(tmp_path):
    report = import_bvh(FIXTURE_BVH / "cmu-dance", tmp_path, "cmu-dance", workers=1, progress=False)
    assert not report.failed
    records = {r["label"]["category"]: r for r in load_records(tmp_path)}
    # salsa fixture: 120 frames whose header claims 120 fps but are 60 fps -> 60 frames at 30 fps
    assert records["salsa"]["source_fps"] == 60.0 and records["salsa"]["frames_30fps"] == 60
    assert records["martial"]["source_fps"] == 120.0 and records["martial"]["frames_30fps"] == 60
    dataset = MotionDataset(tmp_path)
    assert dataset.length("cmu-dance/salsa-01_00") == 60
    assert dataset.has("cmu-dance/Msalsa-01_00") and dataset.has("cmu-dance/martial-03_00")
    assert any("salsa" in c for c in dataset.texts("cmu-dance/salsa-01_00"))
    assert records["salsa"]["group"] == "cmu-dance/salsa-pair-01"


@pytest.mark.parametrize("policy", [BANDAI_WINDOWS, CMU_WINDOWS, WindowPolicy(50, 20)])
@pytest.mark.parametrize("frames", [10, 299, 300, 301, 466, 1121, 1901])
def test_windows_cover_the_take(policy, frames):
    windows = policy.windows(frames)
    assert windows[0][0] == 0 and windows[-1][1] == frames
    assert all(0 < end - start <= policy.length for start, end in windows)
    assert all(b[0] - a[0] <= policy.stride for a, b in zip(windows, windows[1:]))
    if frames > policy.length:
        assert all(end - start == policy.length for start, end in windows)


def _synthetic_dataset(root: Path, random_clip) -> dict[str, str]:
    """Clips with import records: 3 strata, takes cut into windows, mirrors; returns name -> group."""
    group_of = {}
    rng = np.random.default_rng(1)
    for stratum, takes in (("s/one", 1), ("s/two", 2), ("s/many", 23)):
        for t in range(takes):
            base = f"{stratum.replace('/', '-')}-take{t}"
            clips = []
            for k in range(int(rng.integers(1, 4))):
                name = f"syn/{base}_{k}"
                frames = int(rng.choice([40, 80, 200, 400]))
                write_clip(root, name, random_clip(frames, t * 10 + k), ["a caption"])
                write_clip(root, f"syn/M{base}_{k}", random_clip(frames, t * 10 + k + 5), ["a caption"])
                clips.append({"name": name, "mirror": f"syn/M{base}_{k}", "frames": frames, "start": 0})
                group_of[name] = group_of[f"syn/M{base}_{k}"] = base
            record = {"group": base, "stratum": stratum, "clips": clips, "label": {}}
            path = root / "meta/import/syn" / f"{base}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
    return group_of


def test_splits_keep_takes_together_and_filter_lengths(tmp_path, random_clip):
    group_of = _synthetic_dataset(tmp_path, random_clip)
    counts = finalize_dataset(tmp_path, progress=False)
    dataset = MotionDataset(tmp_path)
    split_of_group: dict[str, str] = {}
    for kind, (low, high) in (("t2m_60_300", (60, 300)), ("tokenizer_96", (96, 10**9))):
        listed = []
        for split in ("train", "val", "test"):
            names = dataset.names(split, kind)
            listed += names
            for name in names:
                assert low <= dataset.length(name) <= high
                assert split_of_group.setdefault(group_of[name], split) == split, f"take {group_of[name]} in two splits"
        assert sorted(listed) == dataset.names("all", kind) and len(listed) == len(set(listed))
        assert counts[kind]["all"] == len(listed)
        expected = sorted(n for n in group_of if low <= dataset.length(n) <= high)
        assert sorted(listed) == expected
    # the single-take stratum trains; the two-take stratum puts one take in test; big strata get all three
    assert split_of_group["s-one-take0"] == "train"
    assert sorted(split_of_group.get(f"s-two-take{t}", "") for t in range(2)) in (["test", "train"], ["", "test"], ["", "train"])
    many = [split_of_group.get(f"s-many-take{t}") for t in range(23)]
    assert {"train", "val", "test"} <= set(many)
    # deterministic
    before = (tmp_path / "split/version1/t2m_60_300/test.txt").read_text()
    finalize_dataset(tmp_path, progress=False)
    assert (tmp_path / "split/version1/t2m_60_300/test.txt").read_text() == before


def test_assign_splits_fractions():
    assignment = assign_splits({"a": [f"g{i}" for i in range(100)], "b": ["x"], "c": ["y", "z"]})
    values = [assignment[f"g{i}"] for i in range(100)]
    assert values.count("test") == 10 and values.count("val") == 10 and values.count("train") == 80
    assert assignment["x"] == "train" and sorted([assignment["y"], assignment["z"]]) == ["test", "train"]
