"""Import BVH motion capture into a MotionMillion dataset: clips, mirrored copies, captions, splits, mean/std.

Recipes (``--recipe``):

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

Every clip is written with its mirrored copy (``mirror_272``, captions with left/right swapped).
One JSON record per finished source file (``DATASET/meta/import/<prefix>/<source>.json``) makes a
second run skip it; bad files are skipped, listed and retried on the next run. Afterwards
:func:`finalize_dataset` recomputes mean/std over every stored clip and the splits by take.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from motionmillion.data import caption_pools
from motionmillion.data import captions as caps
from motionmillion.data import labels
from motionmillion.data.layout import (
    SPLIT_KINDS,
    MotionDataset,
    iter_stored_names,
    mirror_name,
    parse_caption_line,
    write_clip,
    write_mean_std,
    write_split,
    write_texts,
)
from motionmillion.motion.kinematics import joint_steps
from motionmillion.motion.skeleton import FPS
from motionmillion.utils.io import atomic_write_json

RECIPES = ("bandai", "cmu-dance", "cmu-cc", "generic")
META_DIR = Path("meta/import")
MIN_SOURCE_FRAMES = 8  # at 30 fps; shorter sources are reported as bad (nothing to learn from)
CMU_FPS = {"salsa": 60.0, "indian": 120.0, "martial": 120.0}  # readme.txt; salsa headers wrongly say 120
# length ranges of the split kinds (frames at 30 fps), as in MotionMillion's split names
KIND_LENGTHS = {"t2m_60_300": (60, 300), "tokenizer_96": (96, None)}
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test (by take groups, within each stratum)


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


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # source files imported in this run
    resumed: list[str] = field(default_factory=list)  # already done by an earlier run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not for this recipe (path, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # bad files (path, error)
    clips_written: int = 0
    wall_seconds: float = 0.0


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
        raise _NotForRecipe("not a Bandai Namco file name (dataset-N_content_style_take)")
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
        raise _NotForRecipe(f"not in a category folder ({', '.join(CMU_FPS)})")
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
        raise _NotForRecipe("not a CMU take name (SSS_TT.bvh)")
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


class _NotForRecipe(Exception):
    """A file the recipe does not import (e.g. CMU's standard.bvh rest pose): listed as skipped."""


PLANNERS: dict[str, Callable[[Path, Path, str], SourceJob]] = {
    "bandai": plan_bandai,
    "cmu-dance": plan_cmu_dance,
    "cmu-cc": plan_cmu_cc,
    "generic": plan_generic,
}


# ---------------------------------------------------------------------------------------------------------
# Importing one source file (runs in worker processes)


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


def import_source(job: SourceJob, out: str, pools: dict[str, list[str]] | None = None) -> dict:
    """Read one BVH, write its clips and mirrored copies; return the record (raises on bad input)."""
    from motionmillion.motion import encode_272, mirror_272, rotations_from_positions
    from motionmillion.motion.bvh import load_bvh_joints

    joints, fps_used = load_bvh_joints(job.path, rig=job.rig, source_fps=job.source_fps)
    notes = list(job.notes)
    if job.recipe == "cmu-cc":  # some conversions start with the rig's T-pose somewhere else in the room
        dropped = leading_pose_jumps(joints)
        joints = joints[dropped:]
        if dropped:
            notes.append(f"dropped {dropped} leading frame(s): a rest pose that jumps to the first motion frame")
    if len(joints) < MIN_SOURCE_FRAMES:
        raise ValueError(f"{job.path}: only {len(joints)} frames at 30 fps (need {MIN_SOURCE_FRAMES})")
    rotations = rotations_from_positions(joints)
    # A rig whose floor is not at y = 0 and whose windows may leave the ground (climbing) is floored per take.
    floor = take_floor(joints) if job.recipe == "cmu-cc" else None
    windows = job.window.windows(len(joints))
    numbered = job.always_number_windows or len(windows) > 1
    clips = []
    for k, (start, end) in enumerate(windows):
        name = f"{job.prefix}/{job.base}_{k:02d}" if numbered else f"{job.prefix}/{job.base}"
        features = encode_272(joints[start:end], rotations[start:end], floor=floor)  # canonicalised per window
        captions, measured = window_captions(job, name, rotations[start:end, 0], pools, (start / FPS, end / FPS),
                                             joints[start:end])  # fmt: skip
        write_clip(out, name, features, captions)
        write_clip(out, mirror_name(name), mirror_272(features), [caps.swap_left_right(c) for c in captions])
        clips.append({"name": name, "mirror": mirror_name(name), "frames": end - start, "start": start, **measured})
    return {
        "source": job.path, "recipe": job.recipe, "group": job.group, "stratum": job.stratum,
        "label": {k: v for k, v in job.label.items() if k != "captions"}, "source_fps": fps_used,
        "frames_30fps": len(joints), "clips": clips, "notes": notes,
    }  # fmt: skip


def _work(args: tuple[SourceJob, str, dict | None]) -> tuple[SourceJob, dict | None, str | None]:
    job, out, pools = args
    try:
        return job, import_source(job, out, pools), None
    except (ValueError, OSError) as error:  # BVHError, InvalidMotionError, UnknownRigError are ValueErrors
        return job, None, str(error) if job.path in str(error) else f"{job.path}: {error}"
    except Exception as error:  # noqa: BLE001 - a batch job lists the file and goes on; the type says it is unexpected
        return job, None, f"{job.path}: unexpected {type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------------------


def record_path(out: Path, job: SourceJob) -> Path:
    return out / META_DIR / job.prefix / job.record_path_suffix


def _is_done(out: Path, job: SourceJob) -> bool:
    path = record_path(out, job)
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return False
    dataset = MotionDataset(out)
    return all(dataset.has(clip[key]) for clip in record["clips"] for key in ("name", "mirror"))


def import_bvh(
    src: str | Path,
    out: str | Path,
    recipe: str,
    prefix: str | None = None,
    workers: int = 2,
    finalize: bool = True,
    progress: bool = True,
    text_pool: str | Path | None = None,
) -> ImportReport:
    """Import every BVH under ``src`` with ``recipe`` into the dataset ``out`` (resumable). With
    ``text_pool`` (a folder of HumanML3D/KIT-ML captions) clips also get human-written captions."""
    if recipe not in PLANNERS:
        raise ValueError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    src, out = Path(src), Path(out)
    prefix = prefix or recipe
    pools = caption_pools.load_pools(text_pool) if text_pool else None
    # cmu-cc: HumanML3D captions of the same takes, with their time ranges (kept in the import record)
    human = caption_pools.humanml3d_cmu_segments(text_pool) if (text_pool and recipe == "cmu-cc") else {}
    started = time.perf_counter()
    report = ImportReport()
    jobs: list[SourceJob] = []
    for path in find_bvh(src):
        try:
            job = PLANNERS[recipe](path, src, prefix)
            if job.base in human:
                job = replace(job, label={**job.label, "human": human[job.base]})
        except _NotForRecipe as why:
            report.skipped.append((str(path), str(why)))
            continue
        except ValueError as error:
            report.failed.append((str(path), f"{path}: {error}"))
            continue
        if _is_done(out, job):
            report.resumed.append(job.path)
        else:
            jobs.append(job)

    def handle(job: SourceJob, record: dict | None, error: str | None) -> None:
        if error is not None:
            report.failed.append((job.path, error))
            return
        atomic_write_json(record_path(out, job), record)  # the checkpoint: this source is done
        report.imported.append(job.path)
        report.clips_written += 2 * len(record["clips"])

    tasks = [(job, str(out), pools) for job in jobs]
    bar = _progress(len(tasks), f"import {recipe}", progress)
    if workers > 1 and len(tasks) > 1:
        # spawn, not fork: a process forked while torch's or another library's threads hold a lock can hang
        # forever in the child (it did, in a test run that had loaded torch); each task writes its own files
        # atomically
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(_work, tasks, chunksize=4):
                handle(*result)
                bar.update(1)
    else:
        for task in tasks:
            handle(*_work(task))
            bar.update(1)
    bar.close()
    if finalize:
        finalize_dataset(out, progress=progress)
    report.wall_seconds = time.perf_counter() - started
    atomic_write_json(out / META_DIR / prefix / "last_run.json", {"recipe": recipe, "src": str(src), **asdict(report)})
    return report


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not enabled or total == 0, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------------------
# Splits and statistics over the whole dataset


def recaption(out: str | Path, text_pool: str | Path | None = None, progress: bool = True) -> dict[str, int]:
    """Rewrite the captions of every imported bandai/cmu-dance clip (and its mirror) from the import
    records, e.g. to add human-written captions from ``text_pool`` without importing motion again.
    Generic imports keep their own captions. Returns counts."""
    out = Path(out)
    pools = caption_pools.load_pools(text_pool) if text_pool else None
    records = [r for r in load_records(out) if r["recipe"] in ("bandai", "cmu-dance", "cmu-cc")]
    if not records:
        raise ValueError(f"{out}: no bandai, cmu-dance or cmu-cc import records under {out / META_DIR}")
    counts = {"clips": 0, "captions": 0}
    bar = _progress(len(records), "recaption", progress)
    for record in records:
        for clip in record["clips"]:
            seconds = (clip["start"] / FPS, (clip["start"] + clip["frames"]) / FPS) if "start" in clip else None
            hand = clip.get("dribble_hand") if clip.get("dribble_hand") != "both" else None
            captions = clip_captions(record["recipe"], record["label"], clip["name"], clip.get("turn_degrees"), pools,
                                     seconds, hand)  # fmt: skip
            write_texts(out, clip["name"], captions)
            write_texts(out, clip["mirror"], [caps.swap_left_right(c) for c in captions])
            counts["clips"] += 2
            counts["captions"] += 2 * len(captions)
        bar.update(1)
    bar.close()
    return counts


def load_records(out: str | Path) -> list[dict]:
    folder = Path(out) / META_DIR
    records = []
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        if path.name == "last_run.json":
            continue
        records.append(json.loads(path.read_text()))
    return records


@dataclass(frozen=True)
class ClipLabel:
    """What the import records say about one stored clip (the one source of clip labels)."""

    content: str  # the labelled movement as performed ("walk-turn-left" only when the measured turn says so)
    style: str
    stratum: str  # the source's content/style group, shared by all its takes
    group: str  # the take, kept within one split
    mirrored: bool

    @property
    def recipe(self) -> str:
        """All takes and windows of one content/style (and mirroring): clips that are near-duplicates."""
        return f"{self.stratum}/mirrored" if self.mirrored else self.stratum


def clip_labels(out: str | Path) -> dict[str, ClipLabel]:
    """{clip name: ClipLabel} for every clip (and mirrored clip) of the dataset's import records; clips
    written by other means have none."""
    found: dict[str, ClipLabel] = {}
    for record in load_records(out):
        label = record.get("label", {})
        content = label.get("content") or label.get("category") or ""
        style = label.get("style", "")
        for clip in record["clips"]:
            clip_content = content
            if content.startswith("walk-turn-") and "turn_degrees" in clip:
                clip_content = labels.walk_label(clip["turn_degrees"])
            found[clip["name"]] = ClipLabel(clip_content, style, record["stratum"], record["group"], False)
            found[clip["mirror"]] = ClipLabel(caps.swap_left_right(clip_content), style, record["stratum"],
                                               record["group"], True)  # fmt: skip
    return found


def assign_splits(groups_by_stratum: dict[str, list[str]], fractions=SPLIT_FRACTIONS) -> dict[str, str]:
    """Group -> "train" | "val" | "test", deterministic, within each stratum.

    A stratum with one group goes to train (it cannot be both trained on and tested); with two, one is
    test; with three or more, val and test get at least one group each.
    """
    assignment: dict[str, str] = {}
    for stratum in sorted(groups_by_stratum):
        groups = sorted(set(groups_by_stratum[stratum]))
        caps.clip_rng(f"split:{stratum}").shuffle(groups)
        n = len(groups)
        if n == 1:
            n_val = n_test = 0
        elif n == 2:
            n_val, n_test = 0, 1
        else:
            n_test = max(1, round(fractions[2] * n))
            n_val = max(1, round(fractions[1] * n))
        for k, group in enumerate(groups):
            assignment[group] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return assignment


def dataset_clip_table(out: str | Path) -> list[dict]:
    """Every stored clip with its length, group and stratum (from the import records; clips written by
    other means form their own group)."""
    out = Path(out)
    dataset = MotionDataset(out)
    table: dict[str, dict] = {}
    for record in load_records(out):
        for clip in record["clips"]:
            for key in ("name", "mirror"):
                table[clip[key]] = {"name": clip[key], "frames": clip["frames"], "group": record["group"], "stratum": record["stratum"]}
    for name in iter_stored_names(out):
        if name not in table:
            table[name] = {"name": name, "frames": dataset.length(name), "group": name, "stratum": "other"}
    stored = set(iter_stored_names(out))
    return [table[name] for name in sorted(table) if name in stored]


def write_splits(out: str | Path, table: list[dict]) -> dict[str, dict[str, int]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for row in table:
        groups[row["stratum"]].append(row["group"])
    assignment = assign_splits(groups)
    counts: dict[str, dict[str, int]] = {}
    for kind, (low, high) in KIND_LENGTHS.items():
        lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for row in table:
            if row["frames"] >= low and (high is None or row["frames"] <= high):
                lists[assignment[row["group"]]].append(row["name"])
        lists["all"] = sorted(lists["train"] + lists["val"] + lists["test"])
        for split, names in lists.items():
            write_split(out, kind, split, names)
        counts[kind] = {split: len(names) for split, names in lists.items()}
    atomic_write_json(Path(out) / "meta/split_groups.json", assignment)
    return counts


def finalize_dataset(out: str | Path, progress: bool = True) -> dict:
    """Recompute mean/std over every stored clip (mirrors included) and the take-grouped splits."""
    from motionmillion.motion import compute_mean_std

    out = Path(out)
    table = dataset_clip_table(out)
    if not table:
        raise ValueError(f"{out}: no clips to compute statistics from")
    dataset = MotionDataset(out)
    bar = _progress(len(table), "mean/std", progress)

    def clips() -> Iterable[np.ndarray]:
        for row in table:
            yield np.load(dataset.motion_path(row["name"]))
            bar.update(1)

    mean, std = compute_mean_std(clips())
    bar.close()
    write_mean_std(out, mean, std)
    counts = write_splits(out, table)
    assert set(counts) == set(SPLIT_KINDS)
    return counts
