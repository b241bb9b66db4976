import logging
import shutil

import numpy as np
import pytest
import torch

from motionmillion.generator.config import GeneratorConfig
from motionmillion.generator.model import MotionGPT
from motionmillion.pipeline import MotionPipeline, PipelineError, PromptError

from generator.helpers import make_pipeline_folder  # tests/ is on sys.path (rootdir conftest)


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    return make_pipeline_folder(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def pipe(pipeline_folder):
    return MotionPipeline.from_pretrained(pipeline_folder, device="cpu")


def test_pipeline_generates_motions_with_requested_lengths_and_seeds(pipe):
    motions = pipe(["a person walks forward", "someone waves"], seconds=[2.0, 1.0], num_samples=2, seed=5)
    assert len(motions) == 4
    assert [m.text for m in motions] == ["a person walks forward"] * 2 + ["someone waves"] * 2
    assert [m.meta["seed"] for m in motions] == [5, 6, 7, 8]
    for motion, target in zip(motions, [2.0, 2.0, 1.0, 1.0]):
        assert motion.features.shape[1] == 272 and motion.fps == 30.0
        assert 0.85 * target <= motion.seconds <= 1.15 * target + 1 / 15
        assert motion.joints.shape == (motion.num_frames, 22, 3)
    again = pipe(["a person walks forward"], seconds=2.0, num_samples=2, seed=5)
    np.testing.assert_array_equal(again[1].features, motions[1].features)  # same seed, same sample


def test_pipeline_round_trips_through_save_pretrained(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "copy")
    copy = MotionPipeline.from_pretrained(tmp_path / "copy", device="cpu")
    a = pipe("a person jumps", seconds=1.0, seed=1, temperature=0)[0]
    b = copy("a person jumps", seconds=1.0, seed=1, temperature=0)[0]
    np.testing.assert_allclose(a.features, b.features, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompts="   "), "empty"),
        (dict(prompts=[]), "no prompts"),
        (dict(prompts="walk", seconds=0), "seconds must be in"),
        (dict(prompts="walk", seconds=-1), "seconds must be in"),
        (dict(prompts="walk", seconds=10.5), "seconds must be in"),
        (dict(prompts="walk", num_samples=0), "num_samples"),
        (dict(prompts="walk", top_p=1.5), "top_p"),
        (dict(prompts="walk", seconds=0.01), "seconds must be in"),
        (dict(prompts=None), "must be a string or a list"),
        (dict(prompts=b"walk"), "must be a string or a list"),
        (dict(prompts=["walk", b"run"]), "prompt 2: the prompt must be a string, got bytes"),
        (dict(prompts="walk", seconds="abc"), "seconds must be a number or None, got 'abc'"),
        (dict(prompts="walk", seconds="4"), "seconds must be a number or None, got '4'"),
        (dict(prompts="walk", seed=2**64), "seed must be in"),
        (dict(prompts="walk", seed="1"), "seed must be an integer"),
    ],
)
def test_bad_input_is_a_clear_error(pipe, kwargs, message):
    with pytest.raises(PromptError, match=message):
        pipe(**kwargs)


def test_long_and_non_english_prompts_still_generate(pipe, caplog):
    """Text the encoder may misread is said in the motion's meta (the CLI prints it, the server returns it),
    never as a Python warning with a source line; a long prompt's truncation is logged once (it was
    encoded twice before: once to understand it, once to condition the generator)."""
    import warnings

    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("error")
        motions = pipe(["walk " * 2000, "一个人向前走", "a person dances 💃"], seconds=1, seed=0)
    assert len(motions) == 3
    assert caplog.text.count("truncated") == 1
    assert "text_warning" not in motions[0].meta
    assert "non-English" in motions[1].meta["text_warning"]
    assert "emoji" in motions[2].meta["text_warning"]


def test_generate_yields_in_request_order_with_mixed_options(pipe):
    from motionmillion.pipeline import GenerationRequest

    requests = [GenerationRequest("walk", seconds=1, seed=1, temperature=0), GenerationRequest("run", seconds=1, seed=2),
                GenerationRequest("jump", seconds=1, seed=3, temperature=0)]  # fmt: skip
    motions = list(pipe.generate(requests, batch_size=2))
    assert [m.text for m in motions] == ["walk", "run", "jump"]
    assert [m.meta["seed"] for m in motions] == [1, 2, 3]
    alone = pipe("jump", seconds=1, seed=3, temperature=0)[0]  # a row does not depend on its batch
    # same tokens; the batched decoder convolutions may differ from a lone decode in the last float bits
    np.testing.assert_allclose(motions[2].features, alone.features, atol=1e-4)


def test_missing_damaged_and_mismatched_folders(pipeline_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(pipeline_folder, broken)
    (broken / "generator" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PipelineError, match=r"generator.*model.safetensors.*reinstall"):
        MotionPipeline.from_pretrained(broken, device="cpu")
    (broken / "generator" / "model.safetensors").unlink()
    with pytest.raises(PipelineError, match="missing generator/model.safetensors"):
        MotionPipeline.from_pretrained(broken, device="cpu")
    with pytest.raises(PipelineError, match="no such pipeline folder"):
        MotionPipeline.from_pretrained(tmp_path / "nowhere")
    mismatched = tmp_path / "mismatched"
    shutil.copytree(pipeline_folder, mismatched)
    config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32, codebook_size=99, text_dim=384)
    MotionGPT(config).save_pretrained(mismatched / "generator")
    with pytest.raises(PipelineError, match="do not belong together"):
        MotionPipeline.from_pretrained(mismatched, device="cpu")


def test_missing_default_model_names_what_to_do(monkeypatch, tmp_path):
    import motionmillion.pipeline.loading as pipeline_module

    monkeypatch.setattr(pipeline_module, "default_model_path", lambda: tmp_path / "default_model")
    with pytest.raises(PipelineError, match="bundled default model is not installed.*--model"):
        MotionPipeline.from_pretrained()


@pytest.mark.parametrize("device, message", [("tpu", "not a torch device"), ("cuda", "not available on this machine")])
def test_unusable_device_is_named_before_loading(pipeline_folder, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PromptError, match=message):
        MotionPipeline.from_pretrained(pipeline_folder, device=device)


def test_a_sample_that_repeats_an_earlier_one_says_so(pipe):
    """Greedy decoding draws one motion whatever the seed: samples 1 and 2 name sample 0 as their twin (the
    memorised bundled model does this at temperature 1 too, e.g. for "a person jumps")."""
    motions = pipe("a person waves", seconds=1, num_samples=3, seed=0, temperature=0)
    assert [m.meta.get("same_as_request") for m in motions] == [None, 0, 0]
    different = pipe(["a person waves", "a person bows"], seconds=1, seed=0, temperature=0)
    assert all("same_as_request" not in m.meta for m in different)
