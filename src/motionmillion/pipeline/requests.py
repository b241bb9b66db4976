"""What may be asked of a pipeline, checked before any model work: requests, limits and plans.

A :class:`Plan` is a whole generation job (motions, a timeline, or a continuation) whose every value has
been checked against the model's :class:`ModelLimits`. Limits come from the folder's ``config.json``
files alone, so the command line and the server refuse a bad request before loading any weights:

    limits = ModelLimits.read(folder)                  # no weights
    plan = make_plan(limits, "a person bows", seconds=3, seed=0)   # PromptError names what is wrong
    pipe = MotionPipeline.from_pretrained(folder)
    motions = list(pipe.run(plan))

Timelines may be spelt ``"a person walks forward:3; a person bows:2"`` or as a JSON file
(:func:`read_timeline`). Constraints (keyframes, a root path, in-betweening, edits) are checked here too
(:class:`Keyframe`, :class:`Control`); :mod:`motionmillion.pipeline.control` carries them out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motionmillion.generator.sampling import SamplingOptions, length_window

MAX_FRAMES = 300  # the training budget of the paper (150 tokens at 2 frames per token)
MIN_SECONDS = 1.0  # shorter requests are not motions the model was trained on (its clips are 2-10 s)
# Motion before a timeline segment that the generator is shown: more makes seams smoother but makes the
# segment stick to the movement before it (bench/timeline.py and the model card have the trials).
CONTEXT_SECONDS = 0.25
CONTINUE_SECONDS = 1.0  # a continuation (prefix=) is shown the last second of the given motion
MAX_TIMELINE_SECONDS = 120.0  # default cap on a timeline's total duration
# Per-segment options a timeline segment may set (besides prompt, seconds and seed).
TIMELINE_OPTIONS = ("guidance", "temperature", "top_k", "top_p")


# Faster than this (m/s) no person moves: a keyframe, path or gap that needs more is refused.
SPRINT_SPEED = 8.0
EDIT_BODIES = ("upper", "lower")


class PromptError(ValueError):
    """Unusable generation input (empty prompt, bad duration, bad sample count, ...)."""


class TimelineError(PromptError):
    """A timeline that cannot be read; the message names the file or the segment."""


@dataclass(frozen=True)
class GenerationRequest:
    """One motion to make; :func:`check_request` validates it and fills in the defaults."""

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
        """Requests with equal keys can share one engine call."""
        return (self.temperature, self.top_k, self.top_p, self.guidance)

    def sampling_options(self):
            return SamplingOptions(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, guidance=self.guidance)


@dataclass(frozen=True)
class ModelLimits:
    """What a model allows, read from its configs (no weights): durations, guidance, token budget."""

    frames_per_token: int
    max_motion_tokens: int  # the generator's positions for motion tokens (context included)
    has_null_prefix: bool  # trained with condition dropout: guidance != 1 possible
    default_guidance: float
    length_condition: bool
    fps: float = 30.0

    @property
    def max_tokens(self) -> int:
        return min(self.max_motion_tokens, MAX_FRAMES // self.frames_per_token)

    @property
    def max_seconds(self) -> float:
        return self.max_tokens * self.frames_per_token / self.fps

    def tokens(self, seconds: float) -> int:
        return round(seconds * self.fps / self.frames_per_token)

    @classmethod
    def of(cls, generator_config, frames_per_token: int) -> ModelLimits:
        return cls(int(frames_per_token), int(generator_config.max_motion_tokens), bool(generator_config.has_null_prefix),
                   float(generator_config.default_guidance), bool(generator_config.length_condition))  # fmt: skip

    @classmethod
    def read(cls, folder: str | Path | None) -> ModelLimits:
        """The limits of a pipeline folder (None = the bundled model) from its config.json files."""
        from motionmillion.generator.config import GeneratorConfig
        from motionmillion.pipeline.loading import PipelineError, check_folder
        from motionmillion.tokenizer.config import tokenizer_config_from_dict
        from motionmillion.utils.model_folder import read_config

        folder = check_folder(folder)
        try:
            generator = GeneratorConfig.from_dict(read_config(folder / "generator", "generator"))
            tokenizer = tokenizer_config_from_dict(read_config(folder / "tokenizer", "tokenizer"), folder / "tokenizer")
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise PipelineError(f"{folder}: cannot read the model configs ({err})") from None
        return cls.of(generator, tokenizer.frames_per_token)


@dataclass(frozen=True)
class Plan:
    """A checked generation job; ``MotionPipeline.run(plan)`` carries it out.

    kind "motions": one motion per request, sampled in batches of ``batch_size``;
    "timeline": one motion from the requests as consecutive segments (``fix_feet`` cleans the whole);
    "continue": each request continued after ``prefix`` (a Motion);
    "constrained", "inbetween", "edit": motions that meet ``control`` (:class:`Control`).
    """

    kind: str
    requests: tuple[GenerationRequest, ...]
    prefix: Any = None
    rewrite: bool = False
    rewriter: str | None = None
    context_seconds: float = CONTEXT_SECONDS
    fix_feet: bool = False
    batch_size: int = 32
    control: Control | None = None

    @property
    def seed(self) -> int:
        return self.requests[0].seed

    @classmethod
    def batch(cls, requests, batch_size: int = 32) -> Plan:
        """A "motions" plan of requests checked earlier (e.g. a server's queue joining several clients')."""
        return cls("motions", tuple(requests), batch_size=batch_size)

    @property
    def prompt(self) -> str:
        return " | ".join(r.prompt for r in self.requests) if self.kind == "timeline" else self.requests[0].prompt


def make_plan(
    limits: ModelLimits,
    prompts: str | Sequence[str] | None = None,
    seconds: float | Sequence[float | None] | None = None,
    num_samples: int = 1,
    seed: int | None = None,
    *,
    timeline: Sequence | None = None,
    prefix=None,
    rewrite: bool = False,
    rewriter: str | None = None,
    batch_size: int = 32,
    context_seconds: float | None = None,
    max_total_seconds: float = MAX_TIMELINE_SECONDS,
    fix_feet: bool = False,
    keyframes: Sequence[Keyframe] | None = None,
    path=None,
    after=None,
    edit=None,
    start: float | None = None,
    end: float | None = None,
    body: str | None = None,
    **options,
) -> Plan:
    """Check everything about a job that needs no model; PromptError names the bad prompt, segment or option.

    One of ``prompts`` (a string or a list) or ``timeline`` (segments as :func:`timeline_requests` takes;
    :func:`read_timeline` reads them from a file or the short form). ``prefix``: continue this motion (a Motion, (T, 272) features
    or a .npy/.bvh file). ``options``: sampling options shared by every request (guidance, temperature,
    top_k, top_p). Constraints (see :mod:`motionmillion.pipeline.control`): ``keyframes`` and/or ``path``
    (with ``seconds``); ``prefix`` and ``after`` with ``seconds`` = the gap between them (in-betweening);
    ``edit`` (a motion) with ``start``/``end`` (seconds) and/or ``body``.
    """
    unknown = sorted(set(options) - set(TIMELINE_OPTIONS))
    if unknown:
        raise PromptError(f"unknown option(s) {', '.join(unknown)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PromptError(f"batch_size must be a positive integer, got {batch_size!r}")
    if rewriter is not None and not rewrite:
        raise PromptError("a rewriter needs rewrite=True (--rewrite)")
    if prompts is not None and timeline is not None:
        raise PromptError("give either prompts or a timeline, not both")
    constraints = (keyframes, path, after, edit, start, end, body)
    if any(value is not None for value in constraints):
        if timeline is not None:
            raise PromptError("keyframes, paths, in-betweening and edits make one motion from one prompt, not a timeline")
        if isinstance(prompts, (list, tuple)) and len(prompts) != 1:
            raise PromptError("a constrained motion has one prompt")
        control = check_control(limits, seconds, prefix, after, edit, start, end, body, keyframes, path)
        # In-betweening and range edits fill a gap of their own length (not a request's 1-10 s); a body-half
        # edit makes a whole motion as long as the one edited.
        if control.kind != "constrained":
            seconds = control.generated_seconds(limits.fps) if control.body else None
        requests = motion_requests(limits, prompts, seconds, num_samples, seed, fix_feet=fix_feet, **options)
        context = CONTINUE_SECONDS if context_seconds is None else context_seconds
        return Plan(control.kind, tuple(requests), control.before, rewrite, rewriter, context, False, batch_size, control)
    if timeline is not None:
        if prefix is not None or num_samples != 1 or seconds is not None:
            raise PromptError("a timeline sets its own durations and makes one motion: no seconds, num_samples or "
                              "prefix with it")  # fmt: skip
        context = CONTEXT_SECONDS if context_seconds is None else context_seconds
        requests = timeline_requests(limits, timeline, seed, max_total_seconds, context, **options)
        return Plan("timeline", tuple(requests), None, rewrite, rewriter, context, bool(fix_feet), batch_size)
    requests = motion_requests(limits, prompts, seconds, num_samples, seed, fix_feet=fix_feet, **options)
    if prefix is None:
        return Plan("motions", tuple(requests), None, rewrite, rewriter, CONTEXT_SECONDS, False, batch_size)
    prefix = load_prefix(prefix)
    context = CONTINUE_SECONDS if context_seconds is None else context_seconds
    window = min(context_tokens(limits, context), len(prefix.features) // limits.frames_per_token)
    if window < 1:
        raise PromptError(f"the prefix motion has {len(prefix.features)} frames; continuing needs at least "
                          f"{limits.frames_per_token}")  # fmt: skip
    for request in requests:
        check_room(limits, request, window, f"prompt {request.meta['prompt_index'] + 1}")
    return Plan("continue", tuple(requests), prefix, rewrite, rewriter, context, False, batch_size)


def motion_requests(
    limits: ModelLimits,
    prompts: str | Sequence[str],
    seconds: float | Sequence[float | None] | None = None,
    num_samples: int = 1,
    seed: int | None = None,
    **options,
) -> list[GenerationRequest]:
    """One checked request per (prompt, sample), prompt-major; sample j of prompt i has seed
    ``seed + i * num_samples + j``. ``options``: GenerationRequest fields shared by all."""
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
    seed = check_seed(seed, "seed", extra=len(prompts) * num_samples)
    requests = [
        GenerationRequest(prompt, target, seed + i * num_samples + j, meta={"prompt_index": i, "sample_index": j},
                          **options)  # fmt: skip
        for i, (prompt, target) in enumerate(zip(prompts, seconds))
        for j in range(num_samples)
    ]
    return [check_request(limits, r, where=f"prompt {r.meta['prompt_index'] + 1}") for r in requests]


def timeline_requests(
    limits: ModelLimits,
    segments: Sequence,
    seed: int | None = None,
    max_total_seconds: float = MAX_TIMELINE_SECONDS,
    context_seconds: float = CONTEXT_SECONDS,
    **options,
) -> list[GenerationRequest]:
    """Checked requests for a timeline. ``segments``: ``(prompt, seconds)`` pairs or dicts with "prompt",
    "seconds" and optionally "seed", "guidance", "temperature", "top_k", "top_p"; segment i uses seed
    ``seed + i`` unless it has its own. Raises PromptError naming the segment or the total."""
    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence):
        raise PromptError(f"a timeline is a list of (prompt, seconds) segments, got {type(segments).__name__}")
    if not segments:
        raise PromptError("the timeline is empty: give at least one (prompt, seconds) segment")
    seed = check_seed(seed, "seed", extra=len(segments))
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
        requests.append(check_request(limits, request, where=f"{where} ({str(prompt)[:40]!r})"))
        if i > 0:
            check_room(limits, requests[-1], context_tokens(limits, context_seconds), where)
        total += float(seconds)
    if total > max_total_seconds + 1e-9:
        raise PromptError(f"the timeline lasts {total:g} s, more than the maximum of {max_total_seconds:g} s")
    return requests


def check_request(limits: ModelLimits, request: GenerationRequest, where: str = "request") -> GenerationRequest:
    """The request with defaults filled in (random seed, the model's guidance); PromptError if unusable."""
    prompt = request.prompt
    if not isinstance(prompt, str):
        raise PromptError(f"{where}: the prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise PromptError(f"{where}: the prompt is empty or whitespace only")
    seconds = request.seconds
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise PromptError(f"{where}: seconds must be a number or None, got {seconds!r}")
        if not MIN_SECONDS <= seconds <= limits.max_seconds + 1e-9:
            raise PromptError(f"{where}: seconds must be in [{MIN_SECONDS:g}, {limits.max_seconds:g}], got {seconds!r}")
    seed = check_seed(request.seed, f"{where}: seed")
    guidance = limits.default_guidance if request.guidance is None else request.guidance
    if guidance != 1.0 and not limits.has_null_prefix:
        raise PromptError(f"{where}: this model was trained without condition dropout: use guidance=1 (no guidance)")
    try:
        SamplingOptions(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p, guidance=guidance)
    except (TypeError, ValueError) as err:
        raise PromptError(f"{where}: {err}") from None
    meta = dict(request.meta)
    problem = unreadable_text(prompt)
    if problem:  # said once per prompt in the motion's meta (and printed by the CLI), never a Python warning
        meta.setdefault("text_warning", f"prompt {prompt.strip()[:40]!r} {problem}; the text encoder was trained on English")
    return dataclasses.replace(request, prompt=prompt.strip(), seed=seed, guidance=float(guidance), meta=meta)


def check_room(limits: ModelLimits, request: GenerationRequest, context: int, where: str) -> None:
    """PromptError if the request's duration and its context do not fit the generator's budget."""
    if request.seconds is not None and context + token_budget(limits, request.seconds)[1] > limits.max_tokens:
        limit = (limits.max_tokens - context) * limits.frames_per_token / limits.fps
        raise PromptError(
            f"{where} ({request.prompt[:40]!r}): {request.seconds:g} s is longer than the {limit:.2f} s a "
            f"continued segment can last ({limits.max_seconds:g} s minus "
            f"{context * limits.frames_per_token / limits.fps:.2f} s of context); split it in two"
        )


def context_tokens(limits: ModelLimits, context_seconds: float) -> int:
    if isinstance(context_seconds, bool) or not isinstance(context_seconds, (int, float)) or context_seconds < 0:
        raise PromptError(f"context_seconds must be a number >= 0, got {context_seconds!r}")
    return limits.tokens(context_seconds)


def token_budget(limits: ModelLimits, seconds: float | None) -> tuple[int, int, int | None]:
    """(min, max, target) new tokens for a duration. A length-conditioned generator is asked for the exact
    count and told how many tokens remain at every step, so it ends there by itself; a generator without
    the condition gets a tolerance window around the duration."""
    if seconds is None or not limits.length_condition:
        low, high = length_window(seconds, limits.frames_per_token, limits.max_tokens, fps=limits.fps)
        return low, high, None
    target = min(limits.max_tokens, max(1, limits.tokens(seconds)))
    return target, target, target


def check_seed(seed, name: str, extra: int = 1) -> int:
    """A seed in [0, 2**63 - extra] (torch generators take 64-bit seeds); None = a random one."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PromptError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= seed <= 2**63 - extra:
        raise PromptError(f"{name} must be in [0, 2**63 - {extra}], got {seed}")
    return seed


def unreadable_text(text: str) -> str | None:
    """Why an English text encoder may misread ``text`` (mostly non-Latin letters, emoji), or None."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(ord(c) > 0x24F for c in letters) > len(letters) / 2:
        return "looks non-English"
    if any(unicodedata.category(c) == "So" for c in text):
        return "contains emoji or symbols"
    return None


def check_device(device: str | None) -> str:
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


def load_prefix(prefix, name: str = "prefix"):
    """The motion to continue (or edit): a Motion, a (T, 272) array, or a file Motion.load reads (.npy, .bvh)."""
    import numpy as np

    from motionmillion.motion import Motion

    if isinstance(prefix, Motion):
        return prefix
    if isinstance(prefix, np.ndarray):
        try:
            return Motion(prefix)
        except ValueError as err:
            raise PromptError(f"{name}: {err}") from None
    if isinstance(prefix, (str, Path)):
        try:
            return Motion.load(prefix)
        except ValueError as err:
            raise PromptError(str(err)) from None
    raise PromptError(f"{name} must be a Motion, a (T, 272) array or a motion file, got {type(prefix).__name__}")


# ---------------------------------------------------------------- constraints
@dataclass(frozen=True)
class Keyframe:
    """A pose to reach at ``time`` seconds: ``joints`` is a (22, 3) array of world positions in metres (Y up;
    the motion starts at the origin facing +z), or a dict of some joints, e.g. ``{"right_wrist": (0.3, 1.5, 0.4)}``
    (names: :data:`motionmillion.motion.skeleton.JOINT_NAMES`)."""

    time: float
    joints: Any

    def targets(self, where: str) -> tuple[tuple[int, ...], Any]:
        """(joint indices, (n, 3) positions), checked; PromptError names ``where`` and the joint."""
        import numpy as np

        from motionmillion.motion.skeleton import JOINT_NAMES, NUM_JOINTS

        if isinstance(self.joints, dict):
            if not self.joints:
                raise PromptError(f"{where}: no joints given")
            unknown = [str(name) for name in self.joints if name not in JOINT_NAMES]
            if unknown:
                raise PromptError(f"{where}: unknown joint name(s) {', '.join(unknown)} (known: {', '.join(JOINT_NAMES)})")
            indices = tuple(JOINT_NAMES.index(name) for name in self.joints)
            values = list(self.joints.values())
        else:
            indices, values = tuple(range(NUM_JOINTS)), self.joints
        try:
            positions = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise PromptError(f"{where}: joint positions must be numbers (x, y, z) in metres") from None
        if positions.shape != (len(indices), 3):
            expected = f"({NUM_JOINTS}, 3)" if not isinstance(self.joints, dict) else "(x, y, z) per joint"
            raise PromptError(f"{where}: expected {expected} positions, got shape {positions.shape}")
        bad = ~np.isfinite(positions).all(axis=1)
        if bad.any():
            raise PromptError(f"{where}: NaN/infinite position of {JOINT_NAMES[indices[int(np.argmax(bad))]]}")
        if positions[:, 1].min() < -0.5 or positions[:, 1].max() > 3.0:
            j = int(np.argmax(np.abs(positions[:, 1] - 1.0)))
            raise PromptError(f"{where}: {JOINT_NAMES[indices[j]]} at height {positions[j, 1]:.2f} m is out of a "
                              "person's reach (heights are -0.5 to 3 m, Y up, floor at 0)")  # fmt: skip
        return indices, positions


@dataclass(frozen=True)
class Target:
    """A checked keyframe: the frame it falls on and the joints it places."""

    time: float
    frame: int
    joints: tuple[int, ...]
    positions: Any  # (len(joints), 3)

    @property
    def full_body(self) -> bool:
        return len(self.joints) == 22


@dataclass(frozen=True)
class Control:
    """What a constrained plan must meet (checked by :func:`check_control`).

    kind "constrained": ``targets`` (keyframes) and/or ``path`` ((n, 3) rows of time s, x, z of the pelvis);
    "inbetween": ``gap_frames`` new frames between ``before`` and ``after`` (Motions, placed in the world);
    "edit": ``source`` regenerated in frames [start_frame, end_frame) and/or only its ``body`` half.
    """

    kind: str
    targets: tuple[Target, ...] = ()
    path: Any = None
    before: Any = None
    after: Any = None
    source: Any = None
    start_frame: int = 0
    end_frame: int = 0
    gap_frames: int = 0
    body: str | None = None

    def generated_seconds(self, fps: float) -> float:
        """How long a motion the model makes for an edit of a body half: the source's length."""
        return len(self.source.features) / fps


def check_control(limits: ModelLimits, seconds, prefix, after, edit, start, end, body, keyframes, path) -> Control:
    """The checked constraints of one request; PromptError names the keyframe, point, joint or range."""
    if edit is not None:
        if prefix is not None or after is not None or keyframes is not None or path is not None:
            raise PromptError("an edit takes the motion, a range and/or a body half: no prefix, after, keyframes or path")
        return check_edit(limits, load_prefix(edit, "edit"), start, end, body, seconds)
    if start is not None or end is not None or body is not None:
        raise PromptError("start, end and body say what part of a motion to edit: give the motion to edit too")
    if after is not None:
        if prefix is None:
            raise PromptError("in-betweening needs the motion before (prefix=) and the motion after")
        if keyframes is not None or path is not None:
            raise PromptError("in-betweening takes no keyframes or path (the motion after is the goal)")
        return check_gap(limits, load_prefix(prefix, "before"), load_prefix(after, "after"), seconds)
    if prefix is not None:
        raise PromptError("keyframes and paths start a new motion: no prefix with them")
    if seconds is None or isinstance(seconds, (list, tuple)):
        raise PromptError("keyframes and paths need the motion's duration: give seconds (one number)")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise PromptError(f"seconds must be a positive number, got {seconds!r}")
    targets = check_keyframes(keyframes, float(seconds), limits.fps) if keyframes is not None else ()
    checked_path = check_path(path, float(seconds)) if path is not None else None
    return Control("constrained", targets=targets, path=checked_path)


def check_keyframes(keyframes, seconds: float, fps: float) -> tuple[Target, ...]:
    """Keyframes in time order, each inside the motion and reachable at a sprint from the one before."""
    import numpy as np

    if isinstance(keyframes, (Keyframe, dict, str, bytes)) or not isinstance(keyframes, Sequence):
        raise PromptError("keyframes must be a list of Keyframe(time=..., joints=...)")
    if not keyframes:
        raise PromptError("keyframes is an empty list")
    targets = []
    for i, keyframe in enumerate(keyframes):
        where = f"keyframe {i + 1}"
        if isinstance(keyframe, dict) and set(keyframe) <= {"time", "joints"}:
            keyframe = Keyframe(keyframe.get("time"), keyframe.get("joints"))
        if not isinstance(keyframe, Keyframe):
            raise PromptError(f"{where}: expected Keyframe(time=..., joints=...) or {{\"time\": ..., \"joints\": ...}}, "
                              f"got {type(keyframe).__name__}")  # fmt: skip
        time = keyframe.time
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time):
            raise PromptError(f"{where}: time must be a number of seconds, got {time!r}")
        if not 0 <= time <= seconds:
            raise PromptError(f"{where}: time {time:g} s is outside the motion (0 to {seconds:g} s)")
        joints, positions = keyframe.targets(f"{where} (time {time:g} s)")
        targets.append(Target(float(time), round(time * fps), joints, positions))
    targets.sort(key=lambda t: t.time)
    for a, b in zip(targets, targets[1:]):
        if b.frame == a.frame:
            raise PromptError(f"keyframes at {a.time:g} s and {b.time:g} s fall on the same frame; merge them")
    # Reachable: the pelvis (or the given joints' centre, with a metre of reach) moves at a sprint at most,
    # from the origin where every generated motion starts.
    where_was, when = np.zeros(2), 0.0
    for i, target in enumerate(targets):
        own = [k for k, j in enumerate(target.joints) if j == 0]
        centre = target.positions[own[0], [0, 2]] if own else target.positions[:, [0, 2]].mean(axis=0)
        slack = 0.0 if own else 1.0
        distance = max(0.0, float(np.linalg.norm(centre - where_was)) - slack)
        if distance > SPRINT_SPEED * max(target.time - when, 1.0 / fps):
            raise PromptError(f"keyframe at {target.time:g} s is unreachable: {distance:.1f} m in "
                              f"{target.time - when:.2f} s is faster than a sprint ({SPRINT_SPEED:g} m/s)")  # fmt: skip
        if own:
            where_was, when = centre, target.time
    return tuple(targets)


def check_path(path, seconds: float):
    """(n, 3) rows (time s, x, z) of the pelvis, times increasing within the motion, no faster than a sprint."""
    import numpy as np

    if isinstance(path, (str, bytes)):
        path = parse_path(path)
    try:
        points = np.asarray(path, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError("path must be a list of (time s, x, z) points") from None
    if points.ndim != 2 or points.shape[1] != 3:
        raise PromptError(f"path must be (time s, x, z) points, got shape {points.shape}")
    if len(points) < 2:
        raise PromptError("a path needs at least 2 points (time s, x, z)")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise PromptError(f"path point {int(np.argmax(bad)) + 1}: NaN/infinite value")
    for i in range(len(points)):
        if not 0 <= points[i, 0] <= seconds + 1e-9:
            raise PromptError(f"path point {i + 1}: time {points[i, 0]:g} s is outside the motion (0 to {seconds:g} s)")
        if i and points[i, 0] <= points[i - 1, 0]:
            raise PromptError(f"path point {i + 1}: time {points[i, 0]:g} s does not come after {points[i - 1, 0]:g} s")
    speeds = np.linalg.norm(np.diff(points[:, 1:], axis=0), axis=1) / np.diff(points[:, 0])
    if speeds.max() > SPRINT_SPEED:
        i = int(np.argmax(speeds))
        raise PromptError(f"path points {i + 1}-{i + 2}: {speeds[i]:.1f} m/s is faster than a sprint "
                          f"({SPRINT_SPEED:g} m/s)")  # fmt: skip
    return points


def read_keyframes(path: str | Path) -> list[Keyframe]:
    """Keyframes from a JSON file: ``[{"time": 2.0, "joints": [[x, y, z], ... 22]}, {"time": 3.0, "joints":
    {"right_wrist": [x, y, z]}}]`` or ``{"keyframes": [...]}``; the values are checked by :func:`check_keyframes`."""
    data = _read_json(Path(path), "keyframe")
    if isinstance(data, dict):
        data = data.get("keyframes")
    if not isinstance(data, list):
        raise PromptError(f"{path}: expected a list of keyframes or {{\"keyframes\": [...]}}")
    keyframes = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict) or set(item) != {"time", "joints"}:
            raise PromptError(f"{path}: keyframe {i} must be an object with exactly time and joints")
        keyframes.append(Keyframe(item["time"], item["joints"]))
    return keyframes


def read_path(spec: str | Path) -> list:
    """A root path from a JSON file (``[[t, x, z], ...]`` or ``{"path": [...]}``) or the short form
    ``"t,x,z; t,x,z"``; :func:`check_path` checks the values."""
    text = str(spec)
    if not text.lower().endswith(".json") and not _is_file(Path(text)):
        return parse_path(text)
    data = _read_json(Path(text), "path")
    if isinstance(data, dict):
        data = data.get("path")
    if not isinstance(data, list):
        raise PromptError(f"{text}: expected a list of [t, x, z] points or {{\"path\": [...]}}")
    return data


def _read_json(path: Path, what: str, missing: str = "", error: type[PromptError] = PromptError):
    """The JSON value of a request file (a timeline, keyframes, a path); ``error`` names the file and problem."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file{missing}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read the {what} ({err})") from None
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON ({err})") from None


def parse_path(text: str) -> list[tuple[float, float, float]]:
    """``"t,x,z; t,x,z"`` -> [(t, x, z), ...]; a .json file (a list of [t, x, z]) is read by the caller."""
    points = []
    for i, part in enumerate(p for p in text.split(";") if p.strip()):
        values = part.split(",")
        try:
            point = tuple(float(v) for v in values)
        except ValueError:
            raise PromptError(f"path point {i + 1} ({part.strip()[:30]!r}): not numbers; write t,x,z; t,x,z") from None
        if len(point) != 3:
            raise PromptError(f"path point {i + 1} ({part.strip()[:30]!r}): expected 3 numbers t,x,z, got {len(point)}")
        points.append(point)
    if not points:
        raise PromptError("the path is empty: write t,x,z; t,x,z ... (seconds, metres)")
    return points


def check_gap(limits: ModelLimits, before, after, seconds) -> Control:
    """In-betweening: ``seconds`` of new motion between ``before`` and ``after``, within reach."""
    import numpy as np

    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise PromptError(f"in-betweening needs the gap's duration in seconds, got {seconds!r}")
    gap = round(seconds * limits.fps)
    longest = limits.max_seconds - CONTINUE_SECONDS
    if gap < limits.frames_per_token or seconds > longest + 1e-9:
        raise PromptError(f"the gap must last {limits.frames_per_token / limits.fps:.2f} to {longest:g} s, got {seconds:g} s")
    distance = float(np.linalg.norm(after.joints[0, 0, [0, 2]] - before.joints[-1, 0, [0, 2]]))
    if distance > SPRINT_SPEED * seconds:
        raise PromptError(f"the motion after starts {distance:.1f} m from where the motion before ends: unreachable "
                          f"in {seconds:g} s (faster than a sprint, {SPRINT_SPEED:g} m/s)")  # fmt: skip
    start = len(before.features)
    return Control("inbetween", before=before, after=after, start_frame=start, end_frame=start + gap, gap_frames=gap)


def check_edit(limits: ModelLimits, source, start, end, body, seconds) -> Control:
    """An edit: frames [start, end) (seconds; default the whole motion) and/or one body half."""
    if seconds is not None:
        raise PromptError("an edit keeps the motion's length: no seconds (give start and end)")
    if body is not None and body not in EDIT_BODIES:
        raise PromptError(f"body must be one of {', '.join(EDIT_BODIES)}, got {body!r}")
    total = len(source.features) / limits.fps
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise PromptError(f"{name} must be a number of seconds, got {value!r}")
    if start is None and end is None and body is None:
        raise PromptError("say what to edit: start and end (seconds) and/or body (upper or lower)")
    first = 0.0 if start is None else float(start)
    last = total if end is None else float(end)
    if first >= last:
        raise PromptError(f"the edit range is empty: start {first:g} s >= end {last:g} s")
    if first < 0 or last > total + 1e-9:
        raise PromptError(f"the edit range {first:g}-{last:g} s is outside the motion (0 to {total:.2f} s)")
    start_frame, end_frame = round(first * limits.fps), min(len(source.features), round(last * limits.fps))
    if body is not None:
        if not MIN_SECONDS <= total <= limits.max_seconds + 1e-9:
            raise PromptError(f"a body-half edit regenerates the whole motion: it must last {MIN_SECONDS:g} to "
                              f"{limits.max_seconds:g} s, this one lasts {total:.2f} s")  # fmt: skip
        return Control("edit", source=source, start_frame=start_frame, end_frame=end_frame, body=body)
    gap = end_frame - start_frame
    if gap < limits.frames_per_token or gap / limits.fps > limits.max_seconds - CONTINUE_SECONDS + 1e-9:
        raise PromptError(f"an edit range must last {limits.frames_per_token / limits.fps:.2f} to "
                          f"{limits.max_seconds - CONTINUE_SECONDS:g} s, got {gap / limits.fps:.2f} s")  # fmt: skip
    if start_frame == 0 and end_frame == len(source.features):
        raise PromptError("the edit range is the whole motion: generate a new one instead (or edit a body half)")
    return Control("edit", source=source, start_frame=start_frame, end_frame=end_frame, gap_frames=gap)


# ---------------------------------------------------------------- timeline spellings
def read_timeline(spec: str | Path) -> list[dict]:
    """Segments from a JSON file (a path ending in .json, or any existing file) or the short form
    ``"prompt:seconds; prompt:seconds"``. Only the syntax is checked here; :func:`timeline_requests`
    checks the values."""
    text = str(spec)
    if not text.strip():
        raise TimelineError("the timeline is empty: give a JSON file or PROMPT:SECONDS; PROMPT:SECONDS ...")
    path = Path(text)
    if text.lower().endswith(".json") or (";" not in text and ":" not in text) or _is_file(path):
        return _read_timeline_json(path)
    return parse_short_timeline(text)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a short form too long to be a file name
        return False


def parse_short_timeline(text: str) -> list[dict]:
    """``"prompt:seconds; prompt:seconds"`` -> [{"prompt": ..., "seconds": ...}, ...] (the last ``:`` of a
    segment starts its duration)."""
    parts = [part.strip() for part in text.split(";")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing ";"
    if not parts or not any(parts):
        raise TimelineError("the timeline is empty: write PROMPT:SECONDS; PROMPT:SECONDS ...")
    segments = []
    for i, part in enumerate(parts, start=1):
        prompt, colon, seconds = part.rpartition(":")
        if not colon:
            raise TimelineError(f"timeline segment {i} ({part[:40]!r}): no duration; write PROMPT:SECONDS")
        try:
            value = float(seconds)
        except ValueError:
            raise TimelineError(f"timeline segment {i} ({part[:40]!r}): {seconds.strip()!r} is not a number of seconds") from None
        segments.append({"prompt": prompt.strip(), "seconds": value})
    return segments


def _read_timeline_json(path: Path) -> list[dict]:
    """``[{"prompt": ..., "seconds": ...}, ...]`` or ``{"segments": [...]}``."""
    data = _read_json(path, "timeline", " (or write the short form PROMPT:SECONDS; ...)", TimelineError)
    if isinstance(data, dict):
        data = data.get("segments")
    if not isinstance(data, list):
        raise TimelineError(f"{path}: expected a list of segments or {{\"segments\": [...]}}")
    for i, segment in enumerate(data, start=1):
        if not isinstance(segment, dict):
            raise TimelineError(f"{path}: segment {i} is not an object with prompt and seconds")
    return data
