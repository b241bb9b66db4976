"""The static decode engine: the sampler's loop with fixed shapes, replayed from a CUDA graph on GPUs.

At batch 1 a decode step of a LLaMA-shaped model is bound by per-kernel launch cost and host syncs, not by
memory bandwidth (issue 17: the 1B model's eager step took 47 ms). This engine removes both:

- a preallocated KV cache per (batch bucket, text-length bucket), written in place at a position held on
  the device (:meth:`MotionGPT.decode_step_static`), so every step has the same shapes;
- token selection on the device inside the same step: guidance, the length window, top-k/top-p,
  temperature and the draw (Gumbel-max with counter-based noise hashed from (seed, step, token), so a
  row's draws depend only on its seed and step, never on the batch, and no generator state is needed);
- the whole step (model + selection + bookkeeping) captured once in a ``torch.cuda.CUDAGraph`` and
  replayed per token; the host checks "all rows finished" only every ``sync_every`` steps;
- on CUDA each block's step compiled with ``torch.compile`` (one graph shared by all blocks): a replayed
  graph still pays a few microseconds per kernel, and an uncompiled block is ~50 small kernels (fp32
  RMSNorm, RoPE, SwiGLU), which made a 1B step 6 ms against a 0.74 ms bandwidth bound on an H200;
- batches padded to a power of two and text to a multiple of ``TEXT_BUCKET`` tokens, so graphs are reused.

On a CPU the same engine runs eagerly with ``draw="host"``: it then draws with the per-row
``torch.Generator`` of :func:`motionmillion.generator.sample.pick_tokens` and gives the eager sampler's
tokens for the same seeds (tested). ``draw="device"`` (the GPU default) gives different, but equally
seeded and batch-independent, tokens; they are the same on CPU and GPU wherever float math agrees.

``sample_tokens`` switches to this engine with ``SamplingOptions(engine=...)``: "auto" uses it on CUDA.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from motionmillion.generator.model import KVCache, MotionGPT

log = logging.getLogger(__name__)

TEXT_BUCKET = 32  # text positions are padded up to a multiple of this (one graph per bucket)
SYNC_EVERY = 8  # steps between host checks of "every row has finished"

# splitmix64's constants as signed int64 (torch integer arithmetic wraps around like uint64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX_1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX_2 = 0x94D049BB133111EB - (1 << 64)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def counter_uniform(seeds: torch.Tensor, step: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, vocab) uniforms in (0, 1) from splitmix64 of (seed, step, token): a pure function of its inputs,
    the same on every device, with no generator state, so it can live inside a CUDA graph."""
    token = torch.arange(1, vocab + 1, device=seeds.device, dtype=torch.int64)
    row = _mix(seeds[:, None] * _GOLDEN + step)  # one stream per (seed, step) ...
    x = _mix(row + token[None] * _GOLDEN)  # ... and one value per token in it
    return (_shift_right(x, 40).float() + 0.5) / float(1 << 24)  # 24 bits: exact in float32, never 0 or 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: every input bit affects every output bit."""
    x = (x ^ _shift_right(x, 30)) * _MIX_1
    x = (x ^ _shift_right(x, 27)) * _MIX_2
    return x ^ _shift_right(x, 31)


def gumbel_draw(logits: torch.Tensor, seeds: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One categorical draw per row from softmax(logits) (-inf = excluded): argmax(logits + Gumbel noise)."""
    noise = -torch.log(-torch.log(counter_uniform(seeds, step, logits.shape[-1])))
    return (logits + noise).argmax(-1)


def _call_block(block, x, cos, sin, mask, cache, start):
    return block(x, cos, sin, mask, cache, start)


@functools.cache
def compiled_block_call():
    """``_call_block`` compiled once per process: every block of every model with the same shapes shares
    one graph (parameters are graph inputs), so compile time does not grow with depth. Shapes are static;
    each (batch bucket, cache size) is one more graph, hence the raised recompile limit."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(_call_block, fullgraph=True, dynamic=False)


def next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@dataclass(frozen=True)
class _Key:
    batch: int  # rows after bucketing (before the guidance copy)
    text_length: int
    guidance: bool
    greedy: bool
    top_k: int | None
    top_p: float | None
    draw: str
    dtype: torch.dtype


class _Runner:
    """One cache, one set of step buffers and (on CUDA) one captured graph for a _Key."""

    def __init__(self, model: MotionGPT, key: _Key, device: torch.device, use_graph: bool, compile_blocks: bool):
        config = model.config
        self.model, self.key = model, key
        self.run_block = compiled_block_call() if compile_blocks else None
        rows = key.batch * (2 if key.guidance else 1)
        self.prefix = model.prefix_length(key.text_length)
        # A multiple of 16 positions: the fused attention kernels want the mask's rows aligned (the extra
        # positions are never written, so always masked).
        capacity = -(-(self.prefix + config.max_motion_tokens + 1) // 16) * 16
        self.cache = KVCache.allocate(config, rows, capacity, device, key.dtype)
        self.max_steps = config.max_motion_tokens + 1
        long = dict(device=device, dtype=torch.long)
        self.step = torch.zeros((), **long)  # index of the token being chosen
        self.position = torch.zeros((), **long)  # cache position the next decode step writes
        self.feed = torch.zeros(rows, **long)  # the tokens the next decode step appends
        self.generated = torch.full((key.batch, self.max_steps), config.pad_id, **long)
        self.finished = torch.zeros(key.batch, device=device, dtype=torch.bool)
        self.seeds = torch.zeros(key.batch, **long)
        self.min_tokens = torch.zeros(key.batch, **long)
        self.max_tokens = torch.zeros(key.batch, **long)
        self.temperature = torch.ones((), device=device)
        self.guidance = torch.ones((), device=device)
        self.generators: list[torch.Generator] = []  # draw="host" only
        self.graph: torch.cuda.CUDAGraph | None = None
        if use_graph:
            self._capture()

    # one step: the model, then the choice of the next token for every row ---------------------------
    def select(self, logits: torch.Tensor) -> None:
        """Choose token ``step`` for every row from ``logits`` and advance; everything stays on the device."""
        from motionmillion.generator.sample import filter_logits, pick_tokens

        config, key = self.model.config, self.key
        logits = logits.float()
        if key.guidance:
            cond, uncond = logits[: key.batch], logits[key.batch :]
            logits = uncond + self.guidance * (cond - uncond)
        end = config.end_id
        is_end = torch.arange(logits.shape[-1], device=logits.device) == end
        logits = logits.masked_fill(is_end & (self.step < self.min_tokens)[:, None], float("-inf"))
        forced = torch.where(is_end, 0.0, float("-inf"))  # past the maximum only END remains
        logits = torch.where((self.step >= self.max_tokens)[:, None], forced, logits)
        if key.greedy:
            ids = logits.argmax(-1)
        elif key.draw == "host":  # today's per-row CPU generators: the eager sampler's exact draws
            from motionmillion.generator.sample import SamplingOptions

            options = SamplingOptions(temperature=float(self.temperature), top_k=key.top_k, top_p=key.top_p)
            ids = pick_tokens(logits, options, self.generators).to(logits.device)
        else:
            ids = gumbel_draw(filter_logits(logits / self.temperature, key.top_k, key.top_p), self.seeds, self.step)
        ids = torch.where(self.finished, config.pad_id, ids)
        self.generated.index_copy_(1, self.step.view(1), ids[:, None])
        self.finished |= ids == end
        feed = torch.where(self.finished, end, ids)  # finished rows keep feeding END; ignored
        self.feed.copy_(torch.cat([feed, feed]) if key.guidance else feed)
        self.step += 1

    def decode(self) -> None:
        logits = self.model.decode_step_static(self.feed, self.cache, self.position, self.run_block)
        self.position += 1
        self.select(logits)

    def _capture(self) -> None:
        # Build the RoPE table outside the graph and keep a reference: the graph reads this memory, which
        # must stay alive even if the model later builds a longer table for another runner.
        self.rope = self.model.rope(self.cache.capacity, self.step.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up (compiling, lazy inits, cuBLAS workspaces) off the capture
            try:
                for _ in range(2):
                    self.decode()
            except Exception as err:  # a compiler that fails here must not stop sampling: run uncompiled
                if self.run_block is None:
                    raise
                log.warning("decode engine: compiling the blocks failed (%s); running them uncompiled", err)
                self.run_block = None
                for _ in range(2):
                    self.decode()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.decode()

    # a whole batch -----------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, features, mask, drop, seeds, min_tokens, max_tokens, options) -> torch.Tensor:
        self.seeds.copy_(seeds)
        self.min_tokens.copy_(min_tokens)
        self.max_tokens.copy_(max_tokens)
        self.temperature.fill_(max(options.temperature, 1e-6))
        self.guidance.fill_(options.guidance)
        self.generated.fill_(self.model.config.pad_id)
        self.finished.zero_()
        self.step.zero_()
        self.position.fill_(self.prefix)
        if self.key.draw == "host":
            self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds.tolist()]
        self.select(self.model.prefill(features, mask, self.cache, drop))
        steps = int(max_tokens.max()) + 1  # the last step can only be END
        for step in range(1, steps):
            if step % SYNC_EVERY == 0 and bool(self.finished.all()):
                break
            if self.graph is not None:
                self.graph.replay()
            else:
                self.decode()
        return self.generated


class DecodeEngine:
    """Bucketed runners for one model; :func:`engine_for` keeps one per model."""

    def __init__(self, model: MotionGPT, use_graphs: bool | None = None, compile_blocks: bool | None = None):
        """``use_graphs`` / ``compile_blocks``: None = on CUDA only (compiling pays off inside a graph)."""
        self.model = model
        self.use_graphs = use_graphs
        self.compile_blocks = compile_blocks
        self.runners: dict[_Key, _Runner] = {}
        self.weights: tuple[int, ...] = ()  # where the model's tensors were when the runners were built
        self.lock = threading.Lock()  # a runner's buffers serve one call at a time (e.g. server threads)

    def _forget_moved_weights(self) -> None:
        """A captured graph reads the weights at the addresses they had at capture: after ``model.to(...)``
        (new tensors, the old ones freed) replaying it would read freed memory, so such runners go."""
        weights = tuple(t.data_ptr() for t in self.model.parameters())
        if weights != self.weights:
            self.runners.clear()
            self.weights = weights

    @torch.no_grad()  # also around the graph capture: no autograd state may be recorded into it
    def sample(
        self,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        seeds: list[int],
        min_tokens: torch.Tensor,
        max_tokens: torch.Tensor,
        options,
        draw: str | None = None,
    ) -> torch.Tensor:
        """Generated ids (B, steps) like the eager loop's (END, then PAD); inputs already validated."""
        model, config = self.model, self.model.config
        if getattr(model, "length_embedding", None) is not None:
            raise ValueError("the static decode engine does not support length-conditioned generators yet")
        device = text_features.device
        dtype = next(model.parameters()).dtype
        draw = draw or ("host" if device.type == "cpu" else "device")
        use_graph = device.type == "cuda" if self.use_graphs is None else self.use_graphs
        if draw == "host" and use_graph:
            raise ValueError("draw='host' (per-row CPU generators) cannot run inside a CUDA graph")
        batch, length = text_features.shape[:2]
        rows = next_power_of_two(batch)
        text_length = min(-(-length // TEXT_BUCKET) * TEXT_BUCKET, max(length, config.max_text_tokens))
        features = F.pad(text_features.to(dtype), (0, 0, 0, text_length - length))
        mask = F.pad(text_mask.bool(), (0, text_length - length))
        pad_rows = rows - batch  # copies of row 0 that stop after one token; their output is dropped
        if pad_rows:
            features = torch.cat([features, features[:1].expand(pad_rows, -1, -1)])
            mask = torch.cat([mask, mask[:1].expand(pad_rows, -1)])
        seeds_t = F.pad(torch.as_tensor(seeds, dtype=torch.long), (0, pad_rows)).to(device)
        low = F.pad(min_tokens.long(), (0, pad_rows), value=1)
        high = F.pad(max_tokens.long(), (0, pad_rows), value=1)
        guidance = options.guidance != 1.0
        drop = None
        if guidance:  # conditional rows then unconditional rows, one forward pass
            features, mask = torch.cat([features, features]), torch.cat([mask, mask])
            drop = torch.cat([torch.zeros(rows, dtype=torch.bool), torch.ones(rows, dtype=torch.bool)]).to(device)
        greedy = options.temperature == 0
        key = _Key(rows, text_length, guidance, greedy, None if greedy else options.top_k,
                   None if greedy else options.top_p, draw, dtype)  # fmt: skip
        with self.lock:
            self._forget_moved_weights()
            runner = self.runners.get(key)
            if runner is None:
                compile_blocks = use_graph if self.compile_blocks is None else self.compile_blocks
                runner = self.runners[key] = _Runner(model, key, device, use_graph, compile_blocks)
            generated = runner.run(features, mask, drop, seeds_t, low, high, options)
            return generated[:batch, : int(max_tokens.max()) + 1].clone()


def finished_columns(generated: torch.Tensor, end_id: int) -> list[torch.Tensor]:
    """The columns of ``generated`` (B, steps) up to the step where the last row drew END (then only PAD)."""
    ended = (generated == end_id).any(0)
    last = int(ended.nonzero().max()) if bool(ended.any()) else generated.shape[1] - 1
    return list(generated[:, : last + 1].T)


_ENGINES: weakref.WeakKeyDictionary[MotionGPT, DecodeEngine] = weakref.WeakKeyDictionary()


def engine_for(model: MotionGPT) -> DecodeEngine:
    """The model's engine (its captured graphs are reused by every later call)."""
    engine = _ENGINES.get(model)
    if engine is None:
        engine = _ENGINES[model] = DecodeEngine(model)
    return engine
