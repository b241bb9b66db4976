"""Prompt sets: a generator on prompts without motions (``motionmillion eval prompts``).

Every prompt is generated for and scored by text-motion alignment, physical metrics, durations and
failures; a prompt labelled with a movement (:mod:`motionmillion.data.labels`) is also scored by whether
its motion is retrieved as that movement, and with a style, as that style among the movement's styles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from motionmillion.data.labels import BANDAI_MOVEMENTS, MOVEMENTS, movement_of, same_movement, same_movement_groups
from motionmillion.evaluation import metrics
from motionmillion.evaluation.generation import generate
from motionmillion.evaluation.protocol import GROUP_SIZE, EvaluationInputError, aggregate, physical_summary
from motionmillion.motion.skeleton import FPS


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
