from pathlib import Path

import pytest

from motionmillion.data import caption_pools
from motionmillion.data import captions as caps
from motionmillion.data import labels

FIXTURE_BANDAI = Path(__file__).parent.parent / "fixtures" / "bvh" / "bandai"


def test_the_labels_of_the_real_cfg_files_are_the_known_ones():
    contents, styles = set(), set()
    for cfg in FIXTURE_BANDAI.glob("*/cfg"):
        contents |= {line.split("_", 1)[1] for line in (cfg / "content_label.txt").read_text().split()}
        styles |= {line.split("_", 1)[1] for line in (cfg / "style_label.txt").read_text().split()}
    assert contents == set(labels.BANDAI_CONTENTS) and len(labels.BANDAI_CONTENTS) == len(contents)
    assert styles == set(labels.BANDAI_STYLES) and len(labels.BANDAI_STYLES) == len(styles)


def test_every_label_has_caption_phrases():
    assert set(labels.BANDAI_CONTENTS) | set(labels.CMU_DANCE_CATEGORIES) <= set(caps.ACTIONS)
    assert set(labels.BANDAI_STYLES) <= set(caps.STYLES)
    for _, detailed, movement in labels.CMU_CC_DESCRIPTIONS:
        assert detailed in caps.ACTIONS or detailed in caps.CMU_CC_ACTIONS
        assert movement in labels.MOVEMENTS or movement == "walk-uneven"


def test_labels_of_one_movement_share_a_family():
    # the two tables this one replaced: text/rewrite.py's content names and the evaluation's movement pairs
    for content, movement in {"walk-left": "walk", "walk-right": "walk", "dance-short": "dance", "dance-long": "dance"}.items():
        assert labels.movement_family(content) == labels.movement_family(movement) == movement
    for a, b in (("bye", "wave-right"), ("byebye", "wave-both"), ("respond", "raise-up-left")):
        assert labels.same_movement(a, b) and labels.same_movement(b, a)
    assert labels.same_movement("bye", "wave-right-hand") and not labels.same_movement("bye", "wave-left")
    assert not labels.same_movement("walk", "walk-turn-left") and not labels.same_movement("walk", "walk-back")
    assert labels.movement_family("salsa") == "salsa" and labels.movement_of("salsa") is None
    assert labels.same_movement_groups(labels.MOVEMENTS) == [["bye", "wave-right"], ["byebye", "wave-both"],
                                                             ["raise-up-left", "respond"]]  # fmt: skip


def test_each_bandai_content_names_one_movement_and_its_pool():
    owners = [name for content in labels.BANDAI_CONTENTS for name, m in labels.MOVEMENTS.items() if content in m.contents]
    assert len(owners) == len(labels.BANDAI_CONTENTS)
    pools = {content: caption_pools.movement_pool(content) for content in labels.BANDAI_CONTENTS}
    assert pools["walk-left"] == pools["walk"] == "walk" and pools["bye"] == pools["wave-right-hand"] == "wave-right"
    assert pools["call"] is None and pools["slash"] is None
    assert caption_pools.movement_pool("salsa") == "salsa" and caption_pools.movement_pool("indian") is None


def test_a_walk_is_labelled_by_its_measured_turn():
    assert labels.walk_label(12.0) == "walk" and labels.walk_label(-29.0) == "walk"
    assert labels.walk_label(91.0) == "walk-turn-left" and labels.walk_label(-170.0) == "walk-turn-right"


def test_bad_names_are_refused():
    for bad in ("walk_normal_001", "dataset-1_fly_normal_001", "dataset-1_walk_sleepy_001", "dataset-1_salsa_normal_001"):
        with pytest.raises(ValueError, match=bad):
            labels.parse_bandai_name(bad)
    label = labels.parse_bandai_name("dataset-2_walk-turn-left_not-confident_004")
    assert (label.dataset, label.content, label.style, label.take) == (2, "walk-turn-left", "not-confident", "004")


def test_unknown_cmu_description_is_a_clear_error():
    assert labels.cmu_cc_label("basketball - forward dribble, 90-degree left turns") == ("dribble-turns", "dribble")
    with pytest.raises(ValueError, match="no cmu-cc caption recipe fits"):
        labels.cmu_cc_label("juggling")


def test_a_mirrored_clip_whose_label_implies_its_side_gets_the_other_side():
    """The importer stores a mirrored "bye" (left hand) as "bye": its family must not be the right-hand wave."""
    from motionmillion.data.labels import movement_family

    assert movement_family("bye") == "wave-right" and movement_family("bye", mirrored=True) == "wave-left"
    assert movement_family("respond", mirrored=True) == "raise-up-right"
    assert movement_family("wave-right-hand", mirrored=True) == "wave-right"  # already stored with its side
    assert movement_family("byebye", mirrored=True) == "wave-both"
    assert movement_family("walk-left", mirrored=True) == "walk"
