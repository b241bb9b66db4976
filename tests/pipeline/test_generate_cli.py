import json
import os
import stat

import pytest
from generator import helpers
from typer.testing import CliRunner

from motionmillion.cli import app

runner = CliRunner()


def generate(*args: str):
    return runner.invoke(app, ["generate", *args])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return helpers.make_pipeline_folder(tmp_path_factory.mktemp("cli"))


@pytest.mark.parametrize("video", [pytest.param(True, marks=pytest.mark.slow), False])
def test_generate_one_prompt_writes_every_file(model_folder, tmp_path, video):
    result = generate(*["a person waves the left hand", "--model", str(model_folder), "--out", str(tmp_path),
                                 "--seconds", "1", "--seed", "3", "--glb", *([] if video else ["--no-video"])])  # fmt: skip
    assert result.exit_code == 0, result.output
    stems = sorted(p.stem for p in tmp_path.glob("*.json"))
    assert stems == ["001_a_person_waves_the_left_hand_s0"]
    for stem in stems:
        for suffix in (".npy", "_joints.npy", ".bvh", ".glb"):
            assert (tmp_path / f"{stem}{suffix}").is_file(), suffix
        assert (tmp_path / f"{stem}.mp4").is_file() == video
    info = json.loads((tmp_path / f"{stems[0]}.json").read_text())
    assert info["text"] == "a person waves the left hand" and info["seed"] == 3
    assert 0.85 <= info["seconds"] <= 1.2
    assert stat.S_IMODE(os.stat(tmp_path / f"{stems[0]}.bvh").st_mode) == 0o666 & ~_umask()


def test_generate_prompt_file_in_batches_with_summary(model_folder, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na person walks\n\nsomeone jumps\na man sits down\n")
    out = tmp_path / "out"
    result = generate(*["--prompts", str(prompts), "--model", str(model_folder), "--out", str(out),
                                 "--seconds", "1", "--batch-size", "4", "--num-samples", "2", "--no-video",
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
        (["walk", "--num-samples", "0"], "--num-samples"),
        (["walk", "--seed", str(2**63)], "seed must be in"),
        (["walk", "--temperature", "-1"], "temperature"),
        (["walk", "--seconds", "0.01"], "seconds must be in"),
        ([], "give one of a PROMPT, --prompts FILE or --timeline"),
    ],
)
def test_bad_input_exits_with_a_clear_message(model_folder, tmp_path, args, message):
    result = generate(*[*args, "--model", str(model_folder), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = generate(*["walk", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no such pipeline folder" in result.output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_out_must_be_new_or_overwritten_and_never_mixed(model_folder, tmp_path):
    out = tmp_path / "out"
    assert generate("walk", "--model", str(model_folder), "--out", str(out), "--seconds", "1", "--seed", "1").exit_code == 0

    assert any(p.suffix == ".mp4" for p in out.iterdir())
    again = generate("walk", "--model", str(model_folder), "--out", str(out), "--seconds", "1", "--no-video")
    assert again.exit_code == 2 and "already holds files" in again.output and "--overwrite" in again.output
    user_file = out / "notes.txt"
    user_file.write_text("mine")
    replaced = generate("run", "--model", str(model_folder), "--out", str(out), "--seconds", "1", "--no-video", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    names = {p.name for p in out.iterdir()}
    assert not any("walk" in name for name in names)  # the earlier run's files (its MP4 too) are gone ...
    assert "notes.txt" in names  # ... and nothing else was touched
    assert json.loads((out / ".motionmillion-run").read_text())["files"]


def test_out_that_is_a_file_or_locked_is_refused_before_loading(model_folder, tmp_path):
    import fcntl

    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = generate("walk", "--model", str(tmp_path / "missing-model"), "--out", str(a_file))
    assert result.exit_code == 2 and "is a file" in result.output  # checked before the (missing) model
    busy = tmp_path / "busy"
    busy.mkdir()
    with open(busy / ".motionmillion.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = generate("walk", "--model", str(model_folder), "--out", str(busy), "--seconds", "1", "--no-video")
    assert result.exit_code == 2 and "another run" in result.output
    assert [p.name for p in busy.iterdir()] == [".motionmillion.lock"]
