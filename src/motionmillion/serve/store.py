"""Generated motions on disk: a folder bounded in size, addressed by server-made ids only.

Each motion is written once as ``<id>.npy`` (the 272 features) and ``<id>.json`` (prompt, seed, options);
BVH, MP4, glTF and (where Blender is installed) FBX are made from them the first time somebody asks. When
the folder grows past its budget the least recently used motions are deleted whole. A path never comes from a request: ``path()`` accepts
only ids this server can have made (32 hex digits) and a fixed set of extensions.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from motionmillion.export.fbx import armature_motion, find_blender
from motionmillion.motion import Motion
from motionmillion.motion.kinematics import rotations_from_positions
from motionmillion.motion.representation import encode_272
from motionmillion.motion.skeleton import FPS, TEMPLATE_REST_JOINTS
from motionmillion.utils.io import atomic_path, atomic_save_npy, atomic_write_json

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
EAGER = ("npy", "json")  # written with the motion; the rest are derived on first request
# np.load parses a .npy header with ast.literal_eval, and Python 3.11's ast module is not thread-safe (two
# threads building syntax trees at once can fail with "AST constructor recursion depth mismatch"): requests
# that derive files read one motion at a time.
_READING = threading.Lock()
MEDIA_TYPES = {"npy": "application/octet-stream", "json": "application/json", "bvh": "text/plain; charset=utf-8",
               "mp4": "video/mp4", "glb": "model/gltf-binary", "fbx": "application/octet-stream"}  # fmt: skip


class MotionStore:
    def __init__(self, folder: Path | None, max_bytes: int):
        self._owned = folder is None  # a temporary folder is removed on close
        self.folder = Path(tempfile.mkdtemp(prefix="motionmillion-serve-")) if folder is None else Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # id -> bytes on disk, least recently used first
        self._render_locks: dict[tuple[str, str], threading.Lock] = {}
        # FBX only where its writer, Blender, is installed: a format listed is a format served.
        self.formats = EAGER + ("bvh", "mp4", "glb") + (("fbx",) if find_blender() else ())
        self._adopt_existing()

    def _adopt_existing(self) -> None:
        """Keep the motions a previous run left in a --cache-dir, oldest first."""
        found = [p for p in self.folder.glob("*.npy") if ID_PATTERN.fullmatch(p.stem) and p.with_suffix(".json").is_file()]
        for npy in sorted(found, key=lambda p: p.stat().st_mtime):
            self._sizes[npy.stem] = sum(f.stat().st_size for f in self.folder.glob(f"{npy.stem}.*"))
        self._evict()

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ writing
    def add(self, motion: Motion, info: dict) -> str:
        """Write a motion, return its new id."""
        motion_id = uuid.uuid4().hex
        atomic_save_npy(self.folder / f"{motion_id}.npy", motion.features.astype(np.float32))
        atomic_write_json(self.folder / f"{motion_id}.json", info)
        size = sum((self.folder / f"{motion_id}.{ext}").stat().st_size for ext in EAGER)
        with self._lock:
            self._sizes[motion_id] = size
        self._evict()
        return motion_id

    def _evict(self) -> None:
        with self._lock:
            doomed = []
            total = sum(self._sizes.values())
            while total > self.max_bytes and len(self._sizes) > 1:  # the newest motion always stays
                motion_id, size = self._sizes.popitem(last=False)
                doomed.append(motion_id)
                total -= size
        for motion_id in doomed:
            for file in self.folder.glob(f"{motion_id}.*"):
                file.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    def path(self, motion_id: str, fmt: str) -> Path | None:
        """The file for ``<id>.<fmt>``, made now if it is a derived format; None if unknown."""
        if not ID_PATTERN.fullmatch(motion_id) or fmt not in self.formats:
            return None
        with self._lock:
            if motion_id not in self._sizes:
                return None
            self._sizes.move_to_end(motion_id)
            lock = self._render_locks.setdefault((motion_id, fmt), threading.Lock())
        path = self.folder / f"{motion_id}.{fmt}"
        with lock:  # two requests for the same new MP4 render it once
            if not path.is_file():
                self._derive(motion_id, fmt, path)
        with self._lock:
            self._render_locks.pop((motion_id, fmt), None)
            if motion_id in self._sizes:
                self._sizes[motion_id] = sum(f.stat().st_size for f in self.folder.glob(f"{motion_id}.*"))
        self._evict()
        return path if path.is_file() else None

    def motion(self, motion_id: str) -> Motion:
        info = json.loads((self.folder / f"{motion_id}.json").read_text(encoding="utf-8"))
        with _READING:
            return Motion.load(self.folder / f"{motion_id}.npy", fps=info["fps"], text=info["prompt"])

    def _derive(self, motion_id: str, fmt: str, path: Path) -> None:
        motion = self.motion(motion_id)
        if fmt == "bvh":
            motion.to_bvh(path)
        elif fmt == "mp4":
            motion.render(path)
        elif fmt == "glb":
            with atomic_path(path) as tmp:
                motion.to_gltf(tmp)
        elif fmt == "fbx":
            motion.to_fbx(path)  # atomic already (Blender writes in a scratch folder)


def warm_up_writers() -> None:
    """Make every derived format once, for a still motion in a scratch folder: what the writers import on
    first use (matplotlib for MP4, pygltflib for glTF, ...) is imported now, on the calling thread, rather
    than on a request's thread (see serve.routes), and the first MP4 a user asks for is ~0.7 s sooner."""
    joints = np.repeat(TEMPLATE_REST_JOINTS[None], 8, axis=0)
    still = Motion(encode_272(joints, rotations_from_positions(joints)), fps=FPS, text="warm-up")
    scratch = MotionStore(None, max_bytes=2**30)
    try:
        motion_id = scratch.add(still, {"prompt": still.text, "fps": FPS})
        for fmt in scratch.formats:
            if fmt == "fbx":  # only this process's part: Blender is another program, started per file
                armature_motion(still)
            else:
                scratch.path(motion_id, fmt)
    finally:
        scratch.close()
