import re
from pathlib import Path

import pytest

from motionmillion.data import captions as caps
from motionmillion.data.labels import parse_bandai_name

FIXTURE_BANDAI = Path(__file__).parent.parent / "fixtures" / "bvh" / "bandai"


def test_swap_left_right_keeps_case_and_other_words():
    assert caps.swap_left_right("Left hand up, then the right hand; LEFT turn.") == "Right hand up, then the left hand; RIGHT turn."
    assert caps.swap_left_right("leftover bright words") == "leftover bright words"
    text = "a person raises the left hand and turns right"
    assert caps.swap_left_right(caps.swap_left_right(text)) == text


def test_captions_are_deterministic_per_clip_and_varied():
    label = parse_bandai_name("dataset-1_bye_happy_001")
    first = caps.bandai_captions(label, "bandai/dataset-1_bye_happy_001")
    assert first == caps.bandai_captions(label, "bandai/dataset-1_bye_happy_001")
    assert 3 <= len(first) <= 5 and len(set(first)) == len(first)
    assert all(c[0].isupper() and c.endswith(".") for c in first)
    assert all("right hand" in c for c in first), first  # bye waves the right hand
    # several ways to say the action: at least two different verb phrases in one set
    verbs = {v for v in caps.ACTIONS["bye"].third_person + caps.ACTIONS["bye"].gerund for c in first if v in c}
    assert len(verbs) >= 2
    # other clips of the same label get other caption sets
    sets = {tuple(caps.bandai_captions(label, f"bandai/dataset-1_bye_happy_{k:03d}")) for k in range(10)}
    assert len(sets) >= 8


def test_style_is_said_in_varied_ways():
    label = parse_bandai_name("dataset-1_walk_old_001")
    captions = [c for k in range(20) for c in caps.bandai_captions(label, f"n{k}")]
    said = {phrase for phrase in ("like an old man", "elderly", "an old man", "aged", "old person") if any(phrase in c for c in captions)}
    assert len(said) >= 3, captions


def test_studio_direction_walks_are_straight_and_turns_follow_the_measurement():
    for content in ("walk-left", "walk-right"):
        captions = caps.bandai_captions(parse_bandai_name(f"dataset-1_{content}_normal_001"), content)
        assert not any(re.search(r"\b(left|right|turn)", c) for c in captions), captions
    label = parse_bandai_name("dataset-2_walk-turn-left_normal_004")
    assert all("left" in c for c in caps.bandai_captions(label, "a", turn_degrees=91.0))
    # a take labelled "left" that measurably turns right is captioned as what it does
    assert all("right" in c and "left" not in c for c in caps.bandai_captions(label, "a", turn_degrees=-88.0))
    assert all(("around" in c or "back" in c) and "left" in c for c in caps.bandai_captions(label, "a", turn_degrees=170.0))


def test_every_label_of_the_real_cfg_files_has_a_recipe():
    for cfg in FIXTURE_BANDAI.glob("*/cfg"):
        contents = (cfg / "content_label.txt").read_text().split()
        styles = (cfg / "style_label.txt").read_text().split()
        assert contents and styles
        for content in contents:
            for style in styles:
                name = f"{content}_{style.split('_', 1)[1]}_001"
                label = parse_bandai_name(name)
                assert len(caps.bandai_captions(label, name)) >= 3


def test_unknown_cmu_dance_category_is_refused():
    with pytest.raises(ValueError, match="tango"):
        caps.cmu_dance_captions("tango", "x")


@pytest.mark.parametrize("category,word", [("salsa", "salsa"), ("indian", "indian"), ("martial", "martial")])
def test_cmu_captions_name_the_category(category, word):
    captions = caps.cmu_dance_captions(category, f"cmu-dance/{category}-01_00")
    assert 3 <= len(captions) <= 5 and all(word in c.lower() for c in captions)
