"""The evaluation CLI on the synthetic on-disk dataset: train writes a loadable evaluator; bad input exits 2."""

import json

from typer.testing import CliRunner

from motionmillion.cli import app
from motionmillion.evaluation.evaluator import Evaluator


def test_evaluator_train_cli(tmp_path, synthetic_dataset):
    out = tmp_path / "run"
    args = ["evaluator", "train", "--data", str(synthetic_dataset), "--out", str(out), "--config", "tiny",
            "--set", "steps=4", "--set", "batch_size=16"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "t2m@5" in result.output
    assert (out / "train.log").is_file() and json.loads((out / "metrics.json").read_text())["test"]["num_clips"] == 40
    assert Evaluator.from_pretrained(out).encode_text(["a person bows politely"]).shape == (1, 64)


def test_cli_bad_inputs(tmp_path):
    result = CliRunner().invoke(app, ["evaluator", "train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not a MotionMillion dataset" in result.output
    model = tmp_path / "model"
    model.mkdir()
    result = CliRunner().invoke(app, ["eval", "generator", "--model", str(model), "--data", str(tmp_path), "--json", str(tmp_path / "o.json")])
    assert result.exit_code == 2 and "no evaluator/ folder" in result.output
