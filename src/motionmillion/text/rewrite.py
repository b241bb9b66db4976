"""Rewriting back-ends: a prompt in the training captions' wording, and the caption bank they read.

The **caption bank** (``caption_bank/`` inside a pipeline folder) holds the unique training captions,
their sentence embeddings under the pipeline's own text encoder, each caption's movement/style label and
its clips' lengths, plus human-written captions of movements the model never saw. It is text and labels
only; :mod:`motionmillion.pipeline.understanding` builds it from a dataset and measures coverage with it.

Two back-ends behind :class:`Rewriter`:

* :class:`RetrievalRewriter` (the default, offline, ~10 ms): the nearest training captions vote for a
  movement (and a style); the prompt becomes the closest caption with that label, and the duration is
  the median length of that label's clips.
* :class:`LanguageModelRewriter`: any local Hugging Face causal LM (by path, or a name already in the
  local cache; nothing is downloaded) with the paper's instruction, e.g. Llama-3.1-8B-Instruct::

      motionmillion generate "someone tiptoes away sadly" --rewrite --rewriter /models/Llama-3.1-8B-Instruct
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BANK_DIR = "caption_bank"
BANK_CAPTIONS = "captions.json"
BANK_EMBEDDINGS = "embeddings.npy"  # (N + M, dim) int8: unit rows x EMBEDDING_SCALE, training captions first
EMBEDDING_SCALE = 127.0
# Coverage below this is "outside what the model knows": chosen on MotionMillion-Eval prompts about absent
# movements against issue 6's paraphrase set (the model card has the figures); a bank may store its own value.
DEFAULT_COVERAGE_THRESHOLD = 0.305
NEIGHBOURS = 16  # captions that vote for the movement a prompt is rewritten to
VOTE_TEMPERATURE = 0.02  # softmax temperature over cosine similarities for the vote


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
def language_model_rewriter(name_or_path: str, device: str) -> LanguageModelRewriter:
    return LanguageModelRewriter(name_or_path, device=device)
