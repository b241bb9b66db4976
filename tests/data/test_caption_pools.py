"""Human-written caption pools: strict matching of real HumanML3D/KIT-ML captions to our labels."""

import json
from pathlib import Path

import numpy as np
import pytest

from motionmillion.data import captions as caps
from motionmillion.data.caption_pools import build_pools, draw, load_pools, read_free_text
from motionmillion.data.importers import import_bvh, recaption
from motionmillion.data.layout import MotionDataset

FIXTURE = Path(__file__).parent.parent / "fixtures"
TEXT_POOL = FIXTURE / "text"


def test_fixture_captions_are_read_from_both_formats():
    texts = read_free_text(TEXT_POOL)
    assert texts == sorted(set(texts)) and len(texts) > 20
    kit = json.loads((TEXT_POOL / "kitml_annotations.json").read_text())
    first_kit = next(iter(kit.values()))["annotations"][0]["text"]
    assert " ".join(first_kit.split()) in texts


def test_rules_keep_plain_captions_and_refuse_sequences_sides_and_other_actions():
    texts = ["A person waves his right hand.", "someone waves with the right hand", "a man waves his right arm",
             "a person waving their right hand", "the person waves the right hand slowly",
             "a person waves the right hand then walks away",  # a sequence
             "a person waves the left hand",  # the other side
             "a person waves the right hand and jogs",  # another movement
             "a person walks forward", "a human walks slowly forward", "a person walks", "someone is walking",
             "a person walks forward and turns around", "person walks in a circle"]  # fmt: skip
    pools = build_pools(texts)
    assert set(pools["wave-right"]) == set(texts[:5])
    assert "walk" not in pools  # 4 plain walks < MIN_POOL: too few to use
    assert "a person walks forward and turns around" not in build_pools(texts + ["a man walks"]).get("walk", [])


def test_draw_is_seeded_and_appends_style_sometimes():
    pool = [f"a person waves the right hand {i}" for i in range(10)]
    one = draw(pool, caps.clip_rng("x"), 2, ("happily",))
    assert one == draw(pool, caps.clip_rng("x"), 2, ("happily",)) and len(set(one)) == 2
    many = [c for i in range(40) for c in draw(pool, caps.clip_rng(str(i)), 1, ("happily",))]
    assert 0 < sum(c.endswith(", happily.") for c in many) < 40 and all(c[0].isupper() and c.endswith(".") for c in many)


def test_missing_pool_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="caption folder not found"):
        load_pools(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no humanml3d"):
        load_pools(tmp_path)


def test_import_with_a_text_pool_adds_human_captions_and_recaption_matches(tmp_path):
    with_pool, without = tmp_path / "with", tmp_path / "without"
    import_bvh(FIXTURE / "bvh" / "bandai", with_pool, "bandai", workers=1, progress=False, text_pool=TEXT_POOL)
    import_bvh(FIXTURE / "bvh" / "bandai", without, "bandai", workers=1, progress=False)
    pools = load_pools(TEXT_POOL)
    name, mirror = "bandai/dataset-1_bye_normal_001", "bandai/Mdataset-1_bye_normal_001"
    plain = MotionDataset(without).texts(name)
    pooled = MotionDataset(with_pool).texts(name)
    assert pooled[: len(plain)] == plain and len(pooled) == len(plain) + 2
    human = pooled[len(plain) :]
    assert {c.rstrip(".").lower() for c in human} <= {p.rstrip(" .").lower() for p in pools["wave-right"]}
    assert all("right" in c and "left" not in c for c in human)  # bye waves the right hand
    assert [caps.swap_left_right(c) for c in pooled] == MotionDataset(with_pool).texts(mirror)
    # recaption rewrites the pool-less dataset into exactly what an import with the pool writes
    counts = recaption(without, TEXT_POOL, progress=False)
    assert counts["clips"] == 6
    for clip in MotionDataset(with_pool).names("all", kind="tokenizer_96"):
        assert MotionDataset(without).texts(clip) == MotionDataset(with_pool).texts(clip)
    np.testing.assert_array_equal(MotionDataset(without).motion(name), MotionDataset(with_pool).motion(name))
