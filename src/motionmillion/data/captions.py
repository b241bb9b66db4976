"""Caption recipes: varied natural captions written from motion labels (no free text exists for them).

A clip gets 3-5 captions built from an action phrase (what the body does) and a style phrase (how),
in several sentence shapes. The choice is seeded by the clip's name, so a re-import writes the same
captions. Mirrored copies use the original's captions with left and right swapped. The labels and what
they mean are :mod:`labels`'; the phrases here say what each label's motion does.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from motionmillion.data import caption_pools
from motionmillion.data.labels import CMU_DANCE_CATEGORIES, STRAIGHT_DEGREES, BandaiLabel, cmu_cc_label, walk_label

# ---------------------------------------------------------------------------------------------------------
# Actions: third-person verb phrases ("a person <phrase>") and -ing phrases ("<phrase>, ...").


@dataclass(frozen=True)
class Action:
    third_person: tuple[str, ...]  # "walks forward"
    gerund: tuple[str, ...]  # "walking forward"


def _action(*pairs: tuple[str, str]) -> Action:
    return Action(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


STRAIGHT_WALK = _action(
    ("walks forward", "walking forward"),
    ("walks straight ahead", "walking straight ahead"),
    ("takes several steps forward", "taking several steps forward"),
    ("walks forward in a straight line", "walking forward in a straight line"),
)

ACTIONS: dict[str, Action] = {
    "walk": STRAIGHT_WALK,
    "walk-left": STRAIGHT_WALK,  # studio direction, the body walks straight forward
    "walk-right": STRAIGHT_WALK,
    "walk-back": _action(
        ("walks backwards", "walking backwards"),
        ("steps backward several times", "stepping backward"),
        ("moves backwards, stepping back", "moving backwards"),
    ),
    "run": _action(
        ("runs forward", "running forward"),
        ("jogs ahead", "jogging ahead"),
        ("runs straight ahead", "running straight ahead"),
    ),
    "dash": _action(
        ("sprints forward", "sprinting forward"),
        ("dashes ahead at full speed", "dashing ahead at full speed"),
        ("runs forward as fast as possible", "running forward as fast as possible"),
    ),
    "bow": _action(
        ("bows", "bowing"),
        ("bends forward at the waist in a bow", "bending forward in a bow"),
        ("makes a polite bow", "making a bow"),
    ),
    "bye": _action(
        ("waves goodbye with the right hand", "waving goodbye with the right hand"),
        ("raises the right hand and waves", "raising the right hand and waving"),
        ("says goodbye by waving the right hand", "waving the right hand to say goodbye"),
    ),
    "byebye": _action(
        ("waves goodbye with both hands", "waving goodbye with both hands"),
        ("raises both hands and waves them", "raising both hands and waving"),
        ("waves both arms to say bye", "waving both arms to say bye"),
    ),
    "guide": _action(
        ("gestures with the right hand as if showing the way", "gesturing with the right hand to show the way"),
        ("points the way with the right hand", "pointing the way with the right hand"),
        ("guides someone with a sweep of the right hand", "guiding someone with the right hand"),
    ),
    "respond": _action(
        ("raises the left hand", "raising the left hand"),
        ("puts the left hand up as if answering", "putting the left hand up to answer"),
        ("lifts the left hand to respond", "lifting the left hand to respond"),
    ),
    "call": _action(
        ("calls out to someone", "calling out to someone"),
        ("beckons someone to come over", "beckoning someone over"),
        ("calls someone over with a gesture", "calling someone over"),
    ),
    "punch": _action(
        ("throws a punch", "throwing a punch"),
        ("punches forward", "punching forward"),
        ("strikes forward with a fist", "striking with a fist"),
    ),
    "kick": _action(
        ("kicks with the right leg", "kicking with the right leg"),
        ("kicks forward with the right foot", "kicking forward with the right foot"),
        ("swings the right leg up in a kick", "swinging the right leg up in a kick"),
    ),
    "slash": _action(
        ("slashes as if swinging a sword", "slashing as if with a sword"),
        ("makes a cutting swing with the arms", "swinging the arms in a cut"),
        ("performs a sword slash", "performing a sword slash"),
    ),
    "dance-short": _action(
        ("dances", "dancing"),
        ("performs a short dance", "performing a short dance"),
        ("does a few dance moves", "doing a few dance moves"),
    ),
    "dance-long": _action(
        ("dances", "dancing"),
        ("performs a dance routine", "performing a dance routine"),
        ("dances with lively moves", "dancing with lively moves"),
    ),
    "wave-both-hands": _action(
        ("waves both hands", "waving both hands"),
        ("raises both arms and waves", "raising both arms and waving"),
        ("waves with both hands above the shoulders", "waving with both hands"),
    ),
    "wave-left-hand": _action(
        ("waves the left hand", "waving the left hand"),
        ("raises the left hand and waves", "raising the left hand and waving"),
        ("waves with the left hand", "waving with the left hand"),
    ),
    "wave-right-hand": _action(
        ("waves the right hand", "waving the right hand"),
        ("raises the right hand and waves", "raising the right hand and waving"),
        ("waves with the right hand", "waving with the right hand"),
    ),
    "raise-up-both-hands": _action(
        ("raises both hands up", "raising both hands up"),
        ("lifts both arms above the head", "lifting both arms above the head"),
        ("puts both hands up in the air", "putting both hands up in the air"),
    ),
    "raise-up-left-hand": _action(
        ("raises the left hand up", "raising the left hand up"),
        ("lifts the left arm up high", "lifting the left arm up high"),
        ("puts the left hand up in the air", "putting the left hand up in the air"),
    ),
    "raise-up-right-hand": _action(
        ("raises the right hand up", "raising the right hand up"),
        ("lifts the right arm up high", "lifting the right arm up high"),
        ("puts the right hand up in the air", "putting the right hand up in the air"),
    ),
    # CMU dance categories
    "salsa": _action(
        ("dances salsa", "dancing salsa"),
        ("does salsa steps", "doing salsa steps"),
        ("performs a salsa dance", "performing a salsa dance"),
        ("moves to a salsa rhythm", "moving to a salsa rhythm"),
    ),
    "indian": _action(
        ("performs an indian dance", "performing an indian dance"),
        ("does traditional indian dance moves", "doing traditional indian dance moves"),
        ("dances in an indian style", "dancing in an indian style"),
    ),
    "martial": _action(
        ("practices martial arts", "practicing martial arts"),
        ("performs martial arts moves", "performing martial arts moves"),
        ("does a martial arts routine", "doing a martial arts routine"),
    ),
}


# Measured turns (degrees): below labels.STRAIGHT_DEGREES the walk is captioned as straight; inside
# QUARTER_TURN it is "about 90 degrees"; from AROUND on it turns around.
QUARTER_TURN, AROUND = (60.0, 120.0), 135.0


def turn_action(degrees: float) -> Action:
    """Walk with a measured turn: positive degrees turn to the body's left (heading towards +X)."""
    side = "left" if degrees > 0 else "right"
    size = abs(degrees)
    if size < STRAIGHT_DEGREES:
        return STRAIGHT_WALK
    if size >= AROUND:
        return _action(
            (f"walks forward and turns around to the {side}", f"walking and turning around to the {side}"),
            (f"walks and turns back over the {side} side", f"walking and turning back over the {side} side"),
        )
    pairs = [
        (f"walks forward and turns {side}", f"walking forward and turning {side}"),
        (f"walks and makes a {side} turn", f"walking and making a {side} turn"),
        (f"walks, then turns to the {side}", f"walking, then turning to the {side}"),
    ]
    if QUARTER_TURN[0] <= size <= QUARTER_TURN[1]:
        pairs.append((f"walks and turns about 90 degrees to the {side}", f"walking and turning 90 degrees {side}"))
    return _action(*pairs)


# ---------------------------------------------------------------------------------------------------------
# Styles: adverbials ("happily"), adjectives for the subject ("a cheerful person"), trailing clauses.


@dataclass(frozen=True)
class Style:
    adverbials: tuple[str, ...]
    subjects: tuple[str, ...]
    clauses: tuple[str, ...]


NEUTRAL = Style(adverbials=("",), subjects=("a person", "someone", "a human"), clauses=("",))

STYLES: dict[str, Style] = {
    "normal": NEUTRAL,
    "happy": Style(("happily", "in a cheerful way", "joyfully"), ("a happy person", "a cheerful person"), ("looking happy", "full of joy")),
    "sad": Style(("sadly", "in a gloomy way", "with a heavy heart"), ("a sad person", "an unhappy person"), ("looking sad", "with the head hanging low")),
    "angry": Style(("angrily", "in a furious way", "aggressively"), ("an angry person", "a furious person"), ("looking angry", "clearly upset")),
    "proud": Style(("proudly", "with a confident, proud posture", "in a self-important way"), ("a proud person", "a confident person"), ("chest out and head high", "looking proud")),
    "not-confident": Style(("timidly", "without confidence", "in a hesitant way"), ("a shy person", "an insecure person"), ("looking unsure", "shoulders hunched, lacking confidence")),
    "masculinity": Style(("in a masculine way", "with a strong, manly posture", "in a macho manner"), ("a masculine person", "a macho man"), ("with a broad, masculine stance",)),
    "masculine": Style(("in a masculine way", "with a strong, manly posture", "in a macho manner"), ("a masculine person", "a macho man"), ("with a broad, masculine stance",)),
    "feminine": Style(("in a feminine way", "gracefully, in a feminine manner", "elegantly"), ("a graceful woman", "an elegant person"), ("with feminine grace",)),
    "childish": Style(("like a child", "in a childish way", "playfully like a kid"), ("a child", "a playful kid"), ("acting like a little kid",)),
    "youthful": Style(("in a youthful way", "energetically like a young person", "with youthful energy"), ("a young person", "a lively youngster"), ("full of youthful energy",)),
    "old": Style(("like an old man", "slowly, like an elderly person", "in a stiff, aged way"), ("an old man", "an elderly person"), ("moving like an old person",)),
    "elderly": Style(("like an elderly person", "slowly, like an old man", "in a stiff, aged way"), ("an elderly person", "an old woman"), ("moving like an old person",)),
    "tired": Style(("in a tired way", "wearily", "sluggishly"), ("a tired person", "an exhausted person"), ("looking worn out",)),
    "exhausted": Style(("in an exhausted way", "wearily, out of energy", "sluggishly"), ("an exhausted person", "a worn-out person"), ("completely out of breath", "looking drained")),
    "active": Style(("energetically", "in an active, lively way", "with a lot of energy"), ("an energetic person", "a lively person"), ("full of energy",)),
    "musical": Style(("like a musical performer", "theatrically, as in a musical", "rhythmically, like on stage"), ("a musical actor", "a stage performer"), ("as if performing in a musical",)),
    "giant": Style(("like a giant", "with heavy, huge movements like a giant", "ponderously like a giant"), ("a giant", "a huge, heavy person"), ("moving like a giant",)),
    "chimpira": Style(("like a street thug", "with a swaggering, thuggish attitude", "in a cocky, delinquent way"), ("a street thug", "a swaggering punk"), ("acting tough like a thug",)),
}


# ---------------------------------------------------------------------------------------------------------


def clip_rng(name: str) -> random.Random:
    """A random generator seeded by the clip name (stable across runs and Python versions)."""
    return random.Random(int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little"))


def _candidates(action: Action, style: Style) -> list[str]:
    """Every sentence the recipe can make for an action and a style (sentence shapes x phrases)."""
    out: list[str] = []
    for verb, gerund in zip(action.third_person, action.gerund):
        for adverbial in style.adverbials:
            for subject in ("a person", "someone", "the person"):
                out.append(f"{subject} {verb} {adverbial}".strip())
            if adverbial:
                out.append(f"{adverbial}, a person {verb}")
        for subject in style.subjects:
            out.append(f"{subject} {verb}")
            out.append(f"{subject} is {gerund}")
        for clause in style.clauses:
            if clause:
                out.append(f"a person {verb}, {clause}")
                out.append(f"someone is {gerund}, {clause}")
        out.append(f"{gerund}" + (f" {style.adverbials[-1]}" if style.adverbials[-1] else ""))
    return out


def _finish(sentence: str) -> str:
    sentence = " ".join(sentence.split())
    return sentence[0].upper() + sentence[1:] + "."


def captions_for(action: Action, style: Style, seed_name: str, count: tuple[int, int] = (3, 5)) -> list[str]:
    """3-5 distinct captions, varied in verb, sentence shape and how the style is said; seeded by name."""
    rng = clip_rng(seed_name)
    candidates = sorted(set(_candidates(action, style)))
    rng.shuffle(candidates)
    wanted = rng.randint(*count)
    chosen: list[str] = []
    used_verbs: set = set()
    # First pass prefers a different verb phrase per caption, so the set says the action several ways.
    for sentence in candidates:
        verb = next((k for k, (v, g) in enumerate(zip(action.third_person, action.gerund)) if v in sentence or g in sentence), sentence)
        if verb not in used_verbs:
            chosen.append(sentence)
            used_verbs.add(verb)
        if len(chosen) == wanted:
            break
    for sentence in candidates:
        if len(chosen) == wanted:
            break
        if sentence not in chosen:
            chosen.append(sentence)
    return [_finish(sentence) for sentence in chosen]


_LEFT_RIGHT = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


def swap_left_right(caption: str) -> str:
    """The caption of the mirrored motion: every "left" becomes "right" and vice versa (case kept).
    Recipes here never use "right" in another sense ("right away"); free text may need care."""
    return _LEFT_RIGHT.sub(lambda match: _SWAP[match.group(0)], caption)


# ---------------------------------------------------------------------------------------------------------
# Bandai Namco

ACTIONS["walk-turn-left"] = turn_action(90.0)
ACTIONS["walk-turn-right"] = turn_action(-90.0)


def bandai_pool_name(content: str, turn_degrees: float | None = None) -> str | None:
    """The human-written caption pool (:mod:`caption_pools`) that fits a Bandai clip, if any. A walk-turn
    clip's pool follows its measured turn (its label alone does not say how far, or even which way, it
    turns), so without a measurement it has none."""
    if content.startswith("walk-turn-"):
        if turn_degrees is None:
            return None
        size = abs(turn_degrees)
        if size < STRAIGHT_DEGREES or QUARTER_TURN[0] <= size <= QUARTER_TURN[1]:
            return walk_label(turn_degrees)
        return None
    return caption_pools.movement_pool(content)


def _with_pool(captions: list[str], pools: dict[str, list[str]] | None, pool_name: str | None, style: Style,
               seed_name: str) -> list[str]:
    if not pools or pool_name not in pools:
        return captions
    rng = clip_rng("pool:" + seed_name)
    return captions + caption_pools.draw(pools[pool_name], rng, caption_pools.PER_CLIP, style.adverbials + style.clauses)


def bandai_captions(label: BandaiLabel, seed_name: str, turn_degrees: float | None = None,
                    pools: dict[str, list[str]] | None = None) -> list[str]:
    """Captions for a Bandai clip. For walk-turn-* pass the measured heading change (degrees, + = left):
    the caption then says what the clip does, also in the few takes that turn the other way. With
    ``pools`` (:func:`caption_pools.load_pools`), ``caption_pools.PER_CLIP`` human-written captions are added."""
    action = ACTIONS[label.content]
    if label.content.startswith("walk-turn-") and turn_degrees is not None:
        action = turn_action(turn_degrees)
    style = STYLES[label.style]
    captions = captions_for(action, style, seed_name)
    return _with_pool(captions, pools, bandai_pool_name(label.content, turn_degrees), style, seed_name)


def cmu_dance_captions(category: str, seed_name: str, pools: dict[str, list[str]] | None = None) -> list[str]:
    if category not in CMU_DANCE_CATEGORIES:
        raise ValueError(f"unknown CMU dance category {category!r} (known: {', '.join(CMU_DANCE_CATEGORIES)})")
    captions = captions_for(ACTIONS[category], NEUTRAL, seed_name)
    return _with_pool(captions, pools, caption_pools.movement_pool(category), NEUTRAL, seed_name)


# ---------------------------------------------------------------------------------------------------------
# CMU takes on the Character Creator rig (cmu-cc): the CMU one-line description of each trial says what
# happens; its detailed label (labels.cmu_cc_label) picks the phrases below, which say it as captions do.
# Checked by rendering windows of the takes (issue 15): the hops are two-footed forward hops, the dribbling
# takes bounce an invisible ball with one hand while walking, ballet takes are turns, leg raises and small
# jumps in place.

CMU_CC_ACTIONS: dict[str, Action] = {
    "jump": _action(
        ("hops forward with both feet", "hopping forward with both feet"),
        ("jumps forward several times", "jumping forward several times"),
        ("makes a series of two-footed jumps", "making a series of two-footed jumps"),
    ),
    "jump-balance": _action(
        ("jumps and lands, keeping the balance", "jumping and landing, keeping the balance"),
        ("jumps forward and balances on landing", "jumping forward and balancing on landing"),
        ("makes a jump and steadies on landing", "making a jump and steadying on landing"),
    ),
    "climb": _action(
        ("climbs on a playground frame", "climbing on a playground frame"),
        ("clambers up and over something", "clambering up and over something"),
        ("climbs up, hangs and gets down again", "climbing up, hanging and getting down again"),
    ),
    "walk-slow": _action(
        ("walks forward slowly", "walking forward slowly"),
        ("takes slow steps forward", "taking slow steps forward"),
        ("walks ahead at a slow pace", "walking ahead at a slow pace"),
    ),
    "walk-brisk": _action(
        ("walks forward briskly", "walking forward briskly"),
        ("walks quickly straight ahead", "walking quickly straight ahead"),
        ("walks ahead at a brisk pace", "walking ahead at a brisk pace"),
    ),
    "walk-uneven": _action(
        ("walks over uneven ground", "walking over uneven ground"),
        ("walks carefully across rough terrain", "walking carefully across rough terrain"),
        ("steps up and down while walking over uneven terrain", "stepping up and down over uneven terrain"),
    ),
    "scoop": _action(
        ("bends over and scoops something up from the floor", "bending over and scooping something up"),
        ("bends down, picks something up and rises", "bending down, picking something up and rising"),
        ("stoops to scoop something up, then lifts an arm", "stooping to scoop something up, then lifting an arm"),
    ),
    "swordplay": _action(
        ("fights with a sword", "fighting with a sword"),
        ("swings a sword in swordplay", "swinging a sword in swordplay"),
        ("fences with a sword, lunging and slashing", "fencing with a sword, lunging and slashing"),
    ),
    "wash": _action(
        ("washes the body with the hands", "washing the body with the hands"),
        ("rubs the arms and body as if washing", "rubbing the arms and body as if washing"),
        ("scrubs as if in the shower", "scrubbing as if in the shower"),
    ),
    "ballet": _action(
        ("dances ballet", "dancing ballet"),
        ("performs ballet steps and turns", "performing ballet steps and turns"),
        ("does a ballet routine", "doing a ballet routine"),
    ),
    "dribble": _action(
        ("dribbles a basketball", "dribbling a basketball"),
        ("bounces a basketball with one hand", "bouncing a basketball with one hand"),
        ("dribbles a ball while moving", "dribbling a ball while moving"),
    ),
    "dribble-forward": _action(
        ("dribbles a basketball while walking forward", "dribbling a basketball while walking forward"),
        ("walks forward bouncing a basketball", "walking forward bouncing a basketball"),
        ("moves ahead dribbling a ball", "moving ahead dribbling a ball"),
    ),
    "dribble-backward": _action(
        ("dribbles a basketball while moving backwards", "dribbling a basketball while moving backwards"),
        ("backs up while bouncing a basketball", "backing up while bouncing a basketball"),
    ),
    "dribble-sideways": _action(
        ("dribbles a basketball while moving sideways", "dribbling a basketball while moving sideways"),
        ("shuffles sideways bouncing a basketball", "shuffling sideways bouncing a basketball"),
    ),
    "dribble-shoot": _action(
        ("dribbles a basketball and shoots", "dribbling a basketball and shooting"),
        ("bounces a ball, then jumps and shoots it at the hoop", "bouncing a ball, then shooting it at the hoop"),
    ),
    "dribble-turns": _action(
        ("dribbles a basketball and turns", "dribbling a basketball and turning"),
        ("walks dribbling a ball, turning on the way", "walking while dribbling a ball and turning"),
    ),
}


def description_caption(description: str) -> str | None:
    """The CMU description as a caption, for the steps it lists ("dance - glissade devant, attitude" ->
    "A person dances ballet: glissade devant, attitude."); None for one-word descriptions ("walk")."""
    head, _, steps = description.partition(" - ")
    steps = steps or (head if "," in head else "")
    if not steps:
        return None
    what = {"dance": "dances ballet", "basketball": "plays basketball", "playground": "plays on a playground"}
    verb = what.get(head.strip().lower(), "moves")
    return _finish(f"a person {verb}: {steps.strip()}")


def cmu_cc_captions(description: str, seed_name: str, turn_degrees: float | None = None,
                    human: list[str] | None = None, pools: dict[str, list[str]] | None = None,
                    hand: str | None = None) -> list[str]:
    """Captions for one window of a cmu-cc take: 3-5 from the movement's phrases (a measured turn for
    walks), the CMU description's steps, up to ``caption_pools.PER_CLIP`` human-written HumanML3D
    captions of the same frames (already side-corrected by the caller), and with ``pools`` as many
    human-written captions of the same movement (:mod:`caption_pools`). ``hand``: the measured dribbling
    hand ("left"/"right"), said in one more caption."""
    phrases, _ = cmu_cc_label(description)
    action = ACTIONS[phrases] if phrases in ACTIONS else CMU_CC_ACTIONS[phrases]
    pool = caption_pools.CMU_CC_POOL.get(phrases)
    if phrases == "walk" and turn_degrees is not None:
        action = turn_action(turn_degrees)
        pool = "walk" if abs(turn_degrees) < STRAIGHT_DEGREES else None
    captions = _with_pool(captions_for(action, NEUTRAL, seed_name), pools, pool, NEUTRAL, seed_name)
    if hand in ("left", "right"):
        with_hand = _action((f"dribbles a basketball with the {hand} hand", f"dribbling a basketball with the {hand} hand"),
                            (f"bounces a ball with the {hand} hand", f"bouncing a ball with the {hand} hand"))  # fmt: skip
        captions += captions_for(with_hand, NEUTRAL, "hand:" + seed_name, count=(1, 1))
    steps = description_caption(description)
    if steps:
        captions.append(steps)
    if human:
        rng = clip_rng("human:" + seed_name)
        captions += [_finish(c.rstrip(" .")) for c in rng.sample(human, min(len(human), caption_pools.PER_CLIP))]
    return captions
