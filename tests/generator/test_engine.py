"""The one decode engine (generator/engine.py): every path's tokens, on the bundled model itself.

The static cache (what CUDA graphs replay) gives the dynamic cache's tokens with the same draws; the
one-pass prefill of context codes gives the step-by-step feed's; the cached steps give the full
recompute's logits; device draws are seeded, batch-independent and follow the softmax.
"""

import pytest
import torch

from motionmillion.generator.engine import DecodeEngine, counter_uniform, gumbel_draw, sample_tokens
from motionmillion.generator.sampling import SamplingOptions, length_window
from motionmillion.generator.model import KVCache, MotionGPT

from .test_model import text_batch, tiny_config

PROMPTS = ["a person walks forward", "a person runs in a circle", "a person waves with the right hand",
           "a person bows politely", "a person kicks with the left leg", "a person punches twice",
           "a person turns around slowly", "a person dances happily", "a person jumps up",
           "a person raises both hands", "a person walks backwards", "someone sits down", "a man walks sadly",
           "a person runs fast then stops", "a person spins", "a woman kicks high", "a person waves both hands",
           "a person steps to the left", "a person walks like a zombie", "a person crouches"]  # fmt: skip


def codes(stream_of_steps, end_id: int) -> list[list[int]]:
    rows = torch.stack(list(stream_of_steps), dim=1).tolist()
    return [row[: row.index(end_id)] if end_id in row else row for row in rows]


@pytest.fixture(scope="module")
def bundled():
    """The bundled generator as shipped (length condition included) and 20 prompts of 2-10 s."""
    from motionmillion import MotionPipeline

    pipe = MotionPipeline.from_pretrained(device="cpu")
    encoded = pipe.text_encoder.encode(PROMPTS)
    targets = [round(s * pipe.fps / pipe.frames_per_token) for s in [2.0, 4.0, 6.0, 10.0] * 5]
    return pipe.generator, encoded.features, encoded.mask, targets


OPTIONS = [SamplingOptions(), SamplingOptions(temperature=0.8, top_k=50), SamplingOptions(top_p=0.95),
           SamplingOptions(temperature=0.0)]  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS, ids=["t1", "t0.8-k50", "p0.95", "greedy"])
def test_static_cache_gives_the_dynamic_caches_tokens_on_the_bundled_model(bundled, options):
    """20 prompts x 20 seeds, length condition on, with and without context: the static cache (bucketed
    rows and text, whole-cache attention, what a CUDA graph replays) draws the same tokens."""
    model, features, mask, targets = bundled
    seeds = list(range(100, 120))
    for context in (None, torch.randint(0, model.config.codebook_size, (20, 3), generator=torch.Generator().manual_seed(0))):
        limit = model.config.max_motion_tokens - (0 if context is None else 3)
        wanted = [min(t, limit) for t in targets]
        args = (features, mask, seeds, wanted, wanted, options, context, wanted)
        dynamic = codes(DecodeEngine(model).stream(*args), model.config.end_id)
        static = codes(DecodeEngine(model, static=True).stream(*args), model.config.end_id)
        assert static == dynamic
        assert [len(c) for c in dynamic] == wanted  # the length condition ends each row where asked


def test_context_in_one_prefill_gives_the_logits_of_feeding_it_step_by_step(bundled):
    model, features, mask, _ = bundled
    context = torch.randint(0, model.config.codebook_size, (3, 6), generator=torch.Generator().manual_seed(1))
    remaining = torch.tensor([[20 - k for k in range(7)]] * 3)
    with torch.inference_mode():
        one = KVCache(model.config, 3, 64, "cpu", torch.float32)
        together = model.prefill(features[:3], mask[:3], one, remaining=remaining, context=context)
        steps = KVCache(model.config, 3, 64, "cpu", torch.float32)
        fed = model.prefill(features[:3], mask[:3], steps, remaining=remaining[:, :1])
        for k in range(6):
            fed = model.decode_step(context[:, k], steps, remaining[:, k + 1])
    torch.testing.assert_close(together, fed, atol=1e-4, rtol=1e-4)
    assert int(one.position) == int(steps.position)


def test_cached_steps_give_the_full_recomputes_logits():
    """prefill + decode_step against the training forward over the whole sequence, guidance rows included."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(length_condition=True, max_motion_tokens=16)).eval()
    features, mask = text_batch([3, 5])
    tokens = torch.randint(0, 20, (2, 6))
    remaining = torch.tensor([[9 - k for k in range(7)], [-1] * 7])
    drop = torch.tensor([False, True])
    with torch.inference_mode():
        full = model(features, mask, tokens, drop, remaining)  # (2, 7, V)
        for static in (False, True):
            cache = KVCache(model.config, 2, model.prefix_length(5) + 8, "cpu", torch.float32, static=static)
            steps = [model.prefill(features, mask, cache, drop, remaining[:, :1])]
            for j in range(6):
                steps.append(model.decode_step(tokens[:, j], cache, remaining[:, j + 1]))
            torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_device_draw_is_seeded_batch_independent_and_bucketed():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3, 5, 4])
    engine = DecodeEngine(model, static=True, draw="device")
    options = SamplingOptions(temperature=1.0, top_k=10)
    end = model.config.end_id
    batch = codes(engine.stream(features, mask, [7, 8, 9], [2] * 3, [12] * 3, options), end)
    assert batch == codes(engine.stream(features, mask, [7, 8, 9], [2] * 3, [12] * 3, options), end)
    alone = codes(engine.stream(features[1:2, :5], mask[1:2, :5], [8], [2], [12], options), end)
    assert alone[0] == batch[1]
    assert batch != codes(engine.stream(features, mask, [70, 80, 90], [2] * 3, [12] * 3, options), end)
    # 3 rows and 4 rows share the 4-row bucket (and the 32-position text bucket): one kept run, reused
    list(engine.stream(torch.cat([features, features[:1]]), torch.cat([mask, mask[:1]]), [1, 2, 3, 4], [2] * 4,
                       [12] * 4, options))  # fmt: skip
    assert sorted(shape.rows for shape in engine.free) == [1, 4]
    assert all(len(runs) == 1 for runs in engine.free.values())


def test_concurrent_calls_of_one_shape_get_their_own_run():
    """Seam candidates keep several streams of one shape open at once; each must keep its own cache."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([4])
    engine = DecodeEngine(model, static=True)
    options = SamplingOptions()
    alone = [codes(engine.stream(features, mask, [s], [10], [10], options), 99)[0][:10] for s in (1, 2)]
    first, second = (engine.stream(features, mask, [s], [10], [10], options) for s in (1, 2))
    interleaved = [[], []]
    for a, b in zip(first, second):
        interleaved[0].append(int(a[0]))
        interleaved[1].append(int(b[0]))
    assert [row[:10] for row in interleaved] == alone


def test_counter_noise_is_uniform_and_the_gumbel_draw_follows_the_softmax():
    u = counter_uniform(torch.arange(64), torch.tensor(3), 1000)
    assert 0 < float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    assert not torch.equal(u, counter_uniform(torch.arange(64), torch.tensor(4), 1000))
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).expand(4000, -1)
    draws = torch.cat([gumbel_draw(logits, torch.arange(4000), torch.tensor(step)) for step in range(5)])
    frequency = torch.bincount(draws, minlength=5).float() / len(draws)
    assert frequency[4] == 0  # an excluded token is never drawn
    torch.testing.assert_close(frequency, logits[0].softmax(-1), atol=0.01, rtol=0)


def test_length_window_and_bad_inputs():
    assert length_window(None, 4, 75) == (1, 75)
    assert length_window(4.0, 4, 75) == (27, 33)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3])
    with pytest.raises(ValueError, match="seed"):
        sample_tokens(model, features, mask, [0, 1], [1], [5])
    with pytest.raises(ValueError, match="context"):
        sample_tokens(model, features, mask, [0], [1], [5], context=torch.tensor([[25]]))
    with pytest.raises(ValueError, match="token limits"):
        sample_tokens(model, features, mask, [0], [6], [5])
    with pytest.raises(ValueError, match="draw"):
        DecodeEngine(model, draw="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the CUDA-graph decode path")
def test_cuda_graph_engine_matches_eager_replay_with_context_and_length():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config(length_condition=True, max_motion_tokens=32)).cuda().eval()
    features, mask = (t.cuda() for t in text_batch([3, 5, 4]))
    context = torch.randint(0, 20, (3, 2))
    for options in (SamplingOptions(temperature=0), SamplingOptions(temperature=1.0, top_p=0.9)):
        args = (features, mask, [1, 2, 3], [2] * 3, [12] * 3, options, context, [10, None, 12])
        graphed = codes(DecodeEngine(model).stream(*args), model.config.end_id)
        replayed = codes(DecodeEngine(model, compile_blocks=True, static=True).stream(*args), model.config.end_id)
        assert graphed == replayed


def test_compiled_blocks_give_the_same_tokens():
    """The engine's compiled block step (on by default on CUDA) against the plain one, here on the CPU."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3, 5, 4])
    for options in (SamplingOptions(temperature=0), SamplingOptions(temperature=1.0, top_k=10)):
        args = (features, mask, [1, 2, 3], [2] * 3, [12] * 3, options)
        plain = codes(DecodeEngine(model, static=True, compile_blocks=False).stream(*args), model.config.end_id)
        compiled_engine = DecodeEngine(model, static=True, compile_blocks=True)
        assert codes(compiled_engine.stream(*args), model.config.end_id) == plain
        assert all(run.run_block is not None for runs in compiled_engine.free.values() for run in runs)


def test_runs_are_rebuilt_when_the_weights_move():
    """A CUDA graph replays reads at capture-time addresses: after model.to(...) a kept run would read
    freed memory (an illegal memory access on the H200 when a test moved a model to bf16 and back)."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3])
    engine = DecodeEngine(model, static=True)
    options = SamplingOptions(temperature=0)
    first = codes(engine.stream(features, mask, [1], [2], [8], options), 99)
    ((run,),) = engine.free.values()
    model.to(torch.float64).to(torch.float32)  # new tensors, the old ones freed
    again = codes(engine.stream(features, mask, [1], [2], [8], options), 99)
    assert again == first
    ((rebuilt,),) = engine.free.values()
    assert rebuilt is not run
