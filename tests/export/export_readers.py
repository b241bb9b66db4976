"""What the export tests read with: the motions, and the Node readers (three.js, Khronos validator)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NODE_DIR = HERE / "node"
BVH_DIR = HERE.parent / "fixtures" / "bvh"
REAL_CLIPS = {
    "bandai_walk": (BVH_DIR / "bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh", None),
    "bandai_wave_left": (BVH_DIR / "bandai/Bandai-Namco-Research-Motiondataset-2/data/dataset-2_wave-left-hand_normal_001.bvh", None),
    "cmu_salsa": (BVH_DIR / "cmu-dance/train_data_bvh/salsa/01.bvh", 60.0),  # header says 120
    "cmu_martial": (BVH_DIR / "cmu-dance/train_data_bvh/martial/03.bvh", None),
}
# Made by the bundled default model (MotionPipeline.from_pretrained(), seconds=4.0, seed=0) from
# "a person walks forward and waves with the right hand" and "someone kicks with the left leg": as the
# pipeline returns them (consistent: positions = forward kinematics of the rotations), and the first
# as the tokenizer decodes it before that step (pipe.make_consistent replaced by the identity), whose
# positions are up to 12 cm off its rotations' skeleton.
GENERATED = {f"generated_{i}": HERE / "data" / f"generated_{i}.npy" for i in range(2)}
GENERATED["generated_raw_0"] = HERE / "data" / "generated_raw_0.npy"


def node_missing() -> str | None:
    """Why the Node readers cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    for package in ("three", "gltf-validator"):
        if not (NODE_DIR / "node_modules" / package).is_dir():
            return f"npm package {package} missing: run `npm ci --prefix tests/export/node` (.ci/run does)"
    return None


needs_node = pytest.mark.skipif(node_missing() is not None, reason=str(node_missing()))


def run_node(script: str, *args: str) -> list[dict]:
    """Run a script of tests/export/node; one JSON object per output line."""
    done = subprocess.run(["node", str(NODE_DIR / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
