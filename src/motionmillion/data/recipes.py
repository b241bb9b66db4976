"""Import recipes: per source, which BVH files, their names, split groups and labels, what is measured on
their motion, and their captions (``motionmillion data import-bvh --recipe``; :mod:`importers` runs them).

* ``bandai``: Bandai-Namco-Research-Motiondataset 1/2, one take per file ``dataset-N_{content}_{style}_{take}``.
  Captions from the labels (see :mod:`captions`); walk-turn clips are captioned by the turn measured
  on the motion. Takes longer than 300 frames (10 s, the t2m_60_300 limit) are cut into 300-frame
  windows that overlap by at least 60 frames, spread evenly so the end is kept; shorter takes are one
  clip. Takes under 60 frames are kept (stats lists them) but fall outside both split kinds' length
  ranges.
* ``cmu-dance``: CMU takes in ``salsa/ indian/ martial/`` folders. The true frame rate comes from the
  category (salsa 60 fps although the headers claim 120; indian and martial 120), resampled to 30 fps.
  Takes (minutes long) are cut into 300-frame windows every 200 frames, the last aligned to the end;
  names ``cmu-dance/<category>-<take>_<k>``. Salsa takes n and n+15 are the two partners of one
  recorded dance (equal frame counts), so they share a split group.
* ``cmu-cc``: CMU takes ``SSS_TT.bvh`` on the Character Creator rig (``cc-base``: rest orientations that
  are not the identity, so only FK world positions are used) with ``CMU data.csv`` beside or above them.
  60 fps, windows as for ``cmu-dance`` (``cmu-cc/<take>_<k>``). The floor is found per take
  (:func:`take_floor`; the root keeps the body near y = 0, the feet near -0.95 m) so a window spent off the
  ground (climbing, hanging) keeps its height. A leading rest pose placed elsewhere (10 takes start with the
  rig's T-pose metres away) is dropped (:func:`leading_pose_jumps`). Captions from the description
  (:func:`captions.cmu_cc_captions`), the HumanML3D captions of the same frames when ``--text-pool`` has them
  (the takes' frame counts equal the CMU table's, so their time ranges apply unshifted), walks' measured
  turns and the measured dribbling hand.
* ``generic``: any BVH (rig detected from joint names, frame rate from the header), captions from a
  same-name ``.txt`` beside it (one per line, HumanML3D lines accepted); windows as for ``bandai``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.data import captions as caps
from motionmillion.data import labels
from motionmillion.data.layout import parse_caption_line
from motionmillion.motion.kinematics import joint_steps
from motionmillion.motion.skeleton import FPS

CMU_FPS = {"salsa": 60.0, "indian": 120.0, "martial": 120.0}  # readme.txt; salsa headers wrongly say 120


@dataclass(frozen=True)
class WindowPolicy:
    """Cut a take of T frames into windows of at most ``length`` frames, starts at most ``stride`` apart."""

    length: int
    stride: int

    def windows(self, num_frames: int) -> list[tuple[int, int]]:
        if num_frames <= self.length:
            return [(0, num_frames)]
        count = math.ceil((num_frames - self.length) / self.stride) + 1
        starts = np.round(np.linspace(0, num_frames - self.length, count)).astype(int)
        return [(int(s), int(s) + self.length) for s in starts]


BANDAI_WINDOWS = WindowPolicy(length=300, stride=240)
CMU_WINDOWS = WindowPolicy(length=300, stride=200)


@dataclass(frozen=True)
class SourceJob:
    """One source file and what the recipe knows about it before reading the motion."""

    path: str
    recipe: str
    prefix: str
    base: str  # clip base name inside prefix (may contain "/" for generic)
    group: str  # split group: every clip of one group lands in the same split
    stratum: str  # groups are split 80/10/10 within each stratum (content, category...)
    rig: str | None
    source_fps: float | None
    window: WindowPolicy
    always_number_windows: bool = False
    label: dict = field(default_factory=dict)  # recipe labels (content, style, category, captions...)
    notes: tuple[str, ...] = ()

    @property
    def record_path_suffix(self) -> str:
        return f"{self.base}.json"


# ---------------------------------------------------------------------------------------------------------
# Planning: which files, their names, groups and labels (no motion is read here)


def find_bvh(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such file or folder")
    found = sorted(p for p in src.rglob("*") if p.suffix.lower() == ".bvh" and p.is_file())
    if not found:
        raise FileNotFoundError(f"{src}: no .bvh files in this folder or below it")
    return found


def _bandai_json_check(path: Path, label: labels.BandaiLabel) -> list[str]:
    """Compare the file name with the JSON label (indices into cfg/*_label.txt); return notes."""
    json_path, cfg = path.with_suffix(".json"), path.parent.parent / "cfg"
    if not json_path.is_file() or not (cfg / "content_label.txt").is_file():
        return []
    try:
        indices = json.loads(json_path.read_text())
        contents = (cfg / "content_label.txt").read_text().split()
        styles = (cfg / "style_label.txt").read_text().split()
        content = contents[indices["content"]].split("_", 1)[1]
        style = styles[indices["style"]].split("_", 1)[1]
    except (ValueError, KeyError, IndexError, OSError) as error:
        return [f"JSON label unreadable: {error}"]
    if (content, style) != (label.content, label.style):
        return [f"JSON label says {content}/{style}, file name says {label.content}/{label.style} (name used)"]
    return []


def plan_bandai(path: Path, src: Path, prefix: str) -> SourceJob:
    if not path.stem.startswith("dataset-"):
        raise NotForRecipe("not a Bandai Namco file name (dataset-N_content_style_take)")
    label = labels.parse_bandai_name(path.stem)
    stratum = f"bandai-{label.dataset}/{label.content}" + (f"/{label.style}" if label.dataset != 1 else "")
    return SourceJob(
        path=str(path), recipe="bandai", prefix=prefix, base=path.stem, group=f"bandai/{path.stem}",
        stratum=stratum, rig="bandai", source_fps=None, window=BANDAI_WINDOWS,
        label={"dataset": label.dataset, "content": label.content, "style": label.style, "take": label.take},
        notes=tuple(_bandai_json_check(path, label)),
    )  # fmt: skip


def plan_cmu_dance(path: Path, src: Path, prefix: str) -> SourceJob:
    category = path.parent.name.lower()
    if category not in CMU_FPS:
        raise NotForRecipe(f"not in a category folder ({', '.join(CMU_FPS)})")
    take = path.stem
    group = f"cmu-dance/{category}-{take}"
    if category == "salsa" and take.isdigit() and 1 <= int(take) <= 30:
        group = f"cmu-dance/salsa-pair-{(int(take) - 1) % 15 + 1:02d}"  # partners of one dance stay together
    return SourceJob(
        path=str(path), recipe="cmu-dance", prefix=prefix, base=f"{category}-{take}", group=group,
        stratum=f"cmu-dance/{category}", rig="cmu-daz", source_fps=CMU_FPS[category], window=CMU_WINDOWS,
        always_number_windows=True, label={"category": category},
    )  # fmt: skip


def plan_generic(path: Path, src: Path, prefix: str) -> SourceJob:
    relative = path.relative_to(src).with_suffix("").as_posix() if src.is_dir() else path.stem
    text_path = path.with_suffix(".txt")
    captions: list[str] = []
    if text_path.is_file():
        lines = (parse_caption_line(line) for line in text_path.read_text(encoding="utf-8").splitlines())
        captions = [line for line in lines if line]
    notes = () if captions else ("no captions (no same-name .txt)",)
    return SourceJob(
        path=str(path), recipe="generic", prefix=prefix, base=relative, group=f"{prefix}/{relative}",
        stratum=f"{prefix}/{Path(relative).parent.as_posix()}", rig=None, source_fps=None,
        window=BANDAI_WINDOWS, label={"captions": captions}, notes=notes,
    )  # fmt: skip


_CMU_CC_TAKE = re.compile(r"^(\d{3})_(\d{2})$")
CMU_CC_TABLE = "CMU data.csv"  # the CMU trial descriptions, beside the bvh/ folder


def plan_cmu_cc(path: Path, src: Path, prefix: str) -> SourceJob:
    match = _CMU_CC_TAKE.match(path.stem)
    if not match:
        raise NotForRecipe("not a CMU take name (SSS_TT.bvh)")
    descriptions = _cmu_cc_descriptions(_find_upwards(path.parent, src, CMU_CC_TABLE))
    key = (int(match.group(1)), int(match.group(2)))
    if key not in descriptions:
        raise ValueError(f"{path}: take {path.stem} has no description in {CMU_CC_TABLE}")
    description = descriptions[key]
    _, movement = labels.cmu_cc_label(description)
    return SourceJob(
        path=str(path), recipe="cmu-cc", prefix=prefix, base=path.stem, group=f"cmu-cc/{path.stem}",
        stratum=f"cmu-cc/{movement}", rig="cc-base", source_fps=None, window=CMU_WINDOWS, always_number_windows=True,
        label={"take": path.stem, "description": description, "content": movement},
    )  # fmt: skip


def _find_upwards(folder: Path, top: Path, name: str) -> Path:
    """``name`` in ``folder`` or one of its parents up to ``top`` (or its parent)."""
    for candidate in [folder, *folder.parents]:
        if (candidate / name).is_file():
            return candidate / name
        if candidate in (top, top.parent):
            break
    raise ValueError(f"{folder}: no {name!r} found beside the takes or above them (up to {top})")


@functools.lru_cache(maxsize=4)
def _cmu_cc_descriptions(table: Path) -> dict[tuple[int, int], str]:
    import csv

    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return {(int(r["Subject"]), int(r["Trial #"])): r["Motion Description"].strip() for r in rows
                if r.get("Subject", "").strip().isdigit()}  # fmt: skip
    except (KeyError, ValueError) as err:
        raise ValueError(f"{table}: expected columns Subject, Trial #, Motion Description ({err})") from err


POSE_JUMP_M = 0.5  # a joint moving this far in one frame at 30 fps (15 m/s) is a cut, not motion


def leading_pose_jumps(joints: np.ndarray, most: int = 5) -> int:
    """How many leading frames of a take (T, 22, 3) are a different pose placed elsewhere: each is followed
    by a jump of some joint over POSE_JUMP_M and 10x the take's median largest-joint step. 10 cmu-cc takes
    (007_03-12) start with the rig's T-pose 2.5-3 m from where the motion begins."""
    steps = joint_steps(joints)
    if len(steps) < 2 * most:
        return 0
    typical = float(np.median(steps[most:]))
    count = 0
    while count < most and steps[count] > max(POSE_JUMP_M, 10 * typical):
        count += 1
    return count


def take_floor(joints: np.ndarray) -> float:
    """Floor height of a take (T, 22, 3): the 1st percentile of the lowest joint per frame, so a few
    frames of a foot through the floor do not set it and windows off the ground keep their height."""
    return float(np.percentile(joints[..., 1].min(axis=1), 1))


class NotForRecipe(Exception):
    """A file the recipe does not import (e.g. CMU's standard.bvh rest pose): listed as skipped."""


PLANNERS: dict[str, Callable[[Path, Path, str], SourceJob]] = {
    "bandai": plan_bandai,
    "cmu-dance": plan_cmu_dance,
    "cmu-cc": plan_cmu_cc,
    "generic": plan_generic,
}
RECIPES = tuple(PLANNERS)


# ---------------------------------------------------------------------------------------------------------
# What is measured on a take's motion, and the captions of its windows


def measured_turn_degrees(root_rotations: np.ndarray, edge_frames: int = 5) -> float:
    """Heading change over a clip in degrees (+ = to the body's left), robust to pelvis sway."""
    from motionmillion.motion.rotations import heading_angle

    heading = np.unwrap(heading_angle(root_rotations))
    edge = max(1, min(edge_frames, len(heading) // 4))
    return float(np.degrees(heading[-edge:].mean() - heading[:edge].mean()))


def clip_captions(recipe: str, label: dict, clip_name: str, turn_degrees: float | None = None,
                  pools: dict[str, list[str]] | None = None, seconds: tuple[float, float] | None = None,
                  hand: str | None = None) -> list[str]:
    """The captions of one clip from its recipe labels (the same at import and at ``recaption``);
    ``seconds``: the clip's (start, end) in its take, to pick the human captions of those frames;
    ``hand``: the measured dribbling hand (:func:`dribbling_hand`)."""
    if recipe == "bandai":
        bandai = labels.BandaiLabel(label["dataset"], label["content"], label["style"], label["take"])
        return caps.bandai_captions(bandai, clip_name, turn_degrees, pools=pools)
    if recipe == "cmu-dance":
        return caps.cmu_dance_captions(label["category"], clip_name, pools=pools)
    if recipe == "cmu-cc":
        human = _overlapping_captions(label.get("human", []), seconds) if seconds else []
        return caps.cmu_cc_captions(label["description"], clip_name, turn_degrees, human, pools, hand)
    return list(label.get("captions", []))


def _overlapping_captions(segments: list, seconds: tuple[float, float]) -> list[str]:
    """Captions of the human-captioned segments that cover at least half of the clip or half of
    themselves (side-corrected: a mirrored segment's captions get left and right swapped)."""
    start, end = seconds
    out: list[str] = []
    for seg_start, seg_end, texts, mirrored in segments:
        overlap = min(end, seg_end) - max(start, seg_start)
        if overlap > 0 and overlap >= 0.5 * min(end - start, seg_end - seg_start):
            out += [caps.swap_left_right(t) if mirrored else t for t in texts]
    return list(dict.fromkeys(out))


def window_captions(job: SourceJob, window_name: str, root_rotations: np.ndarray,
                    pools: dict[str, list[str]] | None = None, seconds: tuple[float, float] | None = None,
                    joints: np.ndarray | None = None) -> tuple[list[str], dict]:
    """Captions for one window (``seconds``: its start and end in the take; ``joints``: its joints),
    plus what was measured to write them."""
    measured: dict = {}
    turn = hand = None
    if (job.recipe == "bandai" and job.label["content"].startswith("walk-turn-")) or (
        job.recipe == "cmu-cc" and labels.cmu_cc_label(job.label["description"])[0] == "walk"
    ):
        turn = measured_turn_degrees(root_rotations)
        measured["turn_degrees"] = round(turn, 1)
    if job.recipe == "cmu-cc" and job.label["content"] == "dribble" and joints is not None:
        hand = dribbling_hand(joints)
        measured["dribble_hand"] = hand or "both"
    return clip_captions(job.recipe, job.label, window_name, turn, pools, seconds, hand), measured


DRIBBLE_BOUNCE = 0.05  # m: std of a wrist's bounce (height about its 1 s mean, relative to the pelvis)


def dribbling_hand(joints: np.ndarray) -> str | None:
    """"left" or "right" when one wrist bounces (height std about its 1 s moving mean, relative to the pelvis)
    more than DRIBBLE_BOUNCE and twice as much as the other; None when both or neither do. On the cmu-cc
    dribbling takes the dribbling wrist measures 0.11-0.15 m and the other 0.01-0.04 m."""
    from motionmillion.motion.skeleton import JOINT_NAMES

    wrists = [JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")]
    height = joints[:, wrists, 1] - joints[:, :1, 1]
    width = min(int(FPS), len(height))
    kernel = np.ones(width) / width
    trend = np.stack([np.convolve(height[:, k], kernel, mode="same") for k in range(2)], axis=1)
    inner = slice(width, len(height) - width) if len(height) > 3 * width else slice(None)
    left, right = (height - trend)[inner].std(axis=0)
    if max(left, right) < DRIBBLE_BOUNCE or min(left, right) * 2 > max(left, right):
        return None
    return "left" if left > right else "right"
