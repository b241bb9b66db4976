"""Pipeline folders: where the bundled one is, what a folder must hold, loading, saving and building.

    tokenizer/            MotionTokenizer (config.json + model.safetensors)
    generator/            prefix-LM (config.json + model.safetensors)
    normalization/        mean.npy, std.npy of the training data
    text_encoder.json     {"name_or_path": ..., "max_length": ...}
    skeleton.json         optional: the training data's rigid skeleton that generated motions are posed on
    caption_bank/         optional: training captions for coverage and retrieval rewriting
    evaluator/            optional
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionmillion.motion import Normalizer
from motionmillion.motion.skeleton import SKELETON_FILE, load_skeleton, save_skeleton

REINSTALL_HINT = "reinstall with `pip install --force-reinstall motionmillion` or rebuild the folder"
REQUIRED_FILES = ("tokenizer/config.json", "tokenizer/model.safetensors", "generator/config.json",
                  "generator/model.safetensors", "normalization/mean.npy", "normalization/std.npy",
                  "text_encoder.json")  # fmt: skip


class PipelineError(ValueError):
    """A pipeline folder that is missing, incomplete, damaged or inconsistent."""


def default_model_path() -> Path:
    from importlib.resources import files

    return Path(str(files("motionmillion"))) / "assets" / "default_model"


def check_folder(path: str | Path | None) -> Path:
    """The pipeline folder (None = the bundled model), with every required file present."""
    folder = Path(path) if path is not None else default_model_path()
    if not folder.is_dir():
        if path is None:
            raise PipelineError(
                f"the bundled default model is not installed at {folder}; {REINSTALL_HINT}, or pass --model "
                "PATH to a pipeline folder (build one with `motionmillion export-pipeline`)"
            )
        raise PipelineError(f"{folder}: no such pipeline folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise PipelineError(f"{folder}: incomplete pipeline folder, missing {', '.join(missing)}; {REINSTALL_HINT}")
    return folder


@dataclass
class Components:
    """What a pipeline folder holds, loaded."""

    tokenizer: object
    generator: object
    text_encoder: object
    normalizer: Normalizer
    skeleton: np.ndarray | None
    folder: Path


def load_components(path: str | Path | None, device: str, text_encoder=None) -> Components:
    """Every component of a folder; a damaged one raises PipelineError naming its file."""
    from motionmillion.generator.model import MotionGPT
    from motionmillion.text import TextEncoder
    from motionmillion.tokenizer.model import MotionTokenizer

    folder = check_folder(path)
    try:
        tokenizer = MotionTokenizer.from_pretrained(folder / "tokenizer", map_location=device)
    except (ValueError, OSError, RuntimeError, KeyError, TypeError) as err:
        raise PipelineError(f"{folder / 'tokenizer'}: cannot load the tokenizer ({err}); {REINSTALL_HINT}") from err
    try:
        generator = MotionGPT.from_pretrained(folder / "generator", device=device)
    except (ValueError, OSError, RuntimeError, TypeError) as err:
        raise PipelineError(f"{folder / 'generator'}: cannot load the generator ({err}); {REINSTALL_HINT}") from err
    try:
        normalizer = Normalizer.load(folder / "normalization")
    except (ValueError, OSError) as err:
        raise PipelineError(f"{folder / 'normalization'}: bad mean.npy/std.npy ({err}); {REINSTALL_HINT}") from err
    text_json = folder / "text_encoder.json"
    try:
        text_info = json.loads(text_json.read_text(encoding="utf-8"))
        name = text_info["name_or_path"]
        max_length = int(text_info.get("max_length", 150))
    except (ValueError, KeyError, TypeError) as err:
        raise PipelineError(f"{text_json}: not a valid text-encoder description ({err}); {REINSTALL_HINT}") from err
    if (folder / name).is_dir():  # a text encoder shipped inside the folder
        name = str(folder / name)
    if text_encoder is None:
        try:
            text_encoder = TextEncoder(name, max_length=max_length).to(device)
        except (OSError, ValueError) as err:
            raise PipelineError(f"{text_json}: cannot load text encoder {name!r} ({err})") from err
    skeleton = None
    if (folder / SKELETON_FILE).is_file():
        try:
            skeleton = load_skeleton(folder / SKELETON_FILE)
        except ValueError as err:
            raise PipelineError(f"{err}; {REINSTALL_HINT}") from err
    return Components(tokenizer, generator, text_encoder, normalizer, skeleton, folder)


def save_components(pipe, folder: str | Path) -> Path:
    """Write a loaded pipeline as a folder ``load_components`` reads (the evaluator copied along)."""
    from motionmillion.utils.io import atomic_write_json

    folder = Path(folder)
    pipe.tokenizer.save_pretrained(folder / "tokenizer")
    pipe.generator.save_pretrained(folder / "generator")
    pipe.normalizer.save(folder / "normalization")
    if pipe.skeleton is not None:
        save_skeleton(folder / SKELETON_FILE, pipe.skeleton, source=f"copied from {pipe.folder}")
    atomic_write_json(folder / "text_encoder.json",
                      {"name_or_path": pipe.text_encoder.name, "max_length": pipe.text_encoder.max_length})  # fmt: skip
    if pipe.folder is not None and (pipe.folder / "evaluator").is_dir() and not (folder / "evaluator").exists():
        shutil.copytree(pipe.folder / "evaluator", folder / "evaluator")
    return folder


def build_pipeline_folder(
    out: str | Path,
    tokenizer: str | Path,
    generator_run: str | Path,
    normalization: str | Path | None = None,
    text_encoder: str | None = None,
    text_max_length: int | None = None,
    evaluator: str | Path | None = None,
) -> Path:
    """Assemble a pipeline folder from a tokenizer folder/run, a generator run (or generator folder),
    the dataset mean/std (a folder with mean.npy/std.npy, a dataset root, or None = the tokenizer run's
    ``normalization/``; a dataset root also gives ``skeleton.json``) and the text encoder (None = the one
    the generator was trained with)."""
    from motionmillion.data.layout import MEAN_STD_DIR
    from motionmillion.utils.io import atomic_path, atomic_write_json

    out, tokenizer, generator_run = Path(out), Path(tokenizer), Path(generator_run)
    generator_folder = generator_run / "generator" if (generator_run / "generator").is_dir() else generator_run
    for folder, what in ((tokenizer, "tokenizer"), (generator_folder, "generator")):
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise PipelineError(f"{folder / name}: missing ({what} folder expected)")
    run_json = generator_run / "run.json"
    run_info = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
    normalization = Path(normalization) if normalization is not None else tokenizer / "normalization"
    for candidate in (normalization, normalization / MEAN_STD_DIR, normalization / "normalization"):
        if (candidate / "mean.npy").is_file() and (candidate / "std.npy").is_file():
            normalizer = Normalizer.load(candidate)
            break
    else:
        raise PipelineError(f"{normalization}: no mean.npy/std.npy found (pass --normalization)")
    text = run_info.get("text_encoder", {})
    text_name = text_encoder or text.get("name_or_path")
    if text_name is None:
        from motionmillion.text import DEFAULT_TEXT_ENCODER

        text_name = DEFAULT_TEXT_ENCODER
    max_length = text_max_length or int(text.get("max_length", 150))
    config = json.loads((generator_folder / "config.json").read_text(encoding="utf-8"))
    tokenizer_config = json.loads((tokenizer / "config.json").read_text(encoding="utf-8"))
    if "codebook_size" in tokenizer_config and int(tokenizer_config["codebook_size"]) != int(config["codebook_size"]):
        raise PipelineError(
            f"{tokenizer}: {tokenizer_config['codebook_size']} codes but the generator in {generator_folder} "
            f"was trained on {config['codebook_size']}"
        )
    out.mkdir(parents=True, exist_ok=True)
    for src, name in ((tokenizer, "tokenizer"), (generator_folder, "generator")):
        (out / name).mkdir(exist_ok=True)
        for file in ("config.json", "model.safetensors"):
            with atomic_path(out / name / file) as tmp:
                shutil.copyfile(src / file, tmp)
    normalizer.save(out / "normalization")
    if (normalization / "motion_data").is_dir():  # a dataset root: its clips give the skeleton
        from motionmillion.data.stats import dataset_skeleton

        offsets, clips = dataset_skeleton(normalization)
        save_skeleton(out / SKELETON_FILE, offsets, source=f"median of {clips} training clips of {normalization}", clips=clips)
    atomic_write_json(out / "text_encoder.json", {"name_or_path": text_name, "max_length": max_length})
    if evaluator is not None:
        shutil.copytree(evaluator, out / "evaluator", dirs_exist_ok=True)
    return out
