"""`tokenizer encode` under `accelerate launch` with two CPU processes (gloo): the ranks share the chunks
and the result is byte-identical to a one-process encode."""

import pytest
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from motionmillion.tokenizer import encode as encode_module
from motionmillion.tokenizer.config import PRESETS
from motionmillion.tokenizer.encode import encode_dataset
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.training import preset

REPO = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from accelerate import PartialState
    from motionmillion.tokenizer import encode as encode_module
    from motionmillion.tokenizer.model import MotionTokenizer

    encode_module.CHUNK = 3  # several chunks for each rank
    seen = []
    real_encode = MotionTokenizer.encode
    def counting_encode(self, x):
        seen.append(1)
        return real_encode(self, x)
    MotionTokenizer.encode = counting_encode
    model, data, out = sys.argv[1:4]
    encode_module.encode_dataset(model, data, out, progress=False)
    import torch
    state = PartialState(cpu=not torch.cuda.is_available())
    Path(out, f"rank{state.process_index}.json").write_text(json.dumps({"clips": len(seen), "world": state.num_processes}))
""")


@pytest.mark.slow  # multi-process: run with -m slow
def test_two_processes_share_the_chunks_and_write_what_one_writes(tiny_dataset, tmp_path, monkeypatch):
    model = tmp_path / "tok"
    torch.manual_seed(0)
    MotionTokenizer(preset(PRESETS, "tiny").model).save_pretrained(model)
    monkeypatch.setattr(encode_module, "CHUNK", 3)
    single = encode_dataset(model, tiny_dataset, tmp_path / "single", progress=False)

    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "two"
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(accelerate), "launch", "--config_file", str(REPO / "configs/accelerate/cpu_ddp.yaml"),
         "--main_process_port", "0", str(script), str(model), str(tiny_dataset), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    with np.load(single / "index.npz") as index:
        encoded = len(index["names"])
    assert all(r["world"] == 2 for r in ranks) and all(r["clips"] > 0 for r in ranks)  # both did work ...
    assert ranks[0]["clips"] + ranks[1]["clips"] == encoded  # ... each on its own chunks
    files = sorted(p.name for p in single.iterdir())
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("rank")) == files
    for name in files:
        assert (out / name).read_bytes() == (single / name).read_bytes(), name
