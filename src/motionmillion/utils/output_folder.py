"""An output folder that never holds a mixed set of files from different runs.

``OutputFolder(path, overwrite)`` is used as a context manager by commands that write many files:
- another run writing into the same folder at the same time is refused (an exclusive ``flock`` on
  ``.motionmillion.lock``, released by the kernel even if the process dies);
- a folder that already holds files is refused unless ``overwrite``; with ``overwrite`` the files the
  previous run listed in its manifest (``.motionmillion-run``) are removed first, so no stale file of an
  older run (e.g. an MP4 beside new .npy files) survives; other files are never touched;
- the manifest lists every file written by this run, appended to as they are written (a run of 100,000
  motions must not rewrite a growing list after each one).
"""

from __future__ import annotations

import fcntl
import json
import re
from pathlib import Path

LOCK_NAME = ".motionmillion.lock"
MANIFEST_NAME = ".motionmillion-run"  # JSON; no .json suffix, so globbing `*.json` lists only the motions
_MANIFEST_END = "\n]}\n"


class OutputFolder:
    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.option = "--out"  # how the commands that use it name the folder in messages
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
            text = manifest.read_text(encoding="utf-8")
        except OSError:
            text = ""
        try:
            previous = json.loads(text)["files"]
        except (ValueError, KeyError, TypeError):  # cut short by a kill mid-append: every complete name counts
            previous = [json.loads(quoted) for quoted in re.findall(r'^("(?:[^"\\]|\\.)*"),?$', text, flags=re.M)]
        for name in previous:
            target = (self.path / name).resolve()
            if target.parent == self.path.resolve() and target.is_file():  # never outside the folder
                target.unlink()
        if manifest.is_file():
            manifest.unlink()

    def add(self, *paths: str | Path) -> None:
        """Record files written by this run: appended in place, so the manifest stays valid JSON
        (``{"files": [...]}``) after each call and the cost does not grow with the run."""
        lines = ",\n".join(json.dumps(Path(p).name) for p in paths)
        manifest = self.path / MANIFEST_NAME
        if not manifest.is_file():
            manifest.write_text('{"files": [\n' + lines + _MANIFEST_END, encoding="utf-8")
            return
        with open(manifest, "r+", encoding="utf-8") as f:
            f.seek(0, 2)
            f.seek(f.tell() - len(_MANIFEST_END))
            f.write(",\n" + lines + _MANIFEST_END)

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            # The (empty, hidden) lock file stays: unlinking it would let two later runs lock different inodes.
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
