"""Run by `accelerate launch` in the multi-process tests: a few tiny training steps, then each rank writes
a checksum of its parameters so the test can check that the ranks agree."""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from motionmillion.generator.config import GeneratorConfig, TrainConfig
from motionmillion.generator.train import train


def main(tokens: str, out: str, steps: int) -> None:
    model_config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32)
    train_config = TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup_steps=3, log_every=5, save_every=steps,
                               mixed_precision="no")  # fmt: skip
    captured = {}
    original = torch.optim.AdamW.step

    def step_and_capture(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        # full local parameters after every step (under ZeRO-2/FSDP they are re-gathered by the engine)
        captured["params"] = [p.detach().clone() for group in self.param_groups for p in group["params"]]
        return result

    torch.optim.AdamW.step = step_and_capture
    train(model_config, train_config, tokens, out, cpu=True)
    rank = int(os.environ.get("RANK", "0"))  # the process group is gone after end_training()
    digest = hashlib.sha256()
    for p in captured["params"]:
        digest.update(p.float().numpy().tobytes())
    Path(out, f"rank_{rank}.json").write_text(json.dumps({"rank": rank, "sha256": digest.hexdigest(),
                                                          "numel": sum(p.numel() for p in captured["params"])}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
