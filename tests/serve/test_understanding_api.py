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
