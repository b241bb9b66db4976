"""``Motion``: one motion as de-normalised 272 features plus fps and text; everything else derived."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.motion.representation import decode_joints, decode_rotations, validate_features
from motionmillion.motion.skeleton import FPS


@dataclass(frozen=True, eq=False)
class Motion:
    features: np.ndarray  # (T, 272), de-normalised
    fps: float = FPS
    text: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", validate_features(self.features, self.text or "Motion"))

    @classmethod
    def load(cls, path: str | Path, fps: float = FPS, text: str = "") -> Motion:
        """Load a (T, 272) ``.npy`` file."""
        from motionmillion.motion.representation import InvalidMotionError

        path = Path(path)
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InvalidMotionError(f"{path}: not a readable .npy file ({err})") from err
        validate_features(features, path)
        return cls(features, fps=fps, text=text)

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

    def to_bvh(self, path: str | Path) -> Path:
        from motionmillion.motion.bvh import write_bvh

        write_bvh(path, self.features, fps=self.fps)
        return Path(path)

    def render(self, path: str | Path, **kwargs) -> Path:
        from motionmillion.render import render_motion

        render_motion(self.joints, path, fps=self.fps, title=self.text, **kwargs)
        return Path(path)

    def save(self, folder: str | Path, stem: str = "motion", video: bool = True, bvh: bool = True) -> dict[str, Path]:
        """Write ``<stem>.npy`` (272 features), ``<stem>_joints.npy``, ``<stem>.bvh``, ``<stem>.mp4`` and a JSON."""
        from motionmillion.utils.io import atomic_save_npy, atomic_write_json

        folder = Path(folder)
        written = {"features": folder / f"{stem}.npy", "joints": folder / f"{stem}_joints.npy"}
        atomic_save_npy(written["features"], self.features.astype(np.float32))
        atomic_save_npy(written["joints"], self.joints.astype(np.float32))
        if bvh:
            written["bvh"] = self.to_bvh(folder / f"{stem}.bvh")
        if video:
            written["video"] = self.render(folder / f"{stem}.mp4")
        written["json"] = folder / f"{stem}.json"
        info = {"text": self.text, "fps": self.fps, "frames": self.num_frames, "seconds": round(self.seconds, 3)}
        atomic_write_json(written["json"], {**info, **self.meta})
        return written
