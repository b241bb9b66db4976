"""The HTTP API on the bundled model, through a real uvicorn server on loopback."""

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from motionmillion.export.fbx import find_blender
from motionmillion.motion import Motion
from motionmillion.motion.rig_mapping import load_bvh_joints
from motionmillion.pipeline import GenerationRequest, ModelLimits, MotionPipeline, make_plan
from motionmillion.serve.routes import create_app
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.store import MotionStore

from serve.conftest import LiveServer  # tests/ is on sys.path (rootdir conftest)


def _generate(live, **body):
    response = live.client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["motions"]


def test_health_and_model_description(live):
    assert live.client.get("/healthz").json() == {"status": "ok"}
    info = live.client.get("/v1/model").json()
    assert info["fps"] == 30.0 and len(info["joint_names"]) == 22 and info["joint_names"][0] == "pelvis"
    assert info["max_seconds"] == pytest.approx(10.0)
    assert info["sampling"]["defaults"]["top_p"] == 0.95 and info["sampling"]["defaults"]["fix_feet"] is False
    assert "CC BY-NC 4.0" in info["licence"] and info["model_card"]["title"]
    assert {"npy", "json", "bvh", "mp4"} <= set(info["formats"])
    rest = np.array(info["rest_pose"])  # what the studio shows before any motion
    assert rest.shape == (22, 3) and rest[15, 1] - rest[:, 1].min() > 1.4  # head above the feet: standing
    assert live.client.get("/openapi.json").json()["paths"].keys() >= {"/v1/generate", "/v1/generate/stream"}
    assert live.client.get("/docs").status_code == 200


def test_generate_returns_the_pipelines_motions_and_their_files(live, bundled_pipe):
    motions = _generate(live, prompt="a person walks forward", seconds=4, seed=11, num_samples=2)
    assert [m["seed"] for m in motions] == [11, 12] and len({m["id"] for m in motions}) == 2
    first = motions[0]
    joints = np.array(first["joints"])
    assert joints.shape == (first["frames"], 22, 3) and 100 <= first["frames"] <= 140 and first["fps"] == 30.0
    # The server holds no generation logic: the same request through the Python API gives the same motion.
    (expected,) = bundled_pipe.generate([GenerationRequest("a person walks forward", seconds=4, seed=11)])
    np.testing.assert_allclose(joints, expected.joints, atol=1e-3)

    files = first["files"]
    features = np.load(io.BytesIO(live.client.get(files["npy"]).content))
    np.testing.assert_allclose(features, expected.features, atol=1e-5)
    meta = live.client.get(files["json"]).json()
    assert meta["prompt"] == "a person walks forward" and meta["seed"] == 11 and meta["frames"] == first["frames"]
    bvh = live.client.get(files["bvh"])
    assert bvh.status_code == 200 and bvh.text.startswith("HIERARCHY")
    bvh_joints, bvh_fps = load_bvh_joints(live.app.state.server.store.folder / f"{first['id']}.bvh")
    assert bvh_joints.shape == (first["frames"], 22, 3) and bvh_fps == 30.0
    mp4 = live.client.get(files["mp4"])  # rendered now, on first request
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4" and mp4.content[4:8] == b"ftyp"
    if "glb" in files:
        assert live.client.get(files["glb"]).content[:4] == b"glTF"
    assert ("fbx" in files) == (find_blender() is not None)  # listed only where Blender can write it
    if "fbx" in files:
        fbx = live.client.get(files["fbx"])
        assert fbx.status_code == 200 and fbx.content.startswith(b"Kaydara FBX Binary")


def test_fbx_is_not_offered_without_blender(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONMILLION_BLENDER", str(tmp_path / "no-blender"))
    store = MotionStore(tmp_path / "cache", max_bytes=2**20)
    assert "fbx" not in store.formats and store.path("0" * 32, "fbx") is None


def _events(live, body) -> list[tuple[str, dict]]:
    with live.client.stream("POST", "/v1/generate/stream", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    return [(block.split("\n")[0][len("event: "):], json.loads(block.split("\n")[1][len("data: "):]))
            for block in text.strip().split("\n\n")]  # fmt: skip


def _streamed_joints(events) -> np.ndarray:
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"chunk"}, names
    starts = [data["start"] for name, data in events if name == "chunk"]
    joints = [np.array(data["joints"]) for name, data in events if name == "chunk"]
    assert starts == list(np.cumsum([0] + [len(j) for j in joints[:-1]]))  # chunks follow each other
    return np.concatenate(joints)


def test_stream_sends_frames_while_generating_then_the_motion(live, bundled_pipe):
    events = _events(live, {"prompt": "someone bows", "seconds": 4, "seed": 3})
    joints, start, done = _streamed_joints(events), events[0][1], events[-1][1]
    assert joints.shape == (done["frames"], 22, 3) and done["seed"] == start["seed"] == 3
    assert live.client.get(done["files"]["json"]).status_code == 200
    (expected,) = bundled_pipe.generate([GenerationRequest("someone bows", seconds=4, seed=3)])
    np.testing.assert_allclose(joints, expected.joints, atol=2e-3)  # the same motion as /v1/generate
    if hasattr(bundled_pipe, "stream"):
        assert start["chunked"] and sum(name == "chunk" for name, _ in events) > 1
    else:
        assert not start["chunked"] and "one chunk" in start["note"]
    # fix_feet cleans a whole motion: one chunk, said so.
    events = _events(live, {"prompt": "someone bows", "seconds": 2, "seed": 3, "fix_feet": True})
    assert not events[0][1]["chunked"] and len(_streamed_joints(events)) == events[-1][1]["frames"]


@pytest.mark.skipif(not hasattr(MotionPipeline, "compose"), reason="this library has no timelines yet")
def test_a_timeline_of_prompts_is_one_motion(live, bundled_pipe):
    segments = [{"prompt": "a person walks forward", "seconds": 2}, {"prompt": "a person bows", "seconds": 2}]
    (motion,) = _generate(live, segments=segments, seed=5)
    assert 100 <= motion["frames"] <= 140 and [s["prompt"] for s in motion["segments"]] == [s["prompt"] for s in segments]
    expected = bundled_pipe.compose(segments, seed=5)
    np.testing.assert_allclose(np.array(motion["joints"]), expected.joints, atol=1e-3)
    events = _events(live, {"segments": segments, "seed": 5})
    np.testing.assert_allclose(_streamed_joints(events), expected.joints, atol=2e-3)
    empty = live.client.post("/v1/generate", json={"segments": []})
    assert empty.status_code == 422 and "timeline is empty" in empty.json()["error"]


def test_concurrent_requests_are_batched(live):
    batcher = live.app.state.server.batcher
    before = batcher.stats.largest_batch
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: live.client.post("/v1/generate", json={"prompt": f"a person waves {i}",
                                                                                  "seconds": 2, "seed": i}),
                                  range(16)))  # fmt: skip
    assert [r.status_code for r in responses] == [200] * 16
    assert [r.json()["motions"][0]["seed"] for r in responses] == list(range(16))
    assert batcher.stats.largest_batch > max(before, 1)
    stats = live.client.get("/v1/stats").json()
    assert stats["motions"] == sum(size * count for size, count in ((int(k), v) for k, v in stats["batch_sizes"].items()))
    assert stats["largest_batch"] == batcher.stats.largest_batch and stats["generating_seconds"] > 0


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({}, 422, "body: give either prompt or segments"),
        ({"prompt": "walk", "segments": [{"prompt": "run", "seconds": 1}]}, 422, "give either prompt or segments"),
        ({"segments": [{"prompt": "run", "seconds": 1}], "seconds": 2}, 422, "durations go in the segments"),
        ({"segments": [{"prompt": "run"}]}, 422, "segments.0.seconds: Field required"),
        ({"prompt": "   "}, 422, "prompt is empty"),
        ({"prompt": 3}, 422, "prompt: Input should be a valid string"),
        ({"prompt": "x" * 501}, 422, "501 characters, the limit is 500"),
        ({"prompt": "walk", "seconds": 11}, 422, "seconds: 11 is longer than the longest motion, 10 s"),
        ({"prompt": "walk", "seconds": -1}, 422, "seconds: Input should be greater than 0"),
        ({"prompt": "walk", "num_samples": 9}, 422, "num_samples: 9 is more than the limit, 8"),
        ({"prompt": "walk", "top_p": 2}, 422, "top_p: Input should be less than or equal to 1"),
        ({"prompt": "walk", "seed": -5}, 422, "seed: Input should be greater than or equal to 0"),
        ({"prompt": "walk", "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({"prompt": "walk", "num_samples": True}, 422, "num_samples: Input should be a valid integer"),
        ({"prompt": "walk", "seconds": "4"}, 422, "seconds: Input should be a valid number"),
        ({"prompt": "walk", "seconds": 0.2}, 422, "seconds must be in"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(live, body, status, message):
    for path in ("/v1/generate", "/v1/generate/stream"):
        response = live.client.post(path, json=body)
        assert response.status_code == status, response.text
        assert message in response.json()["error"] and response.json()["status"] == status


def test_malformed_and_oversized_bodies(live):
    bad_json = live.client.post("/v1/generate", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.json()["error"]
    big = live.client.post("/v1/generate", json={"prompt": "x" * 10_000})  # this fixture's limit: 4096 bytes
    assert big.status_code == 413 and "larger than the limit of 4096 bytes" in big.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = live.client.post("/v1/generate", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["status"] == 413
    assert live.client.post("/v1/generate/stream", json={"prompt": "walk", "num_samples": 2}).status_code == 422


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415_and_says_so(live, content_type):
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/v1/generate", "/v1/generate/stream"):
        response = live.client.post(path, content=b'{"prompt": "a person walks"}', headers=headers)
        assert response.status_code == 415, response.text
        assert response.json() == {"status": 415, "error": "the request body must be JSON, sent with Content-Type: "
                                   f"application/json ({f'Content-Type: {content_type}' if content_type else 'no Content-Type'} was sent)"}  # fmt: skip
    for declared in ("application/json; charset=utf-8", "application/vnd.api+json"):  # JSON all the same
        response = live.client.post("/v1/generate", content=b"{}", headers={"content-type": declared})
        assert response.status_code == 422 and "give either prompt or segments" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/motions/00000000000000000000000000000000.json",
        "/v1/motions/../../../etc/passwd",
        "/v1/motions/%2e%2e%2f%2e%2e%2fetc%2fpasswd.json",
        "/v1/motions/..%2F..%2Fpyproject.toml",
        "/v1/motions/%2Fetc%2Fpasswd.npy",
        "/v1/motions/....json",
        "/v1/motions/.json",
        "/v1/motions/abc.exe",
        "/v1/motions/0123456789abcdef0123456789abcdef.py",
        "/v1/motions/0123456789ABCDEF0123456789ABCDEF.npy",
    ],
)
def test_unknown_ids_and_path_traversal_are_404(live, path):
    import httpx

    # Sent as written (httpx would otherwise normalise the dots away before they reach the server).
    response = live.client.send(httpx.Request("GET", live.url + path, extensions={"raw_path": path.encode()}))
    assert response.status_code == 404 and "error" in response.json()


def test_a_real_id_with_traversal_around_it_is_still_refused(live):
    (motion,) = _generate(live, prompt="a person jumps", seconds=1, seed=0)
    for path in (f"/v1/motions/{motion['id']}.json/..%2F..%2Fetc%2Fpasswd", f"/v1/motions/..%2F{motion['id']}.json",
                 f"/v1/motions/{motion['id']}.tmp", f"/v1/motions/{motion['id']}.npy.tmp"):  # fmt: skip
        import httpx

        response = live.client.send(httpx.Request("GET", live.url + path, extensions={"raw_path": path.encode()}))
        assert response.status_code == 404, path


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class BlockingPipe:
    """A pipeline stand-in whose generation waits on a gate (for the queue and time limits)."""

    fps = 30.0
    max_seconds = 10.0
    folder = None
    generator = SimpleNamespace(config=SimpleNamespace(default_guidance=1.0, has_null_prefix=False, codebook_size=8))

    def __init__(self):
        self.gate = threading.Event()

    limits = ModelLimits(frames_per_token=4, max_motion_tokens=75, has_null_prefix=False, default_guidance=1.0,
                         length_condition=True)  # fmt: skip

    def plan(self, *args, **kwargs):
        return make_plan(self.limits, *args, **kwargs)

    def understood(self, plan):
        return plan

    def run(self, plan):
        self.gate.wait(10)
        for request in plan.requests:
            yield Motion(np.zeros((4, 272), np.float32), fps=self.fps, text=request.prompt)


def test_a_full_queue_is_429_and_a_slow_request_is_503(tmp_path):
    pipe = BlockingPipe()
    config = ServeConfig(max_queue=1, request_timeout_s=1.0, cache_dir=tmp_path)
    app = create_app(pipe, config)
    batcher = app.state.server.batcher
    with LiveServer(app) as server, ThreadPoolExecutor(3) as pool:
        post = lambda: server.client.post("/v1/generate", json={"prompt": "walk"})  # noqa: E731
        running = pool.submit(post)  # taken by the worker, which waits on the gate
        _until(lambda: batcher.stats.batches == 1)
        queued = pool.submit(post)  # fills the queue of one
        _until(lambda: batcher.queued == 1)
        refused = post()
        assert refused.status_code == 429 and "1 requests are queued" in refused.json()["error"]
        assert refused.headers["retry-after"] == "1"
        assert running.result().status_code == 503 and "per-request limit of 1 s" in running.result().json()["error"]
        assert queued.result().status_code == 503
        pipe.gate.set()
        ok = server.client.post("/v1/generate", json={"prompt": "walk"})
        assert ok.status_code == 200 and ok.json()["motions"][0]["frames"] == 4


def test_the_cache_folder_stays_within_its_budget(tmp_path, bundled_pipe):
    (motion,) = bundled_pipe.generate([GenerationRequest("a person walks", seconds=1, seed=0)])
    store = MotionStore(tmp_path, max_bytes=4 * motion.features.nbytes)  # room for three motions
    ids = [store.add(motion, {"prompt": "x", "fps": 30.0}) for _ in range(10)]
    kept = {p.stem for p in tmp_path.iterdir()}
    assert ids[-1] in kept and ids[0] not in kept and sum(p.stat().st_size for p in tmp_path.iterdir()) <= 4 * motion.features.nbytes
    assert store.path(ids[0], "npy") is None and store.path(ids[-1], "npy") is not None
    assert store.path(ids[-1], "bvh").read_text().startswith("HIERARCHY")
    again = MotionStore(tmp_path, max_bytes=4 * motion.features.nbytes)  # a restarted server keeps the motions of --cache-dir
    assert again.path(ids[-1], "json") is not None
    temporary = MotionStore(None, max_bytes=1000)
    temporary.close()
    assert not temporary.folder.exists()
