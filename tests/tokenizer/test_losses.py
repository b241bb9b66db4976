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
