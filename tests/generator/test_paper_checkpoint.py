"""The released T2M key layout maps onto MotionGPT: logits equal an independent, loop-based re-computation
of the reference LLaMAHF forward (lit-llama RMSNorm, complex-number RoPE, prefix-LM mask)."""

import math

import pytest
import torch

from motionmillion.generator.model import MotionGPT
from motionmillion.generator.paper_checkpoint import PaperCheckpointError, convert_state_dict, load_paper_checkpoint

N_LAYER, N_HEAD, D, CODES, TEXT_DIM = 2, 4, 64, 30, 2048  # flan-T5-XL width


def synthetic_paper_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hidden = ((int(8 * D / 3) + 255) // 256) * 256
    vocab = CODES + 2

    def rand(*shape, scale=0.05):
        return torch.randn(*shape, generator=gen) * scale

    state = {"transformer.wte.weight": rand(vocab, D, scale=1.0), "lm_head.weight": rand(vocab - 1, D),
             "llama_proj.weight": rand(D, TEXT_DIM, scale=0.02), "llama_proj.bias": rand(D),
             "transformer.ln_f.scale": 1 + rand(D)}  # fmt: skip
    for i in range(N_LAYER):
        prefix = f"transformer.h.{i}."
        state |= {prefix + "rms_1.scale": 1 + rand(D), prefix + "rms_2.scale": 1 + rand(D),
                  prefix + "attn.c_attn.weight": rand(3 * D, D, scale=0.2), prefix + "attn.c_proj.weight": rand(D, D),
                  prefix + "mlp.c_fc1.weight": rand(hidden, D), prefix + "mlp.c_fc2.weight": rand(hidden, D),
                  prefix + "mlp.c_proj.weight": rand(D, hidden)}  # fmt: skip
    return state


def reference_logits(state, text: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Straightforward single-item LLaMAHF forward: text (L, 2048), tokens (N,) -> logits (L + N, vocab - 1)."""

    def rms(x, scale):
        return scale * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5))

    def rope(x):  # x (T, H, hd): lit-llama build_rope_cache + apply_rope via complex numbers
        t, h, hd = x.shape
        theta = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        angles = torch.outer(torch.arange(t).float(), theta)
        rotation = torch.polar(torch.ones_like(angles), angles)[:, None, :]
        return torch.view_as_real(torch.view_as_complex(x.reshape(t, h, hd // 2, 2)) * rotation).reshape(t, h, hd)

    length = text.shape[0]
    x = torch.cat([text @ state["llama_proj.weight"].T + state["llama_proj.bias"], state["transformer.wte.weight"][tokens]])
    total = x.shape[0]
    allowed = torch.zeros(total, total, dtype=torch.bool)
    for i in range(total):
        for j in range(total):
            allowed[i, j] = j <= i or (i < length and j < length)
    hd = D // N_HEAD
    for layer in range(N_LAYER):
        p = f"transformer.h.{layer}."
        h = rms(x, state[p + "rms_1.scale"])
        q, k, v = (h @ state[p + "attn.c_attn.weight"].T).split(D, dim=1)
        q, k, v = (t.reshape(total, N_HEAD, hd) for t in (q, k, v))
        q, k = rope(q), rope(k)
        heads = []
        for head in range(N_HEAD):
            scores = q[:, head] @ k[:, head].T / math.sqrt(hd)
            scores = scores.masked_fill(~allowed, float("-inf"))
            heads.append(scores.softmax(-1) @ v[:, head])
        x = x + torch.cat(heads, dim=1) @ state[p + "attn.c_proj.weight"].T
        h = rms(x, state[p + "rms_2.scale"])
        gate = torch.nn.functional.silu(h @ state[p + "mlp.c_fc1.weight"].T)
        x = x + (gate * (h @ state[p + "mlp.c_fc2.weight"].T)) @ state[p + "mlp.c_proj.weight"].T
    return rms(x, state["transformer.ln_f.scale"]) @ state["lm_head.weight"].T


def test_converted_weights_reproduce_the_reference_forward():
    paper = synthetic_paper_state()
    config, state = convert_state_dict({"trans": {"module." + k: v for k, v in paper.items()}, "nb_iter": 5}, n_head=N_HEAD)
    assert (config.n_layer, config.n_embd, config.codebook_size, config.text_dim) == (N_LAYER, D, CODES, TEXT_DIM)
    assert not config.has_null_prefix
    model = MotionGPT(config)
    model.load_state_dict(state, strict=True)
    model.eval()
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(7, TEXT_DIM, generator=gen)
    tokens = torch.randint(0, CODES + 1, (9,), generator=gen)
    expected = reference_logits(paper, text, tokens)[6:]  # from the last text position on
    with torch.no_grad():
        ours = model(text[None], torch.ones(1, 7, dtype=torch.bool), tokens[None])[0]
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_load_from_a_released_style_file(tmp_path):
    paper = synthetic_paper_state()
    path = tmp_path / "net_last.pth"
    torch.save({"trans": paper, "nb_iter": 3, "actual_nb_iter": 3}, path)
    model = load_paper_checkpoint(path, n_head=N_HEAD)
    torch.testing.assert_close(model.lm_head.weight, paper["lm_head.weight"])
    assert model.config.max_text_tokens == 150


def test_paper_presets_are_recognised_from_shapes():
    with torch.device("meta"):
        state = {"transformer.wte.weight": torch.empty(64002, 512), "lm_head.weight": torch.empty(64001, 512),
                 "llama_proj.weight": torch.empty(512, 2048), "llama_proj.bias": torch.empty(512),
                 "transformer.ln_f.scale": torch.empty(512)}  # fmt: skip
        for i in range(8):
            state |= {f"transformer.h.{i}.mlp.c_fc1.weight": torch.empty(1536, 512),
                      f"transformer.h.{i}.rms_1.scale": torch.empty(512)}  # fmt: skip
    config, _ = convert_state_dict(state)
    assert (config.preset, config.n_head, config.codebook_size) == ("44M", 8, 64000)


def test_wrong_files_are_clear_errors(tmp_path):
    with pytest.raises(PaperCheckpointError, match="llama_proj.weight"):
        convert_state_dict({"trans": {"transformer.wte.weight": torch.zeros(4, 4)}})
    bad = synthetic_paper_state()
    bad["lm_head.weight"] = bad["lm_head.weight"][:-1]
    with pytest.raises(PaperCheckpointError, match="lm_head has"):
        convert_state_dict(bad, n_head=N_HEAD)
    with pytest.raises(PaperCheckpointError, match="pass n_head"):
        convert_state_dict(synthetic_paper_state())
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"nope")
    with pytest.raises(PaperCheckpointError, match="junk.pth: cannot read"):
        load_paper_checkpoint(junk)
