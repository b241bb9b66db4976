from dataclasses import replace

import pytest
import torch

from motionmillion.generator.config import PRESETS, GeneratorConfig
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.parallelize import apply_activation_checkpointing
from motionmillion.generator.engine import DecodeEngine, filter_logits, sample_tokens
from motionmillion.generator.sampling import SamplingOptions, length_window
from motionmillion.training import preset


def tiny_config(**overrides) -> GeneratorConfig:
    settings = dict(preset="test", n_layer=2, n_head=2, n_embd=32, codebook_size=20, text_dim=12)
    settings.update(overrides)
    return GeneratorConfig(**settings)


def text_batch(lengths: list[int], dim: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    features = torch.randn(len(lengths), longest, dim, generator=gen)
    mask = torch.arange(longest)[None] < torch.tensor(lengths)[:, None]  # right padding, like the encoder
    return features, mask


# fact sheet table 4.2: (total params, non-embedding params) in billions for vocab 64,002 and text dim 2048
PAPER_SIZES = {"44M": (0.094, 0.027), "111M": (0.185, 0.085), "343M": (0.442, 0.308), "775M": (0.898, 0.731),
               "1B": (1.56, 1.36), "3B": (3.41, 2.99)}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_preset_sizes_match_the_table(name):
    config = replace(preset(PRESETS, name).model, codebook_size=64000, text_dim=2048, cond_drop_prob=0.0)
    with torch.device("meta"):
        model = MotionGPT(config)
    total, non_embedding = PAPER_SIZES[name]
    assert model.num_parameters() / 1e9 == pytest.approx(total, abs=0.006)
    # the table's non-embedding count includes the text projection
    assert model.num_parameters(exclude_embeddings=True) / 1e9 == pytest.approx(non_embedding, abs=0.006)


def test_seven_b_preset_shape():
    config = replace(preset(PRESETS, "7B").model, codebook_size=64000, text_dim=2048)
    assert (config.n_layer, config.n_head, config.n_embd, config.head_dim, config.mlp_hidden) == (36, 32, 4096, 128, 11008)


def test_cpu_presets_are_cpu_sized():
    for name, low, high in (("cpu-tiny", 2e6, 5e6), ("cpu-small", 10e6, 20e6)):
        model = MotionGPT(replace(preset(PRESETS, name).model, codebook_size=512, text_dim=384))
        assert low <= model.num_parameters() <= high, (name, model.num_parameters())


def test_vocab_end_pad_and_head_without_pad_row():
    config = tiny_config()
    model = MotionGPT(config)
    assert (config.end_id, config.pad_id, config.vocab_size) == (20, 21, 22)
    assert model.token_embedding.weight.shape[0] == 22 and model.lm_head.weight.shape[0] == 21
    assert model.lm_head.weight.data_ptr() != model.token_embedding.weight.data_ptr()


def test_prefix_is_bidirectional_and_motion_is_causal():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([5])
    tokens = torch.randint(0, 20, (1, 6))
    base = model(features, mask, tokens)
    # changing a later motion token leaves earlier predictions untouched
    changed = tokens.clone()
    changed[0, 4] = (changed[0, 4] + 1) % 20
    out = model(features, mask, changed)
    torch.testing.assert_close(out[:, :5], base[:, :5])
    assert not torch.allclose(out[:, 5:], base[:, 5:])
    # the first text token is seen through the whole (bidirectional) prefix, the last one too
    for position in (0, 4):
        features2 = features.clone()
        features2[0, position] += 1.0
        assert not torch.allclose(model(features2, mask, tokens)[:, 0], base[:, 0])


@pytest.mark.parametrize("sentence_token", [False, True])
def test_padding_does_not_change_an_items_logits(sentence_token):
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(sentence_token=sentence_token)).eval()
    features, mask = text_batch([3, 7])
    tokens = torch.randint(0, 20, (2, 5))
    batched = model(features, mask, tokens)
    alone = model(features[:1, :3], mask[:1, :3], tokens[:1])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sentence_token", [False, True])
def test_kv_cache_logits_equal_full_recompute(sentence_token):
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(sentence_token=sentence_token)).eval()
    features, mask = text_batch([4, 9, 1], seed=3)
    tokens = torch.randint(0, 21, (3, 8))
    drop = torch.tensor([False, True, False])
    with torch.no_grad():
        full = model(features, mask, tokens, drop)
        from motionmillion.generator.model import KVCache

        cache = KVCache(model.config, 3, model.prefix_length(features.shape[1]) + 8, "cpu", torch.float32)
        steps = [model.prefill(features, mask, cache, drop)]
        for j in range(8):
            steps.append(model.decode_step(tokens[:, j], cache))
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = MotionGPT(tiny_config())
    checkpointed = apply_activation_checkpointing(MotionGPT(tiny_config()))
    checkpointed.load_state_dict(plain.state_dict())  # the wrapper leaves the state-dict keys unchanged
    features, mask = text_batch([3, 5])
    tokens = torch.randint(0, 21, (2, 6))
    for model in (plain, checkpointed):
        model.train()
        model.loss(model(features, mask, tokens), tokens).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_null_prefix_requires_condition_dropout():
    model = MotionGPT(tiny_config(cond_drop_prob=0.0))
    features, mask = text_batch([3])
    with pytest.raises(ValueError, match="condition dropout"):
        model(features, mask, torch.zeros(1, 2, dtype=torch.long), torch.tensor([True]))
    with pytest.raises(ValueError, match="condition dropout"):
        sample_tokens(model, features, mask, [0], [1], [5], SamplingOptions(guidance=2.0))


def test_sentence_token_is_the_mean_pooled_unit_sentence_embedding():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(sentence_token=True)).eval()
    features, mask = text_batch([3, 5])
    prefix, valid = model.build_prefix(features, mask)
    assert prefix.shape[1] == model.prefix_length(5) == 6 and valid[:, -1].all()
    pooled = features[0, :3].mean(0)
    expected = model.sentence_proj(pooled / pooled.norm())
    torch.testing.assert_close(prefix[0, -1], expected)
    # padding never reaches the pooled embedding
    features[0, 3:] = 1e6
    torch.testing.assert_close(model.build_prefix(features, mask)[0][0, -1], expected)


def test_text_dim_mismatch_is_a_clear_error():
    model = MotionGPT(tiny_config())
    with pytest.raises(ValueError, match="text features have dim 7"):
        model(torch.zeros(1, 2, 7), torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 2, dtype=torch.long))


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("sentence_token", [False, True])
def test_dynamic_and_static_caches_agree_and_respect_length(sentence_token):
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(sentence_token=sentence_token)).eval()
    features, mask = text_batch([2, 6, 4])
    for options in (SamplingOptions(temperature=0), SamplingOptions(temperature=1.0, top_k=5, guidance=2.5)):
        kwargs = dict(seeds=[1, 2, 3], min_tokens=[3, 5, 1], max_tokens=[4, 7, 12])
        with_cache = sample_tokens(model, features, mask, options=options, **kwargs)
        steps = DecodeEngine(model, static=True).stream(features, mask, *kwargs.values(), options)
        rows = torch.stack(list(steps), 1).tolist()
        assert with_cache == [row[: row.index(20)] if 20 in row else row for row in rows]
        for codes, low, high in zip(with_cache, kwargs["min_tokens"], kwargs["max_tokens"]):
            assert low <= len(codes) <= high
            assert all(0 <= c < 20 for c in codes)


def test_seeds_make_samples_reproducible_and_independent_of_the_batch():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([2, 6])
    options = SamplingOptions(temperature=1.0, top_p=0.9)
    both = sample_tokens(model, features, mask, [7, 8], [1, 1], [30, 30], options)
    again = sample_tokens(model, features, mask, [7, 8], [1, 1], [30, 30], options)
    second_alone = sample_tokens(model, features[1:], mask[1:], [8], [1], [30], options)
    other_seed = sample_tokens(model, features[1:], mask[1:], [9], [1], [30], options)
    assert both == again and both[1] == second_alone[0]
    assert other_seed[0] != second_alone[0]


def test_top_k_and_top_p_filters():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert torch.isinf(filter_logits(logits, 2, None)).tolist() == [[False, False, True, True]]
    probs = logits.softmax(-1)[0]  # ~0.64, 0.24, 0.09, 0.03
    kept = ~torch.isinf(filter_logits(logits, None, 0.8))
    assert kept.tolist() == [[True, True, False, False]] and probs[0] < 0.8 < probs[:2].sum()
    assert (~torch.isinf(filter_logits(logits, None, 0.5))).sum() == 1


def test_length_window():
    assert length_window(None, 2, 150) == (1, 150)
    assert length_window(4.0, 2, 150) == (54, 66)  # 60 tokens +- 10 %
    assert length_window(10.0, 2, 150) == (135, 150)  # capped at 300 frames
    assert length_window(0.05, 4, 75) == (1, 1)
