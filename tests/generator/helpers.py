"""Tiny encoded-token folders (contract 5) and text-feature caches for generator tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

CAPTIONS = ["a person walks forward", "a person waves the left hand", "someone jumps up", "a man turns around",
            "a person kicks with the right leg", "a person sits down"]  # fmt: skip


def make_encoded(folder: Path, items: int = 24, codebook_size: int = 16, frames_per_token: int = 2, seed: int = 0) -> Path:
    """Each caption gets its own simple token pattern so that a model can learn the mapping fast."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names, codes, lengths, texts = [], [], [], {}
    for i in range(items):
        kind = i % len(CAPTIONS)
        length = int(rng.integers(6, 14))
        sequence = (np.arange(length) * (kind + 1) + kind) % codebook_size
        name = f"clip_{i:03d}"
        names.append(name)
        codes.append(sequence)
        lengths.append(length)
        texts[name] = [CAPTIONS[kind], CAPTIONS[kind].upper()]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    np.save(folder / "codes.npy", np.concatenate(codes).astype(np.int32))
    np.savez(folder / "index.npz", names=np.array(names), starts=starts.astype(np.int64), lengths=np.array(lengths, np.int64))
    (folder / "texts.json").write_text(json.dumps(texts))
    val = names[-4:]
    (folder / "splits.json").write_text(json.dumps({"train": names[:-4], "val": val, "test": val}))
    (folder / "config.json").write_text(json.dumps({"codebook_size": codebook_size, "frames_per_token": frames_per_token,
                                                    "tokenizer": "none", "dataset": "synthetic"}))  # fmt: skip
    return folder


def fake_text_cache(folder: Path, captions: list[str], dim: int = 24, seed: int = 0) -> Path:
    """A text-feature cache with random features (tests that do not need the real encoder)."""
    from motionmillion.text import CACHE_FEATURES, CACHE_INDEX, CACHE_META, TextFeatureCache
    from motionmillion.text.encoders import DEFAULT_TEXT_ENCODER

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(set(captions))
    lengths = np.array([len(c.split()) + 2 for c in names], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    np.save(folder / CACHE_FEATURES, rng.standard_normal((int(lengths.sum()), dim)).astype(np.float16))
    np.savez(folder / CACHE_INDEX, captions=np.array(names), starts=starts, lengths=lengths)
    meta = {"encoder": DEFAULT_TEXT_ENCODER, "max_length": 150, "dim": dim,
            "fingerprint": TextFeatureCache.fingerprint(DEFAULT_TEXT_ENCODER, 150), "captions": len(names)}  # fmt: skip
    (folder / CACHE_META).write_text(json.dumps(meta))
    return folder


def all_captions() -> list[str]:
    return CAPTIONS + [c.upper() for c in CAPTIONS]


def prepared_run(root: Path, name: str) -> Path:
    """A run folder whose text cache already holds every caption (no encoder load during training)."""
    run = root / name
    fake_text_cache(run / "text_cache", all_captions())
    return run


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def make_pipeline_folder(root: Path) -> Path:
    """A complete pipeline folder with random tiny tokenizer and generator weights and the bundled MiniLM."""
    import torch

    from motionmillion.generator.config import GeneratorConfig
    from motionmillion.generator.model import MotionGPT
    from motionmillion.motion import Normalizer
    from motionmillion.pipeline import build_pipeline_folder
    from motionmillion.tokenizer.config import TokenizerConfig
    from motionmillion.tokenizer.model import MotionTokenizer

    torch.manual_seed(0)
    tokenizer = MotionTokenizer(TokenizerConfig(levels=[4, 4], width=32, depth=1))
    tokenizer.save_pretrained(root / "tok_run")
    config = GeneratorConfig(preset="test", n_layer=2, n_head=2, n_embd=32, codebook_size=tokenizer.codebook_size,
                             text_dim=384)  # fmt: skip
    run = root / "gen_run"
    MotionGPT(config).save_pretrained(run / "generator")
    (run / "run.json").write_text(json.dumps({"text_encoder": {"name_or_path": "bundled:all-MiniLM-L6-v2", "max_length": 64}}))
    rng = np.random.default_rng(0)
    Normalizer(rng.normal(size=272) * 0.1, np.full(272, 0.5)).save(root / "tok_run" / "normalization")
    return build_pipeline_folder(root / "pipeline", root / "tok_run", run)
