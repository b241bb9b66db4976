"""The training toolkit shared by the three trainers."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from motionmillion import training
from motionmillion.training import (
    Checkpoints,
    RunConfig,
    TrainConfig,
    apply_overrides,
    check_resume,
    lr_at,
    preset,
    resolve_mixed_precision,
)


def test_schedule_warms_up_then_follows_its_shape():
    assert lr_at(0, 1.0, 100, warmup_steps=4) == pytest.approx(0.25) and lr_at(3, 1.0, 100, 4) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 100, 4, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(50, 1.0, 100, 0, "multistep", milestones=[10, 40], gamma=0.5) == pytest.approx(0.25)
    assert lr_at(99, 2.0, 100, 0, "constant") == 2.0


def test_auto_precision_keeps_what_a_resumed_run_recorded():
    assert resolve_mixed_precision("auto", recorded="no") == "no"
    assert resolve_mixed_precision("auto", recorded="bf16") == "bf16"
    assert resolve_mixed_precision("no", recorded="bf16") == "no"  # an explicit choice wins
    assert resolve_mixed_precision("auto") in ("bf16", "no")
    with pytest.raises(ValueError, match="mixed_precision must be one of auto, bf16, no"):
        resolve_mixed_precision("fp8")


@dataclass
class _Model:
    width: int = 8
    lr: float = 0.1


@dataclass
class _Train(TrainConfig):
    steps: int = 10
    lr: float = 1.0
    window: int = 4  # a stage's own field


@dataclass
class _Run(RunConfig):
    model: _Model = field(default_factory=_Model)
    train: _Train = field(default_factory=_Train)


def test_overrides_by_key_or_section_with_json_values():
    out = apply_overrides(_Run(), ["width=16", "train.lr=3e-4", "steps=5", "milestones=[2,4]"])
    assert isinstance(out, _Run) and out.model.width == 16 and out.train.lr == 3e-4 and out.train.steps == 5
    assert out.train.milestones == [2, 4] and _Run().train.steps == 10  # the original is left as it was
    with pytest.raises(ValueError, match="'lr' exists in model and train; write section.lr"):
        apply_overrides(_Run(), ["lr=1"])
    with pytest.raises(ValueError, match="expected key=value"):
        apply_overrides(_Run(), ["steps"])
    with pytest.raises(ValueError, match="steps must be >= 1"):
        apply_overrides(_Run(), ["steps=0"])
    with pytest.raises(ValueError, match="schedule must be one of cosine, multistep, constant"):
        apply_overrides(_Run(), ["schedule=linear"])


def test_presets_are_copies_and_unknown_names_are_refused():
    presets = {"small": _Run(train=_Train(milestones=[5]))}
    mine = preset(presets, "small")
    mine.train.milestones.append(7)
    assert presets["small"].train.milestones == [5]
    with pytest.raises(ValueError, match="unknown preset 'large'; choose one of small"):
        preset(presets, "large")


def test_saved_configs_load_with_old_names_and_missing_settings(tmp_path: Path):
    # What older versions wrote: the generator's val_every, the tokenizer's max_steps, no eps/schedule.
    old = {"model": {"width": 9}, "train": {"max_steps": 7, "val_every": 3, "lr": 0.5}}
    run = _Run.from_dict(json.loads(json.dumps(old)), "run.json")
    assert run.train.steps == 7 and run.train.eval_every == 3 and run.train.schedule == "cosine" and run.model.width == 9
    assert _Run.from_dict(run.to_dict()) == run  # JSON round trip (betas: list -> tuple)
    with pytest.raises(ValueError, match=r"run.json: unknown _Train fields: \['bogus'\]"):
        _Run.from_dict({"train": {"bogus": 1}}, "run.json")
    with pytest.raises(ValueError, match="run.json: unknown sections"):
        _Run.from_dict({"optimizer": {}}, "run.json")
    with pytest.raises(ValueError, match="run.json: invalid _Train: lr must be positive"):
        _Run.from_dict({"train": {"lr": 0}}, "run.json")


def test_every_stage_shares_the_train_fields_and_the_preset_form():
    from motionmillion.evaluation import config as evaluation
    from motionmillion.generator import config as generator
    from motionmillion.tokenizer import config as tokenizer

    shared = {f for f in TrainConfig.__dataclass_fields__}
    for stage in (tokenizer, generator, evaluation):
        assert issubclass(stage.TrainConfig, TrainConfig) and issubclass(stage.RunConfig, RunConfig)
        with pytest.raises(ValueError, match=f"unknown {stage.RunConfig.STAGE} preset 'nope'; choose one of"):
            preset(stage.PRESETS, "nope")
        assert shared <= set(stage.TrainConfig.__dataclass_fields__)
        assert all(isinstance(run, stage.RunConfig) for run in stage.PRESETS.values())
        for name in stage.PRESETS:
            assert stage.RunConfig.from_dict(json.loads(json.dumps(preset(stage.PRESETS, name).to_dict()))) == stage.PRESETS[name]


def test_time_budget_counts_earlier_runs():
    assert training.TimeBudget(0.0, elapsed_before=1e6).check()[1] is False  # 0 = no limit
    elapsed, up = training.TimeBudget(1.0, elapsed_before=61.0).check()
    assert up and elapsed >= 61.0


def test_checkpoints_are_complete_before_named_and_pruned(tmp_path: Path):
    checkpoints = Checkpoints(tmp_path, keep=2)
    assert checkpoints.latest() is None
    for step in (5, 10, 15):
        checkpoints.save(step, lambda folder: (folder / "weights").write_text("w"), {"mixed_precision": "no"})
    folder, state = checkpoints.latest()
    assert folder.name == "step_00000015" and state == {"step": 15, "mixed_precision": "no"}
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json", "step_00000010", "step_00000015"]

    def crash(folder):
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        checkpoints.save(20, crash, {})
    assert checkpoints.latest()[1]["step"] == 15  # the half-written one never became "latest"


def test_resume_check_names_the_changed_keys():
    saved = {"model": {"width": 8}, "train": {"lr": 1.0, "steps": 10, "betas": [0.9, 0.99]}}
    check_resume(saved, {"model": {"width": 8}, "train": {"lr": 1.0, "steps": 20, "betas": (0.9, 0.99)}},
                 Path("run.json"), may_change={"steps"})  # fmt: skip
    with pytest.raises(ValueError, match=r"run.json: this run was started with a different config \(model.width: 8 -> 9\)"):
        check_resume(saved, {"model": {"width": 9}, "train": saved["train"]}, Path("run.json"))
