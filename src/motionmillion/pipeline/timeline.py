"""Motion after motion: timelines, continuation and streaming, with smooth seams.

Each timeline segment is sampled with its own text by the same decode engine, conditioned on the last
``context_seconds`` of motion codes before it, and the whole code sequence is decoded at once, so a seam
is decoded like any other frame. A segment that starts after motion is the smoothest of
``SEAM_CANDIDATES`` starts (judged on decoded joints), drawn from seeds derived from its own: the same seed
gives the same motion. A continuation is a one-segment timeline after the codes of the given motion's
last second, cross-faded from its frames. Streaming sends frames as soon as no later code can change them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from motionmillion.motion import Motion
from motionmillion.motion.kinematics import joint_steps
from motionmillion.motion.representation import decode_joints, decode_rotations
from motionmillion.pipeline.requests import GenerationRequest, Plan, PromptError, check_room, context_tokens, token_budget

# At a seam, this many candidate starts are drawn (the segment's seed first, then derived seeds) and the
# one whose first SEAM_TOKENS decode into the smallest joint step across the seam, against the steps
# around it, is continued (bench/timeline.py; the model card has the trials: 8 x 12 tokens kept 100% of
# 60 timelines within 1.5x of the inner steps at the cost of 6 x 16).
SEAM_CANDIDATES = 8
SEAM_TOKENS = 12
SEAM_SEED_STRIDE = 0x9E3779B1  # candidate k draws with (seed + k * stride) mod 2**63


@dataclass(frozen=True)
class MotionChunk:
    """New frames of a streamed motion: frames ``start_frame .. start_frame + len(features)``."""

    features: np.ndarray  # (n, 272) de-normalised
    joints: np.ndarray  # (n, 22, 3) world positions, continuing the frames sent before
    start_frame: int


def compose(pipe, plan: Plan) -> Motion:
    """One motion from a timeline plan; ``meta["segments"]`` holds each segment's prompt, seed and frame
    range ``[start_frame, end_frame)``."""
    requests = _understood(pipe, plan)
    pairs = list(code_stream(pipe, requests, [], plan.context_seconds))
    codes = [code for _, code in pairs]
    features, grounded = pipe.ground(pipe.features(codes))
    meta = {"seed": requests[0].seed, "segments": segment_ranges(pipe, requests, [owner for owner, _ in pairs]),
            **grounded}  # fmt: skip
    if plan.fix_feet:
        from motionmillion.postprocess import fix_foot_sliding

        features = fix_foot_sliding(features, fps=pipe.fps, source="timeline")
        meta["fix_feet"] = True
    return Motion(features, fps=pipe.fps, text=plan.prompt, meta=meta)


def continue_motion(pipe, plan: Plan) -> Iterator[Motion]:
    """Each request of a "continue" plan after its prefix: the prefix, then the new frames.

    The prefix's last ``context_seconds`` are encoded to codes and the new motion is sampled after them;
    the decoded context cross-fades from the prefix's own frames into the decoded ones, so the motion
    passes from the given frames to the generated ones without a jump.
    """
    prefix, fpt = plan.prefix, pipe.frames_per_token
    window = min(context_tokens(pipe.limits, plan.context_seconds), len(prefix.features) // fpt)
    tail = prefix.features[len(prefix.features) - window * fpt :].astype(np.float64)
    context = pipe.encode_motion(tail)
    start = len(prefix.features)
    for request in _understood(pipe, plan):
        pairs = list(code_stream(pipe, [request], context, plan.context_seconds))
        codes = [code for _, code in pairs]
        generated, grounded = pipe.ground(pipe.features(context + codes))  # the given frames are left as they are
        blend = np.linspace(1.0, 0.0, window * fpt)[:, None]
        joined = blend * tail + (1 - blend) * generated[: window * fpt]
        features = np.concatenate([prefix.features[: start - window * fpt], joined,
                                   generated[window * fpt :]]).astype(np.float32)  # fmt: skip
        ranges = segment_ranges(pipe, [request], [owner for owner, _ in pairs], offset=start)
        yield pipe.motion(request, codes, features, prefix_frames=start, segments=ranges, **grounded)


def stream(pipe, plan: Plan, chunk_seconds: float = 0.5) -> Iterator[MotionChunk]:
    """A "motions" plan of one request, or a timeline plan, in chunks as it is generated.

    The decoder is not causal (a frame depends on the codes up to ``decoder_reach`` tokens after it), so a
    frame is sent once those codes exist, decoded in a window that includes everything it depends on: the
    chunks joined equal the whole motion for the same seed up to float rounding. Frames are sent before
    the motion ends, so the hovering guard (:meth:`MotionPipeline.ground`) cannot run on a stream.
    """
    if plan.kind == "continue" or (plan.kind == "motions" and len(plan.requests) != 1):
        raise PromptError("streaming makes one motion: one prompt with one sample, or a timeline")
    requests = _understood(pipe, plan)
    if plan.fix_feet or any(r.fix_feet for r in requests):
        raise PromptError("fix_feet cleans a whole motion at once and cannot stream; use compose() or __call__")
    step = max(1, round(chunk_seconds * pipe.fps / pipe.frames_per_token))
    reach, fpt = pipe.decoder_reach, pipe.frames_per_token
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
        window = pipe.decode([codes[first:]])[0]
        decoded.append(window[(sent - first) * fpt : (ready - first) * fpt])
        raw = np.concatenate(decoded)
        # Consistency is per frame apart from velocities: one frame before the new ones is enough, placed
        # where the whole motion has it (heading and position are integrated from frame 0).
        start = sent * fpt
        before = max(0, start - 1)
        window = raw[before:].copy()
        if before:
            window[0] = placed_frame(raw[: before + 1])
        consistent.append(pipe.make_consistent_one(window)[start - before :])
        decoded[:] = [raw]
        features = np.concatenate(consistent)
        consistent[:] = [features]
        sent = ready
        return MotionChunk(features[start:], decode_joints(features)[start:], start)

    for _, code in code_stream(pipe, requests, [], plan.context_seconds):
        codes.append(code)
        piece = chunk(final=False)
        if piece is not None:
            yield piece
    piece = chunk(final=True)
    if piece is not None:
        yield piece


def _understood(pipe, plan: Plan) -> list[GenerationRequest]:
    requests = list(plan.requests)
    return pipe.understand(requests, plan.rewrite, plan.rewriter) if plan.rewrite else requests


def code_stream(pipe, requests: list[GenerationRequest], context: list[int], context_seconds: float) -> Iterator[tuple[int, int]]:
    """Yield (segment index, motion code) as each is drawn. Segment i is conditioned on the last context
    tokens of everything before it (``context`` first: a motion being continued)."""
    import torch

    from motionmillion.generator.engine import engine_for

    window = context_tokens(pipe.limits, context_seconds)
    history = list(context)
    end_id = pipe.generator.config.end_id
    features, mask = pipe.encode_text([r.conditioning_text for r in requests])  # one call: a 60 s timeline has 12
    budgets = segment_budgets(pipe, requests)
    engine = engine_for(pipe.generator)
    for index, request in enumerate(requests):
        low, high, target = budgets[index]
        before = history[len(history) - min(len(history), window) :]
        check_room(pipe.limits, request, len(before), f"segment {index + 1}")
        high = min(high, pipe.max_tokens - len(before))  # a motion that ends itself stays in the budget
        low = min(low, high)

        def draw(seed: int) -> Iterator[int]:
            steps = engine.stream(features[index : index + 1], mask[index : index + 1], [seed], [low], [high],
                                  request.sampling_options(), context=torch.tensor([before], dtype=torch.long),
                                  target_tokens=[target])  # fmt: skip
            for ids in steps:
                if int(ids[0]) >= end_id:
                    return
                yield int(ids[0])

        codes, head = draw(request.seed), []
        if history and SEAM_CANDIDATES > 1:
            codes, head = smoothest_start(pipe, history, draw, request.seed)
        for code in itertools.chain(head, codes):
            history.append(code)
            yield index, code


def smoothest_start(pipe, history: list[int], draw, seed: int) -> tuple[Iterator[int], list[int]]:
    """(rest of its codes, first codes) of the candidate start whose first SEAM_TOKENS codes, decoded after
    the motion so far, make the smallest largest joint step within 5 frames of the seam."""
    fpt, reach = pipe.frames_per_token, pipe.decoder_reach
    before = history[len(history) - min(len(history), reach) :]
    best = None
    for candidate_seed in candidate_seeds(seed, SEAM_CANDIDATES):
        codes = draw(candidate_seed)
        head = list(itertools.islice(codes, SEAM_TOKENS))
        steps = joint_steps(decode_joints(pipe.decode([before + head])[0]))  # (frames - 1,)
        seam = len(before) * fpt
        near = np.zeros(len(steps), dtype=bool)
        near[max(0, seam - 5) : seam + 5] = True
        # The step across the seam against the steps elsewhere in the window: a jump, not a fast movement.
        score = steps[near].max() / max(steps[~near].max(), 1e-6) if (~near).any() else steps[near].max()
        if best is None or score < best[0]:
            best = (score, candidate_seed, codes, head)
    return best[2], best[3]


def candidate_seeds(seed: int, count: int) -> list[int]:
    """The seeds of ``count`` candidates of one request: its own seed first, then seeds derived from it (the
    same seed gives the same candidates, so the same choice)."""
    return [(seed + k * SEAM_SEED_STRIDE) % 2**63 for k in range(count)]


def segment_budgets(pipe, requests: list[GenerationRequest]) -> list[tuple[int, int, int | None]]:
    """Token budgets of consecutive segments. With the length condition each segment ends at the token
    nearest its cumulative end time: every segment is within one token of its duration and the whole
    timeline within half a token (rounding each alone would add up: 12 x 5 s gave 60.8 s)."""
    limits = pipe.limits
    budgets = [token_budget(limits, r.seconds) for r in requests]
    if not limits.length_condition or any(r.seconds is None for r in requests):
        return budgets
    ends = [limits.tokens(t) for t in np.cumsum([r.seconds for r in requests])]
    counts = [min(limits.max_tokens, max(1, end - start)) for start, end in zip([0, *ends], ends)]
    return [(count, count, count) for count in counts]


def segment_ranges(pipe, requests: list[GenerationRequest], owners: list[int], offset: int = 0) -> list[dict]:
    """Each segment's prompt, seed and frame range [start_frame, end_frame) from the owner of every code."""
    ranges, start = [], offset
    for i, request in enumerate(requests):
        end = start + owners.count(i) * pipe.frames_per_token
        ranges.append({"prompt": request.prompt, "seconds": request.seconds, "seed": request.seed,
                       "start_frame": start, "end_frame": end})  # fmt: skip
        start = end
    return ranges


def placed_frame(features: np.ndarray) -> np.ndarray:
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
