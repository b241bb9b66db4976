"""Two CPU processes under `accelerate launch` (DDP over gloo) end with identical weights."""

import pytest
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from accelerate import PartialState
    from safetensors.torch import save_file
    from motionmillion.tokenizer.config import PRESETS
    from motionmillion.training import apply_overrides, preset
    from motionmillion.tokenizer.train import train

    data, out = sys.argv[1], Path(sys.argv[2])
    config = apply_overrides(preset(PRESETS, "tiny"), ["train.steps=3", "train.eval_every=100", "train.save_every=100"])
    model = train(config, data, out, progress=False)
    rank = PartialState().process_index
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
""")


@pytest.mark.slow  # multi-process: run with -m slow
def test_two_cpu_processes_hold_identical_weights(tiny_dataset, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": "29517"}
    result = subprocess.run(
        [str(accelerate), "launch", "--config_file", str(REPO / "configs/accelerate/cpu_ddp.yaml"),
         "--main_process_port", "29517", str(script), str(tiny_dataset), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in (out / "train.log").read_text()
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # and training changed the weights (the ranks agree on something other than the initialisation)
    from motionmillion.tokenizer.config import PRESETS
    from motionmillion.tokenizer.model import MotionTokenizer

    torch.manual_seed(PRESETS["tiny"].train.seed)
    init = MotionTokenizer(PRESETS["tiny"].model).state_dict()
    assert any(not torch.equal(init[k], rank0[k]) for k in init)
