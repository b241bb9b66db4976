"""Evaluator model, training loop, save/load/checksum and resume on synthetic clips."""

import json
import shutil

import numpy as np
import pytest
import torch

from motionmillion.evaluation.evaluator import Evaluator, EvaluatorConfig, EvaluatorModel, pad_motions
from motionmillion.evaluation.train import TrainConfig, info_nce, negative_mask, train_evaluator
from motionmillion.motion.representation import InvalidMotionError
from motionmillion.utils.model_folder import CheckpointError


def test_negative_mask_and_info_nce():
    sentences = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]), dim=-1)
    mask = negative_mask(sentences, ["a", "b", "c"], threshold=0.85)
    assert mask.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert negative_mask(sentences, ["a", "b", "a"], 0.85)[0, 2]
    emb = torch.eye(3)
    perfect = info_nce(emb, emb, 0.1, torch.zeros(3, 3, dtype=torch.bool))
    # Hand value: each row logits (10, 0, 0) -> -log(e^10 / (e^10 + 2))
    assert perfect.item() == pytest.approx(-np.log(np.exp(10) / (np.exp(10) + 2)), rel=1e-3)  # float32 logits
    everything_masked = info_nce(emb, emb, 0.1, ~torch.eye(3, dtype=torch.bool))
    assert everything_masked.item() == pytest.approx(0.0, abs=1e-6)


def test_motion_encoder_ignores_padding():
    torch.manual_seed(0)
    model = EvaluatorModel(EvaluatorConfig(latent_dim=32, text_layers=1, motion_layers=1, num_heads=2, ffn_dim=64)).eval()
    clip = np.random.default_rng(0).normal(size=(37, 272)).astype(np.float32)
    alone = model.encode_motion_normalized(*pad_motions([clip]))
    padded = model.encode_motion_normalized(*pad_motions([clip, np.zeros((90, 272), np.float32)]))[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(1))


def test_train_save_load_resume(tmp_path, synthetic_splits, identity_normalizer, tiny_evaluator):
    trained, evaluator = tiny_evaluator  # 6 epochs of the tiny preset (conftest)
    report = json.loads((trained / "metrics.json").read_text())
    # 4 separable kinds; with duplicates removed, a retrieval in the top 5 of 40 is far above chance.
    assert report["test"]["dedup_t2m@5"] > 0.5
    assert report["test"]["r_precision_top3"] > 3 / 32
    assert report["sanity"]["fid_real_test_vs_real_train"] >= 0.0
    stored = json.loads((trained / "config.json").read_text())
    assert stored["weights_sha256"] == report["weights_sha256"] == evaluator.checksum

    text = evaluator.encode_text(["a person walks forward", "someone kicks forward"])
    motion = evaluator.encode_motion([synthetic_splits["test"].motions[0], np.zeros((400, 272))])  # 400 is cropped
    assert text.shape == motion.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(motion, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(InvalidMotionError, match="motion 0"):
        evaluator.encode_motion([np.full((30, 272), np.nan)])

    # Resume: asking for one more epoch continues from the checkpoint instead of restarting.
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["dir"]
    state = json.loads((run / "checkpoints" / latest / "trainer_state.json").read_text())
    config = TrainConfig(**state["run_config"]["train"])
    config.epochs += 1
    report2 = train_evaluator("synthetic", run, config, splits=synthetic_splits, normalizer=identity_normalizer, progress=False)
    assert report2["training"]["epochs_run"] == 7 and len(report2["training"]["history"]) == 7


def test_damaged_weights_and_missing_folder(tmp_path, tiny_evaluator):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        Evaluator.from_pretrained(tmp_path / "nothing")
    run = tmp_path / "run"
    shutil.copytree(tiny_evaluator[0], run)
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (run / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        Evaluator.from_pretrained(run)
