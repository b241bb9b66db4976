import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from motionmillion.tokenizer.patcher import Patcher


@settings(max_examples=30, deadline=None)
@given(method=st.sampled_from(["haar", "db2", "rearrange"]), log_p=st.integers(0, 3),
       channels=st.integers(1, 5), blocks=st.integers(1, 6), seed=st.integers(0, 1000))
def test_inverse_is_exact(method, log_p, channels, blocks, seed):
    p = 2**log_p
    torch.manual_seed(seed)
    x = torch.randn(2, channels, p * blocks)
    patcher = Patcher(p, method)
    y = patcher(x)
    assert y.shape == (2, channels * p, blocks)
    assert torch.allclose(patcher.inverse(y), x, atol=1e-5)
    if method != "rearrange":  # orthonormal: energy preserved
        assert torch.allclose(y.square().sum(), x.square().sum(), rtol=1e-5)


def test_haar_really_transforms():
    x = torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])
    y = Patcher(2, "haar")(x)
    s = 1 / math.sqrt(2)
    assert torch.allclose(y, torch.tensor([[[4 * s, 4 * s], [-2 * s, 0.0]]]))  # (low; high) per 2-frame patch
    y4 = Patcher(4, "haar")(x)
    assert y4.shape == (1, 4, 1) and torch.allclose(y4[0, 0, 0], torch.tensor(4.0))  # sum / 2


def test_db2_differs_from_haar_and_patch_must_divide_length():
    x = torch.randn(1, 3, 16)
    assert not torch.allclose(Patcher(4, "db2")(x), Patcher(4, "haar")(x))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        Patcher(4, "haar")(torch.randn(1, 3, 10))
    with pytest.raises(ValueError, match="power of 2"):
        Patcher(3, "haar")
