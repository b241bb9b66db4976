"""The decode engine: every generation path samples its motion tokens here.

Single motions, batches, timelines, continuation, streaming and seam candidates all call
:meth:`DecodeEngine.stream` (or :func:`sample_tokens`). One call is: validate, allocate a KV cache,
prefill the text prefix and any context codes in one pass, then repeat the one step
(:meth:`MotionGPT.decode_step`) and the one token choice (:class:`TokenChooser`) until every row has
ended. The same loop runs everywhere; what differs by device is only how it is run:

- CPU: the cache attends over the written positions only and draws use one ``torch.Generator`` per row
  (exactly ``torch.multinomial``'s draws), so a row's tokens depend only on its prompt, options and seed.
- CUDA: the cache is static (written in place at a position held on the device), the draw is a
  counter-based Gumbel-max hashed from (seed, step, token) with no generator state, the "all rows ended"
  check runs every ``SYNC_EVERY`` steps, and step + choice are captured once per shape bucket in a
  ``torch.cuda.CUDAGraph`` (with each block compiled) and replayed per token: at batch 1 a step is bound
  by kernel launches and host syncs, not by memory bandwidth, and this removes both.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from motionmillion.generator.model import KVCache, MotionGPT
from motionmillion.generator.sampling import SamplingOptions

log = logging.getLogger(__name__)

TEXT_BUCKET = 32  # CUDA: text positions padded up to a multiple of this (one captured graph per bucket)
SYNC_EVERY = 8  # CUDA: steps between host checks of "every row has ended"

# splitmix64's constants as signed int64 (torch integer arithmetic wraps around like uint64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX_1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX_2 = 0x94D049BB133111EB - (1 << 64)


# ---------------------------------------------------------------- token choice
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
    if logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64) and not torch.compiler.is_compiling():
        # numpy's sort is vectorised (AVX-512 here): 35x faster than torch.sort for (32, 1001) logits.
        ordered = torch.from_numpy(np.ascontiguousarray(np.sort(logits.numpy(), axis=-1)[..., ::-1]))
    else:
        ordered = torch.sort(logits, dim=-1, descending=True).values
    probs = ordered.softmax(-1)
    kept = ((probs.cumsum(-1) - probs) < top_p).sum(-1, keepdim=True)  # a prefix of each sorted row
    return logits < ordered.gather(-1, kept - 1)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: every input bit affects every output bit."""
    x = (x ^ _shift_right(x, 30)) * _MIX_1
    x = (x ^ _shift_right(x, 27)) * _MIX_2
    return x ^ _shift_right(x, 31)


def counter_uniform(seeds: torch.Tensor, step: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, vocab) uniforms in (0, 1) from splitmix64 of (seed, step, token): a pure function of its inputs,
    the same on every device, with no generator state, so it can live inside a CUDA graph."""
    token = torch.arange(1, vocab + 1, device=seeds.device, dtype=torch.int64)
    row = _mix(seeds[:, None] * _GOLDEN + step)  # one stream per (seed, step) ...
    x = _mix(row + token[None] * _GOLDEN)  # ... and one value per token in it
    return (_shift_right(x, 40).float() + 0.5) / float(1 << 24)  # 24 bits: exact in float32, never 0 or 1


def host_draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One draw per row of ``probs`` (B, V) with that row's CPU generator: ``argmax(p / E)``, E ~ Exp(1),
    which is what ``torch.multinomial(p, 1)`` computes, so the same seed gives multinomial's token."""
    noise = torch.stack([torch.empty(probs.shape[-1], dtype=probs.dtype).exponential_(1, generator=g) for g in generators])
    return (probs / noise.to(probs.device)).argmax(-1)


def gumbel_draw(logits: torch.Tensor, seeds: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One categorical draw per row from softmax(logits) (-inf = excluded): argmax(logits + Gumbel noise)."""
    noise = -torch.log(-torch.log(counter_uniform(seeds, step, logits.shape[-1])))
    return (logits + noise).argmax(-1)


class TokenChooser:
    """The one token choice, on every device: guidance mixing, the length window (END held back below
    ``min_tokens``, forced at ``max_tokens``), temperature, top-k/top-p, the draw, and PAD after END.

    ``draw="host"``: per-row CPU generators (:func:`host_draw`); ``"device"``: :func:`gumbel_draw`,
    seeded by (seed, step), which needs no host round trip and can be graph-captured.
    """

    def __init__(self, config, batch: int, options: SamplingOptions, draw: str, device):
        long = dict(device=device, dtype=torch.long)
        self.end_id, self.pad_id = config.end_id, config.pad_id
        self.batch, self.options, self.draw = batch, options, draw
        self.min_tokens = torch.zeros(batch, **long)
        self.max_tokens = torch.zeros(batch, **long)
        self.seeds = torch.zeros(batch, **long)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self.step = torch.zeros((), **long)  # index of the token being chosen
        self.guidance = torch.full((), float(options.guidance), device=device)
        self.temperature = torch.full((), max(float(options.temperature), 1e-6), device=device)
        self.generators: list[torch.Generator] = []

    def reset(self, seeds, min_tokens, max_tokens, options: SamplingOptions) -> None:
        self.seeds.copy_(seeds)
        self.min_tokens.copy_(min_tokens)
        self.max_tokens.copy_(max_tokens)
        self.finished.zero_()
        self.step.zero_()
        self.guidance.fill_(float(options.guidance))
        self.temperature.fill_(max(float(options.temperature), 1e-6))
        if self.draw == "host":
            self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds.tolist()]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """The next token of every row (B,) from the model's logits (rows x V, guidance copies last); the
        tokens to feed back (END for rows that have ended) and the step counter are updated in place."""
        options, batch = self.options, self.batch
        logits = logits.float()
        if options.guidance != 1.0:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + self.guidance * (cond - uncond)
        is_end = torch.arange(logits.shape[-1], device=logits.device) == self.end_id
        logits = logits.masked_fill(is_end & (self.step < self.min_tokens)[:, None], float("-inf"))
        forced = torch.where(is_end, 0.0, float("-inf"))  # past the maximum only END remains
        logits = torch.where((self.step >= self.max_tokens)[:, None], forced, logits)
        if options.temperature == 0:
            ids = logits.argmax(-1)
        elif self.draw == "host":
            probs = filter_logits(logits / options.temperature, options.top_k, options.top_p).softmax(-1)
            ids = host_draw(probs, self.generators).to(logits.device)
        else:
            ids = gumbel_draw(filter_logits(logits / self.temperature, options.top_k, options.top_p), self.seeds, self.step)
        ids = torch.where(self.finished, self.pad_id, ids)
        self.finished |= ids == self.end_id
        self.step += 1
        return ids

    def feed(self, ids: torch.Tensor) -> torch.Tensor:
        """What the next step appends: the drawn ids, END for rows that have ended (their outputs are ignored),
        once more for the guidance copies."""
        feed = torch.where(self.finished, self.end_id, ids)
        return torch.cat([feed, feed]) if self.options.guidance != 1.0 else feed


# ---------------------------------------------------------------- one call's state, and its CUDA graph
@dataclass(frozen=True)
class _Shape:
    """What a captured graph is specialised to (CUDA); rows and text length are bucketed."""

    rows: int
    text_length: int
    context: int
    options: SamplingOptions
    length_condition: bool
    dtype: torch.dtype
    draw: str


class _Run:
    """A KV cache, a token chooser and the length condition's buffers for one batch shape, plus (CUDA)
    the captured step. Reused by later calls of the same shape, one call at a time."""

    def __init__(self, model: MotionGPT, shape: _Shape, capacity: int, device, static: bool, draw: str, run_block=None):
        self.model, self.shape, self.run_block = model, shape, run_block
        guidance = shape.options.guidance != 1.0
        self.cache = KVCache(model.config, shape.rows * (2 if guidance else 1), capacity, device, shape.dtype, static)
        self.chooser = TokenChooser(model.config, shape.rows, shape.options, draw, device)
        # Length condition: motion tokens still to come = total - position in the motion (-1 = unknown).
        self.total = torch.full((shape.rows,), -1, dtype=torch.long, device=device)
        self.feed = torch.zeros(self.cache.keys.shape[1], dtype=torch.long, device=device)
        self.ids = torch.zeros(shape.rows, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def remaining(self, motion_position: torch.Tensor | int) -> torch.Tensor | None:
        """The length condition (rows,) at a motion position (context included), for both guidance halves."""
        if not self.shape.length_condition:
            return None
        left = torch.where(self.total >= 0, (self.total - motion_position).clamp(min=0), self.total)
        return torch.cat([left, left]) if self.shape.options.guidance != 1.0 else left

    def step(self) -> None:
        """Append ``feed``, choose the next ids: the part that is replayed from a graph on CUDA."""
        position = self.shape.context + self.chooser.step  # motion position of the token to predict
        logits = self.model.decode_step(self.feed, self.cache, self.remaining(position), self.run_block)
        self.ids.copy_(self.chooser(logits))
        self.feed.copy_(self.chooser.feed(self.ids))

    def capture(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        saved = self.cache.position.clone()
        with torch.cuda.stream(stream):  # warm-up (compiling, lazy inits, cuBLAS workspaces) off the capture
            try:
                for _ in range(2):
                    self.step()
            except Exception as err:  # a compiler that fails here must not stop sampling: run uncompiled
                if self.run_block is None:
                    raise
                log.warning("decode engine: compiling the blocks failed (%s); running them uncompiled", err)
                self.run_block = None
                for _ in range(2):
                    self.step()
        torch.cuda.current_stream().wait_stream(stream)
        self.cache.position.copy_(saved)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()

    def replay(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step()


def _call_block(block, x, cos, sin, mask, cache, layer, start):
    return block(x, cos, sin, mask, cache, layer, start)


@functools.cache
def compiled_block_call():
    """``_call_block`` compiled once per process: every block of every model with the same shapes shares
    one graph (parameters are graph inputs), so compile time does not grow with depth."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(_call_block, fullgraph=True, dynamic=False)


def next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class DecodeEngine:
    """Samples motion tokens from one model; :func:`engine_for` keeps one per model.

    ``static``: a static cache in shape buckets (None = on CUDA only), captured in a CUDA graph on CUDA;
    ``compile_blocks``: None = on CUDA only (compiling pays off inside a graph); ``draw``: "host" or
    "device" (None = "device" on CUDA, "host" elsewhere). Static runs are kept per shape and reused (their
    graph with them); a run serves one call at a time, so concurrent calls of one shape (seam candidates,
    server threads) each get their own.
    """

    def __init__(self, model: MotionGPT, static: bool | None = None, compile_blocks: bool | None = None,
                 draw: str | None = None):  # fmt: skip
        if draw not in (None, "host", "device"):
            raise ValueError(f"draw must be 'host' or 'device', got {draw!r}")
        self.model = model
        self.static = static
        self.compile_blocks = compile_blocks
        self.draw = draw
        self.free: dict[_Shape, list[_Run]] = {}
        self.weights: tuple[int, ...] = ()
        self.lock = threading.Lock()

    @torch.inference_mode()
    def stream(
        self,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        seeds: list[int],
        min_tokens,
        max_tokens,
        options: SamplingOptions | None = None,
        context: torch.Tensor | None = None,
        target_tokens: list[int | None] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield each step's next token of every row (B,) as it is drawn: motion codes, then END once, then PAD.

        text_features (B, L, text_dim) and text_mask (B, L) as the text encoder returns them (any padding).
        ``context`` (B, C): motion codes that come before the new ones (continuation, earlier timeline
        segments); the model continues them. ``min_tokens``/``max_tokens`` count new tokens only.
        ``target_tokens``: the length condition (new tokens wanted per row, None = unknown); a generator
        trained without it ignores it.
        """
        options = options or SamplingOptions()
        model, config = self.model, self.model.config
        batch = text_features.shape[0]
        device = text_features.device
        if len(seeds) != batch:
            raise ValueError(f"need one seed per prompt: {len(seeds)} seeds for {batch} prompts")
        min_tokens = torch.as_tensor(min_tokens).long().view(-1)
        max_tokens = torch.as_tensor(max_tokens).long().view(-1)
        context = torch.zeros(batch, 0, dtype=torch.long) if context is None else torch.as_tensor(context).long()
        if context.shape[0] != batch or bool((context >= config.codebook_size).any() or (context < 0).any()):
            raise ValueError(f"context must be ({batch}, C) motion codes in [0, {config.codebook_size})")
        num_context = context.shape[1]
        if (max_tokens < 1).any() or (num_context + max_tokens > config.max_motion_tokens).any() or (min_tokens > max_tokens).any():
            raise ValueError(f"token limits must satisfy 1 <= min <= max and context + max <= {config.max_motion_tokens}")
        if options.guidance != 1.0 and not config.has_null_prefix:
            raise ValueError("guidance != 1 needs a generator trained with condition dropout (cond_drop_prob > 0)")
        length_condition = config.length_condition and target_tokens is not None
        total = [-1 if t is None else num_context + int(t) for t in target_tokens] if length_condition else None

        cuda = device.type == "cuda"
        static = cuda if self.static is None else self.static
        draw = self.draw or ("device" if cuda else "host")
        if draw == "host" and static and cuda:
            raise ValueError("draw='host' (per-row CPU generators) cannot run inside a CUDA graph")
        dtype = next(model.parameters()).dtype
        rows, text_length = batch, text_features.shape[1]
        if static:  # buckets, so that captured graphs are reused
            rows = next_power_of_two(batch)
            text_length = min(-(-text_length // TEXT_BUCKET) * TEXT_BUCKET, max(text_length, config.max_text_tokens))
        pad_rows = rows - batch  # copies of row 0 that end after one token; dropped
        features = F.pad(text_features.to(dtype), (0, 0, 0, text_length - text_features.shape[1]))
        mask = F.pad(text_mask.bool(), (0, text_length - text_mask.shape[1]))
        if pad_rows:
            features = torch.cat([features, features[:1].expand(pad_rows, -1, -1)])
            mask = torch.cat([mask, mask[:1].expand(pad_rows, -1)])
            context = torch.cat([context, context[:1].expand(pad_rows, -1)])
        seeds_t = F.pad(torch.as_tensor(seeds, dtype=torch.long), (0, pad_rows))
        low = F.pad(min_tokens, (0, pad_rows), value=1)
        high = F.pad(max_tokens, (0, pad_rows), value=1)
        steps = int(max_tokens.max()) + 1  # the last step can only be END
        prefix = model.prefix_length(text_length)
        if static:  # room for the longest motion, a multiple of 16 (fused attention kernels want aligned rows)
            capacity = -(-(prefix + config.max_motion_tokens + 1) // 16) * 16
        else:
            capacity = prefix + num_context + steps
        shape = _Shape(rows, text_length, num_context, options, length_condition, dtype, draw)

        run = self._checkout(shape, capacity, device, static, draw)
        try:
            chooser = run.chooser
            chooser.reset(seeds_t.to(device), low.to(device), high.to(device), options)
            if total is not None:
                run.total.copy_(F.pad(torch.tensor(total), (0, pad_rows), value=-1))
            drop = None
            if options.guidance != 1.0:  # conditional rows then unconditional rows, one forward pass
                features, mask, context = torch.cat([features, features]), torch.cat([mask, mask]), torch.cat([context, context])
                drop = torch.cat([torch.zeros(rows, dtype=torch.bool), torch.ones(rows, dtype=torch.bool)]).to(device)
            # The positions that predict the context's codes and the first new one get the length condition.
            remaining = None
            if length_condition:
                remaining = torch.stack([run.remaining(k) for k in range(num_context + 1)], dim=1)
            logits = model.prefill(features.to(device), mask.to(device), run.cache, drop, remaining, context.to(device))
            run.ids.copy_(chooser(logits))
            run.feed.copy_(chooser.feed(run.ids))
            sync_every = SYNC_EVERY if cuda else 1
            if cuda:
                pending = [run.ids.clone()]
            else:
                yield run.ids[:batch].clone()
            for step in range(1, steps):
                if step % sync_every == 0:
                    if cuda:
                        yield from (ids[:batch] for ids in torch.stack(pending).cpu())
                        pending = []
                    if bool(chooser.finished[:batch].all()):
                        break
                run.replay()
                if cuda:
                    pending.append(run.ids.clone())
                else:
                    yield run.ids[:batch].clone()
            if cuda and pending:
                yield from (ids[:batch] for ids in torch.stack(pending).cpu())
        finally:
            self._checkin(run)

    def _checkout(self, shape: _Shape, capacity: int, device, static: bool, draw: str) -> _Run:
        with self.lock:
            weights = tuple(t.data_ptr() for t in self.model.parameters())
            if weights != self.weights:  # a graph reads the weights where they were at capture: moved = stale
                self.free.clear()
                self.weights = weights
            free = self.free.get(shape) if static else None
            if free:
                return free.pop()
        compile_blocks = (device.type == "cuda") if self.compile_blocks is None else self.compile_blocks
        run = _Run(self.model, shape, capacity, device, static, draw, compiled_block_call() if compile_blocks else None)
        if static and device.type == "cuda":
            run.capture()
        return run

    def _checkin(self, run: _Run) -> None:
        if run.cache.static:
            with self.lock:
                self.free.setdefault(run.shape, []).append(run)


_ENGINES: weakref.WeakKeyDictionary[MotionGPT, DecodeEngine] = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def engine_for(model: MotionGPT) -> DecodeEngine:
    """The model's engine (its captured graphs are reused by every later call)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(model)
        if engine is None:
            engine = _ENGINES[model] = DecodeEngine(model)
        return engine


def sample_tokens(model: MotionGPT, text_features, text_mask, seeds, min_tokens, max_tokens,
                  options: SamplingOptions | None = None, context=None, target_tokens=None) -> list[list[int]]:  # fmt: skip
    """Motion code ids of each row (END and PAD removed; the context not repeated); arguments as
    :meth:`DecodeEngine.stream`."""
    steps = list(engine_for(model).stream(text_features, text_mask, seeds, min_tokens, max_tokens, options, context,
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
