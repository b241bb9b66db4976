"""Slow: the runners and CLI with a real MotionPipeline (random tiny weights from the generator tests' helper)."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_pipeline_folder(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parents[1]))
    helpers = pytest.importorskip("generator.helpers")
    return helpers.make_pipeline_folder(tmp_path_factory.mktemp("pipe"))


def test_eval_generator_cli_with_real_pipeline(tmp_path, random_pipeline_folder, synthetic_dataset, tiny_evaluator):
    from motionmillion.evaluation.cli import eval_app

    out = tmp_path / "gen.json"
    args = ["generator", "--model", str(random_pipeline_folder), "--evaluator", str(tiny_evaluator[0]), "--data",
            str(synthetic_dataset), "--repeats", "2", "--mm-texts", "4", "--mm-samples", "2", "--json", str(out)]
    result = CliRunner().invoke(eval_app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["protocol"]["evaluator_sha256"] == tiny_evaluator[1].checksum
    assert set(data["results"]) == {"real", "gt_length", "own_length"}
    assert (tmp_path / "gen.md").is_file() and (tmp_path / "gen_samples.png").is_file()


def test_eval_prompts_cli_with_real_pipeline(tmp_path, random_pipeline_folder, tiny_evaluator):
    from importlib.resources import files

    from motionmillion.evaluation.cli import eval_app

    prompts = str(files("motionmillion") / "assets" / "eval" / "paraphrases.jsonl")
    out = tmp_path / "p.json"
    args = ["prompts", "--model", str(random_pipeline_folder), "--evaluator", str(tiny_evaluator[0]), "--prompts", prompts, "--json", str(out)]
    result = CliRunner().invoke(eval_app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["protocol"]["num_prompts"] >= 30
    assert "content_accuracy_text_candidates" in data["results"]["generated"]
