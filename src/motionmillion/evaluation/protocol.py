"""The standard protocol: a generator against a test split (``motionmillion eval generator``).

``evaluate_generator`` follows the standard protocol (Guo et al. 2022) with everything the reference
code leaves out: Diversity and MultiModality are computed, results are the mean and 95% confidence
interval over ``repeats`` runs, real motions are scored with the same procedure, lengths are either the
ground truth (seconds = frames / 30) or the model's own, and the protocol is recorded in the JSON.

Protocol details (also written to the JSON): one caption per clip drawn at random per repeat (seeded);
R-precision among 32 in randomly shuffled groups (last incomplete group dropped); Diversity over 300
random pairs; MultiModality over ``mm_samples`` generations for ``mm_texts`` captions; motions longer than
the evaluator's maximum (300 frames) are centre-cropped before embedding; a generation that fails or
contains NaN is counted as a failure and left out of the metrics (its real counterpart too).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from motionmillion.evaluation import metrics
from motionmillion.evaluation.generation import generate
from motionmillion.evaluation.physical import physical_metrics
from motionmillion.motion.representation import decode_joints
from motionmillion.motion.skeleton import FPS

log = logging.getLogger(__name__)

GROUP_SIZE = 32


class EvaluationInputError(ValueError):
    """Bad input to an evaluation run (too few clips, unreadable prompt file, ...)."""


def physical_summary(motions: Sequence[np.ndarray], fps: float = FPS) -> dict[str, float]:
    """Mean of each physical metric over motions (features, de-normalised)."""
    rows = [physical_metrics(decode_joints(m), fps).to_dict() for m in motions]
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def embedding_metrics(text_emb: np.ndarray, motion_emb: np.ndarray, rng: np.random.Generator,
                      real_emb: np.ndarray | None = None, diversity_pairs: int = 300) -> dict[str, float]:
    """R-precision top-1/2/3 (shuffled groups of 32), MM-Dist, Diversity and FID against ``real_emb``."""
    perm = rng.permutation(len(text_emb))
    top = metrics.r_precision(text_emb[perm], motion_emb[perm], top_k=3, group_size=GROUP_SIZE)
    out = {"r_precision_top1": float(top[0]), "r_precision_top2": float(top[1]), "r_precision_top3": float(top[2]),
           "mm_dist": metrics.mm_dist(text_emb, motion_emb),
           "diversity": metrics.diversity(motion_emb, diversity_pairs, seed=int(rng.integers(1 << 31)))}
    if real_emb is not None:
        out["fid"] = metrics.fid(real_emb, motion_emb)
    return out


def aggregate(per_repeat: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "ci95", "values"}} over repeats."""
    keys = sorted({k for r in per_repeat for k in r})
    out = {}
    for k in keys:
        values = [r[k] for r in per_repeat if k in r and r[k] is not None and np.isfinite(r[k])]
        if values:
            mean, ci = metrics.mean_ci95(values)
            out[k] = {"mean": mean, "ci95": ci, "values": values}
    return out


@dataclass
class GeneratorEvalConfig:
    split: str = "test"
    kind: str = "t2m_60_300"
    repeats: int = 20
    seed: int = 0
    own_length: bool = True  # also evaluate with the model's own lengths
    mm_texts: int = 32
    mm_samples: int = 10
    mm_pairs: int = 10
    diversity_pairs: int = 300
    batch_size: int = 32
    max_train_clips_for_sanity: int = 2000
    notes: dict = field(default_factory=dict)


def evaluate_generator(pipe: Callable, evaluator, dataset_root: str | Path, config: GeneratorEvalConfig,
                       model_name: str = "", evaluator_path: str = "", progress: bool = True) -> dict:
    """Run the protocol; returns the result dictionary (see module docstring)."""
    from tqdm.auto import tqdm

    from motionmillion.evaluation.train import load_split

    clips = load_split(dataset_root, config.split, config.kind)
    if len(clips) < GROUP_SIZE:
        raise EvaluationInputError(
            f"{dataset_root}: split {config.kind}/{config.split} has {len(clips)} usable clips; R-precision needs at least {GROUP_SIZE}"
        )
    max_frames = evaluator.config.max_frames
    lengths = np.array([min(len(m), max_frames) for m in clips.motions])
    num_long = int((np.array([len(m) for m in clips.motions]) > max_frames).sum())
    real_emb = evaluator.encode_motion(clips.motions)
    real_physical = physical_summary(clips.motions)

    # Sanity: real test vs real train (the floor any generator's FID can reach, up to sampling).
    sanity: dict[str, float] = {"r_precision_chance_top1": 1 / GROUP_SIZE}
    try:
        train = load_split(dataset_root, "train", config.kind)
        pick = np.random.default_rng(config.seed).permutation(len(train))[: config.max_train_clips_for_sanity]
        sanity["fid_real_test_vs_real_train"] = metrics.fid(real_emb, evaluator.encode_motion([train.motions[i] for i in pick]))
        sanity["train_clips_used"] = int(len(pick))
    except (OSError, ValueError) as err:
        log.warning("no real-vs-real FID sanity figure: %s", err)

    modes = ["gt_length"] + (["own_length"] if config.own_length else [])
    per_repeat: dict[str, list[dict]] = {"real": [], **{m: [] for m in modes}}
    failures: dict[str, list] = {m: [] for m in modes}
    generated_lengths: dict[str, list[int]] = {m: [] for m in modes}
    samples: list[dict] = []
    seeds = [config.seed + 1000 * r for r in range(config.repeats)]
    mm_count = min(config.mm_texts, len(clips)) if config.mm_samples >= 2 else 0
    total = config.repeats * (len(clips) * len(modes) + mm_count * config.mm_samples)
    bar = tqdm(total=total, desc="generating", unit="motion", disable=not progress)
    started = time.time()
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        captions = [caps[rng.integers(len(caps))] for caps in clips.captions]
        text_emb = evaluator.encode_text(captions)
        gt_row = None
        per_repeat["real"].append(embedding_metrics(text_emb, real_emb, np.random.default_rng(seed), None, config.diversity_pairs))
        for mode in modes:
            seconds = lengths / FPS if mode == "gt_length" else None
            gen = generate(pipe, captions, seconds, seed, config.batch_size, bar.update)
            ok = [i for i, f in enumerate(gen.features) if f is not None]
            failures[mode].append({"repeat": r, "count": len(gen.features) - len(ok),
                                   "examples": [f"{captions[i]!r}: {e}" for i, e in enumerate(gen.errors) if e][:5]})
            good = [gen.features[i] for i in ok]
            generated_lengths[mode].extend(len(f) for f in good)
            if len(ok) < GROUP_SIZE:
                log.error("repeat %d %s: only %d successful generations, metrics skipped", r, mode, len(ok))
                continue
            emb = evaluator.encode_motion(good)
            row = embedding_metrics(text_emb[ok], emb, np.random.default_rng(seed), real_emb[ok], config.diversity_pairs)
            row.update(physical_summary(good))
            row["failure_rate"] = 1 - len(ok) / len(gen.features)
            row["mean_seconds"] = float(np.mean([len(f) for f in good]) / FPS)
            if mode == "gt_length":
                row["length_abs_error_s"] = float(np.mean([abs(len(gen.features[i]) - lengths[i]) for i in ok]) / FPS)
            per_repeat[mode].append(row)
            if mode == "gt_length":
                gt_row = row
            if r == 0 and mode == "gt_length":
                samples = [{"caption": captions[i], "features": gen.features[i], "real": clips.motions[i]} for i in ok[:6]]
        if mm_count:
            mm_caps = [captions[i] for i in range(mm_count)]
            embs = []
            for s in range(config.mm_samples):
                gen = generate(pipe, mm_caps, lengths[:mm_count] / FPS, seed + 100 * (s + 1), config.batch_size, bar.update)
                embs.append([evaluator.encode_motion([f])[0] if f is not None else None for f in gen.features])
            complete = [t for t in range(mm_count) if all(e[t] is not None for e in embs)]
            if complete and gt_row is not None:
                stacked = np.stack([np.stack([embs[s][t] for s in range(config.mm_samples)]) for t in complete])
                gt_row["multimodality"] = metrics.multimodality(stacked, config.mm_pairs, seed=seed)
    bar.close()
    per_repeat["real"][0].update(real_physical)
    results = {name: aggregate(rows) for name, rows in per_repeat.items()}
    return {
        "protocol": {
            "model": model_name,
            "evaluator": evaluator_path,
            "evaluator_sha256": evaluator.checksum,
            "dataset": str(dataset_root),
            "split": f"{config.kind}/{config.split}",
            "num_clips": len(clips),
            "clips_longer_than_evaluator_max": num_long,
            "evaluator_max_frames": max_frames,
            "long_clip_handling": "centre-cropped to the evaluator maximum; ground-truth lengths capped likewise",
            "caption_choice": "one caption per clip, uniformly at random per repeat (numpy default_rng(seed))",
            "lengths": {"gt_length": "ground truth, seconds = frames / 30", "own_length": "model's own (seconds=None)"},
            "repeats": config.repeats,
            "seeds": seeds,
            "r_precision_group_size": GROUP_SIZE,
            "diversity_pairs": config.diversity_pairs,
            "multimodality": {"texts": mm_count, "samples": config.mm_samples, "pairs": config.mm_pairs},
            "ci": "95% = 1.96 * std / sqrt(repeats)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "wall_seconds": round(time.time() - started, 1),
            **config.notes,
        },
        "sanity": sanity,
        "results": results,
        "failures": failures,
        "generated_lengths": {m: v for m, v in generated_lengths.items()},
        "real_lengths": lengths.tolist(),
        "_samples": samples,  # dropped from the JSON; used for the figure grid
    }
