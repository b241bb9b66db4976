"""What a CPU decode step of the bundled generator costs, and what faster arithmetic would buy; one JSON.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cpu_step.py [--rounds 5]

The engine samples 75 tokens (a 10 s motion) with the bundled weights as shipped (fp32), with the weights
in bf16, and with int8 weight-only linear layers (``torch._weight_int8pack_mm``, per-channel scales, bf16
activations), interleaved round by round so that other jobs on a shared CPU weigh on all alike. It also
counts how often a pre-transposed weight product (``x @ W.T.contiguous()``, the faster matrix layout here)
differs in its last bits from ``F.linear``: a variant that changes any bit changes the tokens of a seed.
None of the variants is used by the pipeline; this is the measurement behind that choice (model card).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from motionmillion.generator.engine import sample_tokens
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.sampling import SamplingOptions
from motionmillion.pipeline.loading import default_model_path

TOKENS = 75


class Int8Linear(torch.nn.Module):
    """Weight-only int8 (per output channel), as gpt-fast quantises for CPU."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp(min=1e-8) / 127
        self.register_buffer("weight", (weight / scale[:, None]).round().to(torch.int8))
        self.register_buffer("scale", scale.bfloat16())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).bfloat16()
        return torch._weight_int8pack_mm(flat, self.weight, self.scale).view(*x.shape[:-1], -1).to(x.dtype)


def int8_weights(model: MotionGPT) -> MotionGPT:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and name not in ("text_proj", "sentence_proj"):
                setattr(module, name, Int8Linear(child))
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = default_model_path() / "generator"
    models = {"fp32 (shipped)": MotionGPT.from_pretrained(folder), "bf16": MotionGPT.from_pretrained(folder).to(torch.bfloat16),
              "int8 weight-only": int8_weights(MotionGPT.from_pretrained(folder))}  # fmt: skip
    features, mask = torch.randn(1, 12, models["bf16"].config.text_dim), torch.ones(1, 12, dtype=torch.bool)

    def sample(model):
        dtype = next(model.parameters()).dtype
        return sample_tokens(model, features.to(dtype), mask, [0], [TOKENS], [TOKENS], SamplingOptions(top_p=0.95),
                             target_tokens=[TOKENS])  # fmt: skip

    times: dict[str, list[float]] = {name: [] for name in models}
    for name, model in models.items():
        sample(model)  # warm-up
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            sample(model)
            times[name].append(time.perf_counter() - start)
    ms_per_step = {name: round(1000 * statistics.median(values) / (TOKENS + 1), 2) for name, values in times.items()}

    differ = total = 0
    for name, module in models["fp32 (shipped)"].named_modules():
        if isinstance(module, torch.nn.Linear) and name != "text_proj":
            transposed = module.weight.detach().t().contiguous()
            for _ in range(20):
                x = torch.randn(1, 1, module.in_features)
                total += 1
                differ += int(not torch.equal(torch.nn.functional.linear(x, module.weight), x @ transposed))
    print(json.dumps({"ms_per_step_batch1": ms_per_step, "tokens": TOKENS, "rounds": args.rounds,
                      "transposed_product_differs_in_last_bits": f"{differ} of {total}"}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
