import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from motionmillion.tokenizer.config import PRESETS, RunConfig
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.tokenizer.train import train
from motionmillion.training import apply_overrides, preset


def tiny_run(**overrides):
    return apply_overrides(preset(PRESETS, "tiny"), [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def test_schedule_warmup_then_cosine_or_multistep():
    tc = tiny_run(**{"train.warmup_steps": 4, "train.steps": 20, "train.lr": 1.0, "train.min_lr_ratio": 0.1}).train
    assert tc.learning_rate(0) == pytest.approx(1 / 4) and tc.learning_rate(3) == pytest.approx(1.0)
    assert tc.learning_rate(4) == pytest.approx(1.0) and tc.learning_rate(20) == pytest.approx(0.1)
    paper = PRESETS["paper"].train
    assert paper.learning_rate(100_000) == pytest.approx(5e-5) and paper.learning_rate(300_000) == pytest.approx(5e-5 * 0.05)


def test_train_writes_a_loadable_run_and_resumes_exactly(tiny_dataset, tmp_path):
    config = tiny_run(**{"train.steps": 8, "train.save_every": 4, "train.eval_every": 100})
    straight = tmp_path / "straight"
    train(config, tiny_dataset, straight, progress=False)
    final = load_file(straight / "model.safetensors")
    model = MotionTokenizer.from_pretrained(straight)
    assert model.frames_per_token == 4
    assert (straight / "normalization" / "std.npy").is_file() and any((straight / "tensorboard").iterdir())
    log = (straight / "train.log").read_text()
    assert "src/clip_short (10 frames < 16)" in log  # too short for the window: skipped and reported
    assert "src/clip_10 (NaN/infinite values" in log  # NaN clip: skipped with its name
    assert "val {" in log and "mpjpe_mm" in log

    # A kill right after the step-4 checkpoint: the newer checkpoint never got written.
    shutil.rmtree(straight / "checkpoints" / "step_00000008")
    (straight / "checkpoints" / "latest.json").write_text('{"dir": "step_00000004", "step": 4}')
    # ...of a run started by a version before the trainers shared TrainConfig: max_steps, no eps.
    old = json.loads((straight / "run_config.json").read_text())
    old["train"]["max_steps"] = old["train"].pop("steps")
    del old["train"]["eps"]
    (straight / "run_config.json").write_text(json.dumps(old))
    assert RunConfig.from_dict(old) == config
    train(config, tiny_dataset, straight, progress=False)
    assert "resumed from" in (straight / "train.log").read_text()
    resumed = load_file(straight / "model.safetensors")
    assert resumed.keys() == final.keys()
    for key in final:
        assert torch.equal(final[key], resumed[key]), key


def test_resume_refuses_a_different_model(tiny_dataset, tmp_path):
    config = tiny_run(**{"train.steps": 2, "train.save_every": 2, "train.eval_every": 100})
    train(config, tiny_dataset, tmp_path, progress=False)
    with pytest.raises(ValueError, match="model.width"):
        train(apply_overrides(config, ["model.width=24"]), tiny_dataset, tmp_path, progress=False)


def test_bf16_autocast_step_runs(tiny_dataset, tmp_path):
    config = tiny_run(**{"train.steps": 1, "train.eval_every": 100, "train.mixed_precision": "bf16"})
    model = train(config, tiny_dataset, tmp_path, progress=False)
    assert next(model.parameters()).dtype == torch.float32  # fp32 master weights


def test_stream_reader_trains_and_resumes_exactly(tiny_dataset, tmp_path):
    """reader=stream (block-shuffled reads through two loader workers): same weights after a kill + resume."""
    config = tiny_run(**{"train.steps": 6, "train.save_every": 3, "train.eval_every": 100, "train.reader": "stream",
                         "train.batch_size": 4})  # fmt: skip
    straight = tmp_path / "straight"
    train(config, tiny_dataset, straight, progress=False)
    final = load_file(straight / "model.safetensors")
    shutil.rmtree(straight / "checkpoints" / "step_00000006")
    (straight / "checkpoints" / "latest.json").write_text('{"dir": "step_00000003", "step": 3}')
    train(config, tiny_dataset, straight, progress=False)
    assert "resumed from" in (straight / "train.log").read_text()
    resumed = load_file(straight / "model.safetensors")
    for key in final:
        assert torch.equal(final[key], resumed[key]), key
    random_reader = tiny_run(**{"train.steps": 6, "train.save_every": 3, "train.eval_every": 100, "train.batch_size": 4})
    train(random_reader, tiny_dataset, tmp_path / "random", progress=False)
    other = load_file(tmp_path / "random" / "model.safetensors")
    assert any(not torch.equal(final[key], other[key]) for key in final)  # the stream really fed other windows


def test_balanced_windows_draw_rare_strata_more_often(tiny_dataset, monkeypatch, caplog):
    import numpy as np

    from motionmillion.tokenizer import encode
    from motionmillion.tokenizer.data import MotionClips

    clips = MotionClips(tiny_dataset, "train", min_frames=16)
    clips.balance(0.5)  # the tiny dataset has no import records: uniform clips, said in the log
    assert clips.clip_weights is None and "no import records" in caplog.text
    rare = clips.names[:1]
    monkeypatch.setattr(encode, "clip_strata", lambda root, names: {n: "src/rare" if n in rare else "src/common" for n in names})

    def rare_share(alpha: float) -> float:
        clips.balance(alpha)
        drawn = []
        for step in range(300):  # the window of the rare clip is recognised by its frames
            batch = clips.sample_windows(8, 16, seed=0, step=step)
            first = clips.normalizer.normalize(clips.clip(0)).astype(np.float32)
            drawn += [any(np.array_equal(w, first[s : s + 16]) for s in range(len(first) - 15)) for w in batch]
        return float(np.mean(drawn))

    uniform = 1 / len(clips)
    assert rare_share(1.0) == pytest.approx(uniform, abs=0.03)
    assert rare_share(0.0) == pytest.approx(0.5, abs=0.05)  # two strata, equally often
    with pytest.raises(ValueError, match="stratum_alpha"):
        tiny_run(**{"train.stratum_alpha": 0.5, "train.reader": "stream"})


def test_decoder_only_fine_tuning_keeps_the_token_ids(tiny_dataset, tmp_path):
    base = tiny_run(**{"train.steps": 4, "train.eval_every": 100})
    train(base, tiny_dataset, tmp_path / "base", progress=False)
    tuned_config = tiny_run(**{"train.steps": 4, "train.eval_every": 100, "train.lr": 1e-2, "loss.trajectory": 1.0,
                               "loss.foot_contact": 1.0, "train.init_from": str(tmp_path / "base"),
                               "train.decoder_only": True})  # fmt: skip
    train(tuned_config, tiny_dataset, tmp_path / "tuned", progress=False)
    before, after = load_file(tmp_path / "base" / "model.safetensors"), load_file(tmp_path / "tuned" / "model.safetensors")
    for key in before:
        same = torch.equal(before[key], after[key])
        assert same == (not key.startswith("decoder.")), key  # encoder and quantiser kept, decoder trained
    x = torch.randn(1, 16, 272)
    ids = [MotionTokenizer.from_pretrained(tmp_path / run).encode(x) for run in ("base", "tuned")]
    assert torch.equal(ids[0], ids[1])


def test_fine_tuning_refuses_another_architecture_or_no_start(tiny_dataset, tmp_path):
    train(tiny_run(**{"train.steps": 1, "train.eval_every": 100}), tiny_dataset, tmp_path / "base", progress=False)
    other = tiny_run(**{"train.steps": 1, "model.width": 24, "train.init_from": str(tmp_path / "base")})
    with pytest.raises(ValueError, match="architecture"):
        train(other, tiny_dataset, tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="decoder_only needs init_from"):
        tiny_run(**{"train.decoder_only": True})
