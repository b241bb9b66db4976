"""Evaluator model, training loop, save/load/checksum and resume on synthetic clips."""

import json
import shutil

import numpy as np
import pytest
import torch

from motionmillion.evaluation.config import PRESETS, EvaluatorConfig, RunConfig, TrainConfig
from motionmillion.evaluation.evaluator import Evaluator, EvaluatorModel, pad_motions
from motionmillion.evaluation.train import info_nce, negative_mask, train_evaluator
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
    trained, evaluator = tiny_evaluator  # 24 steps (6 epochs) of the tiny preset (conftest)
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

    # Resume: asking for 4 more steps continues from the checkpoint instead of restarting.
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["dir"]
    state = json.loads((run / "checkpoints" / latest / "trainer_state.json").read_text())
    config = RunConfig.from_dict(state["run_config"])
    config.train.steps += 4
    report2 = train_evaluator("synthetic", run, config, splits=synthetic_splits, normalizer=identity_normalizer, progress=False)
    assert report2["training"]["steps"] == 28 and [h["step"] for h in report2["training"]["history"]] == list(range(4, 29, 4))


def _interrupted_at(straight, run, step: int) -> None:
    """``run``: ``straight`` as a kill right after its checkpoint of ``step`` would have left it."""
    shutil.copytree(straight, run)
    for folder in (run / "checkpoints").glob("step_*"):
        if int(folder.name.split("_")[1]) > step:
            shutil.rmtree(folder)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"dir": f"step_{step:08d}", "step": step}))
    (run / "metrics.json").unlink()


def test_resume_inside_an_epoch_and_from_an_older_version_is_exact(tmp_path, synthetic_splits, identity_normalizer):
    train = TrainConfig(steps=10, eval_every=5, save_every=2, keep_checkpoints=10, batch_size=16, lr=2e-3, warmup_steps=2)
    config = RunConfig(PRESETS["tiny"].model, train)  # 4 steps per epoch: step 6 lies inside the second epoch
    args = dict(splits=synthetic_splits, normalizer=identity_normalizer, progress=False)
    straight = tmp_path / "straight"
    report = train_evaluator("synthetic", straight, config, **args)
    final = (straight / "checkpoints" / "step_00000010" / "model.safetensors").read_bytes()

    inside = tmp_path / "inside"
    _interrupted_at(straight, inside, 6)
    history = train_evaluator("synthetic", inside, config, **args)["training"]["history"]
    assert [h["val_score"] for h in history] == [h["val_score"] for h in report["training"]["history"]]
    assert (inside / "checkpoints" / "step_00000010" / "model.safetensors").read_bytes() == final

    # A run started when the evaluator counted epochs (validated and saved after each), stopped after epoch 1.
    old = tmp_path / "old"
    _interrupted_at(straight, old, 4)
    checkpoint = old / "checkpoints" / "step_00000004"
    (checkpoint / "rng.safetensors").unlink()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    old_train = {k: state["run_config"]["train"][k] for k in ("batch_size", "lr", "weight_decay", "warmup_steps", "seed")}
    old_train.update(preset="tiny", epochs=3, max_minutes=0.0, keep_checkpoints=10)
    old_state = {"step": 4, "epoch": 1, "elapsed_s": 1.0, "best_score": 0.5, "best_epoch": 1,
                 "history": [{"epoch": 1, "loss": 1.0, "val_score": 0.5, "val_t2m@5": 0.5, "elapsed_s": 1.0}],
                 "run_config": {"model": state["run_config"]["model"], "train": old_train}}  # fmt: skip
    (checkpoint / "trainer_state.json").write_text(json.dumps(old_state))
    history = train_evaluator("synthetic", old, config, **args)["training"]["history"]
    assert [h["step"] for h in history] == [4, 5, 10]
    assert (old / "checkpoints" / "step_00000010" / "model.safetensors").read_bytes() == final


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
