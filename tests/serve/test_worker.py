"""The generation child process of ``motionmillion serve``: same motions as in-process, errors, restarts."""

import numpy as np
import pytest

from motionmillion.pipeline import GenerationRequest
from motionmillion.serve.routes import create_app
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.worker import GenerationProcess

from .conftest import LiveServer


@pytest.fixture(scope="module")
def generation():
    with GenerationProcess(None, "cpu", batch_size=8) as process:
        process.wait_ready()
        yield process


def test_the_child_makes_the_motions_the_pipeline_makes(generation, bundled_pipe):
    requests = [GenerationRequest("a person walks forward", seconds=2.0, seed=3),
                GenerationRequest("a person waves with the right hand", seconds=3.0, seed=4)]  # fmt: skip
    here = list(bundled_pipe.generate(requests))
    there = generation.generate(requests)
    assert [m.text for m in there] == [m.text for m in here]
    for a, b in zip(there, here):
        np.testing.assert_array_equal(a.features, b.features)
        assert "joints" in a.__dict__  # computed in the child, not again by the server
        np.testing.assert_allclose(a.joints, b.joints, atol=1e-6)


def test_a_bad_request_is_a_value_error_and_a_dead_child_is_restarted(generation):
    with pytest.raises(ValueError, match="seconds"):
        generation.generate([GenerationRequest("a person walks forward", seconds=-1.0, seed=0)])
    generation._process.kill()
    generation._process.join()
    with pytest.raises(RuntimeError, match="restarted"):
        generation.generate([GenerationRequest("a person walks forward", seconds=1.0, seed=0)])
    (motion,) = generation.generate([GenerationRequest("a person walks forward", seconds=1.0, seed=0)])
    assert motion.num_frames > 0


def test_the_server_answers_from_the_child(generation, bundled_pipe, tmp_path):
    app = create_app(bundled_pipe, ServeConfig(cache_dir=tmp_path), generate=generation.generate)
    with LiveServer(app) as live:
        response = live.client.post("/v1/generate", json={"prompt": "a person bows", "seconds": 2, "seed": 7})
        assert response.status_code == 200
        (entry,) = response.json()["motions"]
        (expected,) = bundled_pipe.generate([GenerationRequest("a person bows", seconds=2.0, seed=7)])
        np.testing.assert_allclose(np.array(entry["joints"]), expected.joints, atol=1e-3)
        assert live.client.post("/v1/generate", json={"prompt": "a person bows", "seconds": -2}).status_code == 422


def test_a_child_without_a_text_encoder_makes_the_same_motions(bundled_pipe):
    """The server encodes each batch's texts and sends them (serve --workers: no encoder per child)."""
    encoder = bundled_pipe.text_encoder
    info = {"name": encoder.name, "dim": encoder.dim, "max_length": encoder.max_length}
    requests = [GenerationRequest("a person walks forward", seconds=2.0, seed=3),
                GenerationRequest("a person bows", seconds=2.0, seed=4),
                GenerationRequest("a person walks forward", seconds=3.0, seed=5)]  # fmt: skip
    from motionmillion.serve.worker import GenerationPool

    with GenerationPool(2, None, "cpu", 8, encode_texts=encoder.encode, text_encoder_info=info) as pool:
        pool.wait_ready()
        there = pool.generate(requests)
    for a, b in zip(there, bundled_pipe.generate(requests)):
        assert a.meta["tokens"] == b.meta["tokens"]  # the same codes were drawn
        np.testing.assert_allclose(a.features, b.features, atol=1e-5)  # text features computed in another process
        assert a.meta.get("coverage") == pytest.approx(b.meta.get("coverage"), abs=1e-4)
