"""Sampling motion tokens from the prefix-LM: KV cache, batches, greedy/temperature/top-k/top-p, CFG, length.

Every row has its own ``torch.Generator`` seeded from its own seed, so a sample depends on its seed
and prompt, not on which other prompts share the batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from motionmillion.generator.model import KVCache, MotionGPT


@dataclass
class SamplingOptions:
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0  # classifier-free guidance scale; 1 = conditional only
    use_cache: bool = True
    # "auto": the static decode engine (generator/decode.py: CUDA graph, on-device draws) on CUDA, this
    # module's eager loop elsewhere; "static" or "eager" to choose.
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "static", "eager"):
            raise ValueError(f"engine must be auto, static or eager, got {self.engine!r}")
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.guidance < 0 or not math.isfinite(self.guidance):
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")


def length_window(
    seconds: float | None, frames_per_token: int, max_tokens: int, fps: float = 30.0, tolerance: float = 0.1
) -> tuple[int, int]:
    """Token range (min, max) for a target duration: END is held back below min and forced at max.

    ``seconds=None`` lets the model end by itself (at least one token, at most ``max_tokens``).
    """
    if seconds is None:
        return 1, max_tokens
    target = seconds * fps / frames_per_token
    low = max(1, math.floor(target * (1 - tolerance)))
    high = min(max_tokens, max(low, math.ceil(target * (1 + tolerance))))
    return min(low, high), high


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set logits outside the top-k / nucleus (top-p) set to -inf. logits (B, V)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        logits = logits.masked_fill(outside_nucleus(logits, top_p), float("-inf"))
    return logits


def outside_nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) bool: the tokens outside the nucleus, i.e. ranked after tokens that already hold ``top_p`` of
    the mass. The best token always stays, and so does every token tied with the last one kept."""
    if logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64):
        # numpy's sort is vectorised (AVX-512 here): 35x faster than torch.sort for (32, 1001) logits,
        # whose sort was a third of a CPU sampling step at batch 32.
        ordered = torch.from_numpy(np.ascontiguousarray(np.sort(logits.numpy(), axis=-1)[..., ::-1]))
    else:
        ordered = torch.sort(logits, dim=-1, descending=True).values
    probs = ordered.softmax(-1)
    kept = ((probs.cumsum(-1) - probs) < top_p).sum(-1, keepdim=True)  # a prefix of each sorted row
    return logits < ordered.gather(-1, kept - 1)


def pick_tokens(logits: torch.Tensor, options: SamplingOptions, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row of ``logits`` (B, V), each row drawn with its own generator.

    ``torch.multinomial(p, 1)`` is ``argmax(p / E)`` with ``E ~ Exp(1)`` (its one-sample path). The noise
    is drawn here on each row's generator (CPU) and the argmax is taken where the logits live: the same
    seed gives the same token on CPU (exactly what multinomial gave) and on CUDA (unless float rounding
    of the probabilities differs right at a tie), and a CUDA tensor never meets a CPU generator.
    """
    if options.temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits / options.temperature, options.top_k, options.top_p)
    probs = logits.softmax(-1)
    noise = torch.stack(
        [torch.empty(probs.shape[-1], dtype=probs.dtype).exponential_(1, generator=g) for g in generators]
    )
    return (probs / noise.to(probs.device)).argmax(-1)


@torch.no_grad()
def iter_tokens(
    model: MotionGPT,
    text_features: torch.Tensor,
    text_mask: torch.Tensor,
    seeds: list[int],
    min_tokens: list[int] | torch.Tensor,
    max_tokens: list[int] | torch.Tensor,
    options: SamplingOptions | None = None,
    context: torch.Tensor | None = None,
    target_tokens: list[int | None] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each step's next token of every row (B,) as it is drawn: motion codes, then END once, then PAD.

    text_features (B, L, text_dim) and text_mask (B, L) as the text encoder returns them (any padding).
    ``context`` (B, C): motion codes that come before the new ones (continuation, the previous segments of
    a timeline); the model sees them as the start of the motion and continues it. ``min_tokens`` and
    ``max_tokens`` count new tokens only. ``target_tokens``: the length condition of a length-conditioned
    generator (new tokens wanted per row, None = unknown); other generators ignore it.
    """
    options = options or SamplingOptions()
    config = model.config
    batch = text_features.shape[0]
    if len(seeds) != batch:
        raise ValueError(f"need one seed per prompt: {len(seeds)} seeds for {batch} prompts")
    device = text_features.device
    min_tokens = torch.as_tensor(min_tokens, device=device).long()
    max_tokens = torch.as_tensor(max_tokens, device=device).long()
    if context is None:
        context = torch.zeros(batch, 0, dtype=torch.long, device=device)
    context = context.to(device).long()
    if context.shape[0] != batch or bool((context >= config.codebook_size).any() or (context < 0).any()):
        raise ValueError(f"context must be ({batch}, C) motion codes in [0, {config.codebook_size})")
    num_context = context.shape[1]
    if (max_tokens < 1).any() or (num_context + max_tokens > config.max_motion_tokens).any() or (min_tokens > max_tokens).any():
        raise ValueError(f"token limits must satisfy 1 <= min <= max and context + max <= {config.max_motion_tokens}")
    use_guidance = options.guidance != 1.0
    if use_guidance and not config.has_null_prefix:
        raise ValueError("guidance != 1 needs a generator trained with condition dropout (cond_drop_prob > 0)")
    if _static_engine(model, options, device, num_context):
        from motionmillion.generator.decode import engine_for, finished_columns

        generated = engine_for(model).sample(text_features, text_mask, seeds, min_tokens, max_tokens, options)
        yield from finished_columns(generated, config.end_id)
        return

    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
    dtype = next(model.parameters()).dtype
    features = text_features.to(dtype)
    mask = text_mask.bool()
    drop = None
    if use_guidance:  # conditional rows then unconditional rows, one forward pass
        features, mask = torch.cat([features, features]), torch.cat([mask, mask])
        drop = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)
    # Length condition: tokens still to come at sequence position k (context included) = total - k.
    total = None
    if config.length_condition and target_tokens is not None:
        total = torch.tensor([-1 if t is None else num_context + int(t) for t in target_tokens], device=device)

    def remaining(position: int) -> torch.Tensor | None:
        if total is None:
            return None
        return _feed(torch.where(total >= 0, (total - position).clamp(min=0), total), use_guidance)

    steps = int(max_tokens.max()) + 1  # the last step can only be END
    end_id = config.end_id

    cache = None
    if options.use_cache:
        length = model.prefix_length(features.shape[1]) + num_context + steps
        cache = KVCache.allocate(config, features.shape[0], length, device, dtype)
        logits = model.prefill(features, mask, cache, drop, remaining(0))
        for position in range(num_context):
            logits = model.decode_step(_feed(context[:, position], use_guidance), cache, remaining(position + 1))
    generated = torch.full((batch, steps), config.pad_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(steps):
        position = num_context + step
        if not options.use_cache:
            so_far = torch.cat([context, generated[:, :step]], dim=1)
            lengths = None if total is None else torch.stack([remaining(k) for k in range(position + 1)], dim=1)
            logits = model(features, mask, _feed(so_far, use_guidance), drop, lengths)[:, -1]
        logits = logits.float()
        if use_guidance:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + options.guidance * (cond - uncond)
        logits[step < min_tokens, end_id] = float("-inf")
        force_end = step >= max_tokens
        logits[force_end] = float("-inf")
        logits[force_end, end_id] = 0.0
        next_ids = pick_tokens(logits, options, generators).to(device)
        next_ids = torch.where(finished, torch.full_like(next_ids, config.pad_id), next_ids)
        generated[:, step] = next_ids
        finished |= next_ids == end_id
        yield next_ids
        if finished.all():
            break
        if options.use_cache:
            # Finished rows keep feeding END; their outputs are ignored.
            feed = torch.where(finished, torch.full_like(next_ids, end_id), next_ids)
            logits = model.decode_step(_feed(feed[:, None], use_guidance), cache, remaining(position + 1))


@torch.no_grad()
def sample_tokens(
    model: MotionGPT,
    text_features: torch.Tensor,
    text_mask: torch.Tensor,
    seeds: list[int],
    min_tokens: list[int] | torch.Tensor,
    max_tokens: list[int] | torch.Tensor,
    options: SamplingOptions | None = None,
    context: torch.Tensor | None = None,
    target_tokens: list[int | None] | None = None,
) -> list[list[int]]:
    """Generate motion code ids for each row (END and PAD removed; the context is not repeated).
    Arguments as :func:`iter_tokens`."""
    steps = list(iter_tokens(model, text_features, text_mask, seeds, min_tokens, max_tokens, options, context,
                             target_tokens))  # fmt: skip
    results = []
    for row in torch.stack(steps, dim=1).tolist():
        codes = []
        for token in row:
            if token >= model.config.end_id:
                break
            codes.append(token)
        results.append(codes)
    return results


def _static_engine(model: MotionGPT, options: SamplingOptions, device: torch.device, num_context: int) -> bool:
    """Whether generator/decode.py runs this call (it has no continuation or length condition yet)."""
    wanted = options.engine == "static" or (options.engine == "auto" and device.type == "cuda")
    supported = options.use_cache and num_context == 0 and getattr(model, "length_embedding", None) is None
    if options.engine == "static" and not supported:
        raise ValueError("engine='static' needs use_cache=True, no context and a generator without length condition")
    return wanted and supported


def _feed(tokens: torch.Tensor, use_guidance: bool) -> torch.Tensor:
    """The same tokens for the unconditional half of the batch when guidance is on."""
    return torch.cat([tokens, tokens]) if use_guidance else tokens
