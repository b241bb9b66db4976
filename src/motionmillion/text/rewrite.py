"""What a prompt was understood as, and how well the model knows it: prompt rewriting and coverage.

Every generation is checked against the model's **caption bank** (``caption_bank/`` inside the pipeline
folder: the unique training captions, their sentence embeddings under the pipeline's own text encoder,
each caption's movement label and its clips' lengths). The similarity of the prompt to its nearest
training captions is the prompt's *coverage* in [0, 1]; below the bank's measured threshold the motion
carries a warning naming the nearest known movement.

Rewriting (off by default) turns a prompt into the training captions' wording before generation, with
one of two back-ends behind :class:`Rewriter`:

* :class:`RetrievalRewriter` (the default, offline, ~10 ms): the nearest training captions vote for a
  movement (and a style); the prompt becomes the closest caption with that label, and the duration is
  the median length of that label's clips.
* :class:`LanguageModelRewriter`: any local Hugging Face causal LM (by path, or a name already in the
  local cache; nothing is downloaded) with the paper's instruction, e.g. Llama-3.1-8B-Instruct::

      motionmillion generate "someone tiptoes away sadly" --rewrite --rewriter /models/Llama-3.1-8B-Instruct

:func:`understand` is what the pipeline calls; :func:`build_caption_bank` writes the bank at export time.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BANK_DIR = "caption_bank"
BANK_CAPTIONS = "captions.json"
BANK_EMBEDDINGS = "embeddings.npy"  # (N + M, dim) int8: unit rows x EMBEDDING_SCALE, training captions first
EMBEDDING_SCALE = 127.0
# Coverage below this is "outside what the model knows". Chosen on MotionMillion-Eval prompts about absent
# movements vs issue 6's paraphrase set (src/motionmillion/assets/eval/coverage_labels.md); a bank may
# store its own measured value.
DEFAULT_COVERAGE_THRESHOLD = 0.305
COVERAGE_NEIGHBOURS = 3
COVERAGE_TEMPERATURE = 0.1
NEIGHBOURS = 16  # captions that vote for the movement a prompt is rewritten to
VOTE_TEMPERATURE = 0.02  # softmax temperature over cosine similarities for the vote
UNKNOWN = "unknown"
# Dataset labels that name one movement (walk-left/right are straight walks named after the studio direction).
SAME_MOVEMENT = {"walk-left": "walk", "walk-right": "walk", "dance-short": "dance", "dance-long": "dance"}
OTHER_CAPTIONS = 2500  # human-written captions of unknown movements kept in the bank (seeded sample)
NEAR_DUPLICATE = 0.9  # an "unknown movement" caption this close to a training caption is not unknown


# ---------------------------------------------------------------------------------------------------------
# The caption bank


@dataclass
class CaptionBank:
    """Unique training captions with their labels, clip lengths and unit sentence embeddings, and
    captions of movements the model never saw (human-written, from HumanML3D/KIT-ML) to tell a prompt
    about a known movement from one about an unknown movement that merely shares its words."""

    captions: list[str]
    contents: list[str]  # movement label of each caption ("walk-back", "kick", "salsa", ...)
    styles: list[str]  # style label ("sad", "normal", ...)
    seconds: np.ndarray  # (N,) median length of the clips that carry the caption
    embeddings: np.ndarray  # (N, dim) float32, unit rows
    text_encoder: str  # the encoder the embeddings were made with (must be the pipeline's)
    other_captions: list[str] = field(default_factory=list)  # movements absent from the training data
    other_embeddings: np.ndarray | None = None  # (M, dim) float32, unit rows
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD

    def __post_init__(self) -> None:
        n = len(self.captions)
        if not (len(self.contents) == len(self.styles) == len(self.seconds) == len(self.embeddings) == n) or n == 0:
            raise ValueError(f"caption bank: inconsistent or empty ({n} captions, {len(self.embeddings)} embeddings)")
        if self.other_embeddings is None:
            self.other_embeddings = np.zeros((0, self.embeddings.shape[1]), dtype=np.float32)
        if len(self.other_embeddings) != len(self.other_captions):
            raise ValueError("caption bank: other_captions and other_embeddings differ in length")
        # Typical duration per movement / style label, for rewriting.
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        for content, style, seconds in zip(self.contents, self.styles, self.seconds):
            groups[(content, style)].append(float(seconds))
            groups[(content, "")].append(float(seconds))
        self._label_seconds = {key: float(np.median(values)) for key, values in groups.items()}

    def __len__(self) -> int:
        return len(self.captions)

    @cached_property
    def side_allowed(self) -> dict[str, np.ndarray]:
        """For "left" and "right": which captions name no other side (computed once per bank)."""
        sides = [set(_sides(caption)) for caption in self.captions]
        return {side: np.array([not (s - {side}) for s in sides]) for side in ("left", "right")}

    def label_seconds(self, content: str, style: str) -> float:
        return self._label_seconds.get((content, style), self._label_seconds[(content, "")])

    def save(self, folder: str | Path) -> Path:
        from motionmillion.utils.io import atomic_path, atomic_save_npy

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # int8 (x127) halves fp16's size; cosines move by < 0.01, far below any threshold's margin
        stacked = np.concatenate([self.embeddings, self.other_embeddings])
        atomic_save_npy(folder / BANK_EMBEDDINGS, np.round(stacked * EMBEDDING_SCALE).astype(np.int8))
        info = {
            "text_encoder": self.text_encoder, "coverage_threshold": self.coverage_threshold,
            "columns": ["caption", "content", "style", "seconds"],
            "rows": [[c, m, s, round(float(t), 2)] for c, m, s, t in zip(self.captions, self.contents, self.styles, self.seconds)],
            "other_captions": self.other_captions,
        }  # fmt: skip
        with atomic_path(folder / BANK_CAPTIONS) as tmp:
            tmp.write_text(json.dumps(info, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CaptionBank:
        folder = Path(folder)
        try:
            info = json.loads((folder / BANK_CAPTIONS).read_text(encoding="utf-8"))
            stacked = np.load(folder / BANK_EMBEDDINGS).astype(np.float32) / EMBEDDING_SCALE
            stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
            captions, contents, styles, seconds = zip(*info["rows"])
            n = len(captions)
            return cls(list(captions), list(contents), list(styles), np.asarray(seconds, dtype=np.float32), stacked[:n],
                       info["text_encoder"], list(info.get("other_captions", [])), stacked[n:],
                       float(info.get("coverage_threshold", DEFAULT_COVERAGE_THRESHOLD)))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{folder}: not a readable caption bank ({err}); rebuild it with build_caption_bank") from err


def embed(text_encoder, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Unit sentence embeddings (N, dim) float32 of ``texts`` under a :class:`~motionmillion.text.TextEncoder`."""
    from motionmillion.text.encoders import sentence_embedding

    parts = []
    for start in range(0, len(texts), batch_size):
        encoded = text_encoder.encode(list(texts[start : start + batch_size]))
        parts.append(sentence_embedding(encoded.features, encoded.mask).cpu().numpy())
    return np.concatenate(parts).astype(np.float32)


def bank_from_dataset(dataset_root: str | Path, text_encoder, text_pool: str | Path | None = None,
                      split: str = "train", kind: str = "t2m_60_300") -> CaptionBank:
    """The caption bank of a MotionMillion dataset's ``split``: every unique caption, the majority movement
    and style label of the clips carrying it (from the import records), and their median length. With
    ``text_pool`` (the HumanML3D/KIT-ML caption folder), also captions of movements the data lacks."""
    from motionmillion.data.importers import clip_labels
    from motionmillion.data.layout import MotionDataset
    from motionmillion.motion import FPS

    dataset = MotionDataset(dataset_root)
    names = dataset.names(split, kind=kind)
    if not names:
        raise ValueError(f"{dataset_root}: no clips in the {kind} {split} split to build a caption bank from")
    labels = {name: (SAME_MOVEMENT.get(label.content, label.content) or UNKNOWN, label.style or "normal")
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


# ---------------------------------------------------------------------------------------------------------
# Rewriting back-ends


@dataclass
class Rewrite:
    text: str  # the prompt in the training captions' wording
    seconds: float | None  # estimated duration (None: let the model decide)
    label: str | None = None  # "movement/style" when the back-end knows it


class Rewriter(Protocol):
    name: str

    def rewrite(self, prompts: list[str], embeddings: np.ndarray | None) -> list[Rewrite]: ...


class RetrievalRewriter:
    """Rewrite to the closest known movement and style of the caption bank (no LLM, offline).

    The nearest captions vote (softmax-weighted) for a movement, then among that movement's neighbours
    for a style. A prompt that names one side only considers captions of that side (or of none): sentence
    embeddings barely tell "left" from "right", a caption bank of mirrored clips does.
    """

    name = "retrieval"

    def __init__(self, bank: CaptionBank, neighbours: int = NEIGHBOURS):
        self.bank = bank
        self.neighbours = min(neighbours, len(bank))

    def rewrite(self, prompts: list[str], embeddings: np.ndarray | None) -> list[Rewrite]:
        if embeddings is None:
            raise ValueError("retrieval rewriting needs the prompts' embeddings")
        bank = self.bank
        out = []
        for prompt, similarities in zip(prompts, embeddings @ bank.embeddings.T):
            sides = set(_sides(prompt))
            if len(sides) == 1:
                similarities = np.where(bank.side_allowed[sides.pop()], similarities, -2.0)
            top = np.argpartition(-similarities, self.neighbours - 1)[: self.neighbours]
            top = top[np.argsort(-similarities[top])]
            weights = np.exp((similarities[top] - similarities[top[0]]) / VOTE_TEMPERATURE)
            content = _vote([bank.contents[i] for i in top], weights)
            same = [k for k, i in enumerate(top) if bank.contents[i] == content]
            style = _vote([bank.styles[top[k]] for k in same], weights[same])
            best = next(i for i in top if bank.contents[i] == content and bank.styles[i] == style)
            out.append(Rewrite(bank.captions[best], bank.label_seconds(content, style), f"{content}/{style}"))
        return out


_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def _sides(text: str) -> list[str]:
    return [side.lower() for side in _SIDE.findall(text)]


def _vote(labels: list[str], weights: np.ndarray) -> str:
    scores: dict[str, float] = defaultdict(float)
    for label, weight in zip(labels, weights):
        scores[label] += float(weight)
    return max(scores, key=scores.get)


# The paper's instruction (MotionMillion inference: a meaning-preserving, more concise paraphrase in
# brackets, with one walking example), extended as HY-Motion's prompter does with a duration estimate,
# and with examples of the training captions so the model writes in their style.
INSTRUCTION = (
    "Rewrite the following description of a human motion as one short, plain caption in the style of these "
    "training captions, keeping its meaning, and estimate how many seconds the motion lasts.\n"
    "Training captions:\n{examples}\n"
    "Example: 'A man is walking slowly and sadly down the street, head hanging low.' -> "
    "[A person walks forward sadly, with the head hanging low.] {{4 seconds}}\n"
    "Answer with the caption in square brackets followed by the duration in curly braces.\n"
    "Description: {prompt}"
)
_BRACKETED = re.compile(r"\[([^\[\]]+)\]|\{([^{}]+)\}")
_SECONDS = re.compile(r"\{\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)?\s*\}", re.IGNORECASE)


def parse_rewrite(reply: str, max_seconds: float | None = None) -> Rewrite | None:
    """The caption and duration in an LM reply: the first ``[...]`` (or, as the paper accepts, ``{...}``)
    span that is not a duration, and the first ``{N seconds}``. None when the reply has no caption."""
    seconds_match = _SECONDS.search(reply)
    seconds = float(seconds_match.group(1)) if seconds_match else None
    if seconds is not None and (seconds <= 0 or (max_seconds is not None and seconds > max_seconds)):
        seconds = min(max(seconds, 0.5), max_seconds) if max_seconds else None
    for match in _BRACKETED.finditer(reply):
        text = (match.group(1) or match.group(2) or "").strip()
        if text and not _SECONDS.fullmatch("{" + text + "}"):
            return Rewrite(" ".join(text.split()), seconds)
    return None


class LanguageModelRewriter:
    """Any local Hugging Face causal LM (path, or a name already in the local cache) with the paper's
    instruction. Greedy decoding, so a prompt always gets the same rewrite."""

    def __init__(self, name_or_path: str, device: str | None = None, max_new_tokens: int = 64,
                 examples: list[str] | None = None):  # fmt: skip
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = str(name_or_path)
        if self.name.startswith(("/", ".", "~")) and not Path(self.name).expanduser().is_dir():
            raise ValueError(f"--rewriter {self.name}: no such folder (a local Hugging Face causal LM is expected)")
        try:  # local files only: nothing is ever downloaded at run time
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, local_files_only=True)
            dtype = torch.bfloat16 if device and device.startswith("cuda") else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(self.name, local_files_only=True, torch_dtype=dtype)
        except (OSError, ValueError) as err:
            raise ValueError(f"--rewriter {self.name}: cannot load a local causal language model ({err})") from err
        self.model.eval().requires_grad_(False).to(device or "cpu")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.examples = examples or ["A person walks forward.", "Someone waves the right hand happily.", "A person bows."]
        self.max_seconds: float | None = None

    def instruction(self, prompt: str) -> str:
        text = INSTRUCTION.format(examples="\n".join(f"- {e}" for e in self.examples), prompt=prompt)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)  # fmt: skip
        return text + "\nAnswer: "

    def rewrite(self, prompts: list[str], embeddings: np.ndarray | None = None) -> list[Rewrite]:
        import torch

        out = []
        for prompt in prompts:  # one at a time: no padding side to get wrong, and LMs here are for few prompts
            ids = self.tokenizer(self.instruction(prompt), return_tensors="pt", add_special_tokens=False)
            ids = {k: v.to(self.model.device) for k, v in ids.items()}
            with torch.no_grad():
                generated = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                                pad_token_id=self.tokenizer.pad_token_id)  # fmt: skip
            reply = self.tokenizer.decode(generated[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
            parsed = parse_rewrite(reply, self.max_seconds)
            if parsed is None:
                log.warning("rewriter %s gave no [caption] for %.50r; the prompt is used as written", self.name, prompt)
                parsed = Rewrite(prompt, None)
            out.append(parsed)
        return out


@lru_cache(maxsize=2)
def _language_model(name_or_path: str, device: str) -> LanguageModelRewriter:
    return LanguageModelRewriter(name_or_path, device=device)


# ---------------------------------------------------------------------------------------------------------
# What the pipeline calls


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
            backend = _language_model(str(rewriter), str(getattr(pipe, "device", "cpu")))
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
    import dataclasses

    from motionmillion.pipeline import MIN_SECONDS

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
