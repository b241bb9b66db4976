"""Directed motion: keyframes, a root path, in-betweening and edits (issue 25).

    m = pipe("a person walks forward", seconds=5, seed=0, keyframes=[Keyframe(time=2.0, joints=pose)],
             path=[(0.0, 0.0, 0.0), (2.5, 0.0, 2.0), (5.0, 2.0, 3.0)])[0]
    m = pipe.inbetween(before, after, seconds=2.0, prompt="a person walks", seed=0)
    m = pipe.edit(motion, "a person waves the right hand", start=1.5, end=3.0, seed=0)
    m = pipe.edit(motion, "a person waves the right hand", body="upper", seed=0)

The checks (times inside the motion, joint names, reachability) are in
:mod:`motionmillion.pipeline.requests` (:class:`Keyframe`, :class:`Control`); this module carries a checked
plan out in three parts, each measured in ``bench/control.py``:

1. the model: a gap is sampled by the one decode engine after the codes of the motion before it (as a
   continuation) and decoded together with the first codes of the motion after it, so the decoder itself
   shapes the last frames towards what follows;
2. candidates: ``CANDIDATES`` motions are drawn in one batched engine call (the request's seed first, then
   seeds derived from it, :func:`~motionmillion.pipeline.timeline.candidate_seeds`) and the one whose
   decoded joints land nearest the goal (the pose after the gap, the keyframes, the path) is kept;
3. an exact fit on the rigid skeleton: the root is turned and shifted along the way (spread over the gap or
   between keyframes, never a jump), joint rotations are blended towards the goal pose around it, two-bone IK
   places end effectors (wrists, ankles, feet), and a path is followed by re-steering the root with the legs'
   IK keeping planted feet planted. Frames that must stay (``before``, ``after``, the frames outside an
   edit) are copied, never re-derived.

What was achieved is reported in ``Motion.meta`` ("keyframe_errors", "path_error", "generated",
"candidate_error_m") and a miss beyond the tolerances below is a "warning" there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from motionmillion.motion import Motion
from motionmillion.motion.consistency import fit_skeleton
from motionmillion.motion.kinematics import align_rotations_to_positions, fit_offsets, forward_kinematics, local_to_global
from motionmillion.motion.representation import HEADING, ROOT_VEL, VELOCITIES, decode_joints
from motionmillion.motion.representation import decode_rotations, encode_272
from motionmillion.motion.rotations import axis_angle_to_matrix, heading_angle, matrix_to_axis_angle, yaw_matrix
from motionmillion.motion.skeleton import JOINT_NAMES, LEG_JOINTS
from motionmillion.pipeline.requests import Control, GenerationRequest, Plan, Target, context_tokens, token_budget
from motionmillion.pipeline.timeline import candidate_seeds, placed_frame

CANDIDATES = 8  # motions drawn per constrained request, in one engine call (bench/control.py)
BLEND_SECONDS = 0.5  # a pose correction fades over this long on each side of a keyframe or a join
PATH_SMOOTH_SECONDS = 0.15  # the pelvis keeps its own sway faster than this around the path
KEYFRAME_TOLERANCE_M = 0.05  # a keyframe joint further than this from its target is reported as a warning
PATH_TOLERANCE_M = 0.25
# Two-bone IK chains of the end effectors a partial keyframe may place (root, middle, end).
LIMBS = {20: (16, 18, 20), 21: (17, 19, 21), 7: (1, 4, 7), 8: (2, 5, 8), 10: (1, 4, 7), 11: (2, 5, 8)}
LOWER_BODY = (0, *LEG_JOINTS)  # the root and the legs: what an upper-body edit keeps
UPPER_BODY = tuple(j for j in range(len(JOINT_NAMES)) if j not in LOWER_BODY)


def run(pipe, plan: Plan) -> Iterator[Motion]:
    """The motions of a "constrained", "inbetween" or "edit" plan, one per request."""
    control = plan.control
    for request in pipe.understand(list(plan.requests), plan.rewrite, plan.rewriter):
        if plan.kind == "constrained":
            yield constrained(pipe, request, control)
        elif plan.kind == "inbetween":
            yield inbetween(pipe, request, control, plan.context_seconds)
        elif control.body is not None:
            yield body_edit(pipe, request, control)
        else:
            yield range_edit(pipe, request, control, plan.context_seconds)


# ---------------------------------------------------------------- candidates
def candidates(pipe, request: GenerationRequest, context: list[int], tokens: int | None, count: int) -> list[list[int]]:
    """``count`` code rows for one request (its seed first), after ``context``, in one engine call;
    ``tokens``: exactly this many new codes (None: the request's duration)."""
    import torch

    from motionmillion.generator.engine import sample_tokens

    if tokens is None:
        low, high, target = token_budget(pipe.limits, request.seconds)
    else:
        low = high = tokens
        target = tokens if pipe.limits.length_condition else None
    features, mask = pipe.encode_text([request.conditioning_text] * count)
    return sample_tokens(pipe.generator, features, mask, seeds=candidate_seeds(request.seed, count),
                         min_tokens=[low] * count, max_tokens=[high] * count, options=request.sampling_options(),
                         context=torch.tensor([context] * count, dtype=torch.long) if context else None,
                         target_tokens=[target] * count)  # fmt: skip


def world(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotations (T, 22, 3, 3), root positions (T, 3)) in the world: joint 0 global, the others local."""
    return decode_rotations(np.asarray(features, dtype=np.float64))


def scaled(rotations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each rotation to the power ``weights`` (same leading shape): 0 = identity, 1 = itself."""
    return axis_angle_to_matrix(matrix_to_axis_angle(rotations) * np.asarray(weights)[..., None])


def turned(rotations: np.ndarray, root: np.ndarray, angle, pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The motion turned about +Y by ``angle`` (radians, one or per frame) around ``pivot`` (x, z)."""
    turn = yaw_matrix(np.broadcast_to(np.asarray(angle, dtype=np.float64), (len(root),)))
    rotations = rotations.copy()
    rotations[:, 0] = turn @ rotations[:, 0]
    root = root.copy()
    offset = root - np.array([pivot[0], 0.0, pivot[1]])
    root = np.einsum("tij,tj->ti", turn, offset) + np.array([pivot[0], 0.0, pivot[1]])
    return rotations, root


def wrap(angle):
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def resample(rotations: np.ndarray, root: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` frames evenly spanning the given ones (first and last kept): rotations interpolated along
    the shortest arc, root positions linearly. A gap that is not a whole number of tokens is drawn a few
    frames longer and played this much faster."""
    if count == len(root):
        return rotations, root
    where = np.linspace(0.0, len(root) - 1, count)
    low = np.minimum(np.floor(where).astype(int), len(root) - 2)
    frac = where - low
    step = np.swapaxes(rotations[low], -1, -2) @ rotations[low + 1]
    out = rotations[low] @ scaled(step, np.broadcast_to(frac[:, None], step.shape[:2]))
    return out, root[low] + frac[:, None] * (root[low + 1] - root[low])


def rows(rotations: np.ndarray, root: np.ndarray, offsets: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
    """272 rows of a motion placed in the world (row 0 says where it stands: ``encode_272(canonical=False)``)."""
    if joints is None:
        joints = forward_kinematics(rotations, root, offsets)
    return encode_272(joints, rotations, canonical=False)


def join(pieces: list[np.ndarray | None]) -> np.ndarray:
    """``pieces`` ([kept before], new rows, [kept after]) as one motion. The new rows were encoded with the
    last kept frame before them as row 0 (dropped here) and the first kept frame after them as their last
    row, whose frame-to-frame slots (root velocity, heading change, joint velocities) replace those of the
    kept row; every other value of the kept frames is theirs, bit for bit."""
    before, new, after = pieces
    out = [before] if before is not None else []
    body = new[1:] if before is not None else new
    if after is not None:
        first = after[0].copy()
        for block in (ROOT_VEL, HEADING, VELOCITIES):
            first[block] = body[-1, block]
        out += [body[:-1], first[None], after[1:]]
    else:
        out.append(body)
    return np.concatenate(out)


# ---------------------------------------------------------------- in-betweening and range edits
@dataclasses.dataclass
class Gap:
    """A gap to fill between two placed motions (either may be missing: an edit at the start or end)."""

    before: np.ndarray | None  # (Tb, 272) features, as they stand in the world
    after: np.ndarray | None  # (Ta, 272), placed (row 0 holds where it stands)
    frames: int


def fill_gap(pipe, request: GenerationRequest, gap: Gap, context_seconds: float) -> tuple[np.ndarray, list[int], dict]:
    """The whole motion (before, the new frames, after), the chosen codes and what was achieved."""
    fpt, reach = pipe.frames_per_token, pipe.decoder_reach
    tokens = -(-gap.frames // fpt)
    context: list[int] = []
    if gap.before is not None:
        window = min(context_tokens(pipe.limits, context_seconds), len(gap.before) // fpt)
        context = pipe.encode_motion(gap.before[len(gap.before) - window * fpt :].astype(np.float64)) if window else []
    follow = []
    if gap.after is not None and len(gap.after) >= fpt:
        follow = pipe.encode_motion(gap.after[: min(reach, len(gap.after) // fpt) * fpt].astype(np.float64))
    both = gap.before is not None and gap.after is not None
    drawn = candidates(pipe, request, context, tokens, CANDIDATES if both else 1)
    decoded = pipe.make_consistent(pipe.decode([context + codes + follow for codes in drawn]))
    start = len(context) * fpt  # the first new frame in the decoded rows
    end = min(start + tokens * fpt, len(decoded[0]) - 1)  # where the decoded motion after the gap begins
    b_rot, b_root = world(gap.before) if gap.before is not None else (None, None)
    a_rot, a_root = world(gap.after) if gap.after is not None else (None, None)
    a_joints = decode_joints(gap.after) if gap.after is not None else None

    best = None
    for k, features in enumerate(decoded):
        rot, root = world(features)
        if b_rot is not None:  # stand where the motion before ends (its last frame = the decoded context's)
            anchor, to_rot, to_root = start - 1, b_rot[-1], b_root[-1]
        else:
            anchor, to_rot, to_root = end, a_rot[0], a_root[0]
        angle = heading_angle(to_rot[0]) - heading_angle(rot[anchor, 0])
        rot, root = turned(rot, root, angle, root[anchor, [0, 2]])
        root[:, [0, 2]] += to_root[[0, 2]] - root[anchor, [0, 2]]
        error = 0.0
        if both:  # the decoded joints where the motion after begins, against its first frame
            predicted = forward_kinematics(rot[end : end + 1], root[end : end + 1], pipe_offsets(pipe, features))[0]
            error = float(np.linalg.norm(predicted - a_joints[0], axis=-1).mean())
        if best is None or error < best[0]:
            best = (error, k, rot, root)
    error, chosen, rot, root = best
    first = start - 1 if gap.before is not None else start
    last = end if gap.after is not None else len(rot) - 1
    count = gap.frames + (gap.before is not None) + (gap.after is not None)
    rot, root = resample(rot[first : last + 1], root[first : last + 1], count)
    rot, root = fit_ends(rot, root, (b_rot[-1], b_root[-1]) if b_rot is not None else None,
                         (a_rot[0], a_root[0]) if a_rot is not None else None, round(BLEND_SECONDS * pipe.fps))  # fmt: skip
    joints = blended_skeleton_joints(rot, root, gap)
    features = join([gap.before, rows(rot, root, None, joints), gap.after])
    meta = {"candidate_seed": candidate_seeds(request.seed, chosen + 1)[-1], "candidate_error_m": round(error, 4)}
    return features.astype(np.float32), drawn[chosen], meta


def pipe_offsets(pipe, features: np.ndarray) -> np.ndarray:
    """The rigid skeleton a pipeline's motions are posed on (its training data's, else the motion's own)."""
    return np.asarray(pipe.skeleton, dtype=np.float64) if pipe.skeleton is not None else fit_skeleton(features)


def fit_ends(rot, root, start, end, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames with their first (when ``start``) and last (when ``end``) equal to the given poses
    ((rotations (22, 3, 3), root (3,))); the grid's first/last frames are those anchors. The root is turned
    and shifted by amounts that grow smoothly over the whole gap (no jump, no foot dragged at one frame);
    joint rotations and the root's height approach each end's pose over ``blend`` frames."""
    rot, root = rot.copy(), root.copy()
    n = len(root)
    ramp = smoothstep(np.arange(n) / max(n - 1, 1))
    if start is not None and end is not None:
        # Turn the path of the pelvis so the heading at the end matches, then shift it the rest of the way.
        angle = wrap(heading_angle(end[0][0]) - heading_angle(rot[-1, 0]))
        steps = np.diff(root, axis=0)
        turn = yaw_matrix(angle * ramp[1:])
        steps = np.einsum("tij,tj->ti", turn, steps)
        root = np.concatenate([root[:1], root[:1] + np.cumsum(steps, axis=0)])
        rot[:, 0] = yaw_matrix(angle * ramp) @ rot[:, 0]
        root[:, [0, 2]] += ramp[:, None] * (end[1][[0, 2]] - root[-1, [0, 2]])
    for pose, frames in ((start, np.arange(n)), (end, np.arange(n)[::-1])):
        if pose is None:
            continue
        anchor = frames[0]
        weight = 1.0 - smoothstep(np.abs(np.arange(n) - anchor) / max(blend, 1))
        correction = pose[0] @ np.swapaxes(rot[anchor], -1, -2)  # (22, 3, 3) per joint
        rot = scaled(np.broadcast_to(correction, rot.shape), np.broadcast_to(weight[:, None], rot.shape[:2])) @ rot
        root[:, 1] += weight * (pose[1][1] - root[anchor, 1])
        if end is None or start is None:  # one end only: the alignment placed it, x/z agree already
            root[:, [0, 2]] += weight[:, None] * (pose[1][[0, 2]] - root[anchor, [0, 2]])
    return rot, root


def blended_skeleton_joints(rot, root, gap: Gap) -> np.ndarray:
    """Forward kinematics across the gap on a body that changes from the motion before's skeleton to the motion
    after's (two captures of different people join without a jump in bone lengths)."""
    skeletons = [fit_skeleton(m) for m in (gap.before, gap.after) if m is not None]
    first = forward_kinematics(rot, root, skeletons[0])
    if len(skeletons) == 1:
        return first
    u = smoothstep(np.arange(len(root)) / max(len(root) - 1, 1))[:, None, None]
    return (1 - u) * first + u * forward_kinematics(rot, root, skeletons[1])


def placed(features: np.ndarray, start: int) -> np.ndarray:
    """Frames ``start:`` of a motion as a motion standing where they stand (row 0 holds the placement)."""
    out = features[start:].astype(np.float64).copy()
    if start > 0:
        out[0] = placed_frame(features[: start + 1].astype(np.float64))
    return out


def inbetween(pipe, request: GenerationRequest, control: Control, context_seconds: float) -> Motion:
    before, after = control.before, control.after
    features, codes, meta = fill_gap(pipe, request, Gap(before.features, after.features, control.gap_frames),
                                     context_seconds)  # fmt: skip
    start = len(before.features)
    return pipe.motion(request, codes, features, generated=[start, start + control.gap_frames], **meta)


def range_edit(pipe, request: GenerationRequest, control: Control, context_seconds: float) -> Motion:
    source = control.source.features
    before = source[: control.start_frame] if control.start_frame > 0 else None
    after = placed(source, control.end_frame) if control.end_frame < len(source) else None
    features, codes, meta = fill_gap(pipe, request, Gap(before, after, control.gap_frames), context_seconds)
    return pipe.motion(request, codes, features, generated=[control.start_frame, control.end_frame], **meta)


# ---------------------------------------------------------------- body-half edits
def body_edit(pipe, request: GenerationRequest, control: Control) -> Motion:
    """The source with one half of the body (``control.body``) taken from a motion generated for the prompt,
    in frames [start_frame, end_frame) with smooth joins; the root and the other half are the source's."""
    source = control.source.features.astype(np.float64)
    codes = candidates(pipe, request, [], None, 1)[0]
    new = pipe.features(codes)
    n = len(source)
    new = np.concatenate([new, np.repeat(new[-1:], max(0, n - len(new)), axis=0)])[:n]
    s_rot, s_root = world(source)
    n_rot, _ = world(new)
    s_joints = decode_joints(source)
    changed = list(UPPER_BODY if control.body == "upper" else LEG_JOINTS)
    weight = range_weights(n, control.start_frame, control.end_frame, round(BLEND_SECONDS * pipe.fps))
    rot = s_rot.copy()
    step = np.swapaxes(s_rot[:, changed], -1, -2) @ n_rot[:, changed]
    rot[:, changed] = s_rot[:, changed] @ scaled(step, np.broadcast_to(weight[:, None], step.shape[:2]))
    joints = forward_kinematics(rot, s_root, fit_skeleton(source))
    kept = [j for j in range(len(JOINT_NAMES)) if j not in changed]
    joints[:, kept] = s_joints[:, kept]  # the kept half is the source's own positions
    features = rows(rot, s_root, None, joints)
    outside = weight == 0
    features[outside] = source[outside]  # frames outside the range: the source's rows
    return pipe.motion(request, codes, features.astype(np.float32), generated=[control.start_frame, control.end_frame],
                       body=control.body)  # fmt: skip


def range_weights(n: int, start: int, end: int, blend: int) -> np.ndarray:
    """1 inside [start, end) easing to 0 at its ends over ``blend`` frames inside it (0 outside); a range
    at the motion's start or end does not ease there."""
    t = np.arange(n)
    weight = np.zeros(n)
    inside = (t >= start) & (t < end)
    blend = max(1, min(blend, (end - start) // 2))
    rise = smoothstep((t - start + 1) / blend) if start > 0 else np.ones(n)
    fall = smoothstep((end - t) / blend) if end < n else np.ones(n)
    weight[inside] = np.minimum(rise, fall)[inside]
    return weight


# ---------------------------------------------------------------- keyframes and paths
def constrained(pipe, request: GenerationRequest, control: Control) -> Motion:
    """A motion for the prompt that reaches every keyframe and follows the path (see the module docstring)."""
    drawn = candidates(pipe, request, [], None, CANDIDATES)
    decoded = pipe.make_consistent(pipe.decode(drawn))
    scores = [goal_error(decode_joints(f), control, pipe.fps) for f in decoded]
    chosen = int(np.argmin(scores))
    features = decoded[chosen].astype(np.float64)
    offsets = pipe_offsets(pipe, features)
    rot, root = world(features)
    if control.path is not None:
        rot, root = follow_path(rot, root, control.path, pipe.fps)
        features = keep_feet(rows(rot, root, offsets), pipe.fps)
        rot, root = world(features)
    full = [t for t in control.targets if t.full_body]
    if full:  # the keyframes' body: bone lengths of the posed targets
        aligned = [align_rotations_to_positions(rot[t.frame][None], t.positions[None], offsets)[0] for t in full]
        offsets = fit_offsets(np.stack([t.positions for t in full]), np.stack(aligned))
    if control.targets:
        rot, root = reach_keyframes(rot, root, offsets, control.targets, round(BLEND_SECONDS * pipe.fps), control.path is None)
    features = rows(rot, root, offsets)
    meta = report(decode_joints(features), control, pipe.fps)
    meta.update(candidate_seed=candidate_seeds(request.seed, chosen + 1)[-1], candidate_error_m=round(float(scores[chosen]), 4))
    return pipe.motion(request, drawn[chosen], features.astype(np.float32), **meta)


def path_at(path: np.ndarray, frames: np.ndarray, fps: float) -> np.ndarray:
    """The path's (x, z) at each frame, linear between its points and held before/after them."""
    t = frames / fps
    return np.stack([np.interp(t, path[:, 0], path[:, 1]), np.interp(t, path[:, 0], path[:, 2])], axis=-1)


def path_frames(path: np.ndarray, n: int, fps: float) -> np.ndarray:
    frames = np.arange(n)
    return frames[(frames / fps >= path[0, 0] - 1e-9) & (frames / fps <= path[-1, 0] + 1e-9)]


def goal_error(joints: np.ndarray, control: Control, fps: float) -> float:
    """How far a candidate's decoded joints are from the goal: the keyframes' mean joint error plus the path's
    mean pelvis error (metres)."""
    error = 0.0
    for target in control.targets:
        frame = min(target.frame, len(joints) - 1)
        error += float(np.linalg.norm(joints[frame, list(target.joints)] - target.positions, axis=-1).mean())
    if control.path is not None:
        frames = path_frames(control.path, len(joints), fps)
        error += float(np.linalg.norm(joints[frames, 0][:, [0, 2]] - path_at(control.path, frames, fps), axis=-1).mean())
    return error


def follow_path(rot: np.ndarray, root: np.ndarray, path: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The pelvis moved onto the path (keeping its own sway faster than PATH_SMOOTH_SECONDS) and the body turned
    to face where it now travels, by as much as its own travel direction was turned."""
    from scipy.ndimage import gaussian_filter1d

    n = len(root)
    target = path_at(path, np.arange(n), fps)
    shift = gaussian_filter1d(target - root[:, [0, 2]], PATH_SMOOTH_SECONDS * fps, axis=0, mode="nearest")
    new_root = root.copy()
    new_root[:, [0, 2]] += shift

    def direction(xz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        velocity = gaussian_filter1d(np.gradient(xz, axis=0) * fps, 0.25 * fps, axis=0, mode="nearest")
        return np.arctan2(velocity[:, 0], velocity[:, 1]), np.linalg.norm(velocity, axis=-1)

    own, own_speed = direction(root[:, [0, 2]])
    new, new_speed = direction(new_root[:, [0, 2]])
    # Turn only while both move (a standing body has no travel direction); hold the last turn otherwise.
    confident = np.clip(np.minimum(own_speed, new_speed) / 0.4, 0.0, 1.0)
    turn = np.unwrap(wrap(new - own))
    held = np.zeros(n)
    for t in range(n):
        previous = held[t - 1] if t else 0.0
        held[t] = previous + confident[t] * wrap(turn[t] - previous)
    held = gaussian_filter1d(held, 0.2 * fps, mode="nearest")
    rot = rot.copy()
    rot[:, 0] = yaw_matrix(held) @ rot[:, 0]
    return rot, new_root


def keep_feet(features: np.ndarray, fps: float) -> np.ndarray:
    """Planted feet stay planted after the root was moved: the legs' IK, without moving the root back."""
    import warnings

    from motionmillion.postprocess import fix_foot_sliding
    from motionmillion.postprocess.sliding import DEFAULT_SLIDING

    with warnings.catch_warnings():  # no contact (a jump) leaves the motion as it is, which is right here
        warnings.simplefilter("ignore")
        return fix_foot_sliding(features, fps, dataclasses.replace(DEFAULT_SLIDING, glide_seconds=0.0), "path")


def reach_keyframes(rot, root, offsets, targets: tuple[Target, ...], blend: int, move_root: bool):
    """Root turned/shifted and joints blended so that every keyframe is met at its frame.

    The pelvis's x/z and heading change by amounts interpolated smoothly between keyframes (from nothing at
    the start, held after the last), so the body travels to each key instead of jumping there; its height
    and every joint rotation approach the key pose over ``blend`` frames on each side. End effectors of a
    partial keyframe are then placed by two-bone IK, blended the same way. With a path (``move_root``
    False) the pelvis only moves around each key.
    """
    from motionmillion.postprocess.ik import solve_two_bone

    rot, root = rot.copy(), root.copy()
    n = len(root)
    frames = np.arange(n)

    def bump(frame: int, neighbours: list[int]) -> np.ndarray:
        width = min([blend, *[abs(frame - f) for f in neighbours if f != frame]])
        return 1.0 - smoothstep(np.abs(frames - frame) / max(width, 1))

    keys = [min(t.frame, n - 1) for t in targets]
    # 1. heading and x/z of the pelvis (full-body keys give both; a pelvis-only key its position)
    pose_rot = {}
    for t, f in zip(targets, keys):
        if t.full_body:
            pose_rot[f] = align_rotations_to_positions(rot[f][None], t.positions[None], offsets)[0]
    angles = [(f, wrap(heading_angle(pose_rot[f][0]) - heading_angle(rot[f, 0]))) for f in keys if f in pose_rot]
    if angles:
        curve = ease_between(angles, n) if move_root else sum(a * bump(f, keys) for f, a in angles)
        steps = np.einsum("tij,tj->ti", yaw_matrix(curve[1:]), np.diff(root, axis=0))
        root = np.concatenate([root[:1], root[:1] + np.cumsum(steps, axis=0)])
        rot[:, 0] = yaw_matrix(curve) @ rot[:, 0]
    shifts = [(f, t.positions[t.joints.index(0), [0, 2]] - root[f, [0, 2]]) for t, f in zip(targets, keys) if 0 in t.joints]
    if shifts:
        if move_root:
            root[:, [0, 2]] += np.stack([ease_between([(f, s[i]) for f, s in shifts], n) for i in range(2)], axis=-1)
        else:
            root[:, [0, 2]] += sum(s[None] * bump(f, keys)[:, None] for f, s in shifts)
    # 2. pelvis height and whole-body rotations around each full-body key
    for t, f in zip(targets, keys):
        weight = bump(f, keys)
        if 0 in t.joints:
            root[:, 1] += weight * (t.positions[t.joints.index(0), 1] - root[f, 1])
        if t.full_body:
            pose = align_rotations_to_positions(rot[f][None], t.positions[None], offsets)[0]
            correction = pose @ np.swapaxes(rot[f], -1, -2)
            rot = scaled(np.broadcast_to(correction, rot.shape), np.broadcast_to(weight[:, None], rot.shape[:2])) @ rot
    # 3. end effectors of partial keys
    for t, f in zip(targets, keys):
        if t.full_body:
            continue
        weight = bump(f, keys)
        for joint, position in zip(t.joints, t.positions):
            if joint not in LIMBS:
                continue
            joints = forward_kinematics(rot[f : f + 1], root[f : f + 1], offsets)
            global_rot = local_to_global(rot[f : f + 1])
            chain = LIMBS[joint]
            goal = position - (joints[0, joint] - joints[0, chain[2]]) if joint != chain[2] else position
            solved, _ = solve_two_bone(global_rot, joints, chain, goal[None])
            merged = {**{j: global_rot[:, j] for j in range(len(JOINT_NAMES))}, **solved}
            for j in chain[:2]:
                parent = merged[_parent(j)]
                local = np.swapaxes(parent, -1, -2) @ merged[j]
                correction = local[0] @ rot[f, j].T
                rot[:, j] = scaled(np.broadcast_to(correction, (n, 3, 3)), weight) @ rot[:, j]
            # the end joint keeps its world orientation at the key (a foot stays flat, a hand keeps its angle)
            end = chain[2]
            local_end = np.swapaxes(local_to_global(rot[f : f + 1])[0, _parent(end)], -1, -2) @ global_rot[0, end]
            correction = local_end @ rot[f, end].T
            rot[:, end] = scaled(np.broadcast_to(correction, (n, 3, 3)), weight) @ rot[:, end]
    return rot, root


def _parent(joint: int) -> int:
    from motionmillion.motion.skeleton import PARENTS

    return PARENTS[joint]


def ease_between(points: list[tuple[int, float]], n: int) -> np.ndarray:
    """A curve over ``n`` frames through ``points`` ((frame, value), sorted), 0 at frame 0, eased between points
    (zero slope at each) and held after the last."""
    out = np.zeros(n)
    previous_frame, previous_value = 0, 0.0
    for frame, value in points:
        span = max(frame - previous_frame, 1)
        inside = np.arange(previous_frame, n)
        out[inside] = previous_value + smoothstep((inside - previous_frame) / span) * (value - previous_value)
        previous_frame, previous_value = frame, value
    return out


def report(joints: np.ndarray, control: Control, fps: float) -> dict:
    """What was achieved: each keyframe's joint errors and the path's pelvis error, and a warning for a miss."""
    meta: dict = {}
    misses = []
    if control.targets:
        errors = []
        for t in control.targets:
            frame = min(t.frame, len(joints) - 1)
            distance = np.linalg.norm(joints[frame, list(t.joints)] - t.positions, axis=-1)
            entry = {"time": t.time, "frame": frame, "mean_m": round(float(distance.mean()), 4),
                     "max_m": round(float(distance.max()), 4),
                     "worst_joint": JOINT_NAMES[t.joints[int(np.argmax(distance))]]}  # fmt: skip
            if t.full_body:
                relative = (joints[frame] - joints[frame, 0]) - (t.positions - t.positions[0])
                entry["root_relative_mean_m"] = round(float(np.linalg.norm(relative, axis=-1).mean()), 4)
                entry["pelvis_m"] = round(float(distance[0]), 4)
            errors.append(entry)
            if distance.max() > KEYFRAME_TOLERANCE_M:
                misses.append(f"keyframe at {t.time:g} s: {entry['worst_joint']} {100 * distance.max():.0f} cm off")
        meta["keyframe_errors"] = errors
    if control.path is not None:
        frames = path_frames(control.path, len(joints), fps)
        distance = np.linalg.norm(joints[frames, 0][:, [0, 2]] - path_at(control.path, frames, fps), axis=-1)
        meta["path_error"] = {"mean_m": round(float(distance.mean()), 4), "max_m": round(float(distance.max()), 4)}
        if distance.max() > PATH_TOLERANCE_M:
            misses.append(f"the pelvis leaves the path by up to {100 * distance.max():.0f} cm")
    if misses:
        meta["warning"] = "constraints missed: " + "; ".join(misses)
    return meta
