"""Reader of an encoded-tokens folder (contract 5), written by ``motionmillion tokenizer encode``.

    ENCODED/codes.npy     int32, every clip's token ids concatenated
    ENCODED/index.npz     names (str), starts, lengths (int64, in tokens)
    ENCODED/texts.json    {name: [captions]}
    ENCODED/splits.json   {"train": [names], "val": [...], "test": [...]}
    ENCODED/config.json   {"codebook_size", "frames_per_token", "tokenizer", "dataset", ...}
    ENCODED/strata.json   optional {name: stratum} (content/style of labelled sources) for balanced sampling
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FILES = ("config.json", "codes.npy", "index.npz", "texts.json", "splits.json")


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
