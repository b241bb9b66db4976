"""Bad input across the command line: one line `error: ...` naming the file or option, exit 2 for usage
errors and 1 for failures, never a traceback. The table of the closing note comes from these cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from motionmillion.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
BANDAI = FIXTURES / "bvh" / "bandai"
WALK = BANDAI / "Bandai-Namco-Research-Motiondataset-1" / "data" / "dataset-1_walk_normal_001.bvh"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    nan = np.zeros((30, 272), dtype=np.float32)
    nan[[3, 17]] = np.nan
    np.save(root / "nan.npy", nan)
    np.save(root / "wrong_shape.npy", np.zeros((30, 100), dtype=np.float32))
    (root / "notes.txt").write_text("not a motion")
    (root / "a_file").write_text("x")
    (root / "empty").mkdir()
    broken = root / "broken_src" / "Bandai-Namco-Research-Motiondataset-1" / "data"
    broken.mkdir(parents=True)
    (broken / "dataset-1_walk_normal_009.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")  # cut off
    lines = WALK.read_text().splitlines()
    (root / "frame_time.bvh").write_text("\n".join("Frame Time: 1e30" if l.startswith("Frame Time") else l for l in lines))
    (root / "model_without_evaluator").mkdir()
    (root / "prompts.txt").write_text("# only a comment\n")
    return {"root": root, "nan": root / "nan.npy", "shape": root / "wrong_shape.npy", "txt": root / "notes.txt",
            "file": root / "a_file", "empty": root / "empty", "broken": root / "broken_src",
            "frame_time": root / "frame_time.bvh", "no_eval": root / "model_without_evaluator",
            "prompts": root / "prompts.txt"}  # fmt: skip


# (command line with {placeholders}, exit code, a piece of the one-line message)
CASES = [
    ("generate ''", 2, "the prompt is empty"),
    ("generate walk --seconds 0.01", 2, "seconds must be in [1, 10]"),
    ("generate walk --seconds 60", 2, "seconds must be in [1, 10]"),
    ("generate walk --seed 99999999999999999999", 2, "seed must be in"),
    ("generate walk --temperature -1", 2, "temperature must be >= 0"),
    ("generate walk --top-p 2", 2, "top_p must be in (0, 1]"),
    ("generate walk --num-samples 0", 2, "--num-samples must be >= 1"),
    ("generate walk --device tpu", 2, "device 'tpu' is not a torch device"),
    ("generate walk --out {file}", 2, "is a file, not a folder"),
    ("generate walk --model {empty}", 2, "incomplete pipeline folder"),
    ("generate --prompts {root}/missing.txt", 2, "cannot read the prompt file"),
    ("generate --prompts {prompts}", 2, "no prompts in the file"),
    ("generate walk --prompts {prompts}", 2, "give one of a PROMPT, --prompts FILE or --timeline"),
    ("eval tokenizer --data {root}/nowhere", 2, "not a MotionMillion dataset"),
    ("eval tokenizer --model {empty} --data {root}/nowhere", 2, "config.json: missing"),
    ("eval generator --model {no_eval} --data {root} --json {root}/o.json", 2, "has no evaluator/ folder"),
    ("export {root}/missing.npy --bvh {root}/o.bvh", 2, "missing.npy: no such file"),
    ("export {nan} --bvh {root}/o.bvh", 2, "in 2 frame(s): 3, 17"),
    ("export {shape} --bvh {root}/o.bvh", 2, "expected (T, 272) features or (T, 22, 3) joints"),
    (f"export {WALK} --bvh {{root}}/o.bvh --rig nope", 2, "unknown rig 'nope'"),
    (f"export {WALK} --bvh {{root}}/o.bvh --unit-scale 0", 2, "unit_scale (file units per metre) must be positive"),
    (f"export {WALK}", 2, "give at least one of --gltf, --fbx, --bvh"),
    ("render {txt} -o {root}/o.mp4", 2, "unsupported motion file"),
    (f"render {WALK} -o {{root}}/o.mp4 --size 0", 2, "size must be 64-2048 pixels"),
    (f"render {WALK} -o {{root}}/o.mp4 --size 99999", 2, "size must be 64-2048 pixels"),
    (f"render {WALK} -o {{root}}/o.avi", 2, "output must end in .mp4 or .gif"),
    ("render {frame_time} -o {root}/o.mp4", 2, "Frame Time 1e30 s is no capture rate"),
    ("postprocess {root}/missing.npy --out {root}/pp", 2, "missing.npy"),
    (f"postprocess {WALK} --out {{root}}/pp --window 4", 2, "window"),
    ("data import-bvh {empty} --recipe bandai --out {root}/ds", 2, "no .bvh files in this folder"),
    ("data import-bvh {empty} --recipe nope --out {root}/ds", 2, "unknown recipe 'nope'"),
    ("data import-bvh {broken} --recipe bandai --out {root}/ds_broken --no-finalize", 1, "1 of 1 BVH file(s) could not be imported"),
    ("data stats {root}/nowhere", 2, "not a MotionMillion dataset"),
    ("tokenizer train --data {root}/nowhere --out {root}/t --config nope", 2, "unknown tokenizer preset 'nope'"),
    ("tokenizer train --data {root}/nowhere --out {root}/t --set nonsense=1", 2, "no setting 'nonsense'"),
    ("tokenizer train --data {root}/nowhere --out {root}/t --set lr=-1", 2, "--set: lr must be positive, got -1"),
    ("generator train --tokens {root}/nowhere --out {root}/g --set bogus=1", 2, "no setting 'bogus' in model, train"),
    ("generator train --tokens {root}/nowhere --out {root}/g", 2, "nowhere"),
    ("evaluator train --data {root}/nowhere --out {root}/e", 2, "not a MotionMillion dataset"),
    ("evaluator train --data {root}/nowhere --out {root}/e --set mixed=1", 2, "no setting 'mixed'"),
]


def run(line: str, files: dict[str, Path]):
    import shlex

    args = shlex.split(line.format(**{k: str(v) for k, v in files.items()}))
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("line, code, message", CASES, ids=[c[0].split(" {")[0][:40] for c in CASES])
def test_bad_input_is_one_clear_line(files, line, code, message):
    result = run(line, files)
    output = result.output.strip()
    assert result.exit_code == code, output
    assert "Traceback" not in output
    errors = [l for l in output.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], output


def test_debug_shows_the_traceback(files):
    result = CliRunner().invoke(app, ["--debug", "render", str(files["txt"]), "-o", str(files["root"] / "o.mp4")])
    assert result.exit_code != 0 and result.exception is not None  # raised, not turned into one line


if __name__ == "__main__":  # prints the table of the closing note: python tests/test_cli_errors.py
    import tempfile

    class _Factory:
        def mktemp(self, name):
            return Path(tempfile.mkdtemp(prefix=name))

    made = files.__wrapped__(_Factory())
    print("| command | exit | message |\n|---|---|---|")
    for line, _, _ in CASES:
        result = run(line, made)
        error = next((l for l in result.output.splitlines() if l.startswith("error: ")), result.output.strip()[-120:])
        shown = line.format(**{k: f"<{k}>" for k in made}).replace(str(FIXTURES), "tests/fixtures")
        print(f"| `motionmillion {shown}` | {result.exit_code} | {json.dumps(error)[1:-1]} |")
