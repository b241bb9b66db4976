"""Evaluation runners: a generator against a test split, and a generator on prompt sets without motions.

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

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from motionmillion.data.labels import BANDAI_MOVEMENTS, MOVEMENTS, movement_of, same_movement, same_movement_groups
from motionmillion.evaluation import metrics
from motionmillion.evaluation.physical import physical_metrics
from motionmillion.motion.representation import FEATURE_DIM, decode_joints
from motionmillion.motion.skeleton import FPS

log = logging.getLogger(__name__)

GROUP_SIZE = 32


class EvaluationInputError(ValueError):
    """Bad input to an evaluation run (too few clips, unreadable prompt file, ...)."""


# ----------------------------------------------------------------------------------------- generation


@dataclass
class Generated:
    features: list[np.ndarray | None]  # None where generation failed
    errors: list[str | None]


def _valid_features(x) -> np.ndarray | None:
    features = getattr(x, "features", x)
    try:
        features = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM or len(features) < 1 or not np.isfinite(features).all():
        return None
    return features


def generate(pipe: Callable, prompts: Sequence[str], seconds: Sequence[float] | None, seed: int,
             batch_size: int = 32, progress=None) -> Generated:
    """Call ``pipe(prompts, seconds=[...] or None, num_samples=1, seed=...)`` in batches.

    A batch that raises is retried prompt by prompt so one bad prompt fails alone; NaN or malformed
    motions count as failures (never raised). Under ``accelerate launch`` the batches are dealt out to the
    processes (batch k to rank k % world) and every rank gets all results back, in order: each batch's
    seed depends only on its position, so the motions are the ones a single process generates.
    """
    rank, world = _rank_and_world()
    limit = getattr(pipe, "max_seconds", None)  # the model's longest motion: longer targets are capped
    done: dict[int, tuple[list, list]] = {}
    for k, start in enumerate(range(0, len(prompts), batch_size)):
        if k % world != rank:
            continue
        features, errors = done.setdefault(start, ([], []))
        chunk = list(prompts[start : start + batch_size])
        secs = None if seconds is None else [float(s) for s in seconds[start : start + batch_size]]
        if secs is not None and limit is not None:
            secs = [min(s, float(limit)) for s in secs]
        try:
            outputs = list(pipe(chunk, seconds=secs, num_samples=1, seed=seed + start))
            if len(outputs) != len(chunk):
                raise RuntimeError(f"pipeline returned {len(outputs)} motions for {len(chunk)} prompts")
        except Exception as err:  # isolate the failing prompt(s)
            log.warning("batch at %d failed (%s); retrying prompt by prompt", start, err)
            outputs = []
            for i, prompt in enumerate(chunk):
                try:
                    outputs.append(pipe([prompt], seconds=None if secs is None else [secs[i]], num_samples=1, seed=seed + start + i)[0])
                except Exception as one_err:
                    outputs.append(one_err)
        for out in outputs:
            if isinstance(out, Exception):
                features.append(None)
                errors.append(f"{type(out).__name__}: {out}")
                continue
            valid = _valid_features(out)
            features.append(valid)
            errors.append(None if valid is not None else "NaN, infinite or malformed motion")
        if progress is not None:
            progress(len(chunk))
    if world > 1:
        from accelerate.utils import gather_object

        done = {start: part for parts in gather_object([done]) for start, part in parts.items()}
    return Generated([f for start in sorted(done) for f in done[start][0]],
                     [e for start in sorted(done) for e in done[start][1]])  # fmt: skip


def _rank_and_world() -> tuple[int, int]:
    """This process among those ``accelerate launch`` started (0 of 1 when not launched)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes join over gloo only with cpu=True
    return state.process_index, state.num_processes


# ----------------------------------------------------------------------------------------- metrics


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


# ----------------------------------------------------------------------------------------- generator eval


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


# ----------------------------------------------------------------------------------------- prompt sets

@dataclass
class PromptItem:
    prompt: str
    content: str | None = None
    style: str | None = None
    seconds: float | None = None


def read_prompts(path: str | Path) -> list[PromptItem]:
    """Plain text (one prompt per line, blank lines and '#' comments skipped), JSONL with "prompt"
    (+ optional "content", "style", "seconds"), or a JSON file of HumanML3D-style captions (any
    nesting: every string under a "text"/"caption"/"texts"/"captions" key, de-duplicated)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: prompt file not found")
    text = path.read_text(encoding="utf-8")
    items: list[PromptItem] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                items.append(PromptItem(str(row["prompt"]).strip(), row.get("content"), row.get("style"), row.get("seconds")))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise EvaluationInputError(f"{path}:{n}: not a JSON object with a \"prompt\" ({err})") from err
            if items[-1].content is not None and items[-1].content not in MOVEMENTS:
                raise EvaluationInputError(f"{path}:{n}: unknown content {items[-1].content!r}; known: {sorted(MOVEMENTS)}")
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EvaluationInputError(f"{path}: not valid JSON ({err})") from err
        found: dict[str, None] = {}

        def walk(node, key=None):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, k)
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif isinstance(node, str) and key in ("text", "texts", "caption", "captions"):
                caption = node.split("#")[0].strip()
                if caption:
                    found[caption] = None

        walk(data)
        items = [PromptItem(c) for c in found]
    else:
        items = [PromptItem(line.strip()) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not items:
        raise EvaluationInputError(f"{path}: no prompts found")
    return items


def motion_prototypes(evaluator, dataset_root: str | Path, kind: str = "t2m_60_300",
                      styles: bool = False) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """Mean unit motion embedding of the unmirrored clips (all splits, labels from the dataset's import
    records) of each movement (:data:`labels.MOVEMENTS`), and with ``styles`` of each (movement, style): a
    generated motion's style is the nearest of its own movement's styles ("which style of run is it?").
    Each clip is read and encoded once for both."""
    from motionmillion.data.records import clip_labels
    from motionmillion.data.layout import MotionDataset

    dataset = MotionDataset(dataset_root)
    labels = clip_labels(dataset_root)
    names, keys = [], []
    for name in dataset.names("all", kind=kind):
        label = labels.get(name)
        movement = movement_of(label.content) if label is not None and not label.mirrored else None
        if movement is not None:
            names.append(name)
            keys.append((movement, label.style))
    embeddings = evaluator.encode_motion([dataset.motion(n) for n in names]) if names else None

    def means(group_of) -> dict:
        groups: dict = {}
        for i, key in enumerate(keys):
            if (group := group_of(key)) is not None:
                groups.setdefault(group, []).append(i)
        return {group: (m := embeddings[rows].mean(0)) / np.linalg.norm(m) for group, rows in groups.items()}

    return means(lambda key: key[0]), (means(lambda key: key if key[1] else None) if styles else {})


def evaluate_prompts(pipe: Callable, evaluator, prompts_path: str | Path, samples: int = 1, seed: int = 0,
                     dataset_root: str | Path | None = None, batch_size: int = 32, model_name: str = "",
                     evaluator_path: str = "", progress: bool = True) -> dict:
    """Generate for every prompt (model's own length unless the prompt file gives seconds) and score:
    text-motion alignment (cosine), physical metrics, durations, failures, and for prompts with a
    content label the rate at which the motion is retrieved as the right content among the
    candidate contents (text candidates; motion prototypes too when ``dataset_root`` is given)."""
    from tqdm.auto import tqdm

    items = read_prompts(prompts_path)
    prompts = [it.prompt for it in items]
    text_emb = evaluator.encode_text(prompts)
    labelled = [i for i, it in enumerate(items) if it.content]
    # The Bandai movements always compete; cmu-cc movements only when a prompt names them, so figures over
    # the Bandai movements (the paraphrase set) keep their meaning.
    candidates = sorted({items[i].content for i in labelled} | set(BANDAI_MOVEMENTS)) if labelled else []
    cand_text_emb = evaluator.encode_text([MOVEMENTS[c].description for c in candidates]) if candidates else None
    styled = any(items[i].style for i in labelled)
    prototypes, combos = motion_prototypes(evaluator, dataset_root, styles=styled) if (labelled and dataset_root) else ({}, {})

    bar = tqdm(total=len(items) * samples, desc="generating", unit="motion", disable=not progress)
    started = time.time()
    rows: list[dict] = []
    per_prompt: list[dict] = [{"prompt": it.prompt, "content": it.content, "style": it.style, "samples": []} for it in items]
    all_ok: list[np.ndarray] = []
    samples_for_figure: list[dict] = []
    for s in range(samples):
        seconds = [it.seconds for it in items]
        secs = None if all(x is None for x in seconds) else [x if x is not None else 4.0 for x in seconds]
        gen = generate(pipe, prompts, secs, seed + 1000 * s, batch_size, bar.update)
        ok = [i for i, f in enumerate(gen.features) if f is not None]
        emb = evaluator.encode_motion([gen.features[i] for i in ok]) if ok else np.zeros((0, evaluator.dim))
        alignment = (text_emb[ok] * emb).sum(1)
        row = {"failure_rate": 1 - len(ok) / len(items), "text_motion_cosine": float(alignment.mean()) if ok else float("nan"),
               "mm_dist": metrics.mm_dist(text_emb[ok], emb) if ok else float("nan"),
               "mean_seconds": float(np.mean([len(gen.features[i]) for i in ok]) / FPS) if ok else float("nan")}
        if len(ok) >= GROUP_SIZE:
            top = metrics.r_precision(*(x[np.random.default_rng(seed + s).permutation(len(ok))] for x in (text_emb[ok], emb)))
            row["r_precision_top1"], row["r_precision_top3"] = float(top[0]), float(top[2])
        row.update(physical_summary([gen.features[i] for i in ok]))
        position = {i: k for k, i in enumerate(ok)}
        hits_text, hits3_text, hits_proto, hits_style = [], [], [], []
        for i, item in enumerate(items):
            entry = {"error": gen.errors[i]}
            if i in position:
                k = position[i]
                entry.update(seconds=round(len(gen.features[i]) / FPS, 2), cosine=float(alignment[k]))
                if item.content:
                    sims = cand_text_emb @ emb[k]
                    order = np.argsort(-sims)
                    entry["retrieved_text"] = candidates[order[0]]
                    hits_text.append(same_movement(candidates[order[0]], item.content))
                    hits3_text.append(any(same_movement(candidates[j], item.content) for j in order[:3]))
                    if prototypes:
                        names = sorted(prototypes)
                        best = names[int(np.argmax([prototypes[n] @ emb[k] for n in names]))]
                        entry["retrieved_prototype"] = best
                        hits_proto.append(same_movement(best, item.content))
                    styles = sorted(s for c, s in combos if c == item.content)
                    if item.style and item.style in styles:  # which of this content's styles is it?
                        best_style = styles[int(np.argmax([combos[(item.content, s)] @ emb[k] for s in styles]))]
                        entry["retrieved_style"] = best_style
                        hits_style.append(best_style == item.style)
                all_ok.append(gen.features[i])
                if len(samples_for_figure) < 6:
                    samples_for_figure.append({"caption": item.prompt, "features": gen.features[i]})
            elif item.content:
                hits_text.append(False)
                hits3_text.append(False)
                if prototypes:
                    hits_proto.append(False)
            per_prompt[i]["samples"].append(entry)
        if labelled:
            row["content_accuracy_text_candidates"] = float(np.mean(hits_text))
            row["content_top3_text_candidates"] = float(np.mean(hits3_text))
            if prototypes:
                row["content_accuracy_motion_prototypes"] = float(np.mean(hits_proto))
            if hits_style:
                row["style_accuracy_among_the_content_styles"] = float(np.mean(hits_style))
        rows.append(row)
    bar.close()
    return {
        "protocol": {
            "model": model_name, "evaluator": evaluator_path, "evaluator_sha256": evaluator.checksum,
            "prompts": str(prompts_path), "num_prompts": len(items), "samples_per_prompt": samples,
            "seeds": [seed + 1000 * s for s in range(samples)],
            "lengths": "model's own (seconds=None) unless the prompt file gives seconds",
            "content_candidates": candidates,
            "content_matching": "argmax cosine of the motion embedding against each candidate's description "
                                "(and against mean real-motion embeddings per content when --data is given); "
                                f"labels naming the same movement count as right: {same_movement_groups(MOVEMENTS)}",
            "failure": "a generation that raises or returns NaN/infinite/malformed features",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.time() - started, 1),
        },
        "results": {"generated": aggregate(rows)},
        "per_prompt": per_prompt,
        "generated_lengths": {"own_length": [len(f) for f in all_ok]},
        "_samples": samples_for_figure,
    }
