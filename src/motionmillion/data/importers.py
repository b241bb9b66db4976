"""Import BVH motion capture into a MotionMillion dataset: clips, mirrored copies, captions, splits, mean/std.

Each source file is planned and captioned by its recipe (:mod:`recipes`: bandai, cmu-dance, cmu-cc,
generic) and imported in worker processes. Every clip is written with its mirrored copy (``mirror_272``,
captions with left/right swapped). One JSON record per finished source file (:mod:`records`) makes a
second run skip it; bad files are skipped, listed and retried on the next run. Afterwards
:func:`finalize_dataset` recomputes mean/std over every stored clip and the splits by take (:mod:`splits`).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from motionmillion.data import caption_pools
from motionmillion.data.captions import swap_left_right
from motionmillion.data.layout import MotionDataset, mirror_name, write_clip, write_mean_std, write_texts
from motionmillion.data.recipes import (
    PLANNERS,
    RECIPES,
    NotForRecipe,
    SourceJob,
    clip_captions,
    find_bvh,
    leading_pose_jumps,
    take_floor,
    window_captions,
)
from motionmillion.data.records import META_DIR, dataset_clip_table, load_records, record_path
from motionmillion.data.splits import SPLIT_KINDS, write_splits
from motionmillion.motion.skeleton import FPS
from motionmillion.utils.io import atomic_write_json

MIN_SOURCE_FRAMES = 8  # at 30 fps; shorter sources are reported as bad (nothing to learn from)


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # source files imported in this run
    resumed: list[str] = field(default_factory=list)  # already done by an earlier run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not for this recipe (path, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # bad files (path, error)
    clips_written: int = 0
    wall_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------------
# Importing one source file (runs in worker processes)

def import_source(job: SourceJob, out: str, pools: dict[str, list[str]] | None = None) -> dict:
    """Read one BVH, write its clips and mirrored copies; return the record (raises on bad input)."""
    from motionmillion.motion import encode_272, mirror_272, rotations_from_positions
    from motionmillion.motion.rig_mapping import load_bvh_joints

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
        write_clip(out, mirror_name(name), mirror_272(features), [swap_left_right(c) for c in captions])
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
# Importing a folder (resumable)

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
        except NotForRecipe as why:
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
# Over the whole dataset: captions again, statistics and splits


def recaption(out: str | Path, text_pool: str | Path | None = None, progress: bool = True) -> dict[str, int]:
    """Rewrite the captions of every imported bandai, cmu-dance and cmu-cc clip (and its mirror) from the
    import records, e.g. to add human-written captions from ``text_pool`` without importing motion again.
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
            write_texts(out, clip["mirror"], [swap_left_right(c) for c in captions])
            counts["clips"] += 2
            counts["captions"] += 2 * len(captions)
        bar.update(1)
    bar.close()
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
