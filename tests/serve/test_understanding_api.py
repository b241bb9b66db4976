"""The server returns what a prompt was understood as, its coverage and the warning (issue 15)."""

import json

import pytest


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


def _events(live, body) -> list[tuple[str, dict]]:
    with live.client.stream("POST", "/v1/generate/stream", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    return [(block.split("\n")[0][len("event: "):], json.loads(block.split("\n")[1][len("data: "):]))
            for block in text.strip().split("\n\n")]  # fmt: skip


@pytest.mark.filterwarnings("ignore:prompt .* contains emoji")  # the pipeline's own, on the generation thread
def test_a_prompt_with_emoji_is_warned_about_every_time(live):
    """What the pipeline says about text it may misread (meta["text_warning"]) reaches every client it concerns."""
    body = {"prompt": "a person walks forward 🚶", "seconds": 1, "seed": 0}
    expected = "prompt 'a person walks forward 🚶' contains emoji or symbols; the text encoder was trained on English"
    for _ in range(2):
        response = live.client.post("/v1/generate", json={**body, "num_samples": 2})
        assert response.status_code == 200, response.text
        assert [m["warning"] for m in response.json()["motions"]] == [expected] * 2
    assert _events(live, body)[-1][1]["warning"] == expected
    segments = [{"prompt": "a person walks forward", "seconds": 1}, {"prompt": "a person bows 🙇", "seconds": 1}]
    (motion,) = live.client.post("/v1/generate", json={"segments": segments, "seed": 0}).json()["motions"]
    assert motion["warning"].startswith("prompt 'a person bows 🙇' contains emoji")
    swim = live.client.post("/v1/generate", json={"prompt": "a person swims 🏊", "seconds": 1, "seed": 0})
    notes = swim.json()["motions"][0]["warning"].split("; ")  # both: the emoji, and no movement like it
    assert "contains emoji" in notes[0] and any("a person swims" in note for note in notes[1:])


def test_a_rewritten_stream_is_the_rewritten_motion(live, bundled_pipe):
    import numpy as np

    body = {"prompt": "someone strolls ahead looking gloomy", "seconds": 2, "seed": 3, "rewrite": True}
    events = _events(live, body)
    joints = np.concatenate([np.array(data["joints"]) for name, data in events if name == "chunk"])
    done = events[-1][1]
    assert done["understood_as"].endswith("(walk/sad)") and done["coverage"] > 0.5
    (expected,) = bundled_pipe("someone strolls ahead looking gloomy", seconds=2, seed=3, rewrite=True)
    np.testing.assert_allclose(joints, expected.joints, atol=2e-3)
