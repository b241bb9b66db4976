"""The training toolkit shared by the three trainers."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from motionmillion.training import Checkpoints, apply_overrides, check_resume, lr_at, resolve_mixed_precision


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
class _Train:
    lr: float = 1.0
    steps: int = 10

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("steps must be positive")


def test_overrides_by_key_or_section_with_json_values():
    out = apply_overrides({"model": _Model(), "train": _Train()}, ["width=16", "train.lr=3e-4", "steps=5"])
    assert out["model"].width == 16 and out["train"].lr == 3e-4 and out["train"].steps == 5
    with pytest.raises(ValueError, match="'lr' exists in model and train; write section.lr"):
        apply_overrides({"model": _Model(), "train": _Train()}, ["lr=1"])
    with pytest.raises(ValueError, match="expected key=value"):
        apply_overrides({"train": _Train()}, ["steps"])
    with pytest.raises(ValueError, match="steps must be positive"):
        apply_overrides({"train": _Train()}, ["steps=0"])


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
