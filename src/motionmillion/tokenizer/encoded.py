"""The encoded-tokens folder (contract 5): its writer (used by ``motionmillion tokenizer encode``) and reader.

    ENCODED/codes.npy     int32, every clip's token ids concatenated
    ENCODED/index.npz     names (str), starts, lengths (int64, in tokens)
    ENCODED/texts.json    {name: [captions]}
    ENCODED/splits.json   {"train": [names], "val": [...], "test": [...]}
    ENCODED/config.json   {"codebook_size", "frames_per_token", "tokenizer", "dataset", ...}
    ENCODED/strata.json   optional {name: stratum} (content/style of labelled sources) for balanced sampling
    ENCODED/skipped.json  clips that could not be encoded, with the reason
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FILES = ("config.json", "codes.npy", "index.npz", "texts.json", "splits.json")


def write_encoded(
    folder: str | Path,
    names: list[str],
    codes: np.ndarray,
    lengths: np.ndarray,
    texts: dict[str, list[str]],
    splits: dict[str, list[str]],
    config: dict,
    strata: dict[str, str] | None = None,
    skipped: list[str] | None = None,
) -> Path:
    """Write every file of an encoded-tokens folder atomically; ``config.json`` last (it marks a complete folder)."""
    from motionmillion.utils.io import atomic_path, atomic_save_npy, atomic_write_json

    folder = Path(folder)
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
    atomic_save_npy(folder / "codes.npy", np.asarray(codes, dtype=np.int32))
    with atomic_path(folder / "index.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.array(names, dtype=str), starts=starts, lengths=lengths)
    atomic_write_json(folder / "texts.json", texts)
    atomic_write_json(folder / "splits.json", splits)
    if strata:
        atomic_write_json(folder / "strata.json", strata)
    atomic_write_json(folder / "skipped.json", list(skipped or []))
    atomic_write_json(folder / "config.json", {**config, "clips": len(names), "tokens": int(len(codes)),
                                               "skipped": len(skipped or [])})  # fmt: skip
    return folder


class EncodedTokensError(ValueError):
    """An encoded-tokens folder that is incomplete or inconsistent."""


class EncodedTokens:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        for name in FILES:
            if not (self.folder / name).is_file():
                raise EncodedTokensError(f"{self.folder / name}: missing (run `motionmillion tokenizer encode`)")
        try:
            self.config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
            self._texts: dict[str, list[str]] = json.loads((self.folder / "texts.json").read_text(encoding="utf-8"))
            self._splits: dict[str, list[str]] = json.loads((self.folder / "splits.json").read_text(encoding="utf-8"))
            self._codes = np.load(self.folder / "codes.npy", mmap_mode="r")
            with np.load(self.folder / "index.npz") as index:
                self.names: list[str] = [str(n) for n in index["names"]]
                self.starts = index["starts"].astype(np.int64)
                self.lengths = index["lengths"].astype(np.int64)
        except (OSError, ValueError, KeyError) as error:
            raise EncodedTokensError(f"{self.folder}: unreadable encoded tokens ({error})") from error
        self.codebook_size = int(self.config["codebook_size"])
        self.frames_per_token = int(self.config["frames_per_token"])
        n = len(self.names)
        if len(self.starts) != n or len(self.lengths) != n:
            raise EncodedTokensError(f"{self.folder / 'index.npz'}: names, starts and lengths differ in length")
        if n and (self.starts + self.lengths).max() > len(self._codes):
            raise EncodedTokensError(f"{self.folder / 'codes.npy'}: shorter than index.npz says (truncated?)")
        if len(self._codes) and (self._codes.min() < 0 or self._codes.max() >= self.codebook_size):
            raise EncodedTokensError(f"{self.folder / 'codes.npy'}: token ids outside [0, {self.codebook_size})")
        self._position = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        try:
            return self._position[name]
        except KeyError:
            raise KeyError(f"{self.folder}: no clip named {name!r}") from None

    def codes(self, i: int | str) -> np.ndarray:
        """Token ids (int32) of clip i (or of the clip with that name)."""
        if isinstance(i, str):
            i = self.index_of(i)
        start = self.starts[i]
        return np.asarray(self._codes[start : start + self.lengths[i]])

    def strata(self) -> dict[str, str]:
        """{name: stratum}, empty when the folder has no strata.json (older encodes, unlabelled data)."""
        path = self.folder / "strata.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EncodedTokensError(f"{path}: not valid JSON ({error})") from error

    def texts(self, name: str) -> list[str]:
        return list(self._texts.get(name, []))

    def split(self, name: str) -> list[int]:
        """Indices of the clips of split ``name`` ("train", "val", "test") that were encoded."""
        if name not in self._splits:
            raise KeyError(f"{self.folder / 'splits.json'}: no split {name!r} (has {sorted(self._splits)})")
        return [self._position[n] for n in self._splits[name] if n in self._position]
