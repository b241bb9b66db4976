import json

import pytest
import typer
from typer.testing import CliRunner

from motionmillion.generator.cli import generate_command

from . import helpers

app = typer.Typer()
app.command()(generate_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return helpers.make_pipeline_folder(tmp_path_factory.mktemp("cli"))


@pytest.mark.parametrize("video", [pytest.param(True, marks=pytest.mark.slow), False])
def test_generate_one_prompt_writes_every_file(model_folder, tmp_path, video):
    result = runner.invoke(app, ["a person waves the left hand", "--model", str(model_folder), "--out", str(tmp_path),
                                 "--seconds", "1", "--seed", "3", *([] if video else ["--no-video"])])  # fmt: skip
    assert result.exit_code == 0, result.output
    stems = sorted(p.stem for p in tmp_path.glob("*.json"))
    assert stems == ["001_a_person_waves_the_left_hand_s0"]
    for stem in stems:
        for suffix in (".npy", "_joints.npy", ".bvh"):
            assert (tmp_path / f"{stem}{suffix}").is_file(), suffix
        assert (tmp_path / f"{stem}.mp4").is_file() == video
    info = json.loads((tmp_path / f"{stems[0]}.json").read_text())
    assert info["prompt"] == "a person waves the left hand" and info["seed"] == 3
    assert 0.85 <= info["duration"] <= 1.2


def test_generate_prompt_file_in_batches_with_summary(model_folder, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na person walks\n\nsomeone jumps\na man sits down\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["--prompts", str(prompts), "--model", str(model_folder), "--out", str(out),
                                 "--seconds", "0.5", "--batch-size", "4", "--num-samples", "2", "--no-video",
                                 "--seed", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 motion(s) written" in result.output
    assert len(list(out.glob("*.bvh"))) == 6 and not list(out.glob("*.mp4"))
    seeds = sorted(json.loads(p.read_text())["seed"] for p in out.glob("*.json"))
    assert seeds == list(range(6))  # seeds do not depend on the batch size


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "empty"),
        (["walk", "--seconds", "0"], "seconds must be in"),
        (["walk", "--seconds", "11"], "seconds must be in"),
        (["walk", "--num-samples", "0"], "num_samples"),
        ([], "either a PROMPT or --prompts"),
    ],
)
def test_bad_input_exits_with_a_clear_message(model_folder, tmp_path, args, message):
    result = runner.invoke(app, [*args, "--model", str(model_folder), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["walk", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no such pipeline folder" in result.output
