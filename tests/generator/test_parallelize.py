"""generator/parallelize.py: compile and activation checkpointing change how the model runs, not what it
computes, and leave the state-dict keys alone (so checkpoints and exported folders do not change)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from motionmillion.generator.model import MotionGPT
from motionmillion.generator.parallelize import adamw, parallelize

from .test_model import text_batch, tiny_config

REPO = Path(__file__).resolve().parents[2]


def loss_and_grads(model, features, mask, tokens):
    model.zero_grad(set_to_none=True)
    loss = model.loss(model(features, mask, tokens), tokens)
    loss.backward()
    # the checkpoint wrapper shows in parameter names (not in state-dict keys)
    return loss.detach(), {name.replace("._checkpoint_wrapped_module", ""): p.grad.clone()
                           for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow  # compiling takes about a minute on a small CPU
def test_compiled_and_checkpointed_blocks_compute_the_same():
    torch.manual_seed(0)
    plain = MotionGPT(tiny_config()).train()
    wrapped = MotionGPT(tiny_config()).train()
    wrapped.load_state_dict(plain.state_dict())
    parallelize(wrapped, device_type="cpu", activation_checkpointing=True, compile=True)
    assert set(wrapped.state_dict()) == set(plain.state_dict())
    features, mask = text_batch([3, 5])
    tokens = torch.randint(0, 21, (2, 6))
    loss_a, grads_a = loss_and_grads(plain, features, mask, tokens)
    loss_b, grads_b = loss_and_grads(wrapped, features, mask, tokens)
    torch.testing.assert_close(loss_b, loss_a, atol=1e-5, rtol=1e-5)
    assert grads_b.keys() == grads_a.keys()
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_adamw_is_fused_only_on_cuda():
    model = MotionGPT(tiny_config())
    assert not adamw(model, 1e-3, (0.9, 0.99), 1e-8, 0.0, "cpu").defaults["fused"]
    assert adamw(model, 1e-3, (0.9, 0.99), 1e-8, 0.0, "cuda").defaults["fused"]


def test_gpu_benchmark_smoke_runs_on_cpu(tmp_path):
    """bench/gpu.py --smoke: the decode, train and tokenizer sections end to end on tiny shapes."""
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--smoke", "--out", str(tmp_path),
                             "--sections", "env,decode,train,tokenizer"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    for entry in report["decode"].values():
        if isinstance(entry, dict):
            assert "error" not in entry and entry["greedy_ms_per_token"] > 0
    assert all("tokens_per_s" in run for run in report["train"]["runs"]), report["train"]["runs"]
    assert report["train"]["recommendation"]["micro_batch"] in (2, 4)
    assert report["tokenizer"]["fp32_decode_frames_per_s"] > 0
