"""Run by `accelerate launch` in the multi-process tests: a few tiny training steps, then each rank writes
a checksum of its full (gathered) parameters so the test can check that the ranks agree, and how many
parameter values it holds itself (fewer than the full count only when the model is really sharded)."""

import hashlib
import json
import sys
from pathlib import Path

from motionmillion.generator.config import GeneratorConfig, RunConfig, TrainConfig
from motionmillion.generator.train import train


def main(tokens: str, out: str, steps: int, max_steps_this_run: int | None = None) -> None:
    model_config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32)
    train_config = TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup_steps=3, log_every=5, save_every=5,
                               mixed_precision="no")  # fmt: skip

    def write_checksum(model, accelerator) -> None:
        digest, numel, local_numel = hashlib.sha256(), 0, 0
        for name, param in sorted(model.named_parameters()):
            full = param.full_tensor() if hasattr(param, "full_tensor") else param  # FSDP2 DTensor shards
            digest.update(full.detach().float().cpu().numpy().tobytes())
            numel += full.numel()
            local_numel += param.to_local().numel() if hasattr(param, "to_local") else param.numel()
        rank = accelerator.process_index
        result = {"rank": rank, "sha256": digest.hexdigest(), "numel": numel, "local_numel": local_numel}
        Path(out, f"rank_{rank}.json").write_text(json.dumps(result))

    train(RunConfig(model_config, train_config), tokens, out, max_steps_this_run=max_steps_this_run, on_finish=write_checksum)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
