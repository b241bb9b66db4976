"""The static decode engine (generator/decode.py): same tokens as the eager sampler on CPU, fixed-shape
steps, on-device seeded draws that are batch-independent and follow the softmax, graph reuse by bucket."""

import dataclasses

import pytest
import torch

from motionmillion.generator.decode import DecodeEngine, counter_uniform, finished_columns, gumbel_draw
from motionmillion.generator.model import KVCache, MotionGPT
from motionmillion.generator.sample import SamplingOptions, length_window, sample_tokens

from .test_model import text_batch, tiny_config

PROMPTS = ["a person walks forward", "a person runs in a circle", "a person waves with the right hand",
           "a person bows politely", "a person kicks with the left leg", "a person punches twice",
           "a person turns around slowly", "a person dances happily", "a person jumps up",
           "a person raises both hands", "a person walks backwards", "someone sits down", "a man walks sadly",
           "a person runs fast then stops", "a person spins", "a woman kicks high", "a person waves both hands",
           "a person steps to the left", "a person walks like a zombie", "a person crouches"]  # fmt: skip


def codes(generated: torch.Tensor, end_id: int) -> list[list[int]]:
    rows = []
    for row in generated.tolist():
        rows.append(row[: row.index(end_id)] if end_id in row else row)
    return rows


@pytest.fixture(scope="module")
def bundled():
    from motionmillion import MotionPipeline

    pipe = MotionPipeline.from_pretrained(device="cpu")
    encoded = pipe.text_encoder.encode(PROMPTS)
    windows = [length_window(s, pipe.frames_per_token, pipe.max_tokens) for s in [2.0, 4.0, 6.0, 10.0] * 5]
    # The engine has no length condition yet (issue 14): the bundled weights without their length embedding.
    config = dataclasses.replace(pipe.generator.config, length_condition=False)
    model = MotionGPT(config).eval()
    weights = {k: v for k, v in pipe.generator.state_dict().items() if not k.startswith("length_embedding")}
    model.load_state_dict(weights)
    return model, encoded.features, encoded.mask, [low for low, _ in windows], [high for _, high in windows]


OPTIONS = [SamplingOptions(), SamplingOptions(temperature=0.8, top_k=50), SamplingOptions(top_p=0.9, guidance=2.0),
           SamplingOptions(temperature=0.0)]  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS, ids=["t1", "t0.8-k50", "p0.9-cfg2", "greedy"])
def test_engine_gives_the_eager_samplers_tokens_on_cpu(bundled, options):
    """20 prompts x 20 seeds of the bundled model, 2-10 s: the static cache + host draw = today's sampler."""
    model, features, mask, low, high = bundled
    seeds = list(range(100, 120))
    eager = sample_tokens(model, features, mask, seeds, low, high, options)  # on a CPU that is the eager loop
    static = DecodeEngine(model).sample(features, mask, seeds, torch.tensor(low), torch.tensor(high), options)
    assert codes(static, model.config.end_id) == eager
    assert min(len(c) for c in eager) >= 1 and max(len(c) for c in eager) > 50  # really long motions were drawn


def test_static_decode_step_matches_the_growing_cache():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3, 5])
    tokens = torch.randint(0, 20, (2, 6))
    with torch.no_grad():
        grow = KVCache.allocate(model.config, 2, model.prefix_length(5) + 8, "cpu", torch.float32)
        fixed = KVCache.allocate(model.config, 2, model.prefix_length(5) + 8, "cpu", torch.float32)
        model.prefill(features, mask, grow)
        model.prefill(features, mask, fixed)
        position = torch.tensor(model.prefix_length(5))
        for j in range(6):
            expected = model.decode_step(tokens[:, j], grow)
            got = model.decode_step_static(tokens[:, j], fixed, position)
            position += 1
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_device_draw_is_seeded_batch_independent_and_bucketed():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3, 5, 4])
    engine = DecodeEngine(model)
    options = SamplingOptions(temperature=1.0, top_k=10)
    low, high = torch.tensor([2, 2, 2]), torch.tensor([12, 12, 12])
    batch = engine.sample(features, mask, [7, 8, 9], low, high, options, draw="device")
    again = engine.sample(features, mask, [7, 8, 9], low, high, options, draw="device")
    assert torch.equal(batch, again)
    alone = engine.sample(features[1:2, :5], mask[1:2, :5], [8], low[:1], high[:1], options, draw="device")
    assert codes(alone, model.config.end_id)[0] == codes(batch, model.config.end_id)[1]
    other_seed = engine.sample(features, mask, [70, 80, 90], low, high, options, draw="device")
    assert not torch.equal(batch, other_seed)
    # 3 rows and 4 rows share the 4-row bucket (and the 32-position text bucket): one runner
    engine.sample(torch.cat([features, features[:1]]), torch.cat([mask, mask[:1]]), [1, 2, 3, 4],
                  torch.tensor([2] * 4), torch.tensor([12] * 4), options, draw="device")  # fmt: skip
    assert len([k for k in engine.runners if k.draw == "device"]) == 2  # 4 rows; 1 row


def test_counter_noise_is_uniform_and_the_gumbel_draw_follows_the_softmax():
    u = counter_uniform(torch.arange(64), torch.tensor(3), 1000)
    assert 0 < float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    assert not torch.equal(u, counter_uniform(torch.arange(64), torch.tensor(4), 1000))
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).expand(4000, -1)
    draws = torch.cat([gumbel_draw(logits, torch.arange(4000), torch.tensor(step)) for step in range(5)])
    frequency = torch.bincount(draws, minlength=5).float() / len(draws)
    assert frequency[4] == 0  # an excluded token is never drawn
    torch.testing.assert_close(frequency, logits[0].softmax(-1), atol=0.01, rtol=0)


def test_finished_columns_stop_where_the_last_row_ended():
    generated = torch.tensor([[3, 16, 17, 17], [4, 5, 16, 17]])
    assert [c.tolist() for c in finished_columns(generated, end_id=16)] == [[3, 4], [16, 5], [17, 16]]


def test_engine_switch():
    with pytest.raises(ValueError, match="engine"):
        SamplingOptions(engine="fast")
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3])
    static = sample_tokens(model, features, mask, [0], [2], [6], SamplingOptions(temperature=0, engine="static"))
    assert static == sample_tokens(model, features, mask, [0], [2], [6], SamplingOptions(temperature=0, engine="eager"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the CUDA-graph decode path")
def test_cuda_graph_engine_matches_eager_replay():
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).cuda().eval()
    features, mask = (t.cuda() for t in text_batch([3, 5, 4]))
    low, high = torch.tensor([2, 2, 2], device="cuda"), torch.tensor([12, 12, 12], device="cuda")
    for options in (SamplingOptions(temperature=0), SamplingOptions(temperature=1.0, top_p=0.9)):
        graphed = DecodeEngine(model, use_graphs=True).sample(features, mask, [1, 2, 3], low, high, options)
        eager = DecodeEngine(model, use_graphs=False, compile_blocks=True).sample(features, mask, [1, 2, 3], low, high,
                                                                                 options, draw="device")  # fmt: skip
        assert torch.equal(graphed, eager)


def test_compiled_blocks_give_the_same_tokens():
    """The engine's compiled block step (on by default on CUDA) against the plain one, here on the CPU."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3, 5, 4])
    low, high = torch.tensor([2, 2, 2]), torch.tensor([12, 12, 12])
    for options in (SamplingOptions(temperature=0), SamplingOptions(temperature=1.0, top_k=10)):
        plain = DecodeEngine(model, compile_blocks=False).sample(features, mask, [1, 2, 3], low, high, options, draw="device")
        compiled_engine = DecodeEngine(model, compile_blocks=True)
        compiled = compiled_engine.sample(features, mask, [1, 2, 3], low, high, options, draw="device")
        assert all(runner.run_block is not None for runner in compiled_engine.runners.values())
        assert torch.equal(plain, compiled)


def test_runners_are_rebuilt_when_the_weights_move():
    """A CUDA graph replays reads at capture-time addresses: after model.to(...) a kept runner would read
    freed memory (an illegal memory access on the H200 when a test moved a model to bf16 and back)."""
    torch.manual_seed(0)
    model = MotionGPT(tiny_config()).eval()
    features, mask = text_batch([3])
    engine = DecodeEngine(model)
    options = SamplingOptions(temperature=0)
    first = engine.sample(features, mask, [1], torch.tensor([2]), torch.tensor([8]), options)
    (runner,) = engine.runners.values()
    engine.sample(features, mask, [1], torch.tensor([2]), torch.tensor([8]), options)
    assert list(engine.runners.values()) == [runner]  # same weights: reused
    model.to(torch.float64).to(torch.float32)  # new parameter tensors
    again = engine.sample(features, mask, [1], torch.tensor([2]), torch.tensor([8]), options)
    assert list(engine.runners.values()) != [runner] and torch.equal(first, again)
