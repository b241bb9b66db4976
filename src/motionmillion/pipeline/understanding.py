"""What a prompt was understood as, and how well the model knows it: coverage and rewriting.

Every generation is checked against the model's caption bank (:class:`~motionmillion.text.rewrite.CaptionBank`):
the similarity of the prompt to its nearest training captions is its *coverage* in [0, 1]; below the
bank's measured threshold the motion carries a warning naming the nearest known movement. With
``rewrite=True`` a back-end from :mod:`motionmillion.text.rewrite` first turns the prompt into the training
captions' wording (and estimates its duration).

:func:`understand` is what the pipeline's "understand" stage calls; :func:`build_caption_bank` writes the
bank at export time from the dataset the generator was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from motionmillion.pipeline.requests import MIN_SECONDS
from motionmillion.text.rewrite import (
    BANK_CAPTIONS,
    BANK_DIR,
    DEFAULT_COVERAGE_THRESHOLD,
    CaptionBank,
    RetrievalRewriter,
    Rewrite,
    Rewriter,
    embed,
    language_model_rewriter,
)

log = logging.getLogger(__name__)

COVERAGE_NEIGHBOURS = 3
COVERAGE_TEMPERATURE = 0.1
UNKNOWN = "unknown"
OTHER_CAPTIONS = 2500  # human-written captions of unknown movements kept in the bank (seeded sample)
NEAR_DUPLICATE = 0.9  # an "unknown movement" caption this close to a training caption is not unknown


# ---------------------------------------------------------------- the caption bank of a dataset and of a pipeline
def bank_from_dataset(dataset_root: str | Path, text_encoder, text_pool: str | Path | None = None,
                      split: str = "train", kind: str = "t2m_60_300") -> CaptionBank:
    """The caption bank of a MotionMillion dataset's ``split``: every unique caption, the majority movement
    and style label of the clips carrying it (from the import records), and their median length. With
    ``text_pool`` (the HumanML3D/KIT-ML caption folder), also captions of movements the data lacks."""
    from motionmillion.data.labels import movement_family
    from motionmillion.data.records import clip_labels
    from motionmillion.data.layout import MotionDataset
    from motionmillion.motion import FPS

    dataset = MotionDataset(dataset_root)
    names = dataset.names(split, kind=kind)
    if not names:
        raise ValueError(f"{dataset_root}: no clips in the {kind} {split} split to build a caption bank from")
    labels = {name: (movement_family(label.content, label.mirrored) if label.content else UNKNOWN, label.style or "normal")
              for name, label in clip_labels(dataset_root).items()}  # fmt: skip
    by_caption: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for name in names:
        content, style = labels.get(name, (UNKNOWN, "normal"))
        seconds = dataset.length(name) / FPS
        for caption in dataset.texts(name):
            by_caption[caption.strip()].append((content, style, seconds))
    captions = sorted(c for c in by_caption if c)
    contents, styles, seconds = [], [], []
    for caption in captions:
        rows = by_caption[caption]
        contents.append(Counter(r[0] for r in rows).most_common(1)[0][0])
        style, count = Counter(r[1] for r in rows).most_common(1)[0]
        styles.append(style if count >= len(rows) / 2 else "normal")  # human-written pool captions span styles
        seconds.append(float(np.median([r[2] for r in rows])))
    embeddings = embed(text_encoder, captions)
    others, other_embeddings = [], None
    if text_pool is not None:
        others = unknown_movement_captions(text_pool, set(contents))
        other_embeddings = embed(text_encoder, others)
        keep = (other_embeddings @ embeddings.T).max(1) < NEAR_DUPLICATE
        others = [c for c, k in zip(others, keep) if k][:OTHER_CAPTIONS]
        other_embeddings = other_embeddings[keep][:OTHER_CAPTIONS]
    return CaptionBank(captions, contents, styles, np.asarray(seconds, dtype=np.float32), embeddings, text_encoder.name,
                       others, other_embeddings)  # fmt: skip


def unknown_movement_captions(text_pool: str | Path, movements: set[str]) -> list[str]:
    """Human-written captions (HumanML3D/KIT-ML) that name none of ``movements`` (the data's movement
    labels, by the caption pools' rules), in a seeded random order: clapping, sitting, crawling, ...
    (and jumping for a model that never saw a jump)."""
    import random

    from motionmillion.data import caption_pools

    known = caption_pools.movement_rule(movements)
    texts = [t for t in caption_pools.read_free_text(text_pool) if len(t.split()) <= caption_pools.MAX_WORDS]
    others = [t for t in texts if known is None or not known.search(t)]
    random.Random(0).shuffle(others)
    return others[: 2 * OTHER_CAPTIONS]  # near-duplicates of training captions are dropped afterwards


def build_caption_bank(pipeline_folder: str | Path, dataset_root: str | Path, text_pool: str | Path | None = None,
                       split: str = "train", coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD) -> Path:
    """Write ``PIPELINE/caption_bank/`` from the dataset the pipeline's generator was trained on, embedded
    with the pipeline's own text encoder (``text_encoder.json``); ``text_pool``: the HumanML3D/KIT-ML
    caption folder for the unknown-movement captions. Called by ``export-pipeline``."""
    from motionmillion.text.encoders import TextEncoder

    folder = Path(pipeline_folder)
    text_json = folder / "text_encoder.json"
    if not text_json.is_file():
        raise ValueError(f"{folder}: not a pipeline folder (no text_encoder.json)")
    info = json.loads(text_json.read_text(encoding="utf-8"))
    name = info["name_or_path"]
    encoder = TextEncoder(str(folder / name) if (folder / name).is_dir() else name, max_length=int(info.get("max_length", 150)))
    encoder.name = name  # the name as the pipeline folder states it
    bank = bank_from_dataset(dataset_root, encoder, text_pool, split=split)
    bank.coverage_threshold = coverage_threshold
    return bank.save(folder / BANK_DIR)


@lru_cache(maxsize=4)
def _load_bank(folder: str) -> CaptionBank | None:
    path = Path(folder) / BANK_DIR
    if not (path / BANK_CAPTIONS).is_file():
        log.warning("%s has no %s/: coverage and retrieval rewriting are unavailable (rebuild with export-pipeline)",
                    folder, BANK_DIR)  # fmt: skip
        return None
    return CaptionBank.load(path)


def pipeline_bank(pipe) -> CaptionBank | None:
    """The caption bank of a loaded pipeline (cached per folder), checked against its text encoder."""
    folder = getattr(pipe, "folder", None)
    bank = _load_bank(str(folder)) if folder is not None else None
    if bank is not None and bank.text_encoder != pipe.text_encoder.name:
        raise ValueError(f"{folder}/{BANK_DIR} was embedded with {bank.text_encoder!r} but the pipeline uses "
                         f"{pipe.text_encoder.name!r}; rebuild it with build_caption_bank")  # fmt: skip
    return bank


# ---------------------------------------------------------------- understanding prompts


@dataclass
class Understanding:
    prompt: str  # as written
    prompt_used: str  # what the generator is conditioned on (the rewrite, or the prompt itself)
    understood_as: str  # what the prompt was understood as, for people (CLI, JSON, Motion.meta)
    coverage: float | None  # in [0, 1]: similarity to the nearest training captions; None without a bank
    warning: str | None  # set only when coverage is below the bank's threshold
    seconds: float | None  # estimated duration from the rewrite (None without rewriting)
    rewriter: str | None = None  # back-end that rewrote the prompt
    nearest: str | None = None  # the nearest training caption

    def meta(self) -> dict:
        """The keys a generated Motion's meta gets: coverage, nearest, understood_as; prompt_used and
        rewriter when the prompt was rewritten; warning only when there is one."""
        skip = {"prompt", "seconds"} | ({"prompt_used"} if self.rewriter is None else set())
        return {k: v for k, v in asdict(self).items() if k not in skip and v is not None}


def coverage_of(bank: CaptionBank, embedding: np.ndarray, k: int = COVERAGE_NEIGHBOURS) -> tuple[float, int, int | None]:
    """Coverage of one prompt in [0, 1], its nearest training caption and nearest unknown-movement caption.

    known = mean cosine to the k nearest training captions; other = the same for the unknown-movement
    captions. coverage = known * sigmoid((known - other) / COVERAGE_TEMPERATURE): as similar as the
    prompt is to what the model was trained on, discounted when a movement it never saw fits better
    ("clap hands" shares words with "raises the hands" but is closer to "a person claps their hands").
    """
    similarities = bank.embeddings @ embedding
    nearest = int(np.argmax(similarities))
    known = float(np.sort(similarities)[-k:].mean())
    if not len(bank.other_embeddings):
        return float(np.clip(known, 0.0, 1.0)), nearest, None
    other_similarities = bank.other_embeddings @ embedding
    other = float(np.sort(other_similarities)[-k:].mean())
    coverage = known / (1.0 + np.exp(-(known - other) / COVERAGE_TEMPERATURE))
    return float(np.clip(coverage, 0.0, 1.0)), nearest, int(np.argmax(other_similarities))


def _warning(bank: CaptionBank, prompt: str, nearest: int, nearest_other: int | None) -> str:
    shown = prompt if len(prompt) <= 60 else prompt[:57].rstrip() + "..."
    reads_like = f" (it reads like {bank.other_captions[nearest_other].rstrip('.')!r})" if nearest_other is not None else ""
    return (f"the model knows no movement like {shown!r}{reads_like}; the nearest it knows is "
            f"{bank.captions[nearest].rstrip('.')!r}")  # fmt: skip


def understand(pipe, prompts: str | list[str], rewrite: bool = False, rewriter: str | Rewriter | None = None,
               embeddings: np.ndarray | None = None) -> list[Understanding]:
    """Coverage (always) and, with ``rewrite``, the rewritten prompt and duration, for each prompt.

    ``rewriter``: None = retrieval from the pipeline's caption bank; a path/name = a local HF causal LM;
    or any object with ``rewrite(prompts, embeddings)``.
    """
    prompts = [prompts] if isinstance(prompts, str) else [p.strip() for p in prompts]
    bank = pipeline_bank(pipe)
    if bank is not None and embeddings is None:
        embeddings = embed(pipe.text_encoder, prompts)
    rewrites: list[Rewrite | None] = [None] * len(prompts)
    backend: Rewriter | None = None
    if rewrite:
        if rewriter is None:
            if bank is None:
                raise ValueError(f"{getattr(pipe, 'folder', 'this pipeline')}: no {BANK_DIR}/ for retrieval rewriting; "
                                 "pass --rewriter PATH (a local causal LM) or rebuild the folder with export-pipeline")  # fmt: skip
            backend = RetrievalRewriter(bank)
        elif isinstance(rewriter, (str, Path)):
            backend = language_model_rewriter(str(rewriter), str(getattr(pipe, "device", "cpu")))
            if bank is not None:
                backend.examples = _style_examples(bank)
        else:
            backend = rewriter
        if hasattr(backend, "max_seconds"):
            backend.max_seconds = getattr(pipe, "max_seconds", None)
        rewrites = list(backend.rewrite(prompts, embeddings))
    out = []
    for i, prompt in enumerate(prompts):
        coverage = warning = nearest = None
        if bank is not None:
            coverage, index, other = coverage_of(bank, embeddings[i])
            coverage, nearest = round(coverage, 3), bank.captions[index]
            if coverage < bank.coverage_threshold:
                warning = _warning(bank, prompt, index, other)
        done = rewrites[i]
        seconds = None
        if done is not None and done.seconds is not None:
            limit = getattr(pipe, "max_seconds", None)
            seconds = round(min(float(done.seconds), limit) if limit else float(done.seconds), 2)
        used = done.text if done is not None else prompt
        understood = used if done is None or done.label is None else f"{used} ({done.label})"
        out.append(Understanding(prompt, used, understood, coverage, warning, seconds,
                                 backend.name if backend is not None else None, nearest))  # fmt: skip
    return out


def _style_examples(bank: CaptionBank, count: int = 12) -> list[str]:
    """A spread of training captions (one per movement first) to show an LM the captions' style."""
    seen: dict[str, str] = {}
    for caption, content in zip(bank.captions, bank.contents):
        if content not in seen and len(caption.split()) <= 10:
            seen[content] = caption
    return list(seen.values())[:count]


def understood_requests(pipe, requests: list, rewrite: bool = False, rewriter: str | Rewriter | None = None) -> list:
    """``GenerationRequest``s with :func:`understand`'s answer in their meta (so it reaches Motion.meta).
    With ``rewrite``, ``meta["prompt_used"]`` is what the generator is conditioned on and a request without
    a duration gets the estimated one. Requests already understood (meta has "coverage") pass unchanged."""
    todo = list(dict.fromkeys(r.prompt.strip() for r in requests if "coverage" not in r.meta))
    if not todo:
        return list(requests)
    answers = dict(zip(todo, understand(pipe, todo, rewrite=rewrite, rewriter=rewriter)))
    out = []
    for request in requests:
        answer = answers.get(request.prompt.strip()) if "coverage" not in request.meta else None
        if answer is None:
            out.append(request)
            continue
        changes: dict = {"meta": {**request.meta, **answer.meta()}}
        if request.seconds is None and answer.seconds is not None:  # never shorter than a request may be
            changes["seconds"] = max(MIN_SECONDS, answer.seconds)
        out.append(dataclasses.replace(request, **changes))
    return out


class RewritingPipeline:
    """A pipeline whose every call rewrites its prompts (``pipe(..., rewrite=True, rewriter=...)``), for
    runners that only call a pipeline, e.g. ``eval prompts --rewrite``."""

    def __init__(self, pipe, rewriter: str | None = None):
        self.pipe, self.rewriter = pipe, rewriter
        self.max_seconds = pipe.max_seconds

    def __call__(self, prompts, *args, **kwargs) -> list:
        return self.pipe(prompts, *args, rewrite=True, rewriter=self.rewriter, **kwargs)
