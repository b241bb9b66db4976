"""Run by `accelerate launch` in the multi-process tests: a few tiny training steps, then each rank writes
a checksum of its full (gathered) parameters so the test can check that the ranks agree."""

import hashlib
import json
import sys
from pathlib import Path

from motionmillion.generator.config import GeneratorConfig, TrainConfig
from motionmillion.generator.train import train


def main(tokens: str, out: str, steps: int) -> None:
    model_config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32)
    train_config = TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup_steps=3, log_every=5, save_every=steps,
                               mixed_precision="no")  # fmt: skip

    def write_checksum(model, accelerator) -> None:
        digest, numel = hashlib.sha256(), 0
        for name, param in sorted(model.named_parameters()):
            full = param.full_tensor() if hasattr(param, "full_tensor") else param  # FSDP2 DTensor shards
            digest.update(full.detach().float().cpu().numpy().tobytes())
            numel += full.numel()
        rank = accelerator.process_index
        Path(out, f"rank_{rank}.json").write_text(json.dumps({"rank": rank, "sha256": digest.hexdigest(), "numel": numel}))

    train(model_config, train_config, tokens, out, on_finish=write_checksum)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
