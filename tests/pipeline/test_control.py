"""Keyframes, paths, in-betweening and edits (issue 25): the API, the checks and the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from motionmillion import Keyframe, Motion
from motionmillion.cli import app
from motionmillion.motion.skeleton import LEG_JOINTS
from motionmillion.pipeline import MotionPipeline, PromptError, make_plan
from motionmillion.pipeline.requests import parse_path, read_path

runner = CliRunner()
LOWER = [0, *LEG_JOINTS]


@pytest.fixture(scope="module")
def pipe():
    return MotionPipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def walk(pipe):
    return pipe("a person walks forward", seconds=3, seed=0)[0]


@pytest.fixture(scope="module")
def limits(pipe):
    return pipe.limits


def largest_step(joints: np.ndarray, frame: int) -> float:
    """The largest joint step within 5 frames of ``frame``."""
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=-1)
    return float(steps[max(0, frame - 5) : frame + 5].max())


# ---------------------------------------------------------------- in-betweening and edits
def test_inbetween_keeps_both_motions_where_they_stand(pipe, walk):
    after = pipe("a person waves the right hand", seconds=2, seed=1)[0]
    m = pipe.inbetween(walk, after, seconds=2.0, prompt="a person walks", seed=0)
    start, end = m.meta["generated"]
    assert (start, end) == (walk.num_frames, walk.num_frames + 60)
    assert m.num_frames == walk.num_frames + 60 + after.num_frames
    np.testing.assert_array_equal(m.features[:start], walk.features.astype(np.float32))
    assert np.abs(m.joints[end:] - after.joints).max() < 1e-4  # after unchanged (<= 0.1 mm)
    steps = np.linalg.norm(np.diff(m.joints, axis=0), axis=-1).max(axis=-1)
    # Joins no larger than fast movement elsewhere (after starts back at the origin: the middle walks there).
    assert largest_step(m.joints, start) <= 1.5 * np.percentile(steps, 99)
    assert largest_step(m.joints, end) <= 1.5 * np.percentile(steps, 99)
    again = pipe.inbetween(walk, after, seconds=2.0, prompt="a person walks", seed=0)
    np.testing.assert_array_equal(again.features, m.features)


def test_inbetween_reads_files_and_keeps_a_placed_after(pipe, walk, tmp_path):
    walk_file = tmp_path / "walk.npy"
    np.save(walk_file, walk.features)
    m = pipe.inbetween(walk_file, walk_file, seconds=1.0, seed=2)
    assert np.abs(m.joints[m.meta["generated"][1] :] - walk.joints).max() < 1e-4


def test_range_edit_keeps_every_frame_outside(pipe, walk):
    m = pipe.edit(walk, "a person jumps", start=1.0, end=2.0, seed=0)
    assert m.meta["generated"] == [30, 60] and m.num_frames == walk.num_frames
    assert np.abs(m.joints[:30] - walk.joints[:30]).max() == 0.0
    assert np.abs(m.joints[60:] - walk.joints[60:]).max() < 1e-4
    assert np.abs(m.joints[30:60] - walk.joints[30:60]).max() > 0.01  # the range did change
    for start, end in ((0.0, 1.0), (2.0, None)):  # at the start (anchored on what follows) and at the end
        edited = pipe.edit(walk, "a person jumps", start=start, end=end, seed=0)
        kept = slice(30, None) if start == 0 else slice(0, 60)
        assert np.abs(edited.joints[kept] - walk.joints[kept]).max() < 1e-4


def test_upper_body_edit_keeps_root_and_legs(pipe, walk):
    m = pipe.edit(walk, "a person waves the right hand", body="upper", seed=0)
    assert np.abs(m.joints[:, LOWER] - walk.joints[:, LOWER]).max() < 1e-4
    assert np.abs(m.joints[:, 21] - walk.joints[:, 21]).max() > 0.05
    lower = pipe.edit(walk, "a person kicks", body="lower", start=1.0, end=2.0, seed=0)
    upper = [j for j in range(22) if j not in LOWER]
    assert np.abs(lower.joints[:, upper] - walk.joints[:, upper]).max() < 1e-4
    assert np.abs(lower.joints[:30] - walk.joints[:30]).max() < 1e-4


# ---------------------------------------------------------------- keyframes and paths
def test_full_body_keyframe_is_reached(pipe, walk):
    pose = walk.joints[45]
    m = pipe("a person walks forward", seconds=4, seed=3, keyframes=[Keyframe(time=2.0, joints=pose)])[0]
    error = m.meta["keyframe_errors"][0]
    assert error["frame"] == 60 and error["max_m"] <= 0.02 and "warning" not in m.meta
    assert np.linalg.norm(m.joints[60] - pose, axis=-1).max() <= 0.02
    steps = np.linalg.norm(np.diff(m.joints, axis=0), axis=-1).max(axis=-1)
    assert steps.max() <= 2.0 * np.percentile(steps, 99)  # no jump onto the key


def test_wrist_keyframe_reached_by_ik_and_a_miss_is_reported(pipe):
    plain = pipe("a person waves the right hand", seconds=3, seed=0)[0]
    goal = plain.joints[30, 21] + np.array([0.1, -0.1, 0.05])  # within the arm's reach
    m = pipe("a person waves the right hand", seconds=3, seed=0, keyframes=[Keyframe(1.0, {"right_wrist": goal})])[0]
    assert m.meta["keyframe_errors"][0]["max_m"] <= 0.02
    far = pipe("a person waves the right hand", seconds=3, seed=0, keyframes=[Keyframe(1.0, {"right_wrist": (3.0, 1.5, 0)})])[0]
    assert far.meta["keyframe_errors"][0]["max_m"] > 0.5 and "right_wrist" in far.meta["warning"]


def test_path_is_followed(pipe):
    m = pipe("a person walks forward", seconds=5, seed=0, path=[(0.0, 0.0, 0.0), (2.5, 0.0, 2.0), (5.0, 2.0, 3.0)])[0]
    assert m.meta["path_error"]["mean_m"] <= 0.10 and m.meta["path_error"]["max_m"] <= 0.25
    assert np.linalg.norm(m.joints[-1, 0, [0, 2]] - [2.0, 3.0]) <= 0.25


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("keyframes, message", [
    ([Keyframe(9.0, np.zeros((22, 3)))], "outside the motion"),
    ([Keyframe(1.0, {"hand": (0, 1, 0)})], "unknown joint name(s) hand"),
    ([Keyframe(1.0, np.full((22, 3), np.nan))], "NaN"),
    ([Keyframe(1.0, np.zeros((21, 3)))], "expected (22, 3)"),
    ([Keyframe(1.0, {"pelvis": (10.0, 1.0, 0.0)})], "unreachable"),
    ([Keyframe(1.0, {"pelvis": (0, 1, 0)}), Keyframe(1.01, {"pelvis": (0, 1, 0)})], "same frame"),
    ([], "empty"),
])  # fmt: skip
def test_bad_keyframes_are_one_line_errors(limits, keyframes, message):
    with pytest.raises(PromptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_plan(limits, "a person walks", 3, keyframes=keyframes)


@pytest.mark.parametrize("path, message", [
    ([(0, 0, 0), (1, 10, 0)], "faster than a sprint"),
    ([(0, 0, 0)], "at least 2 points"),
    ([(0, 0, 0), (5, 1, 1)], "outside the motion"),
    ([(1, 0, 0), (0.5, 1, 1)], "does not come after"),
    ([(0, 0, 0), (1, float("nan"), 1)], "NaN"),
    ("0,0,0; 1,1", "expected 3 numbers"),
])  # fmt: skip
def test_bad_paths_are_one_line_errors(limits, path, message):
    with pytest.raises(PromptError, match=message):
        make_plan(limits, "a person walks", 3, path=path)


def test_bad_ranges_and_gaps(limits, walk):
    for kwargs, message in (({"start": 2, "end": 1}, "empty"), ({"start": 0, "end": 9}, "outside the motion"),
                            ({"body": "middle"}, "upper, lower"), ({}, "say what to edit")):  # fmt: skip
        with pytest.raises(PromptError, match=message):
            make_plan(limits, "a person jumps", edit=walk, **kwargs)
    with pytest.raises(PromptError, match="gap must last"):
        make_plan(limits, "a person walks", 0.05, prefix=walk, after=walk)
    far = Motion(walk.features.copy())
    far.features[0, 0] = 100.0  # the motion after placed 100 m away
    with pytest.raises(PromptError, match="unreachable"):
        make_plan(limits, "a person walks", 2.0, prefix=walk, after=far)
    with pytest.raises(PromptError, match="need the motion's duration"):
        make_plan(limits, "a person walks", None, path=[(0, 0, 0), (1, 1, 1)])


def test_path_spellings(tmp_path):
    assert parse_path("0,0,0; 1.5,1,2;") == [(0.0, 0.0, 0.0), (1.5, 1.0, 2.0)]
    file = tmp_path / "path.json"
    file.write_text(json.dumps({"path": [[0, 0, 0], [1, 1, 1]]}))
    assert read_path(file) == [[0, 0, 0], [1, 1, 1]]
    with pytest.raises(PromptError, match="not numbers"):
        parse_path("a,b,c")


# ---------------------------------------------------------------- command line
def test_cli_generate_with_path_and_keyframes_then_edit_and_inbetween(walk, tmp_path):
    source = tmp_path / "walk.npy"
    np.save(source, walk.features)
    keyframes = tmp_path / "keys.json"
    keyframes.write_text(json.dumps([{"time": 2.0, "joints": walk.joints[45].tolist()}]))
    result = runner.invoke(app, ["generate", "a person walks forward", "--seconds", "4", "--seed", "0", "--no-video",
                                 "--out", str(tmp_path / "g"), "--keyframes", str(keyframes),
                                 "--path", "0,0,0; 4,0,4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(next((tmp_path / "g").glob("*.json")).read_text())
    assert "keyframe_errors" in info and "path_error" in info
    result = runner.invoke(app, ["edit", str(source), "--prompt", "a person waves the right hand", "--body", "upper",
                                 "--seed", "0", "--no-video", "--out", str(tmp_path / "e")])  # fmt: skip
    assert result.exit_code == 0, result.output
    for suffix in (".npy", "_joints.npy", ".bvh", ".json"):
        assert len(list((tmp_path / "e").glob(f"*{suffix}"))) >= 1
    result = runner.invoke(app, ["inbetween", str(source), str(source), "--seconds", "1.5", "--seed", "0",
                                 "--no-video", "--out", str(tmp_path / "i")])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(next((tmp_path / "i").glob("*.json")).read_text())
    assert info["generated"] == [walk.num_frames, walk.num_frames + 45]


@pytest.mark.parametrize("args, message", [
    (["edit", "{src}", "--prompt", "x", "--start", "2", "--end", "1"], "start 2 s >= end 1 s"),
    (["edit", "{src}", "--prompt", "x", "--body", "arms"], "body must be one of"),
    (["edit", "missing.npy", "--prompt", "x", "--start", "1"], "no such file"),
    (["inbetween", "{src}", "{src}", "--seconds", "30"], "the gap must last"),
    (["generate", "walk", "--seconds", "3", "--path", "0,0,0; 0.5,9,0"], "faster than a sprint"),
    (["generate", "walk", "--seconds", "3", "--keyframes", "missing.json"], "no such keyframe file"),
    (["generate", "walk", "--path", "0,0,0; 1,1,1"], "give seconds"),
])  # fmt: skip
def test_cli_bad_input_is_one_line(walk, tmp_path, args, message):
    source = tmp_path / "walk.npy"
    np.save(source, walk.features)
    args = [a.replace("{src}", str(source)) for a in args]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
