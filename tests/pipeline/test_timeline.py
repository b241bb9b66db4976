"""Timelines (compose), continuation (prefix=), streaming and exact durations (issue 14)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from generator import helpers
from typer.testing import CliRunner

from motionmillion.cli import app
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.sampling import length_window
from motionmillion.motion.skeleton import SKELETON_FILE, load_skeleton
from motionmillion.pipeline import MotionPipeline, PromptError, default_model_path
from motionmillion.pipeline.requests import TimelineError, parse_short_timeline, read_timeline, token_budget

TIMELINE = [("a person walks forward", 2.0), ("a person waves the right hand", 1.5), ("a person bows", 1.0)]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return helpers.make_pipeline_folder(tmp_path_factory.mktemp("timeline"))


@pytest.fixture(scope="module")
def pipe(model_folder):
    """Random weights, posed on the bundled model's skeleton as every folder built from a dataset is (a
    stream is only frame-for-frame the whole motion on a fixed skeleton)."""
    loaded = MotionPipeline.from_pretrained(model_folder, device="cpu")
    return MotionPipeline(loaded.tokenizer, loaded.generator, loaded.text_encoder, loaded.normalizer,
                          skeleton=load_skeleton(default_model_path() / SKELETON_FILE))  # fmt: skip


@pytest.fixture(scope="module")
def timed_pipe(pipe):
    """The same pipeline with a length-conditioned generator (random weights)."""
    torch.manual_seed(1)
    config = dataclasses.replace(pipe.generator.config, length_condition=True)
    return MotionPipeline(pipe.tokenizer, MotionGPT(config).eval(), pipe.text_encoder, pipe.normalizer,
                          skeleton=pipe.skeleton)  # fmt: skip


def max_joint_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).max())


# ---------------------------------------------------------------- timelines


def test_compose_records_contiguous_segments_of_the_requested_lengths(timed_pipe, tmp_path):
    motion = timed_pipe.compose(TIMELINE, seed=3)
    fpt = timed_pipe.frames_per_token
    segments = motion.meta["segments"]
    assert [s["prompt"] for s in segments] == [p for p, _ in TIMELINE]
    assert [s["seed"] for s in segments] == [3, 4, 5]
    assert segments[0]["start_frame"] == 0 and segments[-1]["end_frame"] == motion.num_frames
    for before, after in zip(segments, segments[1:]):
        assert before["end_frame"] == after["start_frame"]
    for segment, (_, seconds) in zip(segments, TIMELINE):
        assert abs((segment["end_frame"] - segment["start_frame"]) - seconds * 30) <= fpt  # within one token
    files = motion.save(tmp_path, "timeline", video=False)
    assert json.loads(files["json"].read_text())["segments"] == segments
    again = timed_pipe.compose([{"prompt": p, "seconds": s} for p, s in TIMELINE], seed=3)
    np.testing.assert_array_equal(again.features, motion.features)  # tuples and dicts mean the same


def test_each_segment_is_conditioned_on_the_motion_before_it(timed_pipe):
    """Changing only the first segment changes the second one (its context) beyond the decoder's reach of
    the seam. The second segment is greedy, so that the (random) model's logits decide, not the noise."""

    def second_segment(first_seed: int, context_seconds: float) -> np.ndarray:
        segments = [{"prompt": "a person walks forward", "seconds": 2, "seed": first_seed, "temperature": 1.0},
                    ("a person bows", 2)]
        motion = timed_pipe.compose(segments, seed=0, context_seconds=context_seconds, temperature=0)
        return motion.features[motion.meta["segments"][1]["start_frame"] + 30 :]

    assert not np.allclose(second_segment(1, 1.0), second_segment(2, 1.0))


def test_a_seam_starts_with_the_smoothest_of_the_candidate_starts(timed_pipe, monkeypatch):
    """The second segment is one of SEAM_CANDIDATES draws (its seed, then seeds derived from it)."""
    import motionmillion.pipeline.timeline as pipeline_module

    segments = [("a person walks forward", 2), ("a person bows", 2)]
    chosen = timed_pipe.compose(segments, seed=5)
    candidates = pipeline_module.SEAM_CANDIDATES
    monkeypatch.setattr(pipeline_module, "SEAM_CANDIDATES", 1)
    matches = []
    for k in range(candidates):  # each candidate alone: segment 2 drawn with the k-th derived seed
        seed = (6 + k * pipeline_module.SEAM_SEED_STRIDE) % 2**63
        alone = timed_pipe.compose([{"prompt": "a person walks forward", "seconds": 2, "seed": 5},
                                    {"prompt": "a person bows", "seconds": 2, "seed": seed}], seed=5)  # fmt: skip
        matches.append(np.array_equal(alone.features, chosen.features))
    assert sum(matches) == 1  # exactly one candidate is the composed motion
    assert not np.array_equal(*[timed_pipe.compose(segments, seed=s).features for s in (5, 6)])


def test_durations_are_exact_with_a_length_conditioned_generator(timed_pipe, pipe):
    for seconds in (1.0, 2.3, 4.0, 7.7, 10.0):
        motion = timed_pipe("a person walks forward", seconds=seconds, seed=int(seconds * 10))[0]
        assert abs(motion.num_frames - seconds * 30) <= timed_pipe.frames_per_token, seconds
    # A generator without the condition (every checkpoint saved before it) keeps the tolerance window.
    assert not pipe.generator.config.length_condition
    assert token_budget(pipe.limits, 4.0) == (*length_window(4.0, pipe.frames_per_token, pipe.max_tokens), None)


# ---------------------------------------------------------------- streaming


@pytest.fixture(scope="module")
def bundled():
    return MotionPipeline.from_pretrained(device="cpu")


def test_streamed_chunks_equal_the_whole_motion(bundled):
    """With the bundled model (a real motion: the consistency step takes the same branch for a window as
    for the whole motion, which random weights do not guarantee)."""
    chunks = list(bundled.stream("a person walks forward", seconds=4.0, seed=7, chunk_seconds=0.3))
    whole = bundled("a person walks forward", seconds=4.0, seed=7)[0]
    assert len(chunks) > 2
    assert [c.start_frame for c in chunks] == list(np.cumsum([0] + [len(c.features) for c in chunks[:-1]]))
    features = np.concatenate([c.features for c in chunks])
    joints = np.concatenate([c.joints for c in chunks])
    assert features.shape == whole.features.shape
    assert max_joint_gap(joints, whole.joints) < 1e-3  # metres: within 1 mm


def test_a_streamed_timeline_equals_compose(bundled):
    chunks = list(bundled.stream(TIMELINE, seed=2))
    whole = bundled.compose(TIMELINE, seed=2)
    joints = np.concatenate([c.joints for c in chunks])
    assert joints.shape == whole.joints.shape
    assert max_joint_gap(joints, whole.joints) < 1e-3


def test_streaming_refuses_fix_feet(pipe):
    with pytest.raises(PromptError, match="fix_feet"):
        next(pipe.stream("a person walks", seconds=2, fix_feet=True))


# ---------------------------------------------------------------- continuation


def test_continuation_keeps_the_prefix_and_adds_the_new_frames(timed_pipe, tmp_path):
    prefix = timed_pipe("a person walks forward", seconds=3.0, seed=0)[0]
    path = tmp_path / "prefix.npy"
    np.save(path, prefix.features)
    for given in (prefix, path, str(path)):
        motion = timed_pipe("a person bows", seconds=2.0, seed=1, prefix=given)[0]
        assert motion.meta["prefix_frames"] == prefix.num_frames
        assert abs(motion.num_frames - prefix.num_frames - 60) <= timed_pipe.frames_per_token
        context = 32  # one second of context = 8 tokens of 4 frames
        np.testing.assert_array_equal(motion.features[: prefix.num_frames - context],
                                      prefix.features[: prefix.num_frames - context])  # fmt: skip
        segment = motion.meta["segments"][0]
        assert (segment["start_frame"], segment["end_frame"]) == (prefix.num_frames, motion.num_frames)
    # The joints pass from the given frames to the new ones without a jump.
    steps = np.linalg.norm(np.diff(motion.joints, axis=0), axis=-1).max(axis=-1)
    seam = steps[prefix.num_frames - context - 2 : prefix.num_frames + 5].max()
    assert seam <= 1.5 * np.percentile(steps, 99) + 1e-6


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "segments, kwargs, message",
    [
        ([], {}, "the timeline is empty"),
        ("a person walks:3", {}, "a timeline is a list"),
        ([("", 2.0)], {}, "segment 1: no prompt"),
        ([("walk", 2.0), ({"seconds": 2})], {}, "segment 2: no prompt"),
        ([("walk", 0)], {}, "segment 1 ('walk'): the duration must be positive"),
        ([("walk", 2), ("run", -1.5)], {}, "segment 2 ('run'): the duration must be positive"),
        ([("walk", None)], {}, "segment 1 ('walk'): no duration"),
        ([{"prompt": "walk", "seconds": 2, "speed": 3}], {}, "segment 1: unknown key(s) speed"),
        ([("walk", 3), ("run", 3)], {"max_total_seconds": 5}, "lasts 6 s, more than the maximum of 5 s"),
        ([("walk", 3), ("run", 10)], {}, "segment 2 ('run'): 10 s is longer than"),
        ([("walk", 3), ("run", 2)], {"seed": "x"}, "seed must be an integer"),
    ],
)
def test_bad_timelines_name_the_segment(pipe, segments, kwargs, message):
    with pytest.raises(PromptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pipe.compose(segments, **kwargs)


def test_unreadable_prefixes_name_the_file(pipe, tmp_path):
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(PromptError, match="broken.npy"):
        pipe("a person bows", seconds=2, prefix=bad)
    with pytest.raises(PromptError, match="missing.bvh: no such file"):
        pipe("a person bows", seconds=2, prefix=tmp_path / "missing.bvh")
    with pytest.raises(PromptError, match="the prefix motion has 1 frames; continuing needs at least"):
        pipe("a person bows", seconds=2, prefix=pipe("a person walks", seconds=2, seed=0)[0].features[:1])


def test_short_form_and_json_timelines(tmp_path):
    assert parse_short_timeline("a person walks forward:3; turn: left:2.5;") == [
        {"prompt": "a person walks forward", "seconds": 3.0}, {"prompt": "turn: left", "seconds": 2.5}]  # fmt: skip
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"segments": [{"prompt": "walk", "seconds": 2, "temperature": 0}]}))
    assert read_timeline(path) == [{"prompt": "walk", "seconds": 2, "temperature": 0}]
    for spec, message in [("", "empty"), ("walk:3; run", "segment 2 .*no duration"), ("walk:fast", "not a number"),
                          (str(tmp_path / "none.json"), "none.json: no such timeline file")]:  # fmt: skip
        with pytest.raises(TimelineError, match=message):
            read_timeline(spec)


# ---------------------------------------------------------------- CLI


def test_cli_timeline_writes_one_motion_with_its_segments(model_folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "--timeline", "a person walks forward:2; a person bows:1.5",
                                      "--model", str(model_folder), "--out", str(out), "--seed", "4", "--no-video"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (info_file,) = out.glob("*.json")
    info = json.loads(info_file.read_text())
    assert [s["prompt"] for s in info["segments"]] == ["a person walks forward", "a person bows"]
    assert info["segments"][-1]["end_frame"] == info["frames"]


def test_cli_continue_from_a_file(model_folder, tmp_path):
    first = tmp_path / "first"
    CliRunner().invoke(app, ["generate", "a person walks", "--model", str(model_folder), "--out", str(first),
                             "--seconds", "2", "--seed", "0", "--no-video"])  # fmt: skip
    (prefix,) = first.glob("*_s0.npy")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "a person bows", "--continue-from", str(prefix), "--model",
                                      str(model_folder), "--out", str(out), "--seconds", "2", "--no-video"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (info_file,) = out.glob("*.json")
    assert json.loads(info_file.read_text())["prefix_frames"] == len(np.load(prefix))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeline", "a person walks:2; :3"], "segment 2: no prompt"),
        (["--timeline", "a person walks:2; a person runs:0"], "segment 2 ('a person runs'): the duration must be positive"),
        (["--timeline", ""], "the timeline is empty"),
        (["a person bows", "--continue-from", "missing.bvh"], "missing.bvh: no such file"),
    ],
)
def test_cli_bad_timelines_and_prefixes_write_nothing(model_folder, tmp_path, args, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", *args, "--model", str(model_folder), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------- the bundled model: seams


def test_bundled_model_timeline_seams_are_as_smooth_as_the_segments(bundled):
    """Issue 14's seam measure on a real model: the largest joint step within 5 frames of a seam is at most
    1.5 x the 99th percentile of the steps inside the segments (bench/timeline.py runs 50+ timelines)."""
    for seed in range(3):
        motion = bundled.compose(TIMELINE, seed=seed)
        steps = np.linalg.norm(np.diff(motion.joints, axis=0), axis=-1).max(axis=-1)  # (T-1,) per frame
        seams = [s["start_frame"] for s in motion.meta["segments"][1:]]
        near = np.zeros(len(steps), dtype=bool)
        for seam in seams:
            near[max(0, seam - 5) : seam + 5] = True
        assert steps[near].max() <= 1.5 * np.percentile(steps[~near], 99), seed
