"""``Motion``: one motion as de-normalised 272 features plus fps and text; everything else derived."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.motion.consistency import rigid_pose
from motionmillion.motion.representation import InvalidMotionError, decode_joints, decode_rotations, validate_features
from motionmillion.motion.skeleton import FPS


class MotionFileError(InvalidMotionError):
    """A motion file that cannot be read (missing, wrong suffix or shape, NaN frames); names the file."""


@dataclass(frozen=True, eq=False)
class Motion:
    features: np.ndarray  # (T, 272), de-normalised
    fps: float = FPS
    text: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", validate_features(self.features, self.text or "Motion"))

    @classmethod
    def load(
        cls,
        path: str | Path,
        fps: float | None = None,
        text: str = "",
        rig: str | None = None,
        source_fps: float | None = None,
    ) -> Motion:
        """Read any motion file the project knows; the one reader behind every command.

        - ``.npy`` of shape (T, 272): de-normalised features, at ``fps`` (default 30);
        - ``.npy`` of shape (T, 22, 3): joint positions in metres, Y up; rotations are recovered from
          the positions and the motion keeps its world placement;
        - ``.bvh`` of any known rig (``rig`` names it, default: detect), resampled to 30 fps
          (``source_fps`` overrides a wrong header).

        Raises a ``ValueError`` subclass whose message starts with the file: :class:`MotionFileError`,
        :class:`~motionmillion.motion.representation.InvalidMotionError` (shape, NaN frames listed by
        number) or :class:`~motionmillion.motion.bvh.BVHError`.
        """
        from motionmillion.motion.kinematics import rotations_from_positions
        from motionmillion.motion.representation import FEATURE_DIM, describe_frames, encode_272
        from motionmillion.motion.skeleton import NUM_JOINTS

        path = Path(path)
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise MotionFileError(f"{path}: fps must be positive, got {fps}")
        if not path.is_file():
            raise MotionFileError(f"{path}: no such file")
        source = {"source": str(path)}  # lets later errors (e.g. an export's) name the file
        suffix = path.suffix.lower()
        if suffix == ".bvh":
            from motionmillion.motion.rig_mapping import bvh_to_features

            # Through the features, so BVH input lands in the same canonical frame as everything else.
            return cls(bvh_to_features(path, rig=rig, source_fps=source_fps), fps=FPS, text=text, meta=source)
        if suffix != ".npy":
            raise MotionFileError(f"{path}: unsupported motion file (use .npy with (T, 272) or (T, 22, 3), or .bvh)")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise MotionFileError(f"{path}: not a readable .npy file ({err})") from err
        fps = FPS if fps is None else float(fps)
        if array.ndim == 2 and array.shape[1] == FEATURE_DIM:
            return cls(validate_features(array.astype(np.float64), path), fps=fps, text=text, meta=source)
        if array.ndim == 3 and array.shape[1:] == (NUM_JOINTS, 3):
            if len(array) == 0:
                raise MotionFileError(f"{path}: the motion has zero frames")
            bad = ~np.isfinite(array)
            if bad.any():
                raise MotionFileError(f"{path}: NaN/infinite joint positions in {describe_frames(np.nonzero(bad)[0])}")
            joints = array.astype(np.float64)
            features = encode_272(joints, rotations_from_positions(joints), canonical=False)
            return cls(features, fps=fps, text=text, meta=source)
        raise MotionFileError(
            f"{path}: expected (T, {FEATURE_DIM}) features or (T, {NUM_JOINTS}, 3) joints, got shape {array.shape}"
        )

    @property
    def num_frames(self) -> int:
        return len(self.features)

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    @functools.cached_property
    def joints(self) -> np.ndarray:
        """World joint positions (T, 22, 3) in metres."""
        return decode_joints(self.features)

    @functools.cached_property
    def rotations(self) -> np.ndarray:
        """(T, 22, 3, 3): root global orientation, then local rotations."""
        return decode_rotations(self.features)[0]

    @property
    def root_positions(self) -> np.ndarray:
        return decode_rotations(self.features)[1]

    def rigid_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(local rotations, root positions, offsets, joints) on the motion's own rigid skeleton, as every
        export plays it (:func:`motionmillion.motion.consistency.rigid_pose`); errors name the file or text."""
        return rigid_pose(self.features, self.meta.get("source") or self.text or "motion")

    def to_bvh(self, path: str | Path, rig: str = "smpl") -> Path:
        """BVH on the motion's own SMPL skeleton (metres), or retargeted onto ``rig`` (``mixamo``,
        ``bandai``, ``cmu``: :mod:`motionmillion.export.retarget`)."""
        if rig != "smpl":
            from motionmillion.export.retarget import write_rig_bvh

            return write_rig_bvh(self, path, rig=rig)
        from motionmillion.motion.bvh import write_bvh

        write_bvh(path, self.features, fps=self.fps)
        return Path(path)

    def to_gltf(self, path: str | Path) -> Path:
        """Binary glTF (.glb): a skinned mannequin playing the motion (:mod:`motionmillion.export.gltf`)."""
        from motionmillion.export.gltf import write_gltf

        return write_gltf(self, path)

    def to_fbx(self, path: str | Path, rig: str = "smpl") -> Path:
        """FBX (.fbx) written by Blender run headless: the skinned mannequin on ``rig``'s skeleton (``smpl``,
        ``mixamo``, ``bandai``, ``cmu``) in its rest pose, one take, centimetres (:mod:`motionmillion.export.fbx`)."""
        from motionmillion.export.fbx import write_fbx

        return write_fbx(self, path, rig=rig)

    def render(self, path: str | Path, **kwargs) -> Path:
        from motionmillion.render import render_motion

        render_motion(self.joints, path, fps=self.fps, title=self.text, **kwargs)
        return Path(path)

    def save(
        self,
        folder: str | Path,
        stem: str | None = None,
        video: bool = True,
        bvh: bool = True,
        gltf: bool = False,
        overwrite: bool = False,
        fbx: bool = False,
    ) -> dict[str, Path]:
        """Write ``<stem>.npy`` (272 features), ``<stem>_joints.npy``, ``<stem>.bvh``, ``<stem>.mp4``, a JSON
        and, with ``gltf=True``, ``<stem>.glb``, with ``fbx=True``, ``<stem>.fbx``. ``stem`` defaults to the text as a file name ("motion"
        without text). Files of that stem that exist are refused unless ``overwrite`` (then every old
        file of the stem goes, so no stale MP4 or BVH of another motion stays beside the new ones)."""
        from motionmillion.utils.io import atomic_save_npy, atomic_write_json

        folder = Path(folder)
        stem = stem or file_stem(self.text)
        old = [folder / f"{stem}{suffix}" for suffix in STEM_SUFFIXES if (folder / f"{stem}{suffix}").exists()]
        if old and not overwrite:
            raise FileExistsError(f"{old[0]}: exists; choose another folder or stem, or pass overwrite=True")
        for path in old:
            path.unlink()
        written = {"features": folder / f"{stem}.npy", "joints": folder / f"{stem}_joints.npy"}
        atomic_save_npy(written["features"], self.features.astype(np.float32))
        atomic_save_npy(written["joints"], self.joints.astype(np.float32))
        if bvh:
            written["bvh"] = self.to_bvh(folder / f"{stem}.bvh")
        if gltf:
            written["gltf"] = self.to_gltf(folder / f"{stem}.glb")
        if fbx:
            written["fbx"] = self.to_fbx(folder / f"{stem}.fbx")
        if video:
            written["video"] = self.render(folder / f"{stem}.mp4")
        written["json"] = folder / f"{stem}.json"
        info = {"text": self.text, "fps": self.fps, "frames": self.num_frames, "seconds": round(self.seconds, 3)}
        atomic_write_json(written["json"], {**info, **self.meta})
        return written


STEM_SUFFIXES = (".npy", "_joints.npy", ".bvh", ".glb", ".fbx", ".mp4", ".json")  # what Motion.save writes


def file_stem(text: str, limit: int = 40) -> str:
    """A file name from a motion's text: lower-case words joined by "_" ("motion" when there are none)."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_") or "motion"
