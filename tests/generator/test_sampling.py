"""The engine's token choice: seeded host draws on any device (issue 17 item 1), the nucleus, context and the
length condition (issue 14)."""

import pytest
import torch

from motionmillion.generator.config import GeneratorConfig
from motionmillion.generator.model import MotionGPT
from motionmillion.generator.engine import DecodeEngine, filter_logits, host_draw, outside_nucleus, sample_tokens
from motionmillion.generator.sampling import SamplingOptions

OPTIONS = [SamplingOptions(), SamplingOptions(temperature=0.7, top_k=5), SamplingOptions(top_p=0.9)]


def generators(seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def test_draws_never_use_a_generator_on_another_device(monkeypatch):
    """CUDA refuses a CPU generator for a CUDA tensor (the crash of issue 17). The same check, emulated for
    multinomial, on logits held on the 'meta' device: the draw must happen on the generators' device."""
    real = torch.multinomial

    def strict(input, *args, generator=None, **kwargs):
        if generator is not None and generator.device != input.device:
            raise RuntimeError(f"Expected a '{input.device.type}' device type for generator but found "
                               f"'{generator.device.type}'")  # fmt: skip
        return real(input, *args, generator=generator, **kwargs)

    monkeypatch.setattr(torch, "multinomial", strict)
    probs = torch.randn(3, 40, device="meta").softmax(-1)
    ids = host_draw(probs, generators([0, 1, 2]))
    assert ids.device.type == "meta" and ids.shape == (3,)


@pytest.mark.parametrize("options", OPTIONS)
def test_cpu_draws_are_those_of_multinomial_with_the_same_seed(options):
    """The fix keeps every CPU sample as it was: torch.multinomial's one-sample draw, per-row seeds."""
    torch.manual_seed(0)
    for _ in range(20):
        logits = torch.randn(4, 300) * 3
        probs = filter_logits(logits / options.temperature, options.top_k, options.top_p).softmax(-1)
        ids = host_draw(probs, generators([5, 6, 7, 8]))
        expected = [int(torch.multinomial(probs[i], 1, generator=g)) for i, g in enumerate(generators([5, 6, 7, 8]))]
        assert ids.tolist() == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("options", OPTIONS)
def test_cuda_draws_equal_cpu_draws_for_the_same_seed(options):
    torch.manual_seed(0)
    logits = torch.randn(8, 1000, dtype=torch.float64) * 2  # float64: no rounding difference between devices
    probs = filter_logits(logits / options.temperature, options.top_k, options.top_p).softmax(-1)
    seeds = list(range(8))
    cpu = host_draw(probs, generators(seeds))
    cuda = host_draw(probs.cuda(), generators(seeds))
    assert cuda.device.type == "cuda" and cuda.cpu().tolist() == cpu.tolist()


@pytest.fixture(scope="module")
def timed_model():
    torch.manual_seed(0)
    config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32, codebook_size=16, text_dim=8,
                             max_motion_tokens=40, length_condition=True)  # fmt: skip
    return MotionGPT(config).eval()


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_context_and_length_give_the_same_tokens_with_a_dynamic_and_a_static_cache(timed_model, guidance):
    features = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, :2] = False
    context = torch.randint(0, 16, (2, 6))
    kwargs = dict(seeds=[3, 4], min_tokens=[2, 9], max_tokens=[12, 9], context=context, target_tokens=[None, 9])
    cached = sample_tokens(timed_model, features, mask, options=SamplingOptions(guidance=guidance), **kwargs)
    args = [kwargs[k] for k in ("seeds", "min_tokens", "max_tokens")]
    steps = DecodeEngine(timed_model, static=True).stream(features, mask, *args, SamplingOptions(guidance=guidance),
                                                          context, kwargs["target_tokens"])  # fmt: skip
    rows = torch.stack(list(steps), 1).tolist()
    assert cached == [row[: row.index(16)] if 16 in row else row for row in rows]
    assert len(cached[1]) == 9  # exact length: min = max = target
    without = sample_tokens(timed_model, features, mask, options=SamplingOptions(temperature=0), seeds=[3, 4],
                            min_tokens=[12, 12], max_tokens=[12, 12])  # fmt: skip
    greedy = sample_tokens(timed_model, features, mask, options=SamplingOptions(temperature=0), seeds=[3, 4],
                           min_tokens=[12, 12], max_tokens=[12, 12], context=context)  # fmt: skip
    assert without != greedy  # the context conditions what follows


def test_bad_context_is_refused(timed_model):
    features, mask = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="context must be"):
        sample_tokens(timed_model, features, mask, [0], [1], [4], context=torch.tensor([[16]]))
    with pytest.raises(ValueError, match="context \\+ max"):
        sample_tokens(timed_model, features, mask, [0], [1], [38], context=torch.zeros(1, 5, dtype=torch.long))


def test_old_generators_load_without_the_length_condition():
    config = GeneratorConfig.from_dict({"n_layer": 1, "n_head": 2, "n_embd": 16, "codebook_size": 8, "text_dim": 8})
    model = MotionGPT(config)
    assert not config.length_condition and model.length_embedding is None
    assert not any("length" in name for name in model.state_dict())


@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0, 20.0])  # flat rows (nucleus > candidates) to peaked ones
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_the_nucleus_is_the_sorted_nucleus(scale, top_p):
    torch.manual_seed(0)
    logits = torch.randn(32, 1001, dtype=torch.float64) * scale
    logits[:4, 1000] = float("-inf")  # END held back, as below the minimum length
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    expected = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, (probs.cumsum(-1) - probs) >= top_p)
    assert torch.equal(outside_nucleus(logits, top_p), expected)


def test_tokens_tied_with_the_last_one_kept_stay_in_the_nucleus():
    logits = torch.tensor([[3.0, 1.0, 1.0, 1.0, -2.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: 3 holds 0.82 of the mass, so one of the tied 1.0 tokens is needed to reach 0.9: all three stay
    assert outside_nucleus(logits, 0.9).tolist() == [[False, False, False, False, True], [False] * 5]
