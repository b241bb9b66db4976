"""``MotionPipeline``: text in, ``Motion`` out. One folder holds everything (contract 6):

    tokenizer/            MotionTokenizer (config.json + model.safetensors)
    generator/            prefix-LM (config.json + model.safetensors)
    normalization/        mean.npy, std.npy of the training data
    text_encoder.json     {"name_or_path": ..., "max_length": ...}
    skeleton.json         optional: the training data's rigid skeleton that generated motions are posed on
    evaluator/            optional

    pipe = MotionPipeline.from_pretrained()            # the bundled default model
    motions = pipe("a person waves the left hand", seconds=4, num_samples=2, seed=0)
    motions[0].save("out", "wave")

    # the batched form that the CLI and the server use: any mix of prompts, seeds and options
    for motion in pipe.generate([GenerationRequest("a person bows", seconds=3, seed=1), ...]):
        ...
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import random
import shutil
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.motion import FPS, Motion, Normalizer
from motionmillion.motion.consistency import make_consistent, make_consistent_many
from motionmillion.motion.skeleton import SKELETON_FILE, load_skeleton, save_skeleton
from motionmillion.motion.kinematics import joint_steps
from motionmillion.motion.representation import decode_joints, decode_rotations

MAX_FRAMES = 300  # the training budget of the paper (150 tokens at 2 frames per token)
MIN_SECONDS = 1.0  # shorter requests are not motions the model was trained on (its clips are 2-10 s)
# Motion before a timeline segment that the generator is shown. More context makes seams smoother but the
# segment sticks to the movement before it (bench/timeline.py, 60 timelines, generator trained with
# cross-clip context: 1 s: 97% of timelines within 1.5x, top-1 right content 14 points below the prompt
# alone; 0.25 s: 93% and 1.4 points; with the seam candidates below, see there).
CONTEXT_SECONDS = 0.25
CONTINUE_SECONDS = 1.0  # a continuation (prefix=) is shown the last second of the given motion
# At a seam (a timeline segment or a continuation after motion that exists), this many candidate starts
# are drawn (the segment's seed first, then derived seeds) and the one whose first SEAM_TOKENS decode into
# the smallest joint step across the seam, against the steps around it, is continued; the others are
# dropped. The frames at the seam are decoded with SEAM_TOKENS codes after them (the decoder reaches 16).
# bench/timeline.py, 60 timelines: 4 x 8 tokens 95% within 1.5x (max 2.41); 4 x 16: 98% (1.66);
# 6 x 16: 100% (1.47; seed 1: 100%, 1.44), segment retrieval within 5 points of the prompt alone.
# With the decoder fine-tuned against drift and sliding feet (session 6): 6 x 16 98% (1.67), 7 x 16 98%
# (1.67), 8 x 16 100% (1.34) but a 60 s timeline 5.4 s instead of 4.2; 8 x 12 (the cost of 6 x 16) 100%
# (1.03): more candidates judged on a slightly shorter look-ahead. Stopping at the first candidate that
# looked smooth enough in its own window (score <= 0.5 or 1.0) let one 1.67-2.0 seam through.
SEAM_CANDIDATES = 8
SEAM_TOKENS = 12
SEAM_SEED_STRIDE = 0x9E3779B1  # candidate k draws with (seed + k * stride) mod 2**63
MAX_TIMELINE_SECONDS = 120.0  # default cap on a timeline's total duration
REINSTALL_HINT = "reinstall with `pip install --force-reinstall motionmillion` or rebuild the folder"


class PipelineError(ValueError):
    """A pipeline folder that is missing, incomplete, damaged or inconsistent."""


class PromptError(ValueError):
    """Unusable generation input (empty prompt, bad duration, bad sample count, ...)."""


def default_model_path() -> Path:
    from importlib.resources import files

    return Path(str(files("motionmillion"))) / "assets" / "default_model"


class MotionPipeline:
    def __init__(
        self,
        tokenizer,
        generator,
        text_encoder,
        normalizer: Normalizer,
        folder: Path | None = None,
        skeleton: np.ndarray | None = None,
    ):
        self.tokenizer = tokenizer.eval()
        self.generator = generator.eval()
        self.text_encoder = text_encoder
        self.normalizer = normalizer
        self.folder = folder
        self.fps = FPS
        # The training data's rigid skeleton: every generated motion is re-derived from its root and
        # rotations on it (motionmillion.motion.consistency); None = each motion's own best fit.
        self.skeleton = skeleton
        self._check_consistency()

    # ---------------------------------------------------------------- loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, text_encoder=None) -> MotionPipeline:
        """Load a pipeline folder; ``None`` = the bundled default model. ``text_encoder``: use this (with
        ``name``, ``dim``, ``max_length`` and ``encode(texts)``) instead of loading the folder's."""
        from motionmillion.generator.model import MotionGPT
        from motionmillion.text import TextEncoder

        folder = Path(path) if path is not None else default_model_path()
        if not folder.is_dir():
            if path is None:
                raise PipelineError(
                    f"the bundled default model is not installed at {folder}; {REINSTALL_HINT}, or pass --model "
                    "PATH to a pipeline folder (build one with `motionmillion export-pipeline`)"
                )
            raise PipelineError(f"{folder}: no such pipeline folder")
        required = ["tokenizer/config.json", "tokenizer/model.safetensors", "generator/config.json",
                    "generator/model.safetensors", "normalization/mean.npy", "normalization/std.npy",
                    "text_encoder.json"]  # fmt: skip
        missing = [name for name in required if not (folder / name).is_file()]
        if missing:
            raise PipelineError(f"{folder}: incomplete pipeline folder, missing {', '.join(missing)}; {REINSTALL_HINT}")
        device = _check_device(device)
        from motionmillion.tokenizer.model import MotionTokenizer

        try:
            tokenizer = MotionTokenizer.from_pretrained(folder / "tokenizer", map_location=device)
        except (ValueError, OSError, RuntimeError, KeyError, TypeError) as err:
            raise PipelineError(f"{folder / 'tokenizer'}: cannot load the tokenizer ({err}); {REINSTALL_HINT}") from err
        try:
            generator = MotionGPT.from_pretrained(folder / "generator", device=device)
        except (ValueError, OSError, RuntimeError, TypeError) as err:
            raise PipelineError(f"{folder / 'generator'}: cannot load the generator ({err}); {REINSTALL_HINT}") from err
        try:
            normalizer = Normalizer.load(folder / "normalization")
        except (ValueError, OSError) as err:
            raise PipelineError(f"{folder / 'normalization'}: bad mean.npy/std.npy ({err}); {REINSTALL_HINT}") from err
        text_json = folder / "text_encoder.json"
        try:
            text_info = json.loads(text_json.read_text(encoding="utf-8"))
            name = text_info["name_or_path"]
            max_length = int(text_info.get("max_length", 150))
        except (ValueError, KeyError, TypeError) as err:
            raise PipelineError(f"{text_json}: not a valid text-encoder description ({err}); {REINSTALL_HINT}") from err
        if (folder / name).is_dir():  # a text encoder shipped inside the folder
            name = str(folder / name)
        if text_encoder is None:
            try:
                text_encoder = TextEncoder(name, max_length=max_length).to(device)
            except (OSError, ValueError) as err:
                raise PipelineError(f"{text_json}: cannot load text encoder {name!r} ({err})") from err
        skeleton = None
        if (folder / SKELETON_FILE).is_file():
            try:
                skeleton = load_skeleton(folder / SKELETON_FILE)
            except ValueError as err:
                raise PipelineError(f"{err}; {REINSTALL_HINT}") from err
        return cls(tokenizer, generator, text_encoder, normalizer, folder=folder, skeleton=skeleton)

    def save_pretrained(self, folder: str | Path) -> Path:
        from motionmillion.utils.io import atomic_write_json

        folder = Path(folder)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.generator.save_pretrained(folder / "generator")
        self.normalizer.save(folder / "normalization")
        if self.skeleton is not None:
            save_skeleton(folder / SKELETON_FILE, self.skeleton, source=f"copied from {self.folder}")
        atomic_write_json(
            folder / "text_encoder.json",
            {"name_or_path": self.text_encoder.name, "max_length": self.text_encoder.max_length},
        )
        if self.folder is not None and (self.folder / "evaluator").is_dir() and not (folder / "evaluator").exists():
            shutil.copytree(self.folder / "evaluator", folder / "evaluator")
        return folder

    def to(self, device) -> MotionPipeline:
        self.tokenizer.to(device)
        self.generator.to(device)
        self.text_encoder.to(device)
        return self

    @property
    def device(self):
        return next(self.generator.parameters()).device

    @property
    def frames_per_token(self) -> int:
        return int(self.tokenizer.frames_per_token)

    @property
    def max_tokens(self) -> int:
        return min(self.generator.config.max_motion_tokens, MAX_FRAMES // self.frames_per_token)

    @property
    def max_seconds(self) -> float:
        return self.max_tokens * self.frames_per_token / self.fps

    def _check_consistency(self) -> None:
        where = f"{self.folder}: " if self.folder else ""
        config = self.generator.config
        if config.codebook_size != self.tokenizer.codebook_size:
            raise PipelineError(
                f"{where}generator/ was trained for {config.codebook_size} codes but tokenizer/ has "
                f"{self.tokenizer.codebook_size}: the two do not belong together"
            )
        if config.text_dim != self.text_encoder.dim:
            raise PipelineError(
                f"{where}generator/ expects {config.text_dim}-d text features but text encoder "
                f"{self.text_encoder.name!r} gives {self.text_encoder.dim}-d"
            )

    # ---------------------------------------------------------------- generation
    def __call__(
        self,
        prompts: str | list[str],
        seconds: float | list[float | None] | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        guidance: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = 0.95,
        fix_feet: bool = False,
        batch_size: int = 32,
        use_cache: bool = True,
        prefix: Motion | np.ndarray | str | Path | None = None,
        rewrite: bool = False,
        rewriter: str | None = None,
    ) -> list[Motion]:
        """Motions for every prompt, prompt-major: [p0 s0, p0 s1, ..., p1 s0, ...].

        seconds: target duration per prompt (or one for all), in [MIN_SECONDS, max_seconds]; None = the
        model ends the motion itself. Sample j of prompt i uses seed ``seed + i * num_samples + j``
        (random if None). guidance: classifier-free guidance scale (None = the model's default; 1 = off).
        temperature 0 = greedy decoding. fix_feet: remove foot sliding (post-process).
        prefix: continue this motion (a Motion, (T, 272) features, or a .npy/.bvh file): each result is the
        prefix followed by the new frames (``meta["prefix_frames"]``); ``seconds`` counts the new frames.
        rewrite: first rewrite each prompt into the training captions' wording (and estimate its duration when
        ``seconds`` is None) with the caption bank, or with ``rewriter``, a local causal LM (path); see
        :mod:`motionmillion.text.rewrite`. Every motion's meta has "coverage", "understood_as" (and "warning").
        """
        from motionmillion.text.rewrite import understood_requests

        requests = self.requests(prompts, seconds, num_samples, seed, guidance=guidance, temperature=temperature,
                                 top_k=top_k, top_p=top_p, fix_feet=fix_feet)  # fmt: skip
        requests = understood_requests(self, requests, rewrite=rewrite, rewriter=rewriter)
        if prefix is not None:
            return self._continue(_load_prefix(prefix), requests, CONTINUE_SECONDS)
        return list(self.generate(requests, batch_size=batch_size, use_cache=use_cache))

    def requests(
        self,
        prompts: str | list[str],
        seconds: float | list[float | None] | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        **options,
    ) -> list[GenerationRequest]:
        """The checked requests ``__call__`` would run: one per (prompt, sample), seeds assigned.

        ``options`` are GenerationRequest fields shared by all (guidance, temperature, top_k, top_p, fix_feet).
        Raises PromptError naming the bad prompt or option before any model work.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        elif not isinstance(prompts, (list, tuple)):
            raise PromptError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
        if not prompts:
            raise PromptError("no prompts given")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise PromptError(f"num_samples must be a positive integer, got {num_samples!r}")
        if seconds is None or isinstance(seconds, (int, float, str, bytes)):
            seconds = [seconds] * len(prompts)
        elif not isinstance(seconds, (list, tuple)):
            raise PromptError(f"seconds must be a number, None or a list of them, got {type(seconds).__name__}")
        if len(seconds) != len(prompts):
            raise PromptError(f"got {len(seconds)} durations for {len(prompts)} prompts")
        seed = _check_seed(seed, "seed", extra=len(prompts) * num_samples)
        requests = [
            GenerationRequest(prompt, target, seed + i * num_samples + j, meta={"prompt_index": i, "sample_index": j},
                              **options)  # fmt: skip
            for i, (prompt, target) in enumerate(zip(prompts, seconds))
            for j in range(num_samples)
        ]
        return [self.check(request, where=f"prompt {request.meta['prompt_index'] + 1}") for request in requests]

    def check(self, request: GenerationRequest, where: str = "request", warn: bool = False) -> GenerationRequest:
        """The request with defaults filled in (random seed, the model's guidance); PromptError if unusable.
        ``warn``: also warn about text the encoder may misread (``generate`` does, once per request)."""
        from motionmillion.generator.sample import SamplingOptions

        prompt = request.prompt
        if not isinstance(prompt, str):
            raise PromptError(f"{where}: the prompt must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise PromptError(f"{where}: the prompt is empty or whitespace only")
        problem = _unreadable_text(prompt)
        if problem and warn:
            warnings.warn(f"prompt {prompt.strip()[:40]!r} {problem}; the text encoder was trained on English",
                          stacklevel=3)  # fmt: skip
        seconds = request.seconds
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
                raise PromptError(f"{where}: seconds must be a number or None, got {seconds!r}")
            if not MIN_SECONDS <= seconds <= self.max_seconds + 1e-9:
                raise PromptError(f"{where}: seconds must be in [{MIN_SECONDS:g}, {self.max_seconds:g}], got {seconds!r}")
        seed = _check_seed(request.seed, f"{where}: seed")
        guidance = self.generator.config.default_guidance if request.guidance is None else request.guidance
        if guidance != 1.0 and not self.generator.config.has_null_prefix:
            raise PromptError(f"{where}: this model was trained without condition dropout: use guidance=1 (no guidance)")
        try:
            SamplingOptions(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p, guidance=guidance)
        except (TypeError, ValueError) as err:
            raise PromptError(f"{where}: {err}") from None
        return dataclasses.replace(request, prompt=prompt.strip(), seed=seed, guidance=float(guidance))

    def generate(
        self, requests: Sequence[GenerationRequest], batch_size: int = 32, use_cache: bool = True
    ) -> Iterator[Motion]:
        """Motions for ``requests``, yielded in request order as soon as each exists (bounded memory).

        Requests with the same sampling options are sampled together, ``batch_size`` rows per KV-cached
        sampler call; each row's tokens depend only on its own prompt, options and seed.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PromptError(f"batch_size must be a positive integer, got {batch_size!r}")
        requests = [self.check(r, where=f"request {i + 1}", warn=True) for i, r in enumerate(requests)]
        ready: dict[int, Motion] = {}
        next_index = 0
        for batch in _batches(requests, batch_size):
            for index, motion in zip(batch, self._sample([requests[i] for i in batch], use_cache)):
                ready[index] = motion
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1

    def _sample(self, requests: list[GenerationRequest], use_cache: bool) -> list[Motion]:
        """One sampler call for requests that share their sampling options."""
        from motionmillion.generator.sample import sample_tokens

        budgets = [self._token_budget(r.seconds) for r in requests]
        features, mask = self._encode_texts([r.conditioning_text for r in requests])
        requests = self._with_coverage(requests, features, mask)
        codes = sample_tokens(
            self.generator, features, mask, seeds=[r.seed for r in requests],
            min_tokens=[low for low, _, _ in budgets], max_tokens=[high for _, high, _ in budgets],
            options=_sampling_options(requests[0], use_cache), target_tokens=[target for _, _, target in budgets],
        )  # fmt: skip
        features = self._features_many(codes)
        return [self._motion(request, ids, f) for request, ids, f in zip(requests, codes, features)]

    def _with_coverage(self, requests: list[GenerationRequest], features, mask) -> list[GenerationRequest]:
        """Coverage (and a warning) in the meta of every request that has none yet, from the text features
        that condition the generator, so a prompt is encoded once. Requests understood earlier (rewritten
        ones, whose conditioning text is not the prompt) keep what they have."""
        from motionmillion.text import sentence_embedding
        from motionmillion.text.rewrite import understand

        todo = [i for i, request in enumerate(requests) if "coverage" not in request.meta]
        if not todo:
            return requests
        first = {requests[i].prompt: i for i in reversed(todo)}  # each distinct prompt once
        rows = list(first.values())
        embeddings = sentence_embedding(features[rows], mask[rows]).float().cpu().numpy()
        answers = dict(zip(first, understand(self, list(first), embeddings=embeddings)))
        out = list(requests)
        for i in todo:
            out[i] = dataclasses.replace(out[i], meta={**out[i].meta, **answers[out[i].prompt].meta()})
        return out

    def _encode_texts(self, texts: list[str]):
        """Text features and mask (on the pipeline's device) of each text, every distinct text encoded once
        (the samples of one prompt share it); the rows are those of encoding ``texts`` itself."""
        import torch

        distinct = list(dict.fromkeys(texts))
        encoded = self.text_encoder.encode(distinct)
        rows = torch.tensor([distinct.index(text) for text in texts])
        return encoded.features[rows].to(self.device), encoded.mask[rows].to(self.device)

    def _motion(self, request: GenerationRequest, codes: list[int], features: np.ndarray, **meta_extra) -> Motion:
        """A Motion of the features decoded from one row's ``codes`` (the request in its meta);
        ``meta_extra``: more to record."""
        meta = {**request.meta, "seed": request.seed, "tokens": len(codes), "requested_seconds": request.seconds,
                "guidance": request.guidance, "temperature": request.temperature, "top_k": request.top_k,
                "top_p": request.top_p, **meta_extra}  # fmt: skip
        if request.fix_feet:
            from motionmillion.postprocess import fix_foot_sliding

            features = fix_foot_sliding(features, fps=self.fps, source=request.prompt[:40])
            meta["fix_feet"] = True
        return Motion(features, fps=self.fps, text=request.prompt, meta=meta)

    # ---------------------------------------------------------------- decoding (every path goes through here)
    def _decode_many(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """De-normalised features (4 frames per code) exactly as the tokenizer decodes each row of codes;
        rows of one length are decoded in one tokenizer call."""
        import torch

        decoded: list[np.ndarray | None] = [None] * len(rows)
        by_length: dict[int, list[int]] = {}
        for i, codes in enumerate(rows):
            by_length.setdefault(len(codes), []).append(i)
        for indices in by_length.values():
            ids = torch.tensor([list(rows[i]) for i in indices], dtype=torch.long, device=self.device)
            with torch.no_grad():
                normalized = self.tokenizer.decode(ids).float().cpu().numpy()
            for i, motion in zip(indices, normalized):
                decoded[i] = self.normalizer.denormalize(motion.astype(np.float64))
        return decoded

    def _decode(self, codes: Sequence[int]) -> np.ndarray:
        return self._decode_many([codes])[0]

    def _consistent(self, features: np.ndarray) -> np.ndarray:
        """One motion in every output: features, joints, rotations, BVH and video from one rigid skeleton."""
        return make_consistent(features, self.skeleton).astype(np.float32)

    def _features(self, codes: Sequence[int]) -> np.ndarray:
        """The motion of one row of codes: decoded, then made consistent (float32)."""
        return self._features_many([codes])[0]

    def _features_many(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``_features`` of several rows, all made consistent together (the per-frame work of a batch done once)."""
        return [f.astype(np.float32) for f in make_consistent_many(self._decode_many(rows), self.skeleton)]

    # ---------------------------------------------------------------- timelines, continuation, streaming
    def _token_budget(self, seconds: float | None) -> tuple[int, int, int | None]:
        """(min, max, target) new tokens for a duration. A length-conditioned generator is asked for the exact
        count and told how many tokens remain at every step, so it ends the motion there by itself; a generator
        without the condition gets the sampler's tolerance window around the duration, as before."""
        from motionmillion.generator.sample import length_window

        if seconds is None or not self.generator.config.length_condition:
            low, high = length_window(seconds, self.frames_per_token, self.max_tokens, fps=self.fps)
            return low, high, None
        target = min(self.max_tokens, max(1, round(seconds * self.fps / self.frames_per_token)))
        return target, target, target

    def timeline(
        self,
        segments: Sequence,
        seed: int | None = None,
        max_total_seconds: float = MAX_TIMELINE_SECONDS,
        context_seconds: float = CONTEXT_SECONDS,
        **options,
    ) -> list[GenerationRequest]:
        """Checked requests for a timeline. ``segments``: ``(prompt, seconds)`` pairs or dicts with "prompt",
        "seconds" and optionally "seed", "guidance", "temperature", "top_k", "top_p"; segment i uses seed
        ``seed + i`` unless it has its own. ``options`` are sampling options shared by all segments.
        Raises PromptError naming the segment (no prompt, no or bad duration) or the total."""
        if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence):
            raise PromptError(f"a timeline is a list of (prompt, seconds) segments, got {type(segments).__name__}")
        if not segments:
            raise PromptError("the timeline is empty: give at least one (prompt, seconds) segment")
        seed = _check_seed(seed, "seed", extra=len(segments))
        requests, total = [], 0.0
        for i, segment in enumerate(segments):
            where = f"segment {i + 1}"
            if isinstance(segment, dict):
                unknown = sorted(set(segment) - {"prompt", "seconds", "seed", *TIMELINE_OPTIONS})
                if unknown:
                    raise PromptError(f"{where}: unknown key(s) {', '.join(unknown)}")
                fields = {**options, **{k: v for k, v in segment.items() if k in TIMELINE_OPTIONS}}
                prompt, seconds, own_seed = segment.get("prompt"), segment.get("seconds"), segment.get("seed")
            elif isinstance(segment, (list, tuple)) and len(segment) == 2:
                (prompt, seconds), fields, own_seed = segment, dict(options), None
            else:
                raise PromptError(f"{where}: expected (prompt, seconds) or a dict with prompt and seconds, got {segment!r}")
            if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
                raise PromptError(f"{where}: no prompt")
            if seconds is None:
                raise PromptError(f"{where} ({str(prompt)[:40]!r}): no duration in seconds")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds <= 0:
                raise PromptError(f"{where} ({str(prompt)[:40]!r}): the duration must be positive, got {seconds!r}")
            request = GenerationRequest(prompt, seconds, seed + i if own_seed is None else own_seed,
                                        meta={"segment_index": i}, **fields)  # fmt: skip
            requests.append(self.check(request, where=f"{where} ({str(prompt)[:40]!r})"))
            if i > 0:
                self._check_room(requests[-1], self._context_tokens(context_seconds), where)
            total += float(seconds)
        if total > max_total_seconds + 1e-9:
            raise PromptError(f"the timeline lasts {total:g} s, more than the maximum of {max_total_seconds:g} s")
        return requests

    def compose(
        self,
        segments: Sequence,
        seed: int | None = None,
        context_seconds: float = CONTEXT_SECONDS,
        max_total_seconds: float = MAX_TIMELINE_SECONDS,
        fix_feet: bool = False,
        **options,
    ) -> Motion:
        """One motion from a timeline of prompts, e.g. ``[("a person walks forward", 3), ("a person bows", 2)]``.

        Every segment is sampled with its own text, conditioned on the last ``context_seconds`` of motion
        tokens before it (so any number of segments works), and the whole token sequence is decoded at once:
        a seam is decoded like any other frame. ``meta["segments"]`` holds each segment's prompt, seed and
        frame range ``[start_frame, end_frame)``. Segment options: see :meth:`timeline`.
        """
        requests = self.timeline(segments, seed, max_total_seconds, context_seconds, **options)
        codes, owners = self._timeline_codes(requests, [], context_seconds)
        features = self._features(codes)
        meta = {"seed": requests[0].seed, "segments": self._segment_ranges(requests, owners)}
        if fix_feet:
            from motionmillion.postprocess import fix_foot_sliding

            features = fix_foot_sliding(features, fps=self.fps, source="timeline")
            meta["fix_feet"] = True
        return Motion(features, fps=self.fps, text=" | ".join(r.prompt for r in requests), meta=meta)

    def stream(
        self,
        prompt: str | Sequence,
        seconds: float | None = None,
        seed: int | None = None,
        chunk_seconds: float = 0.5,
        context_seconds: float = CONTEXT_SECONDS,
        max_total_seconds: float = MAX_TIMELINE_SECONDS,
        **options,
    ) -> Iterator[MotionChunk]:
        """Yield a motion (a prompt, or a timeline as in :meth:`compose`) in chunks as it is generated.

        Each chunk holds only its new frames. The tokenizer's decoder is not causal (a frame depends on the
        codes up to ``decoder_reach`` tokens after it), so a frame is sent once those codes exist, decoded
        in a window that includes everything it depends on: the concatenated chunks equal ``pipe(prompt,
        seconds=..., seed=...)`` (or :meth:`compose`) for the same seed up to float rounding.
        """
        if isinstance(prompt, str):
            fields = {"seed": seed, **options}
            requests = [self.check(GenerationRequest(prompt, seconds, **fields), where="prompt", warn=True)]
        else:
            requests = self.timeline(prompt, seed, max_total_seconds, context_seconds, **options)
        if any(r.fix_feet for r in requests):
            raise PromptError("fix_feet cleans a whole motion at once and cannot stream; use compose() or __call__")
        step = max(1, round(chunk_seconds * self.fps / self.frames_per_token))
        reach = self.decoder_reach
        fpt = self.frames_per_token
        codes: list[int] = []
        decoded: list[np.ndarray] = []  # de-normalised frames that no future code can change
        consistent: list[np.ndarray] = []
        sent = 0  # codes whose frames have been sent

        def chunk(final: bool) -> MotionChunk | None:
            nonlocal sent
            ready = len(codes) if final else len(codes) - reach
            if ready <= sent or (not final and ready - sent < step):
                return None
            first = max(0, sent - reach)
            window = self._decode(codes[first:])
            decoded.append(window[(sent - first) * fpt : (ready - first) * fpt])
            raw = np.concatenate(decoded)
            # Consistency is per frame apart from velocities: one frame before the new ones is enough, placed
            # where the whole motion has it (heading and position are integrated from frame 0).
            start = sent * fpt
            before = max(0, start - 1)
            window = raw[before:].copy()
            if before:
                window[0] = _placed_frame(raw[: before + 1])
            consistent.append(self._consistent(window)[start - before :])
            decoded[:] = [raw]
            features = np.concatenate(consistent)
            consistent[:] = [features]
            new = features[start:]
            sent = ready
            return MotionChunk(new, decode_joints(features)[start:], start)

        for _, code in self._timeline_code_stream(requests, [], context_seconds):
            codes.append(code)
            piece = chunk(final=False)
            if piece is not None:
                yield piece
        piece = chunk(final=True)
        if piece is not None:
            yield piece

    @functools.cached_property
    def decoder_reach(self) -> int:
        """How many tokens before and after a token its decoded frames depend on (0 after it for a causal
        decoder), found by changing one token in a probe sequence."""
        import torch

        probe_len, middle = 96, 48
        ids = torch.arange(probe_len, device=self.device)[None] % self.tokenizer.codebook_size
        changed = ids.clone()
        changed[0, middle] = (changed[0, middle] + 1) % self.tokenizer.codebook_size
        with torch.no_grad():
            difference = (self.tokenizer.decode(ids) - self.tokenizer.decode(changed)).abs().amax(-1)[0]
        frames = torch.nonzero(difference > 0).flatten()
        if len(frames) == 0:
            return 0
        fpt = self.frames_per_token
        after = int(frames.max()) // fpt - middle
        before = middle - int(frames.min()) // fpt
        if max(before, after) >= middle - 1:
            raise PipelineError("the tokenizer's decoder sees too far to stream (global context)")
        return max(after, before)

    def _segment_budgets(self, requests: list[GenerationRequest]) -> list[tuple[int, int, int | None]]:
        """Token budgets of consecutive segments. With the length condition each segment ends at the token
        nearest its cumulative end time: every segment is within one token of its duration and the whole
        timeline within half a token (rounding each alone would add up: 12 x 5 s gave 60.8 s)."""
        budgets = [self._token_budget(r.seconds) for r in requests]
        if not self.generator.config.length_condition or any(r.seconds is None for r in requests):
            return budgets
        per_second = self.fps / self.frames_per_token
        ends = [round(t * per_second) for t in np.cumsum([r.seconds for r in requests])]
        counts = [min(self.max_tokens, max(1, end - start)) for start, end in zip([0, *ends], ends)]
        return [(count, count, count) for count in counts]

    def _check_room(self, request: GenerationRequest, context_tokens: int, where: str) -> None:
        """PromptError if the request's duration and its context do not fit the generator's budget."""
        if request.seconds is not None and context_tokens + self._token_budget(request.seconds)[1] > self.max_tokens:
            limit = (self.max_tokens - context_tokens) * self.frames_per_token / self.fps
            raise PromptError(
                f"{where} ({request.prompt[:40]!r}): {request.seconds:g} s is longer than the {limit:.2f} s a "
                f"continued segment can last ({self.max_seconds:g} s minus "
                f"{context_tokens * self.frames_per_token / self.fps:.2f} s of context); split it in two"
            )

    def _context_tokens(self, context_seconds: float) -> int:
        if isinstance(context_seconds, bool) or not isinstance(context_seconds, (int, float)) or context_seconds < 0:
            raise PromptError(f"context_seconds must be a number >= 0, got {context_seconds!r}")
        return round(context_seconds * self.fps / self.frames_per_token)

    def _timeline_code_stream(
        self, requests: list[GenerationRequest], context: list[int], context_seconds: float
    ) -> Iterator[tuple[int, int]]:
        """Yield (segment index, motion code) as each is drawn. Segment i is conditioned on the last
        context tokens of everything before it (``context`` first: a motion being continued). A segment
        that starts after motion is the smoothest of ``SEAM_CANDIDATES`` starts drawn from seeds derived
        from its own (a pure function of it: the same seed gives the same motion)."""
        import torch

        from motionmillion.generator.sample import iter_tokens

        window = self._context_tokens(context_seconds)
        history = list(context)
        end_id = self.generator.config.end_id
        features, mask = self._encode_texts([r.conditioning_text for r in requests])  # one call: a 60 s timeline has 12
        budgets = self._segment_budgets(requests)
        for index, request in enumerate(requests):
            low, high, target = budgets[index]
            before = history[len(history) - min(len(history), window) :]
            self._check_room(request, len(before), f"segment {index + 1}")
            high = min(high, self.max_tokens - len(before))  # a motion that ends itself stays in the budget
            low = min(low, high)

            def draw(seed: int) -> Iterator[int]:
                for ids in iter_tokens(
                    self.generator, features[index : index + 1], mask[index : index + 1], [seed], [low], [high],
                    _sampling_options(request, use_cache=True), context=torch.tensor([before], dtype=torch.long),
                    target_tokens=[target],
                ):  # fmt: skip
                    if int(ids[0]) >= end_id:
                        return
                    yield int(ids[0])

            codes, head = draw(request.seed), []
            if history and SEAM_CANDIDATES > 1:
                codes, head = self._smoothest_start(history, draw, request.seed)
            for code in itertools.chain(head, codes):
                history.append(code)
                yield index, code

    def _smoothest_start(self, history: list[int], draw, seed: int) -> tuple[Iterator[int], list[int]]:
        """(rest of its codes, first codes) of the candidate start whose first SEAM_TOKENS codes,
        decoded after the motion so far, make the smallest largest joint step within 5 frames of the seam."""
        fpt, reach = self.frames_per_token, self.decoder_reach
        before = history[len(history) - min(len(history), reach) :]
        best = None
        for k in range(SEAM_CANDIDATES):
            candidate_seed = (seed + k * SEAM_SEED_STRIDE) % 2**63
            codes = draw(candidate_seed)
            head = list(itertools.islice(codes, SEAM_TOKENS))
            steps = joint_steps(decode_joints(self._decode(before + head)))  # (frames - 1,)
            seam = len(before) * fpt
            near = np.zeros(len(steps), dtype=bool)
            near[max(0, seam - 5) : seam + 5] = True
            # The step across the seam against the steps elsewhere in the window: a jump, not a fast movement.
            score = steps[near].max() / max(steps[~near].max(), 1e-6) if (~near).any() else steps[near].max()
            if best is None or score < best[0]:
                best = (score, candidate_seed, codes, head)
        return best[2], best[3]

    def _timeline_codes(
        self, requests: list[GenerationRequest], context: list[int], context_seconds: float
    ) -> tuple[list[int], list[int]]:
        """All codes of a timeline and the segment each belongs to."""
        pairs = list(self._timeline_code_stream(requests, context, context_seconds))
        return [code for _, code in pairs], [index for index, _ in pairs]

    def _segment_ranges(self, requests: list[GenerationRequest], owners: list[int], offset: int = 0) -> list[dict]:
        """Each segment's prompt, seed and frame range [start_frame, end_frame) from the owner of every code."""
        ranges, start = [], offset
        for i, request in enumerate(requests):
            end = start + owners.count(i) * self.frames_per_token
            ranges.append({"prompt": request.prompt, "seconds": request.seconds, "seed": request.seed,
                           "start_frame": start, "end_frame": end})  # fmt: skip
            start = end
        return ranges

    def _continue(self, prefix: Motion, requests: list[GenerationRequest], context_seconds: float) -> list[Motion]:
        """Each request continued from the last frames of ``prefix``: the prefix, then the new frames.

        The prefix's last ``context_seconds`` are encoded to tokens and the new motion is sampled after them
        (as in a timeline); the decoded context cross-fades from the prefix's own frames into the decoded
        ones, so the motion passes from the given frames to the generated ones without a jump.
        """
        fpt = self.frames_per_token
        window = min(self._context_tokens(context_seconds), len(prefix.features) // fpt)
        if window < 1:
            raise PromptError(f"the prefix motion has {len(prefix.features)} frames; continuing needs at least {fpt}")
        for request in requests:
            self._check_room(request, window, f"prompt {request.meta.get('prompt_index', 0) + 1}")
        tail = prefix.features[len(prefix.features) - window * fpt :].astype(np.float64)
        context = self._encode_codes(tail)
        motions = []
        for request in requests:
            codes, owners = self._timeline_codes([request], context, context_seconds)
            generated = self._features(context + codes)
            blend = np.linspace(1.0, 0.0, window * fpt)[:, None]
            joined = blend * tail + (1 - blend) * generated[: window * fpt]
            features = np.concatenate([prefix.features[: len(prefix.features) - window * fpt], joined,
                                       generated[window * fpt :]]).astype(np.float32)  # fmt: skip
            start = len(prefix.features)
            motions.append(self._motion(request, codes, features, prefix_frames=start,
                                        segments=self._segment_ranges([request], owners, offset=start)))  # fmt: skip
        return motions

    def _encode_codes(self, features: np.ndarray) -> list[int]:
        """Motion codes of de-normalised features (a multiple of frames_per_token frames), the first frame
        made canonical as in training clips (no world heading or position)."""
        import torch

        from motionmillion.motion.representation import HEADING, ROOT_VEL, VELOCITIES
        from motionmillion.motion.rotations import matrix_to_6d

        features = features.copy()
        features[0, ROOT_VEL], features[0, VELOCITIES] = 0.0, 0.0
        features[0, HEADING] = matrix_to_6d(np.eye(3))
        normalized = torch.as_tensor(self.normalizer.normalize(features), dtype=torch.float32, device=self.device)
        return [int(c) for c in self.tokenizer.encode(normalized[None])[0].tolist()]


@dataclass(frozen=True)
class GenerationRequest:
    """One motion to make; ``MotionPipeline.check`` validates it and fills in the defaults."""

    prompt: str
    seconds: float | None = None  # None = the model ends the motion itself
    seed: int | None = None  # None = a random seed (reported in Motion.meta["seed"])
    guidance: float | None = None  # classifier-free guidance; None = the model's default, 1 = off
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = 0.95
    fix_feet: bool = False
    meta: dict = field(default_factory=dict, compare=False)  # copied into Motion.meta (e.g. prompt_index)

    @property
    def conditioning_text(self) -> str:
        """What the generator reads: the rewritten prompt when the request was rewritten (``meta["prompt_used"]``)."""
        return self.meta.get("prompt_used", self.prompt)

    @property
    def sampling_key(self) -> tuple:
        """Requests with equal keys can share one sampler call."""
        return (self.temperature, self.top_k, self.top_p, self.guidance)


# Per-segment options a timeline segment may set (besides prompt, seconds and seed).
TIMELINE_OPTIONS = ("guidance", "temperature", "top_k", "top_p")


@dataclass(frozen=True)
class MotionChunk:
    """New frames of a streamed motion: frames ``start_frame .. start_frame + len(features)``."""

    features: np.ndarray  # (n, 272) de-normalised
    joints: np.ndarray  # (n, 22, 3) world positions, continuing the frames sent before
    start_frame: int


def _placed_frame(features: np.ndarray) -> np.ndarray:
    """The last frame of ``features`` as the first frame of a motion that stands where it stands: its
    accumulated heading and root position written where ``encode_272(canonical=False)`` keeps them."""
    from motionmillion.motion.representation import HEADING, ROOT_VEL, ROTATIONS
    from motionmillion.motion.rotations import matrix_to_6d, sixd_to_matrix

    rotations, root = decode_rotations(features)  # root: heading applied; ROTATIONS: without it
    frame = features[-1].copy()
    without_heading = sixd_to_matrix(frame[ROTATIONS][:6])
    frame[HEADING] = matrix_to_6d(without_heading @ rotations[-1, 0].T)
    frame[ROOT_VEL] = root[-1, [0, 2]]
    return frame


def _sampling_options(request: GenerationRequest, use_cache: bool):
    from motionmillion.generator.sample import SamplingOptions

    return SamplingOptions(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                           guidance=request.guidance, use_cache=use_cache)  # fmt: skip


def _load_prefix(prefix) -> Motion:
    """The motion to continue: a Motion, a (T, 272) array, or a file Motion.load reads (.npy, .bvh)."""
    if isinstance(prefix, Motion):
        return prefix
    if isinstance(prefix, np.ndarray):
        try:
            return Motion(prefix)
        except ValueError as err:
            raise PromptError(f"prefix: {err}") from None
    if isinstance(prefix, (str, Path)):
        try:
            return Motion.load(prefix)
        except ValueError as err:
            raise PromptError(str(err)) from None
    raise PromptError(f"prefix must be a Motion, a (T, 272) array or a motion file, got {type(prefix).__name__}")


def _batches(requests: list[GenerationRequest], batch_size: int) -> Iterator[list[int]]:
    """Indices of requests grouped by sampling options (first-seen order), ``batch_size`` at most each.

    Groups are emitted in order of their earliest pending request, so results can be yielded in order
    with little buffering."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.sampling_key, []).append(index)
    pending = {key: [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
               for key, indices in groups.items()}  # fmt: skip
    while pending:
        key = min(pending, key=lambda k: pending[k][0][0])
        yield pending[key].pop(0)
        if not pending[key]:
            del pending[key]


def _check_device(device: str | None) -> str:
    """The torch device to load on (None = cuda when available); PromptError for unusable names."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        raise PromptError(f"device {device!r} is not a torch device; use cpu or cuda") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise PromptError(f"device {device!r} is not available on this machine; use cpu"
                          + (" (this torch has no CUDA device)" if kind == "cuda" else ""))  # fmt: skip
    return device


def _check_seed(seed, name: str, extra: int = 1) -> int:
    """A seed in [0, 2**63 - extra] (torch generators take 64-bit seeds); None = a random one."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PromptError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= seed <= 2**63 - extra:
        raise PromptError(f"{name} must be in [0, 2**63 - {extra}], got {seed}")
    return seed


def _unreadable_text(text: str) -> str | None:
    """Why an English text encoder may misread ``text`` (mostly non-Latin letters, emoji), or None."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(ord(c) > 0x24F for c in letters) > len(letters) / 2:
        return "looks non-English"
    if any(unicodedata.category(c) == "So" for c in text):
        return "contains emoji or symbols"
    return None


def build_pipeline_folder(
    out: str | Path,
    tokenizer: str | Path,
    generator_run: str | Path,
    normalization: str | Path | None = None,
    text_encoder: str | None = None,
    text_max_length: int | None = None,
    evaluator: str | Path | None = None,
) -> Path:
    """Assemble a pipeline folder from a tokenizer folder/run, a generator run (or generator folder),
    the dataset mean/std (a folder with mean.npy/std.npy, a dataset root, or None = the tokenizer run's
    ``normalization/``; a dataset root also gives ``skeleton.json``) and the text encoder (None = the one the generator was trained with)."""
    from motionmillion.utils.io import atomic_path, atomic_write_json

    out, tokenizer, generator_run = Path(out), Path(tokenizer), Path(generator_run)
    generator_folder = generator_run / "generator" if (generator_run / "generator").is_dir() else generator_run
    for folder, what in ((tokenizer, "tokenizer"), (generator_folder, "generator")):
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise PipelineError(f"{folder / name}: missing ({what} folder expected)")
    run_json = generator_run / "run.json"
    run_info = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
    if normalization is None:
        normalization = tokenizer / "normalization"
    normalization = Path(normalization)
    from motionmillion.data.layout import MEAN_STD_DIR

    for candidate in (normalization, normalization / MEAN_STD_DIR, normalization / "normalization"):
        if (candidate / "mean.npy").is_file() and (candidate / "std.npy").is_file():
            normalizer = Normalizer.load(candidate)
            break
    else:
        raise PipelineError(f"{normalization}: no mean.npy/std.npy found (pass --normalization)")
    text = run_info.get("text_encoder", {})
    text_name = text_encoder or text.get("name_or_path")
    if text_name is None:
        from motionmillion.text import DEFAULT_TEXT_ENCODER

        text_name = DEFAULT_TEXT_ENCODER
    max_length = text_max_length or int(text.get("max_length", 150))
    config = json.loads((generator_folder / "config.json").read_text(encoding="utf-8"))
    tokenizer_config = json.loads((tokenizer / "config.json").read_text(encoding="utf-8"))
    if "codebook_size" in tokenizer_config and int(tokenizer_config["codebook_size"]) != int(config["codebook_size"]):
        raise PipelineError(
            f"{tokenizer}: {tokenizer_config['codebook_size']} codes but the generator in {generator_folder} "
            f"was trained on {config['codebook_size']}"
        )
    out.mkdir(parents=True, exist_ok=True)
    for src, name in ((tokenizer, "tokenizer"), (generator_folder, "generator")):
        (out / name).mkdir(exist_ok=True)
        for file in ("config.json", "model.safetensors"):
            with atomic_path(out / name / file) as tmp:
                shutil.copyfile(src / file, tmp)
    normalizer.save(out / "normalization")
    if (normalization / "motion_data").is_dir():  # a dataset root: its clips give the skeleton
        from motionmillion.data.stats import dataset_skeleton

        offsets, clips = dataset_skeleton(normalization)
        save_skeleton(out / SKELETON_FILE, offsets, source=f"mean of {clips} training clips of {normalization}", clips=clips)
    atomic_write_json(out / "text_encoder.json", {"name_or_path": text_name, "max_length": max_length})
    if evaluator is not None:
        shutil.copytree(evaluator, out / "evaluator", dirs_exist_ok=True)
    return out
