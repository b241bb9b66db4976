import pytest
import torch

from motionmillion.tokenizer.config import LossConfig
from motionmillion.tokenizer.losses import tokenizer_loss


def test_each_term_covers_its_block():
    target = torch.zeros(2, 8, 272)
    pred = target.clone()
    pred[..., 80] = 0.5  # a joint-velocity channel only
    _, parts = tokenizer_loss(pred, target, LossConfig(positions=1.0, root=1.0, velocity=1.0))
    assert parts["velocity"] > 0 and parts["positions"] == 0 and parts["root"] == 0
    pred = target.clone()
    pred[..., 3] = 0.5  # heading
    _, parts = tokenizer_loss(pred, target, LossConfig(positions=1.0, root=1.0, velocity=1.0))
    assert parts["root"] > 0 and parts["velocity"] == 0


def test_weights_scale_and_zero_weights_drop_terms():
    pred, target = torch.randn(2, 8, 272), torch.randn(2, 8, 272)
    total, parts = tokenizer_loss(pred, target, LossConfig(reconstruction=1.0, positions=0.5, root=0.0, velocity=2.0))
    assert "root" not in parts
    expected = parts["reconstruction"] + 0.5 * parts["positions"] + 2.0 * parts["velocity"]
    assert torch.isclose(total, torch.tensor(expected), rtol=1e-5)


def rigid_motion(frames: int = 12, seed: int = 0) -> torch.Tensor:
    """De-normalised 272 features of a rigid skeleton (positions = forward kinematics of the rotations)."""
    import numpy as np

    from motionmillion.motion import encode_272
    from motionmillion.motion.kinematics import forward_kinematics
    from motionmillion.motion.rotations import axis_angle_to_matrix
    from motionmillion.motion.skeleton import TEMPLATE_OFFSETS

    rng = np.random.default_rng(seed)
    rotations = axis_angle_to_matrix(rng.normal(0, 0.3, size=(frames, 22, 3)))
    root = np.stack([np.linspace(0, 0.5, frames), np.full(frames, 0.9), np.zeros(frames)], axis=-1)
    joints = forward_kinematics(rotations, root, TEMPLATE_OFFSETS)
    return torch.tensor(encode_272(joints, rotations), dtype=torch.float32)[None]


def test_kinematic_terms_vanish_on_a_rigid_motion_and_see_what_they_measure():
    from motionmillion.tokenizer.losses import kinematic_terms

    config = LossConfig(bones=1.0, forward_kinematics=1.0, acceleration=1.0)
    motion = rigid_motion()
    assert all(float(v) < 1e-5 for v in kinematic_terms(motion, motion, config).values())
    rotated = motion.clone()
    rotated[..., 140 + 6 * 18 : 140 + 6 * 19] = torch.tensor([1.0, 0, 0, 0, 0, 1])  # the left elbow's rotation only
    terms = kinematic_terms(rotated, motion, config)
    assert terms["forward_kinematics"] > 1e-3 and terms["bones"] < 1e-6 and terms["acceleration"] < 1e-3
    stretched = motion.clone()
    stretched[..., 8 + 3 * 20 + 1] += 0.05  # the left wrist 5 cm higher in every frame: a longer forearm
    terms = kinematic_terms(stretched, motion, config)
    assert terms["bones"] > 1e-3 and terms["acceleration"] < 1e-3
    jittered = motion.clone()
    jittered[:, 5, 8:74] += 0.01  # one frame off: an acceleration spike
    assert kinematic_terms(jittered, motion, config)["acceleration"] > 1.0


def test_kinematic_terms_are_weighted_into_the_total_on_denormalised_motion():
    motion = rigid_motion()
    mean, std = motion[0].mean(0), motion[0].std(0) + 1e-3
    normalised = (motion - mean) / std
    pred = normalised + 0.01 * torch.randn_like(normalised)
    plain, parts_plain = tokenizer_loss(pred, normalised, LossConfig())
    total, parts = tokenizer_loss(pred, normalised, LossConfig(bones=2.0), (mean, std))
    assert "bones" in parts and "bones" not in parts_plain
    assert torch.isclose(total, plain + 2.0 * parts["bones"], rtol=1e-5)
    with pytest.raises(ValueError, match="normalisation"):
        tokenizer_loss(pred, normalised, LossConfig(bones=2.0))


def test_trajectory_and_foot_contact_terms_see_drift_and_sliding_feet():
    from motionmillion.tokenizer.losses import kinematic_terms

    config = LossConfig(trajectory=1.0, foot_contact=1.0)
    motion = rigid_motion(frames=2)[:, :1].repeat(1, 30, 1)  # one pose held still
    motion[..., 8 + 1 : 74 : 3] -= motion[..., 8 + 1 : 74 : 3].amin(-1, keepdim=True)  # the lowest joint on the floor
    terms = kinematic_terms(motion, motion, config)
    assert float(terms["trajectory"]) < 1e-6 and float(terms["foot_contact"]) < 1e-6
    drifting = motion.clone()
    drifting[:, 1:, 0] = 0.01  # 1 cm per frame sideways: the root path drifts, the planted feet slide
    terms = kinematic_terms(drifting, motion, config)
    assert terms["trajectory"] > 0.1 and abs(float(terms["foot_contact"]) - 0.3) < 1e-4  # 1 cm x 30 fps
