"""BVH in and out: parse any rig's file, its joints' transforms; write motions as BVH.

Reading::

    data = read_bvh("clip.bvh")                       # raw hierarchy + channel values
    positions, orientations = world_transforms(data)  # every joint, file units and axes

As the 22 SMPL joints at 30 fps, through a rig mapping: :mod:`motionmillion.motion.rig_mapping`
(``load_bvh_joints``, ``bvh_to_features``).

Writing (SMPL joint names, rotations straight from the representation, no IK)::

    write_bvh("out.bvh", features, fps=30.0)

BVH semantics used here (the common ones, as in Blender and MotionBuilder): a joint's local transform
is translate(offset) * rotate(channels), where position channels, when a joint has them, *replace*
the offset (Bandai files carry position channels on every joint that repeat the offsets), and the
rotation channels compose intrinsically in the order listed, e.g. "Zrotation Xrotation Yrotation"
means R = Rz Rx Ry acting on column vectors.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.motion.consistency import log_disagreement
from motionmillion.motion.kinematics import fit_offsets
from motionmillion.motion.representation import decode_joints, decode_rotations, validate_features
from motionmillion.motion.rotations import euler_to_matrix, matrix_to_euler
from motionmillion.motion.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS, children

_POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_ALL_CHANNELS = {c.lower(): c for c in _POSITION_CHANNELS + _ROTATION_CHANNELS}


# Frame rates a capture can have: 1,000 fps down to 1 fps. Outside them a header is broken, and resampling
# it to 30 fps would ask for absurd frame counts.
MIN_FRAME_TIME, MAX_FRAME_TIME = 1e-3, 1.0


class BVHError(ValueError):
    """A BVH file that cannot be read or mapped; the message starts with the file path."""


@dataclass
class BVHData:
    """A parsed BVH file: the joint tree (End Sites kept apart) and the raw channel values.

    ``names``/``parents``/``offsets``/``channels`` are per joint, in file order (depth first, so a
    parent always comes before its children). ``frames`` holds all channel values, joint after joint
    in file order, each joint's channels in its own order. ``end_sites`` are (parent joint index,
    offset) pairs.
    """

    path: Path
    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for roots
    offsets: np.ndarray  # (J, 3) in file units
    channels: list[tuple[str, ...]]
    frame_time: float
    frames: np.ndarray  # (T, total channels) float64
    end_sites: list[tuple[int, np.ndarray]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def fps(self) -> float:
        """Header frame rate, snapped to a whole number when the header rounds it (0.0333333 -> 30)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 1e-4 * fps else fps

    def channel_start(self) -> np.ndarray:
        """Column of each joint's first channel in ``frames``."""
        return np.concatenate([[0], np.cumsum([len(c) for c in self.channels])[:-1]]).astype(int)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise BVHError(f"{self.path}: no joint named {name!r}") from None


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with line numbers, for errors that point somewhere."""

    def __init__(self, path: Path, lines: list[str]):
        self.path = path
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def line(self) -> int:
        return self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 0

    def error(self, problem: str) -> BVHError:
        return BVHError(f"{self.path}: line {self.line()}: {problem}")

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise BVHError(f"{self.path}: unexpected end of the hierarchy while reading {what}")
        tok = self.items[self.pos][0]
        self.pos += 1
        return tok

    def expect(self, word: str) -> None:
        tok = self.next(repr(word))
        if tok.upper() != word.upper():
            self.pos -= 1
            raise self.error(f"expected {word!r}, found {tok!r}")

    def number(self, what: str) -> float:
        tok = self.next(what)
        try:
            value = float(tok)
        except ValueError:
            self.pos -= 1
            raise self.error(f"expected a number for {what}, found {tok!r}") from None
        if not math.isfinite(value):
            self.pos -= 1
            raise self.error(f"{what} is not finite ({tok})")
        return value


def _parse_joint(tokens: _Tokens, name: str, parent: int, out: dict) -> None:
    index = len(out["names"])
    if name in out["names"]:
        raise tokens.error(f"joint name {name!r} appears twice")
    out["names"].append(name)
    out["parents"].append(parent)
    tokens.expect("{")
    tokens.expect("OFFSET")
    out["offsets"].append([tokens.number(f"the OFFSET of {name}") for _ in range(3)])
    if (tokens.peek() or "").upper() != "CHANNELS":
        raise tokens.error(f"joint {name!r} has no CHANNELS line")
    tokens.next("CHANNELS")
    count_tok = tokens.next("the channel count")
    if not count_tok.isdigit():
        raise tokens.error(f"joint {name!r}: channel count must be an integer, found {count_tok!r}")
    channels = []
    for _ in range(int(count_tok)):
        tok = tokens.next(f"the channels of {name}")
        if tok.lower() not in _ALL_CHANNELS:
            raise tokens.error(f"joint {name!r}: unknown channel {tok!r} (missing channels?)")
        channels.append(_ALL_CHANNELS[tok.lower()])
    if len(set(channels)) != len(channels):
        raise tokens.error(f"joint {name!r} lists a channel twice: {' '.join(channels)}")
    out["channels"].append(tuple(channels))
    while True:
        tok = tokens.next(f"the children of {name}")
        upper = tok.upper()
        if upper == "}":
            return
        if upper == "JOINT":
            _parse_joint(tokens, tokens.next("a joint name"), index, out)
        elif upper == "END":
            tokens.expect("Site")
            tokens.expect("{")
            tokens.expect("OFFSET")
            offset = np.array([tokens.number(f"the End Site OFFSET under {name}") for _ in range(3)])
            tokens.expect("}")
            out["end_sites"].append((index, offset))
        else:
            tokens.pos -= 1
            raise tokens.error(f"expected JOINT, End Site or '}}' inside {name!r}, found {tok!r}")


def read_bvh(path: str | Path) -> BVHData:
    """Parse a BVH file of any rig; raise :class:`BVHError` ("<path>: <problem>") on anything wrong.

    Checks: hierarchy syntax, every joint has a CHANNELS line with known channel names, at least one
    frame, a positive frame time, exactly ``Frames`` lines of exactly the channel count of values,
    all values finite.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise BVHError(f"{path}: cannot read the file ({err.strerror or err})") from err
    lines = text.splitlines()
    motion_line = next((n for n, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_line is None:
        raise BVHError(f"{path}: no MOTION section (not a BVH file, or truncated)")

    tokens = _Tokens(path, lines[:motion_line])
    tokens.expect("HIERARCHY")
    tree: dict = {"names": [], "parents": [], "offsets": [], "channels": [], "end_sites": []}
    while tokens.peek() is not None:
        tokens.expect("ROOT")
        _parse_joint(tokens, tokens.next("the root name"), -1, tree)
    if not tree["names"]:
        raise BVHError(f"{path}: the hierarchy has no ROOT joint")

    # MOTION header: "Frames: N" and "Frame Time: dt" (tolerating extra spaces).
    header = lines[motion_line + 1 : motion_line + 3]
    frames_match = re.fullmatch(r"\s*Frames\s*:\s*(\S+)\s*", header[0]) if header else None
    time_match = re.fullmatch(r"\s*Frame\s+Time\s*:\s*(\S+)\s*", header[1]) if len(header) > 1 else None
    if frames_match is None or time_match is None:
        raise BVHError(f"{path}: line {motion_line + 2}: expected 'Frames: N' and 'Frame Time: dt' after MOTION")
    try:
        num_frames = int(frames_match.group(1))
        frame_time = float(time_match.group(1))
    except ValueError:
        raise BVHError(f"{path}: unreadable Frames/Frame Time values {header}") from None
    if num_frames <= 0:
        raise BVHError(f"{path}: the motion has zero frames")
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise BVHError(f"{path}: Frame Time must be a positive number, got {time_match.group(1)}")
    if not MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME:
        raise BVHError(f"{path}: Frame Time {time_match.group(1)} s is no capture rate (expected "
                       f"{MIN_FRAME_TIME:g}-{MAX_FRAME_TIME:g} s, i.e. 1-1000 fps); fix the file's header")  # fmt: skip

    num_channels = sum(len(c) for c in tree["channels"])
    data_lines = [line for line in lines[motion_line + 3 :] if line.strip()]
    if len(data_lines) != num_frames:
        raise BVHError(f"{path}: the header says {num_frames} frames but the file has {len(data_lines)} frame lines")
    try:
        values = np.array(" ".join(data_lines).split(), dtype=np.float64)
    except ValueError:
        bad_line = next(n for n, line in enumerate(data_lines) if not _all_numbers(line))
        raise BVHError(f"{path}: frame {bad_line}: a value is not a number") from None
    if values.size != num_frames * num_channels:
        counts = [len(line.split()) for line in data_lines]
        bad = next(n for n, c in enumerate(counts) if c != num_channels)
        raise BVHError(
            f"{path}: frame {bad} has {counts[bad]} values but the hierarchy declares {num_channels} channels"
        )
    frames = values.reshape(num_frames, num_channels)
    bad = ~np.isfinite(frames)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise BVHError(f"{path}: {bad.sum()} NaN/infinite values in {len(rows)} frame(s), first at frame {rows[0]}")
    return BVHData(
        path=path,
        names=tree["names"],
        parents=np.array(tree["parents"], dtype=int),
        offsets=np.array(tree["offsets"], dtype=np.float64).reshape(-1, 3),
        channels=tree["channels"],
        frame_time=frame_time,
        frames=frames,
        end_sites=tree["end_sites"],
    )


def _all_numbers(line: str) -> bool:
    try:
        [float(v) for v in line.split()]
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# Local transforms, resampling, forward kinematics
# ------------------------------------------------------------------------------------------------


def local_transforms(data: BVHData, joints: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local rotations (T, J, 3, 3) and translations (T, J, 3) of the given joints (default all).

    Rotations compose the rotation channels intrinsically in file order; translations are the offset
    with any position channels replacing the corresponding components.
    """
    joints = list(range(len(data.names))) if joints is None else joints
    starts = data.channel_start()
    num_frames = data.num_frames
    rotations = np.tile(np.eye(3), (num_frames, len(joints), 1, 1))
    translations = np.tile(data.offsets[joints], (num_frames, 1, 1))
    for k, j in enumerate(joints):
        chans = data.channels[j]
        cols = {c: starts[j] + i for i, c in enumerate(chans)}
        for axis, c in enumerate(_POSITION_CHANNELS):
            if c in cols:
                translations[:, k, axis] = data.frames[:, cols[c]]
        rot = [c for c in chans if c in _ROTATION_CHANNELS]
        if rot:
            order = "".join(c[0] for c in rot)
            angles = data.frames[:, [cols[c] for c in rot]]
            # Fewer than three rotation channels: pad with zero angles about the missing axes.
            missing = [a for a in "XYZ" if a not in order]
            order += "".join(missing)
            angles = np.concatenate([angles, np.zeros((num_frames, len(missing)))], axis=1)
            rotations[:, k] = euler_to_matrix(angles, order)
    return rotations, translations


def resample_local(
    rotations: np.ndarray, translations: np.ndarray, source_fps: float, target_fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Resample local rotations (Slerp) and translations (linear) to ``target_fps``.

    Done on the local state before forward kinematics, so every resampled pose is a pose of the same
    rigid skeleton. The new frames sample [0, (T-1)/source_fps] every 1/target_fps seconds.
    """
    from scipy.spatial.transform import Rotation, Slerp

    num_frames, num_joints = rotations.shape[:2]
    times = np.arange(num_frames) / source_fps
    duration = times[-1]
    new_times = np.arange(int(math.floor(duration * target_fps + 1e-6)) + 1) / target_fps
    new_times = np.minimum(new_times, duration)
    if num_frames == 1:
        return rotations.copy(), translations.copy()
    new_rot = np.empty((len(new_times), num_joints, 3, 3))
    for j in range(num_joints):
        slerp = Slerp(times, Rotation.from_matrix(rotations[:, j]))
        new_rot[:, j] = slerp(new_times).as_matrix()
    new_trans = np.empty((len(new_times), num_joints, 3))
    for j in range(num_joints):
        for axis in range(3):
            new_trans[:, j, axis] = np.interp(new_times, times, translations[:, j, axis])
    return new_rot, new_trans


def forward_transforms(
    parents: np.ndarray, rotations: np.ndarray, translations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World positions and orientations (T, J, 3) / (T, J, 3, 3) of a tree given in parent-first order."""
    num_frames, num_joints = rotations.shape[:2]
    positions = np.empty((num_frames, num_joints, 3))
    orientations = np.empty_like(rotations)
    for j in range(num_joints):
        p = parents[j]
        if p < 0:
            positions[:, j] = translations[:, j]
            orientations[:, j] = rotations[:, j]
        else:
            positions[:, j] = positions[:, p] + np.einsum("tij,tj->ti", orientations[:, p], translations[:, j])
            orientations[:, j] = orientations[:, p] @ rotations[:, j]
    return positions, orientations


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

# Written channel order: R = Rz Ry Rx (intrinsic), the same for every joint.
WRITE_ROTATION_ORDER = "ZYX"
_END_SITE_LENGTH = {"head": 0.10, "left_foot": 0.04, "right_foot": 0.04, "left_wrist": 0.08, "right_wrist": 0.08}


def write_bvh(path: str | Path, features: np.ndarray, fps: float = FPS, unit_scale: float = 1.0) -> Path:
    """Write a 272 motion as a BVH file with the 22 SMPL joint names (atomic write).

    The skeleton is the least-squares rigid fit of the motion (:func:`fit_offsets`); the root has
    OFFSET 0 0 0 and absolute position channels (the world pelvis position, so the pelvis offset is
    not added twice as in the reference exporter); every joint's rotation is taken from the
    representation (no IK) and written as "Zrotation Yrotation Xrotation". ``unit_scale`` is file
    units per metre (100 writes centimetres). Other rigs: :mod:`motionmillion.export.retarget`.
    """
    features = validate_features(features, path)
    log_disagreement(features, path)
    rotations, root_positions = decode_rotations(features)
    offsets = fit_offsets(decode_joints(features), rotations)
    end_sites = {}
    for j in range(NUM_JOINTS):
        if not children(j):  # End Site continues the joint's own bone direction, for viewers
            direction = offsets[j] / max(np.linalg.norm(offsets[j]), 1e-9)
            end_sites[j] = direction * _END_SITE_LENGTH.get(JOINT_NAMES[j], 0.05)
    skeleton = Skeleton(list(JOINT_NAMES), np.array(PARENTS), offsets, end_sites)
    return write_skeleton_bvh(path, skeleton, rotations, root_positions, fps=fps, unit_scale=unit_scale)


@dataclass
class Skeleton:
    """A joint tree for writing: names, parents (parent before child), rest offsets and End Sites."""

    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3), from the parent in the rest pose; the root's is its rest position
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> End Site offset
    translated: int = 0  # the joint whose position channels carry the motion's translation

    def children(self, joint: int) -> list[int]:
        return [j for j, p in enumerate(self.parents) if p == joint]

    def depth_first(self, joint: int = 0) -> list[int]:
        order = [joint]
        for child in self.children(joint):
            order += self.depth_first(child)
        return order


def write_skeleton_bvh(
    path: str | Path,
    skeleton: Skeleton,
    rotations: np.ndarray,
    translations: np.ndarray,
    fps: float = FPS,
    unit_scale: float = 1.0,
) -> Path:
    """Write any skeleton's motion as BVH (atomic): local ``rotations`` (T, J, 3, 3), ``translations``
    (T, 3) of ``skeleton.translated`` in its parent's frame, lengths in metres times ``unit_scale``.

    The file root, and the translated joint if it is another one, get position channels (a static
    root writes its offset every frame); all rotations are written as "Zrotation Yrotation Xrotation".
    """
    from motionmillion.utils.io import atomic_write_text

    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    if not (math.isfinite(unit_scale) and unit_scale > 0):
        raise ValueError(f"{path}: unit_scale (file units per metre) must be positive, got {unit_scale}")
    num_frames = len(rotations)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        euler = matrix_to_euler(rotations, WRITE_ROTATION_ORDER)  # (T, J, 3) degrees
    rot_channels = " ".join(f"{axis}rotation" for axis in WRITE_ROTATION_ORDER)
    positioned = {0, skeleton.translated}
    offsets = skeleton.offsets * unit_scale
    out = ["HIERARCHY"]

    def write_joint(j: int, depth: int) -> None:
        pad = "  " * depth
        out.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {skeleton.names[j]}")
        out.append(f"{pad}{{")
        offset = np.zeros(3) if j == skeleton.translated else offsets[j]
        out.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if j in positioned:
            out.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            out.append(f"{pad}  CHANNELS 3 {rot_channels}")
        for child in skeleton.children(j):
            write_joint(child, depth + 1)
        if j in skeleton.end_sites:
            end = skeleton.end_sites[j] * unit_scale
            out.append(f"{pad}  End Site")
            out.append(f"{pad}  {{")
            out.append(f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}")
            out.append(f"{pad}  }}")
        out.append(f"{pad}}}")

    write_joint(0, 0)
    columns = []
    for j in skeleton.depth_first():  # channel values in the order joints appear in the hierarchy
        if j == skeleton.translated:
            columns.append(translations * unit_scale)
        elif j in positioned:
            columns.append(np.broadcast_to(offsets[j], (num_frames, 3)))
        columns.append(euler[:, j])
    values = np.concatenate(columns, axis=1)
    out.append("MOTION")
    out.append(f"Frames: {num_frames}")
    out.append(f"Frame Time: {1.0 / fps:.8f}")
    out.extend(" ".join(f"{v:.6f}" for v in row) for row in values)
    atomic_write_text(path, "\n".join(out) + "\n")
    return Path(path)


def world_transforms(data: BVHData) -> tuple[np.ndarray, np.ndarray]:
    """World positions (T, J, 3) and orientations (T, J, 3, 3) of every joint, in file units and frames."""
    rotations, translations = local_transforms(data)
    return forward_transforms(data.parents, rotations, translations)


__all__ = [
    "BVHData", "BVHError", "Skeleton", "forward_transforms", "local_transforms", "read_bvh", "resample_local",
    "world_transforms", "write_bvh", "write_skeleton_bvh",
]  # fmt: skip
