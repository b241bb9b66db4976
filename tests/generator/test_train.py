import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from motionmillion.generator.config import PRESETS, GeneratorConfig, RunConfig, TrainConfig
from motionmillion.generator.data import TokenDataset, open_encoded
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.train import train
from motionmillion.training import apply_overrides, preset

from . import helpers

HERE = Path(__file__).parent


def tiny_run(steps: int, **overrides) -> RunConfig:
    settings = dict(steps=steps, batch_size=8, lr=3e-3, warmup_steps=3, log_every=4, save_every=4, mixed_precision="no")
    settings.update(overrides)
    return RunConfig(GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32), TrainConfig(**settings))


def losses_in_log(run: Path) -> list[float]:
    return [float(m) for m in re.findall(r"step \d+ loss ([0-9.]+)", (run / "train.log").read_text())]


def test_interrupted_and_resumed_training_equals_a_straight_run(tmp_path):
    encoded = helpers.make_encoded(tmp_path / "enc")
    straight = helpers.prepared_run(tmp_path, "straight")
    train(tiny_run(8), encoded, straight)
    resumed = helpers.prepared_run(tmp_path, "resumed")
    train(tiny_run(8), encoded, resumed, max_steps_this_run=5)  # "killed" after step 5...
    assert json.loads((resumed / "checkpoints" / "latest.json").read_text())["step"] == 5
    (resumed / "checkpoints" / ".step_00000008.tmp").mkdir()  # ...even mid-way through writing a checkpoint
    train(tiny_run(8), encoded, resumed)
    a, b = load_file(straight / "generator" / "model.safetensors"), load_file(resumed / "generator" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert "resumed from" in (resumed / "train.log").read_text()
    losses = losses_in_log(straight)
    assert losses[-1] < losses[0]
    model = MotionGPT.from_pretrained(straight / "generator")
    assert model.config.codebook_size == 16 and model.config.text_dim == 24
    run_info = json.loads((straight / "run.json").read_text())
    assert run_info["frames_per_token"] == 2 and run_info["text_encoder"]["max_length"] == 150


def test_eval_every_keeps_the_lowest_val_loss_weights(tmp_path):
    encoded = helpers.make_encoded(tmp_path / "enc")
    run = helpers.prepared_run(tmp_path, "run")
    train(tiny_run(8, eval_every=2, eval_batches=1), encoded, run)
    best = json.loads((run / "generator_best" / "val.json").read_text())
    logged = {int(k): float(v) for k, v in re.findall(r"step (\d+) val loss ([0-9.]+)", (run / "train.log").read_text())}
    assert best["step"] in (2, 4, 6, 8) and best["val_loss"] == pytest.approx(min(logged.values()), abs=1e-4)
    assert MotionGPT.from_pretrained(run / "generator_best").config.codebook_size == 16


def test_a_run_shorter_than_eval_every_still_keeps_best_weights(tmp_path):
    encoded = helpers.make_encoded(tmp_path / "enc")
    run = helpers.prepared_run(tmp_path, "run")
    train(tiny_run(4, eval_every=200, eval_batches=1), encoded, run)  # the recipe's quick trial
    assert json.loads((run / "generator_best" / "val.json").read_text())["step"] == 4


def test_resume_refuses_a_changed_config(tmp_path):
    encoded = helpers.make_encoded(tmp_path / "enc")
    run = helpers.prepared_run(tmp_path, "run")
    train(tiny_run(8), encoded, run, max_steps_this_run=4)
    with pytest.raises(ValueError, match=r"different config \(train.lr: 0.003 -> 0.01\)"):
        train(tiny_run(8, lr=0.01), encoded, run)
    # A run.json of a version before the trainers shared TrainConfig (val_every, val_batches, no schedule)...
    info = json.loads((run / "run.json").read_text())
    info["train"]["val_every"], info["train"]["val_batches"] = info["train"].pop("eval_every"), info["train"].pop("eval_batches")
    for name in ("schedule", "milestones", "gamma", "max_minutes"):
        del info["train"][name]
    (run / "run.json").write_text(json.dumps(info))
    train(tiny_run(12), encoded, run)  # ...resumes, and a longer schedule may continue (steps may change)
    assert "resumed from" in (run / "train.log").read_text()


def test_max_minutes_stops_with_a_checkpoint_and_a_saved_generator(tmp_path):
    encoded = helpers.make_encoded(tmp_path / "enc")
    run = helpers.prepared_run(tmp_path, "run")
    train(tiny_run(8, max_minutes=1e-9), encoded, run)  # spent after the first step, whatever the machine
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 1
    assert (run / "generator" / "model.safetensors").is_file() and "time limit" in (run / "train.log").read_text()
    train(tiny_run(8, max_minutes=0.0), encoded, run)  # a larger budget (0 = none) continues the run
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 8


def test_stratum_alpha_tempers_how_often_rare_strata_are_drawn(tmp_path, caplog):
    folder = helpers.make_encoded(tmp_path / "enc", items=44)
    train_names = json.loads((folder / "splits.json").read_text())["train"]  # 40 items
    strata = {name: ("src/rare/a" if i < 4 else f"src/common/{i % 3}") for i, name in enumerate(train_names)}
    (folder / "strata.json").write_text(json.dumps(strata))
    encoded = open_encoded(folder)

    def rare_share(alpha: float, levels: int = 2) -> float:
        data = TokenDataset(encoded, "train", max_motion_tokens=10, stratum_alpha=alpha, stratum_levels=levels)
        drawn = [i for step in range(400) for i in data.item_order(0, step, 0, 1, 8)]
        return float(np.mean(np.array(drawn) < 4))

    assert rare_share(1.0) == pytest.approx(0.1)  # the data as it is: 4 of 40
    assert rare_share(0.0) == pytest.approx(0.5, abs=0.04)  # every stratum equally often
    assert 0.2 < rare_share(0.5) < 0.3  # sqrt(4) / (sqrt(4) + sqrt(36)) = 0.25
    assert rare_share(0.0, levels=0) == pytest.approx(0.25, abs=0.04)  # 4 whole strata: "common" is split in 3
    (folder / "strata.json").unlink()
    data = TokenDataset(open_encoded(folder), "train", max_motion_tokens=10, stratum_alpha=0.5)
    assert data.sampling_weights is None and "no strata.json" in caplog.text
    with pytest.raises(ValueError, match="stratum_alpha"):
        TrainConfig(stratum_alpha=1.5)


def test_batches_are_deterministic_augmented_and_padded(tmp_path):
    encoded = open_encoded(helpers.make_encoded(tmp_path / "enc"))
    data = TokenDataset(encoded, "train", max_motion_tokens=10)
    cache_dir = helpers.fake_text_cache(tmp_path / "cache", helpers.all_captions())
    from motionmillion.text import TextFeatureCache

    cache = TextFeatureCache(cache_dir)
    a = data.make_batch(cache, 1, 5, 0, 2, 8, 1 / 3, 0.5)
    b = data.make_batch(cache, 1, 5, 0, 2, 8, 1 / 3, 0.5)
    other_rank = data.make_batch(cache, 1, 5, 1, 2, 8, 1 / 3, 0.5)
    assert torch.equal(a.tokens, b.tokens) and a.captions == b.captions
    assert not torch.equal(a.tokens, other_rank.tokens[:, : a.tokens.shape[1]]) or a.captions != other_rank.captions
    end, pad = 16, 17
    for row in a.tokens.tolist():
        assert row.count(end) == 1
        assert all(t == pad for t in row[row.index(end) + 1 :])
        assert row.index(end) <= 10
    # one epoch visits every item once per rank-interleaved global batch
    seen = [i for step in range(len(data) // 4) for rank in (0, 1) for i in data.item_order(3, step, rank, 2, 2)]
    assert sorted(seen) == list(range(len(data)))
    # augmentation drops exactly one token at the head or the tail with probability ~1/3
    lengths = [len(c) for c in data.codes]
    trimmed = 0
    for step in range(60):
        batch = data.make_batch(cache, 0, step, 0, 1, 8, 1 / 3, 0.0, augment=True)
        order = data.item_order(0, step, 0, 1, 8)
        for row, index in zip(batch.tokens.tolist(), order):
            n = row.index(end)
            assert n in (min(lengths[index], 10), min(lengths[index], 10) - 1)
            trimmed += n != min(lengths[index], 10)
    assert 0.25 < trimmed / 480 < 0.42


def test_cross_clip_context_is_given_not_predicted(tmp_path):
    encoded = open_encoded(helpers.make_encoded(tmp_path / "enc"))
    data = TokenDataset(encoded, "train", max_motion_tokens=10)
    from motionmillion.text import TextFeatureCache

    cache = TextFeatureCache(helpers.fake_text_cache(tmp_path / "cache", helpers.all_captions()))
    end, pad = 16, 17
    plain = data.make_batch(cache, 0, 3, 0, 1, 8, 0.0, 0.0)
    assert torch.equal(plain.targets, plain.tokens)  # no context asked for: the batch of before
    batch = data.make_batch(cache, 0, 3, 0, 1, 8, 0.0, 0.0, context_prob=1.0, max_context_tokens=4, max_motion_tokens=10)
    assert torch.equal(batch.tokens, data.make_batch(cache, 0, 3, 0, 1, 8, 0.0, 0.0, context_prob=1.0,
                                                     max_context_tokens=4, max_motion_tokens=10).tokens)  # fmt: skip
    windows = {tuple(c[i : i + n]) for c in data.codes for n in range(1, 5) for i in range(len(c) - n + 1)}
    for index, row, target, left in zip(data.item_order(0, 3, 0, 1, 8), batch.tokens.tolist(), batch.targets.tolist(),
                                         batch.remaining.tolist()):  # fmt: skip
        given = next(i for i, t in enumerate(target) if t != pad)  # context length: ignored by the loss
        assert 1 <= given <= 4 and tuple(row[:given]) in windows  # a window of some clip
        stop = row.index(end)
        assert row[given:stop] == data.codes[index][: stop - given].tolist() and stop <= 10
        assert target[given:] == row[given:]
        assert left[: stop + 1] == list(range(stop, -1, -1))  # what remains counts the context too, as sampling does


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(steps=100, warmup_steps=10, lr=1.0)
    values = [config.learning_rate(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:])) and values[-1] < 0.01


def test_overrides_reach_the_right_config():
    run = apply_overrides(preset(PRESETS, "cpu-tiny"), ["n_layer=3", "lr=0.01", "cond_drop_prob=0.2", "eval_every=50"])
    assert run.model.n_layer == 3 and run.model.cond_drop_prob == 0.2 and run.train.lr == 0.01 and run.train.eval_every == 50
    assert PRESETS["cpu-tiny"].model.n_layer == 4  # the preset itself is left as it was
    with pytest.raises(ValueError, match="no setting 'bogus' in model, train"):
        apply_overrides(run, ["bogus=1"])


def test_missing_encoded_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        open_encoded(tmp_path)


def _launch(tmp_path: Path, extra: list[str], steps: int, kind: str, run_name: str = "run",
            stop_after: int | None = None) -> Path:
    encoded = helpers.make_encoded(tmp_path / "enc", items=36)
    run = tmp_path / run_name
    if not run.exists():
        helpers.prepared_run(tmp_path, run_name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent.parent)}
    command = [sys.executable, "-m", "accelerate.commands.launch", *extra, "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               str(HERE / "distributed_train.py"), str(encoded), str(run), str(steps)]  # fmt: skip
    if stop_after is not None:
        command.append(str(stop_after))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((run / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["sha256"] == ranks[1]["sha256"] and ranks[0]["numel"] == ranks[1]["numel"], ranks
    losses = losses_in_log(run)
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    assert (run / "generator" / "model.safetensors").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["num_processes"] == 2 and info["distributed_type"] == kind
    return run


@pytest.mark.slow  # multi-process: run with -m slow
def test_ddp_two_cpu_processes_agree_and_learn(tmp_path):
    kind = "MULTI_GPU" if torch.cuda.device_count() >= 2 else "MULTI_CPU"  # CPU DDP is "MULTI_CPU" (gloo)
    rank_0 = json.loads((_launch(tmp_path, ["--multi_gpu"], steps=10, kind=kind) / "rank_0.json").read_text())
    assert rank_0["local_numel"] == rank_0["numel"]  # DDP: every rank holds the whole model


def test_fsdp_needs_a_multi_process_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="multi-process launch"):
        train(tiny_run(2), helpers.make_encoded(tmp_path / "enc"), helpers.prepared_run(tmp_path, "run"))


@pytest.mark.slow
def test_fsdp_two_processes_shard_agree_learn_and_resume(tmp_path):
    """FSDP2 really shards (each rank holds about half the values), on CPU over gloo or on GPUs; an interrupted
    and resumed run (full safetensors checkpoints) ends with exactly the weights of a straight run."""
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp.yaml"
    straight = _launch(tmp_path, ["--config_file", str(config)], steps=12, kind="FSDP2", run_name="straight")
    ranks = [json.loads((straight / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert all(r["local_numel"] < 0.6 * r["numel"] for r in ranks), ranks
    assert sum(r["local_numel"] for r in ranks) >= ranks[0]["numel"], ranks
    checkpoint = straight / "checkpoints" / "step_0000010"
    assert set(load_file(checkpoint / "model.safetensors")) == set(load_file(straight / "generator" / "model.safetensors"))
    assert json.loads((checkpoint / "optimizer.json").read_text())["param_groups"]

    resumed = _launch(tmp_path, ["--config_file", str(config)], steps=12, kind="FSDP2", run_name="resumed", stop_after=7)
    assert json.loads((resumed / "checkpoints" / "latest.json").read_text())["step"] == 7
    _launch(tmp_path, ["--config_file", str(config)], steps=12, kind="FSDP2", run_name="resumed")
    assert "resumed from" in (resumed / "train.log").read_text()
    a, b = load_file(straight / "generator" / "model.safetensors"), load_file(resumed / "generator" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_deepspeed_zero2_two_processes_agree_and_learn(tmp_path):
    pytest.importorskip("deepspeed")
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "deepspeed_zero2.yaml"
    _launch(tmp_path, ["--config_file", str(config)], steps=15, kind="DEEPSPEED")
