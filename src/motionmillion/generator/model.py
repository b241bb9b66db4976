"""The text-to-motion prefix-LM (LLaMA-style decoder with a projected text prefix), nanoGPT-readable.

Sequence layout: ``[text prefix (L positions, LEFT-padded)] [motion tokens ...]``. Text features are
projected by ``text_proj`` (the reference's ``llama_proj``) and attend to each other bidirectionally;
motion tokens attend causally to everything before them. Left-padding puts every item's last text
token at position L-1, so a batch of prompts of different lengths can share one KV cache and RoPE
(which only sees position differences) gives each item exactly what it would see alone.

Vocabulary: ids < codebook_size are motion codes, END = codebook_size, PAD = codebook_size + 1. The
output head has vocab_size - 1 rows, so PAD can never be predicted.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from motionmillion.generator.config import GeneratorConfig
from motionmillion.text.encoders import sentence_embedding
from motionmillion.utils.model_folder import CONFIG_NAME, load_weights, read_config, save_model_folder

MODEL_TYPE = "motionmillion-generator"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 (as LLaMA does) so bf16 autocast does not lose the small mean. Written out:
        # torch's fused rms_norm took 35 us a call on this CPU against 11 us for these ops.
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_cache(length: int, head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (length, head_dim // 2) for RoPE on consecutive pairs (the reference's complex view)."""
    theta = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), theta)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (B, H, T, D) by the angles for its T positions."""
    pairs = x.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1)
    return rotated.flatten(-2).type_as(x)


class KVCache:
    """Keys and values of every layer, preallocated, plus which key positions are real (not left padding).

    The cache owns its writes (:meth:`update`) and its position (``position``, a 0-d long tensor on the
    device: the next position to write). ``static=True`` (CUDA graphs): a step writes at ``position`` in
    place and attends over the whole cache with the unwritten positions masked, so every step has the
    same shapes and syncs nothing. Otherwise (CPU) a step attends over the written positions only: the
    same numbers as a growing cache, and no work for positions not yet written.
    """

    def __init__(self, config: GeneratorConfig, batch: int, capacity: int, device, dtype, static: bool = False):
        shape = (config.n_layer, batch, config.n_head, capacity, config.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.key_valid = torch.zeros(batch, capacity, dtype=torch.bool, device=device)
        self.position = torch.zeros((), dtype=torch.long, device=device)
        self.static = static
        self._positions = torch.arange(capacity, device=device)

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def start(self) -> int | torch.Tensor:
        """Where the next write goes: a tensor for a static cache, a Python int otherwise (it slices)."""
        return self.position if self.static else int(self.position)

    def update(self, layer: int, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, H, T, D) at positions [start, start + T); return the keys/values to attend over."""
        keys, values = self.keys[layer], self.values[layer]
        if isinstance(start, torch.Tensor):  # static: one position, in place, the whole cache attended
            keys.index_copy_(2, start.view(1), k)
            values.index_copy_(2, start.view(1), v)
            return keys, values
        end = start + k.shape[2]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]

    def step_mask(self, start: int | torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, S) mask of the keys one new query at ``start`` may see."""
        if isinstance(start, torch.Tensor):
            return (self.key_valid & (self._positions <= start))[:, None, None, :]
        return self.key_valid[:, None, None, : start + 1]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # fused, split as q, k, v
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None = None, layer: int = 0, start: int | torch.Tensor = 0):
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3 * self.n_head, -1)
        # RoPE on q and k in one call (the same elementwise maths as two calls, half the small ops).
        qk = apply_rope(qkv[:, :, : 2 * self.n_head].transpose(1, 2), cos, sin)
        q, k = qk[:, : self.n_head], qk[:, self.n_head :]
        v = qkv[:, :, 2 * self.n_head :].transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, start, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)); gate/up/down are the reference's c_fc1/c_fc2/c_proj."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.gate = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        self.up = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        self.down = nn.Linear(config.mlp_hidden, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask, cache: KVCache | None = None, layer: int = 0, start: int | torch.Tensor = 0):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache, layer, start)
        return x + self.mlp(self.mlp_norm(x))


class MotionGPT(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.text_proj = nn.Linear(config.text_dim, config.n_embd, bias=True)
        self.sentence_proj = nn.Linear(config.text_dim, config.n_embd, bias=True) if config.sentence_token else None
        # The learned "no text" prefix (one position) for classifier-free guidance.
        self.null_prefix = nn.Parameter(torch.zeros(config.n_embd)) if config.has_null_prefix else None
        # Motion tokens still to come before END, 0..max_motion_tokens, at index remaining + 1; index 0 = unknown.
        self.length_embedding = (
            nn.Embedding(config.max_motion_tokens + 2, config.n_embd) if config.length_condition else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size - 1, bias=False)  # untied; no PAD row
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2 scaling of residual projections
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if self.null_prefix is not None:
            nn.init.normal_(self.null_prefix, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    # ---------------------------------------------------------------- folders: config.json + model.safetensors
    def save_pretrained(self, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write the folder; ``state_dict`` for weights gathered elsewhere (e.g. from FSDP shards)."""
        save_model_folder(folder, MODEL_TYPE, self.config.to_dict(), state_dict if state_dict is not None else self.state_dict())
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> MotionGPT:
        """Load a generator folder; missing, corrupt or mismatched files raise ValueError naming the file."""
        folder = Path(folder)
        try:
            config = GeneratorConfig.from_dict(read_config(folder, "generator"))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{folder / CONFIG_NAME}: {err}") from err
        model = cls(config)
        load_weights(folder, model)
        return model.to(device).eval()

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.token_embedding.weight.numel() + self.lm_head.weight.numel()
        return total

    # ---------------------------------------------------------------- building blocks
    def rope(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope is None or self._rope[0].shape[0] < length or self._rope[0].device != device:
            size = max(length, self.config.max_text_tokens + self.config.max_motion_tokens + 1)
            self._rope = rope_cache(size, self.config.head_dim, self.config.rope_base, device)
        return self._rope

    def prefix_length(self, text_length: int) -> int:
        """Prefix positions for ``text_length`` text tokens (one more with the sentence token)."""
        return text_length + int(self.sentence_proj is not None)

    def build_prefix(
        self, text_features: torch.Tensor, text_mask: torch.Tensor, drop_text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Project text (B, L, text_dim) and left-align it: returns prefix (B, P, d) and its validity (B, P),
        P = prefix_length(L)."""
        if text_features.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"text features have dim {text_features.shape[-1]} but the generator expects {self.config.text_dim}"
            )
        text_mask = text_mask.bool()
        if not text_mask.any(dim=1).all():
            raise ValueError("every prompt needs at least one text token (empty text mask)")
        # A stable sort of the mask moves padding to the front and keeps the token order.
        order = torch.argsort(text_mask.to(torch.int8), dim=1, stable=True)
        valid = torch.gather(text_mask, 1, order)
        features = torch.gather(text_features, 1, order[..., None].expand_as(text_features))
        prefix = self.text_proj(features)
        if self.sentence_proj is not None:
            sentence = self.sentence_proj(sentence_embedding(text_features, text_mask).to(text_features.dtype))
            prefix = torch.cat([prefix, sentence[:, None].to(prefix.dtype)], dim=1)
            valid = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)
        if drop_text is not None and self.null_prefix is None and drop_text.any():
            raise ValueError("this generator was trained without condition dropout: it has no null prefix")
        # Whenever drop_text is given the null prefix joins the graph (even if no row is dropped), so DDP
        # sees a gradient for it on every rank.
        if drop_text is not None and self.null_prefix is not None:
            drop = drop_text.bool()
            null = torch.zeros_like(prefix[0])
            null[-1] = self.null_prefix.to(prefix.dtype)
            prefix = torch.where(drop[:, None, None], null[None], prefix)
            null_valid = torch.zeros_like(valid[0])
            null_valid[-1] = True
            valid = torch.where(drop[:, None], null_valid[None], valid)
        prefix = prefix * valid[..., None].to(prefix.dtype)  # padded positions carry zeros
        return prefix, valid

    @staticmethod
    def prefix_lm_mask(prefix_valid: torch.Tensor, num_motion: int) -> torch.Tensor:
        """(B, 1, S, S) boolean mask: causal, bidirectional inside the text prefix, no padded keys."""
        batch, prefix_len = prefix_valid.shape
        total = prefix_len + num_motion
        device = prefix_valid.device
        position = torch.arange(total, device=device)
        causal = position[:, None] >= position[None, :]
        in_prefix = position < prefix_len
        allowed = causal | (in_prefix[:, None] & in_prefix[None, :])
        key_valid = torch.cat([prefix_valid, torch.ones(batch, num_motion, dtype=torch.bool, device=device)], dim=1)
        mask = allowed[None] & key_valid[:, None, :]
        # A padded query row sees only itself, so no row is all -inf (SDPA would return NaN).
        mask = mask | torch.eye(total, dtype=torch.bool, device=device)[None]
        return mask[:, None]

    def add_length(self, x: torch.Tensor, remaining: torch.Tensor | None, first: int) -> torch.Tensor:
        """Add the length condition to the positions ``x[:, first:]`` (each predicts one motion token).

        ``remaining`` (B, T - first): motion tokens still to come, counting the one predicted there (0: END
        is predicted there), -1 or None = unknown. A generator trained without the condition ignores it.
        """
        if self.length_embedding is None:
            return x
        if remaining is None:
            remaining = torch.full((x.shape[0], x.shape[1] - first), -1, dtype=torch.long, device=x.device)
        index = (remaining.long() + 1).clamp(0, self.length_embedding.num_embeddings - 1)
        return torch.cat([x[:, :first], x[:, first:] + self.length_embedding(index).to(x.dtype)], dim=1)

    def _run_blocks(self, x, mask, start: int | torch.Tensor, cache: KVCache | None, run_block=None) -> torch.Tensor:
        """All blocks, then the final norm, for ``x`` at positions [start, start + T). ``run_block(block,
        *args)`` replaces ``block(*args)`` (the decode engine passes a compiled one on CUDA)."""
        if isinstance(start, torch.Tensor):  # one position held on the device (a static cache)
            cos, sin = self.rope(cache.capacity, x.device)
            cos, sin = cos.index_select(0, start.view(1)), sin.index_select(0, start.view(1))
        else:
            cos, sin = self.rope(start + x.shape[1], x.device)
            cos, sin = cos[start : start + x.shape[1]], sin[start : start + x.shape[1]]
        for layer, block in enumerate(self.blocks):
            if run_block is None:
                x = block(x, cos, sin, mask, cache, layer, start)
            else:
                x = run_block(block, x, cos, sin, mask, cache, layer, start)
        return self.final_norm(x)

    # ---------------------------------------------------------------- training / full recompute
    def forward(
        self,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        tokens: torch.Tensor,
        drop_text: torch.Tensor | None = None,
        remaining: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, N + 1, vocab - 1): row j predicts motion token j (row N predicts what follows the last).

        ``tokens`` (B, N) are motion ids (codes, END, PAD for right padding). Only the last prefix position
        and the motion positions go through ``lm_head``; the other text positions predict nothing.
        ``remaining`` (B, N + 1): the length condition of those rows (see :meth:`add_length`).
        """
        prefix, prefix_valid = self.build_prefix(text_features, text_mask, drop_text)
        x = torch.cat([prefix, self.token_embedding(tokens).to(prefix.dtype)], dim=1)
        x = self.add_length(x, remaining, prefix.shape[1] - 1)
        mask = self.prefix_lm_mask(prefix_valid, tokens.shape[1])
        hidden = self._run_blocks(x, mask, 0, None)
        return self.lm_head(hidden[:, prefix.shape[1] - 1 :])

    def loss(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy over real motion tokens and END; PAD targets are ignored."""
        return F.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), tokens.reshape(-1), ignore_index=self.config.pad_id
        )

    # ---------------------------------------------------------------- incremental decoding
    def prefill(
        self,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        cache: KVCache,
        drop_text: torch.Tensor | None = None,
        remaining: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the text prefix and the ``context`` motion codes (B, C) into an empty cache in one pass;
        returns the logits (B, vocab - 1) of the first new motion token and leaves ``cache.position`` after
        them. ``remaining`` (B, C + 1): the length condition of the positions that predict the context's
        codes and the first new one (see :meth:`add_length`), None = unknown."""
        prefix, prefix_valid = self.build_prefix(text_features, text_mask, drop_text)
        num_context = 0 if context is None else context.shape[1]
        x = prefix if not num_context else torch.cat([prefix, self.token_embedding(context).to(prefix.dtype)], dim=1)
        x = self.add_length(x, remaining, prefix.shape[1] - 1)
        length = x.shape[1]
        cache.key_valid[:, : prefix.shape[1]] = prefix_valid
        cache.key_valid[:, prefix.shape[1] :] = True
        hidden = self._run_blocks(x.to(cache.keys.dtype), self.prefix_lm_mask(prefix_valid, num_context), 0, cache)
        cache.position.fill_(length)
        return self.lm_head(hidden[:, -1])

    def decode_step(
        self, tokens: torch.Tensor, cache: KVCache, remaining: torch.Tensor | None = None, run_block=None
    ) -> torch.Tensor:
        """The one decode step: append one token per row (B,) at ``cache.position``, advance it, and return
        the logits (B, vocab - 1) of the next token. ``remaining`` (B,): the length condition of that next
        token (see :meth:`add_length`). Static caches take no host sync, so the step can be graph-captured."""
        x = self.token_embedding(tokens.view(-1, 1))
        x = self.add_length(x, None if remaining is None else remaining.view(-1, 1), 0)
        start = cache.start()
        if not cache.static and start >= cache.capacity:
            raise ValueError(f"KV cache is full ({start} positions)")
        hidden = self._run_blocks(x.to(cache.keys.dtype), cache.step_mask(start), start, cache, run_block)
        cache.position += 1
        return self.lm_head(hidden[:, -1])
