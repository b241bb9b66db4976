"""``MotionPipeline``: text in, ``Motion`` out, as named stages.

    pipe = MotionPipeline.from_pretrained()            # the bundled default model
    motions = pipe("a person waves the left hand", seconds=4, num_samples=2, seed=0)

    plan = pipe.plan("a person bows", seconds=3, seed=1)   # every check that needs no model (PromptError)
    for motion in pipe.run(plan): ...                      # what the command line and the server call

A batch of motions goes: check inputs -> understand (rewrite, when asked) -> encode text -> coverage ->
sample -> decode -> make consistent -> ground (the hovering guard) -> motions. Timelines, continuation and streaming
(:mod:`motionmillion.pipeline.timeline`) use the same stages around the same decode engine.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import numpy as np

from motionmillion.motion import FPS, Motion, Normalizer
from motionmillion.motion.consistency import make_consistent, make_consistent_many
import motionmillion.pipeline.control as control
import motionmillion.pipeline.loading as loading
import motionmillion.pipeline.timeline as timelines
from motionmillion.pipeline.loading import PipelineError
from motionmillion.pipeline.requests import (
    CONTEXT_SECONDS,
    MAX_TIMELINE_SECONDS,
    GenerationRequest,
    ModelLimits,
    Plan,
    PromptError,
    check_device,
    check_request,
    make_plan,
    motion_requests,
    timeline_requests,
    token_budget,
)


class MotionPipeline:
    def __init__(self, tokenizer, generator, text_encoder, normalizer: Normalizer, folder=None, skeleton=None):
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

    # ---------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(cls, path=None, device: str | None = None, text_encoder=None) -> MotionPipeline:
        """Load a pipeline folder; ``None`` = the bundled default model. ``text_encoder``: use this (with
        ``name``, ``dim``, ``max_length`` and ``encode(texts)``) instead of loading the folder's."""
        parts = loading.load_components(path, check_device(device), text_encoder)
        return cls(parts.tokenizer, parts.generator, parts.text_encoder, parts.normalizer, parts.folder, parts.skeleton)

    def save_pretrained(self, folder):
        return loading.save_components(self, folder)

    def to(self, device) -> MotionPipeline:
        self.tokenizer.to(device)
        self.generator.to(device)
        self.text_encoder.to(device)
        return self

    @property
    def device(self):
        return next(self.generator.parameters()).device

    @functools.cached_property
    def limits(self) -> ModelLimits:
        return ModelLimits.of(self.generator.config, self.frames_per_token)

    @property
    def frames_per_token(self) -> int:
        return int(self.tokenizer.frames_per_token)

    @property
    def max_tokens(self) -> int:
        return self.limits.max_tokens

    @property
    def max_seconds(self) -> float:
        return self.limits.max_seconds

    @functools.cached_property
    def decoder_reach(self) -> int:
        """How many tokens before and after a token its decoded frames depend on."""
        reach = self.tokenizer.decoder_reach()
        if reach is None:
            raise PipelineError("the tokenizer's decoder sees too far to stream (global context)")
        return reach

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

    # ---------------------------------------------------------------- the public calls
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
        prefix=None,
        rewrite: bool = False,
        rewriter: str | None = None,
        keyframes: Sequence | None = None,
        path=None,
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
        :mod:`motionmillion.pipeline.understanding`. Every motion's meta has "coverage" and "understood_as".
        keyframes: :class:`~motionmillion.pipeline.requests.Keyframe` poses to reach; path: (time s, x, z) points
        of the pelvis to follow (both need ``seconds``; :mod:`motionmillion.pipeline.control`); meta then has
        "keyframe_errors" and "path_error".
        """
        plan = self.plan(prompts, seconds, num_samples, seed, prefix=prefix, rewrite=rewrite, rewriter=rewriter,
                         batch_size=batch_size, fix_feet=fix_feet, guidance=guidance, temperature=temperature,
                         top_k=top_k, top_p=top_p, keyframes=keyframes, path=path)  # fmt: skip
        return list(self.run(plan))

    def inbetween(self, before, after, seconds: float, prompt: str | None = None, seed: int | None = None,
                  **options) -> Motion:  # fmt: skip
        """One motion: ``before``, ``seconds`` of new motion for ``prompt`` (default: the text of ``before``, else
        "a person walks"), then ``after``, both kept where they stand in the world (Motions or .npy/.bvh files);
        ``meta["generated"]`` is the new frame range. ``options``: sampling options, num_samples."""
        prompt = prompt if prompt is not None else getattr(before, "text", "") or "a person walks"
        plan = self.plan(prompt, seconds, seed=seed, prefix=before, after=after, **options)
        return next(self.run(plan))

    def edit(self, motion, prompt: str, start: float | None = None, end: float | None = None, body: str | None = None,
             seed: int | None = None, **options) -> Motion:  # fmt: skip
        """``motion`` with frames [start, end) (seconds) regenerated for ``prompt`` and joined smoothly, every
        frame outside kept; or, with ``body="upper"|"lower"``, only that half of the body (in [start, end) when
        given), the root and the other half kept."""
        plan = self.plan(prompt, seed=seed, edit=motion, start=start, end=end, body=body, **options)
        return next(self.run(plan))

    def plan(self, prompts=None, seconds=None, num_samples: int = 1, seed: int | None = None, **kwargs) -> Plan:
        """A checked job (see :func:`~motionmillion.pipeline.requests.make_plan`); PromptError if unusable."""
        return make_plan(self.limits, prompts, seconds, num_samples, seed, **kwargs)

    def run(self, plan: Plan) -> Iterator[Motion]:
        """Carry out a plan: its motions, in request order, each as soon as it exists."""
        if plan.kind == "timeline":
            yield timelines.compose(self, plan)
        elif plan.kind == "continue":
            yield from timelines.continue_motion(self, plan)
        elif plan.control is not None:  # keyframes, paths, in-betweening, edits
            yield from control.run(self, plan)
        else:
            yield from self.generate(plan.requests, plan.batch_size, plan.rewrite, plan.rewriter)

    def understood(self, plan: Plan) -> Plan:
        """The plan with each request's understanding in its meta (coverage; the rewrite when the plan asks
        for one), for callers that need it before the motion exists: a server that streams, or that joins
        several plans' requests in one batch."""
        from motionmillion.pipeline.understanding import understood_requests

        requests = understood_requests(self, list(plan.requests), rewrite=plan.rewrite, rewriter=plan.rewriter)
        return dataclasses.replace(plan, requests=tuple(requests), rewrite=False, rewriter=None)

    def compose(self, segments: Sequence, seed: int | None = None, context_seconds: float = CONTEXT_SECONDS,
                max_total_seconds: float = MAX_TIMELINE_SECONDS, fix_feet: bool = False, **options) -> Motion:  # fmt: skip
        """One motion from a timeline of prompts, e.g. ``[("a person walks forward", 3), ("a person bows", 2)]``;
        ``meta["segments"]`` holds each segment's prompt, seed and frame range (see
        :mod:`motionmillion.pipeline.timeline`)."""
        plan = self.plan(timeline=segments, seed=seed, context_seconds=context_seconds,
                         max_total_seconds=max_total_seconds, fix_feet=fix_feet, **options)  # fmt: skip
        return timelines.compose(self, plan)

    def stream(self, prompt, seconds: float | None = None, seed: int | None = None, chunk_seconds: float = 0.5,
               context_seconds: float = CONTEXT_SECONDS, max_total_seconds: float = MAX_TIMELINE_SECONDS,
               **options) -> Iterator[timelines.MotionChunk]:  # fmt: skip
        """A motion (a prompt, or a timeline of segments) in chunks of new frames as it is generated; the
        chunks joined equal ``pipe(prompt, ...)`` or :meth:`compose` for the same seed."""
        if isinstance(prompt, Plan):
            plan = prompt
        elif isinstance(prompt, str):
            plan = self.plan(prompt, seconds, seed=seed, **options)
        else:
            plan = self.plan(timeline=prompt, seed=seed, context_seconds=context_seconds,
                             max_total_seconds=max_total_seconds, **options)  # fmt: skip
        return timelines.stream(self, plan, chunk_seconds)

    # the checked requests of a job, for callers that batch requests themselves (the server's queue)
    def requests(self, prompts, seconds=None, num_samples: int = 1, seed: int | None = None, **options):
        return motion_requests(self.limits, prompts, seconds, num_samples, seed, **options)

    def timeline(self, segments, seed=None, max_total_seconds=MAX_TIMELINE_SECONDS, context_seconds=CONTEXT_SECONDS,
                 **options) -> list[GenerationRequest]:  # fmt: skip
        return timeline_requests(self.limits, segments, seed, max_total_seconds, context_seconds, **options)

    def check(self, request: GenerationRequest, where: str = "request") -> GenerationRequest:
        return check_request(self.limits, request, where)

    # ---------------------------------------------------------------- the stages of a batch
    def generate(self, requests: Sequence[GenerationRequest], batch_size: int = 32, rewrite: bool = False,
                 rewriter: str | None = None) -> Iterator[Motion]:  # fmt: skip
        """Motions for ``requests``, yielded in request order as soon as each exists (bounded memory).

        Requests with the same sampling options are sampled together, ``batch_size`` rows per engine call;
        each row's tokens depend only on its own prompt, options and seed.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PromptError(f"batch_size must be a positive integer, got {batch_size!r}")
        requests = [self.check(r, where=f"request {i + 1}") for i, r in enumerate(requests)]  # check inputs
        requests = self.understand(requests, rewrite, rewriter)
        ready: dict[int, Motion] = {}
        next_index = 0
        drawn: dict[tuple, int] = {}  # (prompt, options, codes) -> the first sample that drew them
        for batch in _batches(requests, batch_size):
            chosen = [requests[i] for i in batch]
            features, mask = self.encode_text([r.conditioning_text for r in chosen])
            chosen = self.with_coverage(chosen, features, mask)
            codes = self.sample(chosen, features, mask)
            decoded = self.make_consistent(self.decode(codes))
            for index, request, ids, motion in zip(batch, chosen, codes, decoded):
                motion, extra = self.ground(motion)
                # A memorised model can be so sure of a prompt that other seeds draw the very same codes
                # ("a person jumps", 3 samples: two identical); say so instead of handing out a copy silently.
                first = drawn.setdefault((request.conditioning_text, request.sampling_key, tuple(ids)), index)
                if first != index:
                    extra["same_as_request"] = first
                ready[index] = self.motion(request, ids, motion, **extra)
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1

    def understand(self, requests: list[GenerationRequest], rewrite: bool, rewriter: str | None = None) -> list:
        """With ``rewrite``: each prompt in the training captions' wording (``meta["prompt_used"]``), its
        coverage and, when it had none, an estimated duration. Without, coverage comes later from the
        conditioning features (:meth:`with_coverage`), so no prompt is encoded twice."""
        if not rewrite:
            return list(requests)
        from motionmillion.pipeline.understanding import understood_requests

        return understood_requests(self, list(requests), rewrite=True, rewriter=rewriter)

    def encode_text(self, texts: list[str]):
        """Text features and mask (on the pipeline's device), every distinct text encoded once (the samples
        of one prompt share it); the rows are those of ``texts``."""
        import torch

        distinct = list(dict.fromkeys(texts))
        encoded = self.text_encoder.encode(distinct)
        rows = torch.tensor([distinct.index(text) for text in texts])
        return encoded.features[rows].to(self.device), encoded.mask[rows].to(self.device)

    def with_coverage(self, requests: list[GenerationRequest], features, mask) -> list[GenerationRequest]:
        """Coverage (and a warning) in the meta of every request that has none yet, from the text features
        that condition the generator. Rewritten requests keep what rewriting found."""
        from motionmillion.pipeline.understanding import understand
        from motionmillion.text import sentence_embedding

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

    def sample(self, requests: list[GenerationRequest], features, mask) -> list[list[int]]:
        """Motion codes of each request: one engine call (the requests share their sampling options)."""
        from motionmillion.generator.engine import sample_tokens

        budgets = [token_budget(self.limits, r.seconds) for r in requests]
        return sample_tokens(
            self.generator, features, mask, seeds=[r.seed for r in requests],
            min_tokens=[low for low, _, _ in budgets], max_tokens=[high for _, high, _ in budgets],
            options=requests[0].sampling_options(), target_tokens=[target for _, _, target in budgets],
        )  # fmt: skip

    def decode(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """De-normalised features exactly as the tokenizer decodes each row of codes; rows of one length
        share one tokenizer call."""
        import torch

        decoded: list[np.ndarray | None] = [None] * len(rows)
        by_length: dict[int, list[int]] = {}
        for i, codes in enumerate(rows):
            by_length.setdefault(len(codes), []).append(i)
        for indices in by_length.values():
            ids = torch.tensor([list(rows[i]) for i in indices], dtype=torch.long, device=self.device)
            with torch.inference_mode():
                normalized = self.tokenizer.decode(ids).float().cpu().numpy()
            for i, motion in zip(indices, normalized):
                decoded[i] = self.normalizer.denormalize(motion.astype(np.float64))
        return decoded

    def make_consistent(self, decoded: list[np.ndarray]) -> list[np.ndarray]:
        """One motion in every output: positions re-derived from the root and rotations on one rigid
        skeleton, so features, joints, BVH and video agree (float32); a batch's per-frame work done once."""
        return [f.astype(np.float32) for f in make_consistent_many(decoded, self.skeleton)]

    def ground(self, features: np.ndarray) -> tuple[np.ndarray, dict]:
        """The last guard: stretches where the motion hovers above the floor (lowest foot above 10 cm for
        more than 0.7 s) lowered onto it, and ``{"grounded": [...]}`` for the meta when any was (see
        :mod:`motionmillion.postprocess.grounding`)."""
        from motionmillion.postprocess.grounding import ground_hovering

        grounded, report = ground_hovering(features, self.fps)
        return grounded, ({"grounded": report} if report else {})

    def make_consistent_one(self, features: np.ndarray) -> np.ndarray:
        return make_consistent(features, self.skeleton).astype(np.float32)

    def motion(self, request: GenerationRequest, codes: list[int], features: np.ndarray, **meta_extra) -> Motion:
        """The Motion of one request (its meta carried over, the clean-up it asked for applied)."""
        meta = {**request.meta, "seed": request.seed, "tokens": len(codes), "requested_seconds": request.seconds,
                "guidance": request.guidance, "temperature": request.temperature, "top_k": request.top_k,
                "top_p": request.top_p, **meta_extra}  # fmt: skip
        if request.fix_feet:
            from motionmillion.postprocess import fix_foot_sliding

            features = fix_foot_sliding(features, fps=self.fps, source=request.prompt[:40])
            meta["fix_feet"] = True
        return Motion(features, fps=self.fps, text=request.prompt, meta=meta)

    def features(self, codes: Sequence[int]) -> np.ndarray:
        """The motion of one row of codes: decoded, then made consistent."""
        return self.make_consistent(self.decode([codes]))[0]

    def encode_motion(self, features: np.ndarray) -> list[int]:
        """Motion codes of de-normalised features (a multiple of frames_per_token frames), the first frame
        made canonical as in training clips (no world heading or position)."""
        import torch

        from motionmillion.motion.representation import HEADING, ROOT_VEL, VELOCITIES
        from motionmillion.motion.rotations import matrix_to_6d

        features = features.copy()
        features[0, ROOT_VEL], features[0, VELOCITIES] = 0.0, 0.0
        features[0, HEADING] = matrix_to_6d(np.eye(3))
        normalized = torch.as_tensor(self.normalizer.normalize(features), dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            return [int(c) for c in self.tokenizer.encode(normalized[None])[0].tolist()]


def _batches(requests: list[GenerationRequest], batch_size: int) -> Iterator[list[int]]:
    """Indices of requests grouped by sampling options (first-seen order), ``batch_size`` at most each,
    emitted in order of their earliest pending request so results can be yielded in order."""
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
