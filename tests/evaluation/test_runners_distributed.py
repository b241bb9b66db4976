"""Evaluation runners under `accelerate launch` with two CPU processes (gloo): the generation batches are
shared between the ranks and every rank ends with the results one process gets, in order."""

import pytest
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from motionmillion.evaluation.generation import _rank_and_world, generate

    calls = []

    def pipe(prompts, seconds=None, num_samples=1, seed=0):
        calls.append(len(prompts))
        if "bad" in prompts[0]:
            raise RuntimeError("cannot")
        return [np.full((10 + i, 272), seed + i, dtype=np.float32) for i in range(len(prompts))]

    prompts = [f"prompt {i}" for i in range(9)] + ["bad prompt"]
    result = generate(pipe, prompts, None, seed=100, batch_size=3)
    rank, world = _rank_and_world()
    out = {"world": world, "calls": calls, "errors": result.errors,
           "features": [None if f is None else [len(f), float(f[0, 0])] for f in result.features]}
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(out))
""")


@pytest.mark.slow  # multi-process: run with -m slow
def test_two_ranks_share_the_batches_and_agree_with_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    alone = json.loads((tmp_path / "rank0.json").read_text())
    (tmp_path / "rank0.json").unlink()
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run(
        [str(accelerate), "launch", "--config_file", str(REPO / "configs/accelerate/cpu_ddp.yaml"),
         "--main_process_port", "0", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert alone["world"] == 1 and all(r["world"] == 2 for r in ranks)
    assert sum(sum(r["calls"]) for r in ranks) == sum(alone["calls"])  # no batch generated twice
    assert all(r["calls"] for r in ranks)
    for r in ranks:
        assert r["features"] == alone["features"] and r["errors"] == alone["errors"]
    assert alone["features"][9] is None and alone["features"][4] == [11, 104.0]
