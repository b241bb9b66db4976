import math

import pytest
import torch

from motionmillion.tokenizer.fsq import FSQ, code_usage


@pytest.mark.parametrize("levels", [[8, 8, 8, 5, 5, 5], [8, 5, 5, 5], [5, 5, 5]])
def test_every_index_round_trips_through_codes(levels):
    fsq = FSQ(levels, dim=4)
    assert fsq.codebook_size == math.prod(levels)
    ids = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(ids)
    assert codes.min() >= -1 and codes.max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), ids)
    assert len(torch.unique(codes, dim=0)) == fsq.codebook_size


def test_level_values_and_basis_match_the_reference():
    fsq = FSQ([8, 8, 8, 5, 5, 5], dim=4)
    assert fsq._basis.tolist() == [1, 8, 64, 512, 2560, 12800]
    z = torch.linspace(-20, 20, 2001)[:, None].repeat(1, 6)
    q = fsq.quantize(z)
    assert sorted(q[:, 0].unique().tolist()) == [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75]
    assert sorted(q[:, 5].unique().tolist()) == [-1, -0.5, 0, 0.5, 1]


def test_straight_through_gradient_and_float32_under_autocast():
    fsq = FSQ([8, 5, 5, 5], dim=16)
    x = torch.randn(2, 7, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ids = fsq(x.bfloat16())
    assert out.dtype == torch.float32 and ids.dtype == torch.int64
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.allclose(fsq.dequantize(ids), out.detach(), atol=1e-5)


def test_out_of_range_ids_are_rejected():
    fsq = FSQ([5, 5], dim=4)
    with pytest.raises(ValueError, match="token ids"):
        fsq.indices_to_codes(torch.tensor([25]))


def test_usage_and_perplexity():
    usage, perplexity = code_usage(torch.tensor([0, 1, 2, 3] * 5), codebook_size=8)
    assert usage == 0.5
    assert perplexity == pytest.approx(4.0)
