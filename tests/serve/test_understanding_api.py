"""The server returns what a prompt was understood as, its coverage and the warning (issue 15)."""


def test_generate_returns_coverage_and_the_warning_only_for_unknown_movements(live):
    known = live.client.post("/v1/generate", json={"prompt": "a person walks forward", "seconds": 2, "seed": 0})
    unknown = live.client.post("/v1/generate", json={"prompt": "a person swims", "seconds": 2, "seed": 0})
    assert known.status_code == unknown.status_code == 200, (known.text, unknown.text)
    walk, swim = known.json()["motions"][0], unknown.json()["motions"][0]
    assert walk["coverage"] > 0.5 and walk.get("warning") is None and walk["understood_as"] == "a person walks forward"
    assert swim["coverage"] < 0.305 and "a person swims" in swim["warning"]


def test_generate_with_rewrite_says_what_the_prompt_became(live):
    response = live.client.post("/v1/generate", json={"prompt": "someone strolls ahead looking gloomy", "seed": 0,
                                                      "rewrite": True})  # fmt: skip
    assert response.status_code == 200, response.text
    motion = response.json()["motions"][0]
    assert motion["prompt"] == "someone strolls ahead looking gloomy"
    assert motion["understood_as"].endswith("(walk/sad)") and motion["frames"] > 30
    bad = live.client.post("/v1/generate", json={"prompt": "a person walks", "rewrite": "very"})
    assert bad.status_code == 422


def test_a_rewritten_stream_is_the_rewritten_motion(live, bundled_pipe):
    import json

    import numpy as np

    body = {"prompt": "someone strolls ahead looking gloomy", "seconds": 2, "seed": 3, "rewrite": True}
    with live.client.stream("POST", "/v1/generate/stream", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    events = [(block.split("\n")[0][len("event: "):], json.loads(block.split("\n")[1][len("data: "):]))
              for block in text.strip().split("\n\n")]  # fmt: skip
    joints = np.concatenate([np.array(data["joints"]) for name, data in events if name == "chunk"])
    done = events[-1][1]
    assert done["understood_as"].endswith("(walk/sad)") and done["coverage"] > 0.5
    (expected,) = bundled_pipe("someone strolls ahead looking gloomy", seconds=2, seed=3, rewrite=True)
    np.testing.assert_allclose(joints, expected.joints, atol=2e-3)
