"""An output folder that never holds a mixed set of files from different runs.

``OutputFolder(path, overwrite)`` is used as a context manager by commands that write many files:
- another run writing into the same folder at the same time is refused (an exclusive ``flock`` on
  ``.motionmillion.lock``, released by the kernel even if the process dies);
- a folder that already holds files is refused unless ``overwrite``; with ``overwrite`` the files the
  previous run listed in its manifest (``.motionmillion-run``) are removed first, so no stale file of an
  older run (e.g. an MP4 beside new .npy files) survives; other files are never touched;
- the manifest lists every file written by this run, updated as they are written.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from motionmillion.utils.io import atomic_write_json

LOCK_NAME = ".motionmillion.lock"
MANIFEST_NAME = ".motionmillion-run"  # JSON; no .json suffix, so globbing `*.json` lists only the motions


class OutputFolder:
    def __init__(self, path: str | Path, overwrite: bool = False, option: str = "--out") -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.option = option
        self.written: list[str] = []
        self._lock = None

    def check(self) -> None:
        """Usage problems that need no lock: the path is a file, or holds files and overwrite is off."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.option} {self.path}: is a file, not a folder")
        if not self.overwrite and self._existing():
            raise ValueError(
                f"{self.option} {self.path}: the folder already holds files; choose another folder or pass "
                "--overwrite (files of the previous run are then removed first)"
            )

    def _existing(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return [p for p in self.path.iterdir() if p.name != LOCK_NAME]

    def __enter__(self) -> OutputFolder:
        self.check()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / LOCK_NAME, "w")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"{self.option} {self.path}: another run is writing into this folder right now") from None
        self.check()  # again under the lock: a concurrent run may have written meanwhile
        if self.overwrite:
            self._remove_previous_run()
        return self

    def _remove_previous_run(self) -> None:
        manifest = self.path / MANIFEST_NAME
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            previous = []
        for name in previous:
            target = (self.path / name).resolve()
            if target.parent == self.path.resolve() and target.is_file():  # never outside the folder
                target.unlink()
        if manifest.is_file():
            manifest.unlink()

    def add(self, *paths: str | Path) -> None:
        """Record files written by this run (the manifest is rewritten atomically)."""
        self.written.extend(Path(p).name for p in paths)
        atomic_write_json(self.path / MANIFEST_NAME, {"files": self.written})

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            # The (empty, hidden) lock file stays: unlinking it would let two later runs lock different inodes.
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
