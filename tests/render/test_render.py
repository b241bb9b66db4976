"""Rendering (MP4/GIF at the motion's fps) and the render/export commands, on a real fixture clip."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from motionmillion.motion import decode_joints
from motionmillion.motion.bvh import read_bvh
from motionmillion.motion.rig_mapping import bvh_to_features, load_bvh_joints
from motionmillion.render import render_motion
from motionmillion.cli import app as root_app

WALK = Path(__file__).parent.parent / "fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh"


@pytest.fixture(scope="module")
def walk_joints() -> np.ndarray:
    return load_bvh_joints(WALK)[0][:24]


def _app():
    return root_app  # the real command line, with its one-line error contract


def test_mp4_has_every_frame_at_the_motion_fps(tmp_path, walk_joints):
    out = render_motion(walk_joints, tmp_path / "walk.mp4", fps=25.0, title="a person walks forward", size=160)
    frames = iio.imread(out)
    meta = iio.immeta(out)
    assert frames.shape == (len(walk_joints), 160, 160, 3)
    assert meta["fps"] == pytest.approx(25.0)
    assert meta["duration"] == pytest.approx(len(walk_joints) / 25.0, abs=0.05)
    # Something was drawn: the frames are not blank and they change as the figure moves.
    assert frames.std() > 5 and np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5
    assert not list(tmp_path.glob(".*tmp*"))


def test_gif_output(tmp_path, walk_joints):
    out = render_motion(walk_joints[:10], tmp_path / "walk.gif", fps=20.0, size=128)
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 10
    assert iio.immeta(out, index=0)["duration"] == pytest.approx(50, abs=1)  # ms per frame


@pytest.mark.parametrize(
    "joints, problem",
    [(np.zeros((5, 21, 3)), "shape"), (np.full((5, 22, 3), np.nan), "NaN"), (np.zeros((0, 22, 3)), "shape")],
)
def test_render_rejects_bad_joints(tmp_path, joints, problem):
    with pytest.raises(ValueError, match=problem) as info:
        render_motion(joints, tmp_path / "bad.mp4")
    assert "bad.mp4" in str(info.value)
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        render_motion(np.zeros((5, 22, 3)), tmp_path / "bad.avi")


def test_render_command_on_features_joints_and_bvh(tmp_path):
    features = bvh_to_features(WALK)[:15]
    np.save(tmp_path / "features.npy", features.astype(np.float32))
    np.save(tmp_path / "joints.npy", decode_joints(features))
    runner = CliRunner()
    for name in ("features.npy", "joints.npy"):
        result = runner.invoke(_app(), ["render", str(tmp_path / name), "-o", str(tmp_path / f"{name}.mp4"), "--size", "128"])
        assert result.exit_code == 0, result.output
        assert iio.imread(tmp_path / f"{name}.mp4").shape[0] == 15
    result = runner.invoke(_app(), ["render", str(WALK), "-o", str(tmp_path / "walk.gif"), "--size", "96"])
    assert result.exit_code == 0, result.output
    assert iio.imread(tmp_path / "walk.gif", index=None).shape[0] == read_bvh(WALK).num_frames


@pytest.mark.parametrize(
    "array, problem",
    [(np.zeros((10, 271)), "expected (T, 272)"), (np.full((10, 272), np.nan), "NaN"), (np.zeros((4, 22, 2)), "got shape")],
)
def test_commands_name_the_bad_file(tmp_path, array, problem):
    bad = tmp_path / "broken_motion.npy"
    np.save(bad, array)
    runner = CliRunner()
    for args in (["render", str(bad), "-o", str(tmp_path / "x.mp4")], ["export", str(bad), "--joints", str(tmp_path / "x.npy")]):
        result = runner.invoke(_app(), args)
        assert result.exit_code == 2  # a bad input file is a usage error
        assert "broken_motion.npy" in result.output and problem in result.output, result.output
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.npy").exists()
