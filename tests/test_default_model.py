"""The bundled default model loads offline and generates a plausible motion."""

import numpy as np

from motionmillion import MotionPipeline
from motionmillion.pipeline import default_model_path


def test_bundled_default_model_generates_offline():
    assert (default_model_path() / "generator" / "model.safetensors").is_file()
    pipe = MotionPipeline.from_pretrained(device="cpu")
    (motion,) = pipe(["a person waves with the right hand"], seconds=2.0, seed=0)
    assert motion.features.shape[1] == 272
    assert abs(motion.seconds - 2.0) <= 0.2 + 4 / 30  # length control: +-10%, rounded to whole tokens
    joints = motion.joints
    assert np.isfinite(joints).all()
    height = joints[..., 1].max(axis=1) - joints[..., 1].min(axis=1)
    assert 1.0 < np.median(height) < 2.0  # a standing adult, in metres
    again = pipe(["a person waves with the right hand"], seconds=2.0, seed=0)[0]
    np.testing.assert_array_equal(again.features, motion.features)  # seeded
