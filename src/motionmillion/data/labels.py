"""Movement and style labels: the one vocabulary of what the data's clips show.

A clip's labels come from its source and are kept in the import records (:mod:`records`):

* Bandai-Namco: ``content`` and ``style`` from the file name ``dataset-N_{content}_{style}_{take}``
  (:func:`parse_bandai_name`; the contents and styles are the datasets' own, :data:`BANDAI_CONTENTS`,
  :data:`BANDAI_STYLES`);
* CMU dance: the category folder (:data:`CMU_DANCE_CATEGORIES`);
* cmu-cc: a detailed label and a movement found from the CMU description of the take (:func:`cmu_cc_label`).

Movements (:data:`MOVEMENTS`) are the names the evaluation, the caption pools and the caption bank
speak of: each has a plain description (the evaluation's text candidate for it) and the content labels
of the clips that show it. :func:`movement_family` says which labels name one movement.

Meanings follow what the motions do (checked on the joints, /work/shared/data/README.md):
walk-left/right are straight forward walks named after the studio direction; walk-turn-left/right
turn about 90 degrees to the body's left/right (the importer measures the turn, :func:`walk_label`);
bye waves the right hand, byebye both hands, guide gestures with the right hand, respond raises the
left hand, kick kicks with the right leg.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Movement:
    description: str  # a plain sentence ("a person walks forward"): the evaluation's text candidate
    contents: tuple[str, ...]  # the content labels (import records) of the clips that show it


# The Bandai movements (the paraphrase set's contents). ``contents`` lists every Bandai content exactly once.
BANDAI_MOVEMENTS: dict[str, Movement] = {
    "walk": Movement("a person walks forward", ("walk", "walk-left", "walk-right")),
    "walk-back": Movement("a person walks backwards", ("walk-back",)),
    "run": Movement("a person runs forward", ("run",)),
    "dash": Movement("a person sprints forward at full speed", ("dash",)),
    "bow": Movement("a person bows", ("bow",)),
    "bye": Movement("a person waves goodbye with the right hand", ("bye",)),
    "byebye": Movement("a person waves goodbye with both hands", ("byebye",)),
    "guide": Movement("a person points the way with the right hand", ("guide",)),
    "respond": Movement("a person raises the left hand to answer", ("respond",)),
    "call": Movement("a person calls someone over", ("call",)),
    "punch": Movement("a person punches forward", ("punch",)),
    "kick": Movement("a person kicks with the right leg", ("kick",)),
    "slash": Movement("a person slashes as if with a sword", ("slash",)),
    "dance": Movement("a person dances", ("dance-short", "dance-long")),
    "walk-turn-left": Movement("a person walks and turns to the left", ("walk-turn-left",)),
    "walk-turn-right": Movement("a person walks and turns to the right", ("walk-turn-right",)),
    "wave-left": Movement("a person waves the left hand", ("wave-left-hand",)),
    "wave-right": Movement("a person waves the right hand", ("wave-right-hand",)),
    "wave-both": Movement("a person waves both hands", ("wave-both-hands",)),
    "raise-up-left": Movement("a person raises the left hand up", ("raise-up-left-hand",)),
    "raise-up-right": Movement("a person raises the right hand up", ("raise-up-right-hand",)),
    "raise-up-both": Movement("a person raises both hands up", ("raise-up-both-hands",)),
}
# Movements of the CMU takes on the game-character rig (cmu-cc) that the Bandai data lacks.
CMU_CC_MOVEMENTS: dict[str, Movement] = {
    "jump": Movement("a person jumps", ("jump",)),
    "dribble": Movement("a person dribbles a basketball", ("dribble",)),
    "climb": Movement("a person climbs", ("climb",)),
    "ballet": Movement("a person dances ballet", ("ballet",)),
    "swordplay": Movement("a person fights with a sword", ("swordplay",)),
    "scoop": Movement("a person bends down and scoops something up", ("scoop",)),
    "wash": Movement("a person washes something", ("wash",)),
}
MOVEMENTS: dict[str, Movement] = {**BANDAI_MOVEMENTS, **CMU_CC_MOVEMENTS}

# Movements that are one movement under two names; the key's description says it another way (waving
# goodbye), so both stay movements of their own, and a retrieval of either counts as right.
#
# Why this one table (and the content lists above) and not the two that were: text/rewrite.py merged
# walk-left/right into walk and dance-short/long into dance, the evaluation merged bye/wave-right,
# byebye/wave-both and respond/raise-up-left, and each missed the other's pairs. Both are right: the
# data's README (checked on the motion) says walk-left/right are straight walks and that bye waves the
# right hand, byebye both hands and respond raises the left hand; the caption pools already gave each of
# these pairs one pool of human-written captions.
SAME_MOVEMENT: dict[str, str] = {"bye": "wave-right", "byebye": "wave-both", "respond": "raise-up-left"}
_SIDE_WORD = re.compile(r"\b(left|right)\b")

_MOVEMENT_OF_CONTENT: dict[str, str] = {content: name for name, m in MOVEMENTS.items() for content in m.contents}


def movement_of(content: str) -> str | None:
    """The movement (a key of :data:`MOVEMENTS`) whose clips carry the content label ``content``:
    "walk-left" -> "walk", "wave-left-hand" -> "wave-left"; None for labels no movement lists (CMU dance
    categories, walk-uneven)."""
    return _MOVEMENT_OF_CONTENT.get(content)


def movement_family(label: str, mirrored: bool = False) -> str:
    """One name for every label of one movement (a content label or a movement name): "walk-left",
    "walk-right" -> "walk"; "dance-short", "dance-long" -> "dance"; "bye", "wave-right-hand" and
    "wave-right" -> "wave-right"; a label no movement lists -> itself.

    ``mirrored``: the label of a mirrored clip. The importer swaps the side of labels that name one
    ("wave-left-hand" mirrored is stored as "wave-right-hand") but keeps "bye" and "respond", whose side
    is implied: a mirrored "bye" waves the left hand, so its family is "wave-left"."""
    movement = movement_of(label) or label
    family = SAME_MOVEMENT.get(movement, movement)
    if mirrored and family != movement and not _SIDE_WORD.search(label):
        family = _SIDE_WORD.sub(lambda m: "right" if m.group(0) == "left" else "left", family)
    return family


def same_movement(a: str, b: str) -> bool:
    return movement_family(a) == movement_family(b)


def same_movement_groups(labels: Iterable[str]) -> list[list[str]]:
    """The labels among ``labels`` that name one movement, as sorted groups of two or more."""
    groups: dict[str, set[str]] = {}
    for label in labels:
        groups.setdefault(movement_family(label), set()).add(label)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


# ---------------------------------------------------------------------------------------------------------
# Bandai-Namco

BANDAI_CONTENTS: tuple[str, ...] = tuple(content for m in BANDAI_MOVEMENTS.values() for content in m.contents)
BANDAI_STYLES: tuple[str, ...] = (
    "normal", "happy", "sad", "angry", "proud", "not-confident", "masculinity", "feminine", "childish", "old",
    "tired", "active", "musical", "giant", "chimpira",  # dataset-1
    "elderly", "exhausted", "masculine", "youthful",  # dataset-2 only (it also has active, feminine, normal)
)  # fmt: skip


@dataclass(frozen=True)
class BandaiLabel:
    dataset: int  # 1 or 2
    content: str  # e.g. "walk-turn-left"
    style: str  # e.g. "not-confident"
    take: str  # e.g. "001"


_BANDAI_NAME = re.compile(r"^dataset-(\d+)_([a-z-]+)_([a-z-]+)_(\d+)$")


def parse_bandai_name(stem: str) -> BandaiLabel:
    """Labels from a file name ``dataset-N_{content}_{style}_{take}`` (contents/styles use hyphens)."""
    match = _BANDAI_NAME.match(stem)
    if not match:
        raise ValueError(f"{stem}: not a Bandai Namco name 'dataset-N_content_style_take'")
    dataset, content, style, take = match.groups()
    if content not in BANDAI_CONTENTS:
        raise ValueError(f"{stem}: unknown Bandai content {content!r}")
    if style not in BANDAI_STYLES:
        raise ValueError(f"{stem}: unknown Bandai style {style!r}")
    return BandaiLabel(int(dataset), content, style, take)


# A walk whose measured heading change stays below this many degrees is a straight walk, whatever its label.
STRAIGHT_DEGREES = 30.0


def walk_label(turn_degrees: float) -> str:
    """The content a walk-turn take's window shows by its measured turn (degrees, + = to the body's left):
    "walk" when it stays straight, else "walk-turn-left" or "walk-turn-right" (a few takes turn the other
    way than their label says)."""
    if abs(turn_degrees) < STRAIGHT_DEGREES:
        return "walk"
    return f"walk-turn-{'left' if turn_degrees > 0 else 'right'}"


# ---------------------------------------------------------------------------------------------------------
# CMU

CMU_DANCE_CATEGORIES: tuple[str, ...] = ("salsa", "indian", "martial")

# cmu-cc: words of the CMU one-line description of a trial -> (the take's detailed label, its movement).
# Checked in this order; the first words found in the description win. The detailed label picks the
# caption phrases (:data:`captions.CMU_CC_ACTIONS`); "walk" takes are straight walks unless the
# importer measures a turn, as for Bandai.
CMU_CC_DESCRIPTIONS: tuple[tuple[str, str, str], ...] = (
    ("forward jumps", "jump", "jump"),
    ("jump, balance", "jump-balance", "jump"),
    ("climb", "climb", "climb"),
    ("slow walk", "walk-slow", "walk"),
    ("brisk walk", "walk-brisk", "walk"),
    ("uneven terrain", "walk-uneven", "walk-uneven"),
    ("run/jog", "run", "run"),
    ("punch", "punch", "punch"),
    ("scoop", "scoop", "scoop"),
    ("swordplay", "swordplay", "swordplay"),
    ("wash", "wash", "wash"),
    ("dance", "ballet", "ballet"),
    ("shoot", "dribble-shoot", "dribble"),
    ("turns", "dribble-turns", "dribble"),
    ("forward dribble", "dribble-forward", "dribble"),
    ("backward dribble", "dribble-backward", "dribble"),
    ("sideways dribble", "dribble-sideways", "dribble"),
    ("dribble", "dribble", "dribble"),
    ("walk", "walk", "walk"),
)


def cmu_cc_label(description: str) -> tuple[str, str]:
    """(detailed label, movement) of a CMU trial description; ValueError if none fits."""
    lowered = description.lower()
    for words, detailed, movement in CMU_CC_DESCRIPTIONS:
        if words in lowered:
            return detailed, movement
    raise ValueError(f"no cmu-cc caption recipe fits the description {description!r}")
