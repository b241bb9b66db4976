"""Physical metrics against hand-computed cases built from the standing template pose."""

import numpy as np
import pytest

from motionmillion.evaluation.physical import (
    floating,
    foot_contacts,
    foot_skating,
    ground_penetration,
    jitter,
    physical_metrics,
    skating_ratio,
)
from motionmillion.motion.skeleton import TEMPLATE_REST_JOINTS

FPS = 30.0


def standing(num_frames: int = 40) -> np.ndarray:
    """Template T-pose with the toes exactly on the floor (y = 0), repeated over time."""
    pose = TEMPLATE_REST_JOINTS - np.array([0.0, TEMPLATE_REST_JOINTS[:, 1].min(), 0.0])
    return np.repeat(pose[None], num_frames, axis=0)


def test_standing_still_has_no_skating_no_jitter_no_penetration():
    joints = standing()
    assert foot_contacts(joints, FPS).all()  # ankles ~5 cm, toes 0 cm: all four in contact
    assert foot_skating(joints, FPS) == 0.0
    assert skating_ratio(joints, FPS) == 0.0
    assert jitter(joints, FPS) == 0.0
    assert ground_penetration(joints) == 0.0
    assert floating(joints) == 0.0


def test_sliding_at_constant_speed_is_that_speed():
    joints = standing()
    t = np.arange(len(joints)) / FPS
    joints[..., 0] += 0.3 * t[:, None]  # whole body glides along +x at 0.3 m/s, feet on the floor
    assert foot_skating(joints, FPS) == pytest.approx(0.3)
    assert skating_ratio(joints, FPS, slide_speed=0.25) == 1.0
    assert skating_ratio(joints, FPS, slide_speed=0.35) == 0.0
    assert jitter(joints, FPS) == pytest.approx(0.0, abs=1e-6)  # constant velocity has no jerk


def test_fast_moving_foot_is_not_in_contact():
    joints = standing()
    joints[..., 0] += 2.0 * np.arange(len(joints))[:, None] / FPS  # 2 m/s > contact_max_speed
    assert not foot_contacts(joints, FPS).any()
    assert foot_skating(joints, FPS) == 0.0
    assert foot_skating(joints, FPS, contact_max_speed=None) == pytest.approx(2.0)


def test_lifted_feet_are_not_in_contact_and_float():
    joints = standing()
    joints[..., 1] += 0.15
    assert not foot_contacts(joints, FPS).any()
    assert floating(joints, tolerance=0.05) == pytest.approx(0.10)
    assert ground_penetration(joints) == 0.0


def test_penetration_depth():
    joints = standing()
    joints[: len(joints) // 2, :, 1] -= 0.02  # first half 2 cm under the floor
    assert ground_penetration(joints) == pytest.approx(0.01)


def test_jitter_of_cubic_trajectory():
    joints = standing(10)
    t = np.arange(len(joints)) / FPS
    joints[..., 1] += (t**3)[:, None]  # jerk d3/dt3 t^3 = 6 everywhere, exact for finite differences
    assert jitter(joints, FPS) == pytest.approx(6.0, rel=1e-6)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        foot_skating(np.zeros((10, 21, 3)), FPS)
    joints = standing()
    joints[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        physical_metrics(joints, FPS)


def test_short_clips_give_zero_not_errors():
    m = physical_metrics(standing(1), FPS).to_dict()
    assert m["foot_skating"] == 0.0 and m["jitter"] == 0.0 and m["skating_ratio"] == 0.0
