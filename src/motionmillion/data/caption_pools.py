"""Human-written caption pools: real captions from text-only corpora, sorted by the movement they name.

Label-derived captions (:mod:`captions`) say each movement in a few dozen templated ways, and a model
trained only on them does not understand other wordings ("strolls", "bolts", "takes a deep bow").
HumanML3D and KIT-ML ship thousands of human-written captions without their motions
(``../shared/data/text``). A caption that plainly describes one of our labelled movements, and nothing
else, can caption a clip with that label: "A person takes a deep bow." fits every Bandai bow.

The rules are strict on purpose: a caption joins a pool only if it names the movement, names no
other movement, says no sequence ("then", "before", "twice"), and says no side that the clip does not
use. Short pools (fewer than ``MIN_POOL``) are dropped rather than repeated. Mirrored clips get the
pool caption with left and right swapped, as template captions do.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from motionmillion.data.labels import movement_family

MIN_POOL = 5
MAX_WORDS = 16
PER_CLIP = 2  # human-written captions added to a clip's 3-5 template captions

_SEQUENCE = r"\b(then|before|after|while|again|until|followed|proceeds?|continues?|starts?|begins?|stops?|finally|afterwards|end|times|twice|once)\b"
_SIDE = r"\b(left|right)\b"
_WALK = r"\b(walk|walks|walking|walked|stroll|strolls|strolling|paces|pacing|marches|marching)\b"
_WAVE = r"\bwav(e|es|ing|ed)\b"
_RAISE = r"\b(raise|raises|raising|raised|lift|lifts|lifting|lifted|puts? up|reach(es)? up)\b"
_RAISE_EXCLUDE = r"wave|walk|turn|run|jog|lower|down|side|forward|front|shoulder|chest|waist|face|head|time|watch|wrist|look|something|object|point|motion|shake|knee|bend|catch|clasp|spread|circle|exercise|monster|move|clap"

# pool name -> (a caption must match this, and must not match this); both case-insensitive.
RULES: dict[str, tuple[str, str]] = {
    "walk": (
        _WALK + r"|\bsteps? forward",
        r"turn|back|circ|around|\brun|jog|stair|step(s|ping)? (over|on|up|down)|side|diagonal|curv|zig|jump|hop|crawl"
        r"|balanc|carr|kneel|trip|stumbl|slope|climb|beam|hill|obstacle|sit|stand|pick|hold|push|pull|drag|limp|spin"
        r"|squat|lean|bend|wave|raise|arm|hand|clap|danc|kick|punch|throw|catch|in place|on the spot|bump|injur|drunk"
        r"|tight|rope|line|counter|clockwise|toward|into|across|down|\bup\b|wind|fall|stomp|tiptoe|cross|pass|through"
        r"|gap|avoid|angle|pattern|" + _SIDE + "|" + _SEQUENCE,
    ),
    "walk-back": (
        r"\b(walks?|walking|steps?|stepping|moves?|moving)\b.{0,15}\bback(ward|wards)?\b",
        r"forward|turn|around|run|jog|jump|hop|wave|arm|hand|kick|punch|sit|stand|side|pattern|circle|back (and|to)"
        r"|back up|backs? off|(his|their|her) back|back of|lower back|back foot|back leg|" + _SIDE + "|" + _SEQUENCE,
    ),
    "run": (
        r"\b(run|runs|running|jog|jogs|jogging|jogged|ran)\b",
        r"turn|around|circle|back|jump|hop|side|slow|in place|spot|stair|wave|arm|hand|kick|punch|sit|curve|diagonal"
        r"|toward|zig|angle|sprint|fast|quick|rapid|" + _SIDE + "|" + _SEQUENCE,
    ),
    "dash": (
        r"\b(sprint|sprints|sprinting|sprinted|dash|dashes|dashing)\b|\b(runs?|running) (very )?(fast|quickly)\b",
        r"turn|around|circle|back|jump|stance|side|hill|obstacle|curve|up and down|" + _SIDE + "|" + _SEQUENCE,
    ),
    "bow": (
        r"\b(bow|bows|bowing|bowed)\b",
        r"arrow|violin|wave|walk|kick|punch|sit|squat|turn|jump|arm|hand|" + _SIDE + "|" + _SEQUENCE,
    ),
    "wave-right": (
        _WAVE + r".{0,30}\bright (hand|arm)\b|\bright (hand|arm)\b.{0,30}" + _WAVE,
        r"\bleft\b|both|walk|turn|run|jog|" + _SEQUENCE,
    ),
    "wave-left": (
        _WAVE + r".{0,30}\bleft (hand|arm)\b|\bleft (hand|arm)\b.{0,30}" + _WAVE,
        r"\bright\b|both|walk|turn|run|jog|" + _SEQUENCE,
    ),
    "wave-both": (
        _WAVE + r".{0,30}\b(both|two|his|her|their) (hands|arms)\b|\b(both|two) (hands|arms)\b.{0,30}" + _WAVE
        + r"|" + _WAVE + r" (his |her |their )?(arms|hands)\b",
        r"\bleft\b|\bright\b|walk|turn|run|jog|jump|random|" + _SEQUENCE,
    ),
    "raise-up-right": (_RAISE + r".{0,20}\bright (hand|arm)\b", r"\bleft\b|both|" + _RAISE_EXCLUDE + "|" + _SEQUENCE),
    "raise-up-left": (_RAISE + r".{0,20}\bleft (hand|arm)\b", r"\bright\b|both|" + _RAISE_EXCLUDE + "|" + _SEQUENCE),
    "raise-up-both": (
        _RAISE + r".{0,20}\b(both|two|his|her|their) (hands|arms)\b|\b(hands|arms) (up|in the air|above|over)",
        _SIDE + r"|jump|squat|" + _RAISE_EXCLUDE + "|" + _SEQUENCE,
    ),
    "punch": (
        r"\b(punch|punches|punching|jab|jabs|jabbing|boxing)\b",
        r"kick|walk|turn|run|jog|jump|bag|gets|in the back|trip|punched|" + _SEQUENCE,
    ),
    "kick": (r"\b(kick|kicks|kicking|kicked)\b", r"\bleft\b|punch|walk|turn|run|jog|jump|ball|both|" + _SEQUENCE),
    "guide": (r"\b(points?|pointing)\b.{0,30}\bright (hand|arm)\b", r"\bleft\b|walk|turn|run|throw|swip|" + _SEQUENCE),
    "dance": (r"\bdanc(e|es|ing|ed)\b", r"salsa|waltz|ballet|tango|walk|pattern|" + _SEQUENCE),
    "walk-turn-left": (
        _WALK + r".{0,40}\bturns? (to the |towards the )?left\b|" + _WALK + r".{0,40}\b(makes?|takes?|taking) a left( turn)?\b",
        r"around|180|back|circle|right|twice|again|stop|run|jog|stair",
    ),
    "walk-turn-right": (
        _WALK + r".{0,40}\bturns? (to the |towards the )?right\b|" + _WALK + r".{0,40}\b(makes?|takes?|taking) a right( turn)?\b",
        r"around|180|back|circle|left|twice|again|stop|run|jog|stair",
    ),
    "salsa": (r"\bsalsa\b", r"walk|turn|" + _SEQUENCE),
    "martial": (r"martial|karate|kung fu|taekwondo", r"back|" + _SEQUENCE),
    # cmu-cc movements
    "jump": (
        r"\b(jump|jumps|jumping|hop|hops|hopping)\b.{0,25}\bforward",
        r"rope|jack|turn|around|back|side|squat|\brun|walk|danc|ballet|kick|punch|one (foot|leg)|" + _SIDE + "|" + _SEQUENCE,
    ),
    "dribble": (r"\bdribbl\w*|\bbounc\w* (a|the) (basket)?ball", r"shoot|throw|signal|" + _SIDE + "|" + _SEQUENCE),
    "ballet": (r"\bballet\b|pirouette|arabesque", _SIDE + "|" + _SEQUENCE),
    "climb": (r"\bclimb(s|ing)?\b", r"stair|step|ladder|" + _SIDE + "|" + _SEQUENCE),
}

# A pool is named after the movement whose captions it holds (labels.MOVEMENTS names, the CMU dance
# categories, cmu-cc movements); movements without a pool keep template captions only.


def movement_pool(label: str) -> str | None:
    """The pool of a content label's movement family ("walk-left" -> "walk", "bye" -> "wave-right", "dance-short"
    -> "dance"), or None when that movement has no pool (call, slash, indian, ...)."""
    family = movement_family(label)
    return family if family in RULES else None


# cmu-cc detailed labels (labels.CMU_CC_DESCRIPTIONS) -> pool: chosen per detailed label, not per movement
# (dribble-forward takes get the dribble pool, dribble-shoot takes none).
CMU_CC_POOL: dict[str, str] = {"jump": "jump", "walk": "walk", "run": "run", "punch": "punch", "ballet": "ballet",
                               "dribble": "dribble", "dribble-forward": "dribble", "climb": "climb"}  # fmt: skip


# Where a pool's include rule is narrower than the movement (the jump pool takes forward jumps only), the
# words that name the movement at all.
MOVEMENT_WORDS: dict[str, str] = {"jump": r"\b(jump|jumps|jumping|jumped|hop|hops|hopping|hopped)\b"}


def movement_rule(movements: Iterable[str]) -> re.Pattern | None:
    """One pattern matching any caption that names one of ``movements`` (by the pools' include rules, or
    MOVEMENT_WORDS); None when none of them has a rule. Tells captions of known movements from those of
    unknown ones."""
    pools = sorted({pool for pool in map(movement_pool, movements) if pool is not None})
    words = [MOVEMENT_WORDS.get(p, RULES[p][0]) for p in pools]
    return re.compile("|".join(words), re.IGNORECASE) if words else None


def read_free_text(folder: str | Path) -> list[str]:
    """Every caption in the HumanML3D (``*babel_compat*.json``) and KIT-ML (``kitml_annotations.json``)
    files of ``folder``, de-duplicated and sorted (so pools do not depend on file order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: caption folder not found (expected HumanML3D/KIT-ML caption files)")
    found: set[str] = set()
    files = sorted(folder.glob("*babel_compat*.json")) + sorted(folder.glob("kitml_annotations.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no humanml3d_*babel_compat*.json or kitml_annotations.json in it")
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if isinstance(data, list):  # HumanML3D, BABEL-compatible: [{"frame_ann": [[start, end, text, ...]]}]
            found.update(ann[2] for entry in data for ann in entry.get("frame_ann", []) if len(ann) > 2)
        else:  # KIT-ML: {id: {"annotations": [{"text": ...}]}}
            found.update(ann.get("text", "") for entry in data.values() for ann in entry.get("annotations", []))
    return sorted({" ".join(str(text).split()) for text in found} - {""})


def build_pools(texts: Iterable[str], rules: dict[str, tuple[str, str]] = RULES) -> dict[str, list[str]]:
    """Pool name -> the captions that pass its rule (pools shorter than MIN_POOL are left out)."""
    texts = [t for t in texts if len(t.split()) <= MAX_WORDS]
    pools = {}
    for name, (include, exclude) in rules.items():
        inc, exc = re.compile(include, re.I), re.compile(exclude, re.I)
        matched = [t for t in texts if inc.search(t) and not exc.search(t)]
        if len(matched) >= MIN_POOL:
            pools[name] = matched
    return pools


def load_pools(folder: str | Path) -> dict[str, list[str]]:
    return build_pools(read_free_text(folder))


def draw(pool: Sequence[str], rng: random.Random, count: int, style_phrases: Sequence[str] = ()) -> list[str]:
    """``count`` distinct pool captions; each gets one of ``style_phrases`` appended half of the time
    (so style words also appear beside free wording)."""
    chosen = rng.sample(list(pool), min(count, len(pool)))
    phrases = [p for p in style_phrases if p]
    out = []
    for caption in chosen:
        caption = caption.rstrip(" .!")
        caption = caption[0].upper() + caption[1:]
        if phrases and rng.random() < 0.5:
            caption = f"{caption}, {rng.choice(phrases)}"
        out.append(caption + ".")
    return out


HUMANML3D_FPS = 20.0  # HumanML3D's index gives frame ranges of the AMASS sequences at 20 fps
TAKE_END = 1e6  # seconds: "to the end of the take" (JSON has no infinity)
_AMASS_CMU = re.compile(r"/CMU/\d+/(\d+)_(\d+)_poses\.npy$")


def humanml3d_cmu_segments(folder: str | Path) -> dict[str, list[tuple[float, float, list[str], bool]]]:
    """CMU take ("002_05") -> [(start s, end s, captions, mirrored)] for the HumanML3D clips of that take
    whose captions are in ``folder`` (``humanml3d_index.csv`` + ``*babel_compat*.json``). ``mirrored``:
    only the "M" id (the mirrored motion) is captioned, so the captions' left and right are swapped
    relative to the take. An end frame of -1 (the end of the take) becomes TAKE_END."""
    import csv

    folder = Path(folder)
    index, texts = folder / "humanml3d_index.csv", sorted(folder.glob("*babel_compat*.json"))
    if not index.is_file() or not texts:
        return {}
    captions: dict[str, list[str]] = {}
    for path in texts:
        for entry in json.loads(path.read_text(encoding="utf-8")):
            name = str(entry.get("humanml_id", ""))
            captions[name] = [" ".join(str(ann[2]).split()) for ann in entry.get("frame_ann", []) if len(ann) > 2]
    segments: dict[str, list[tuple[float, float, list[str], bool]]] = {}
    with index.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            match = _AMASS_CMU.search(row.get("source_path", ""))
            if not match:
                continue
            hid = Path(row["new_name"]).stem
            mirrored = hid not in captions
            texts_of = captions.get(hid) or captions.get("M" + hid)
            if not texts_of:
                continue
            take = f"{int(match.group(1)):03d}_{int(match.group(2)):02d}"
            end = int(row["end_frame"])
            segments.setdefault(take, []).append((int(row["start_frame"]) / HUMANML3D_FPS,
                                                  TAKE_END if end < 0 else end / HUMANML3D_FPS, texts_of, mirrored))  # fmt: skip
    return segments
