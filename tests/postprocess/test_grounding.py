"""The hovering guard: stretches where the lowest foot stays above 10 cm for more than 0.7 s go back on
the floor; real clips and short jumps are left alone."""

from pathlib import Path

import numpy as np
import pytest

from motionmillion.motion.representation import POSITIONS, VELOCITIES, decode_joints
from motionmillion.motion.rig_mapping import bvh_to_features
from motionmillion.postprocess.grounding import HOVER_HEIGHT, floor_gap, ground_hovering, hover_runs

WALK_BVH = (Path(__file__).resolve().parents[1]
            / "fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh")


@pytest.fixture(scope="module")
def bundled_pipe():
    from motionmillion import MotionPipeline

    return MotionPipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return bvh_to_features(WALK_BVH).astype(np.float64)


def lifted(features: np.ndarray, start: int, end: int, height: float) -> np.ndarray:
    """The motion raised by ``height`` over frames [start, end), positions and velocities alike."""
    lift = np.zeros(len(features))
    lift[start:end] = height
    out = features.copy()
    out[:, POSITIONS.start + 1 : POSITIONS.stop : 3] += lift[:, None]
    out[:, VELOCITIES.start + 1 : VELOCITIES.stop : 3] += np.diff(lift, prepend=0.0)[:, None]
    return out


def test_a_real_clip_does_not_hover_and_comes_back_unchanged(walk):
    assert hover_runs(decode_joints(walk), 30.0) == []
    grounded, report = ground_hovering(walk, 30.0)
    assert report == [] and np.array_equal(grounded, walk)


def test_a_long_hover_is_put_back_on_the_floor_and_a_jump_is_not(walk):
    frames = len(walk)
    hovering = lifted(walk, 20, 20 + 45, 0.6)  # 1.5 s, 0.6 m up
    assert hover_runs(decode_joints(hovering), 30.0) == [(20, 65)]
    grounded, report = ground_hovering(hovering, 30.0)
    assert [(r["start_frame"], r["end_frame"]) for r in report] == [(20, 65)] and report[0]["lowered_m"] > 0.5
    joints = decode_joints(grounded)
    assert hover_runs(joints, 30.0) == []
    assert floor_gap(joints)[22:63].max() < HOVER_HEIGHT  # back on the floor inside the stretch
    assert joints[:, :, 1].min() >= decode_joints(walk)[:, :, 1].min() - 1e-6  # nothing through the floor
    far = np.r_[0:10, 75:frames]  # beyond the 0.3 s ease around the stretch
    np.testing.assert_allclose(grounded[far], hovering[far], atol=1e-9)
    # the stored velocities agree with the stored positions (the next encode of these joints gives them)
    heights = grounded[:, POSITIONS.start + 1 : POSITIONS.stop : 3]
    np.testing.assert_allclose(grounded[1:, VELOCITIES.start + 1 : VELOCITIES.stop : 3], np.diff(heights, axis=0), atol=1e-6)
    jump = lifted(walk, 30, 30 + 15, 0.4)  # 0.5 s in the air
    assert hover_runs(decode_joints(jump), 30.0) == [] and ground_hovering(jump, 30.0)[1] == []


@pytest.mark.parametrize("prompt", ["a person jumps", "someone jumps up and down", "a person leaps over something",
                                    "a person climbs"])  # fmt: skip
def test_the_bundled_model_never_hands_out_a_hovering_motion(bundled_pipe, prompt):
    """The prompts whose seed-0 motion was a climbing take with the feet 0.64 m up (issue 24)."""
    for motion in bundled_pipe(prompt, seconds=3, num_samples=2, seed=0):
        assert hover_runs(motion.joints, motion.fps) == [], motion.meta.get("grounded")
        for entry in motion.meta.get("grounded", []):
            assert entry["lowered_m"] > 0
