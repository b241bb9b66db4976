"""``MotionPipeline``: text in, ``Motion`` out. One folder holds everything (contract 6):

    tokenizer/            MotionTokenizer (config.json + model.safetensors)
    generator/            prefix-LM (config.json + model.safetensors)
    normalization/        mean.npy, std.npy of the training data
    text_encoder.json     {"name_or_path": ..., "max_length": ...}
    evaluator/            optional

    pipe = MotionPipeline.from_pretrained()            # the bundled default model
    motions = pipe("a person waves the left hand", seconds=4, num_samples=2, seed=0)
    motions[0].save("out", "wave")
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionmillion.motion import FPS, Motion, Normalizer

log = logging.getLogger(__name__)

MAX_FRAMES = 300  # the training budget of the paper (150 tokens at 2 frames per token)
REINSTALL_HINT = "reinstall with `pip install --force-reinstall motionmillion` or rebuild the folder"


class PipelineError(ValueError):
    """A pipeline folder that is missing, incomplete, damaged or inconsistent."""


class PromptError(ValueError):
    """Unusable generation input (empty prompt, bad duration, bad sample count, ...)."""


def default_model_path() -> Path:
    from importlib.resources import files

    return Path(str(files("motionmillion"))) / "assets" / "default_model"


@dataclass
class _Row:
    prompt_index: int
    sample_index: int
    prompt: str
    seed: int
    min_tokens: int
    max_tokens: int
    seconds: float | None


class MotionPipeline:
    def __init__(self, tokenizer, generator, text_encoder, normalizer: Normalizer, folder: Path | None = None):
        self.tokenizer = tokenizer.eval()
        self.generator = generator.eval()
        self.text_encoder = text_encoder
        self.normalizer = normalizer
        self.folder = folder
        self.fps = FPS
        self._check_consistency()

    # ---------------------------------------------------------------- loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None) -> MotionPipeline:
        """Load a pipeline folder; ``None`` = the bundled default model."""
        import torch

        from motionmillion.generator.model import MotionGPT
        from motionmillion.text import TextEncoder

        folder = Path(path) if path is not None else default_model_path()
        if not folder.is_dir():
            if path is None:
                raise PipelineError(
                    f"the bundled default model is not installed at {folder}; {REINSTALL_HINT}, or pass --model "
                    "PATH to a pipeline folder (build one with `motionmillion export-pipeline`)"
                )
            raise PipelineError(f"{folder}: no such pipeline folder")
        required = ["tokenizer/config.json", "tokenizer/model.safetensors", "generator/config.json",
                    "generator/model.safetensors", "normalization/mean.npy", "normalization/std.npy",
                    "text_encoder.json"]  # fmt: skip
        missing = [name for name in required if not (folder / name).is_file()]
        if missing:
            raise PipelineError(f"{folder}: incomplete pipeline folder, missing {', '.join(missing)}; {REINSTALL_HINT}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        from motionmillion.tokenizer.model import MotionTokenizer

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
        try:
            text_encoder = TextEncoder(name, max_length=max_length).to(device)
        except (OSError, ValueError) as err:
            raise PipelineError(f"{text_json}: cannot load text encoder {name!r} ({err})") from err
        return cls(tokenizer, generator, text_encoder, normalizer, folder=folder)

    def save_pretrained(self, folder: str | Path) -> Path:
        from motionmillion.utils.io import atomic_write_json

        folder = Path(folder)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.generator.save_pretrained(folder / "generator")
        self.normalizer.save(folder / "normalization")
        atomic_write_json(
            folder / "text_encoder.json",
            {"name_or_path": self.text_encoder.name, "max_length": self.text_encoder.max_length},
        )
        if self.folder is not None and (self.folder / "evaluator").is_dir() and not (folder / "evaluator").exists():
            shutil.copytree(self.folder / "evaluator", folder / "evaluator")
        return folder

    def to(self, device) -> MotionPipeline:
        self.tokenizer.to(device)
        self.generator.to(device)
        self.text_encoder.to(device)
        return self

    @property
    def device(self):
        return next(self.generator.parameters()).device

    @property
    def frames_per_token(self) -> int:
        return int(self.tokenizer.frames_per_token)

    @property
    def max_tokens(self) -> int:
        return min(self.generator.config.max_motion_tokens, MAX_FRAMES // self.frames_per_token)

    @property
    def max_seconds(self) -> float:
        return self.max_tokens * self.frames_per_token / self.fps

    def _check_consistency(self) -> None:
        where = f"{self.folder}: " if self.folder else ""
        config = self.generator.config
        if config.codebook_size != self.tokenizer.codebook_size:
            raise PipelineError(
                f"{where}generator/ was trained for {config.codebook_size} codes but tokenizer/ has "
                f"{self.tokenizer.codebook_size}: the two do not belong together"
            )
        if config.text_dim != self.text_encoder.dim:
            raise PipelineError(
                f"{where}generator/ expects {config.text_dim}-d text features but text encoder "
                f"{self.text_encoder.name!r} gives {self.text_encoder.dim}-d"
            )

    # ---------------------------------------------------------------- generation
    def __call__(
        self,
        prompts: str | list[str],
        seconds: float | list[float | None] | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        guidance: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = 0.95,
        batch_size: int = 32,
        use_cache: bool = True,
    ) -> list[Motion]:
        """Motions for every prompt, prompt-major: [p0 s0, p0 s1, ..., p1 s0, ...].

        seconds: target duration per prompt (or one for all), in (0, max_seconds]; None = the model ends
        the motion itself. Sample j of prompt i uses seed ``seed + i * num_samples + j`` (random if None).
        guidance: classifier-free guidance scale (None = the model's default; 1 = off).
        temperature 0 = greedy decoding.
        """
        import torch

        from motionmillion.generator.sample import SamplingOptions, sample_tokens

        rows = self._plan(prompts, seconds, num_samples, seed)
        if guidance is None:
            guidance = self.generator.config.default_guidance
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PromptError(f"batch_size must be a positive integer, got {batch_size!r}")
        try:
            options = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, guidance=guidance,
                                      use_cache=use_cache)  # fmt: skip
        except ValueError as err:
            raise PromptError(str(err)) from None
        if guidance != 1.0 and not self.generator.config.has_null_prefix:
            raise PromptError("this model was trained without condition dropout: use guidance=1 (no guidance)")
        motions: list[Motion] = []
        device = self.device
        for first in range(0, len(rows), batch_size):
            chunk = rows[first : first + batch_size]
            encoded = self.text_encoder.encode([r.prompt for r in chunk])
            codes = sample_tokens(
                self.generator, encoded.features.to(device), encoded.mask.to(device),
                seeds=[r.seed for r in chunk], min_tokens=[r.min_tokens for r in chunk],
                max_tokens=[r.max_tokens for r in chunk], options=options,
            )  # fmt: skip
            for row, ids in zip(chunk, codes):
                ids = torch.tensor([ids], dtype=torch.long, device=device)
                with torch.no_grad():
                    normalized = self.tokenizer.decode(ids)[0].float().cpu().numpy()
                features = self.normalizer.denormalize(normalized.astype(np.float64)).astype(np.float32)
                meta = {"seed": row.seed, "prompt_index": row.prompt_index, "sample_index": row.sample_index,
                        "tokens": int(ids.shape[1]), "requested_seconds": row.seconds, "guidance": guidance,
                        "temperature": temperature, "top_k": top_k, "top_p": top_p}  # fmt: skip
                motions.append(Motion(features, fps=self.fps, text=row.prompt, meta=meta))
        return motions

    def _plan(self, prompts, seconds, num_samples, seed) -> list[_Row]:
        from motionmillion.generator.sample import length_window

        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise PromptError("no prompts given")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise PromptError(f"prompt {i + 1} is empty or whitespace only")
            if _mostly_non_latin(prompt):
                log.warning("prompt %d looks non-English; the text encoder was trained on English: %.40s", i + 1, prompt)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise PromptError(f"num_samples must be a positive integer, got {num_samples!r}")
        if seconds is None or isinstance(seconds, (int, float)):
            seconds = [seconds] * len(prompts)
        seconds = list(seconds)
        if len(seconds) != len(prompts):
            raise PromptError(f"got {len(seconds)} durations for {len(prompts)} prompts")
        for value in seconds:
            if value is not None and (not isinstance(value, (int, float)) or not 0 < value <= self.max_seconds + 1e-9):
                raise PromptError(f"seconds must be in (0, {self.max_seconds:g}] (the longest motion), got {value!r}")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        rows = []
        for i, (prompt, target) in enumerate(zip(prompts, seconds)):
            low, high = length_window(target, self.frames_per_token, self.max_tokens, fps=self.fps)
            for j in range(num_samples):
                rows.append(_Row(i, j, prompt.strip(), int(seed) + i * num_samples + j, low, high, target))
        return rows


def _mostly_non_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(ord(c) > 0x24F for c in letters) > len(letters) / 2


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
    ``normalization/``) and the text encoder (None = the one the generator was trained with)."""
    from motionmillion.utils.io import atomic_path, atomic_write_json

    out, tokenizer, generator_run = Path(out), Path(tokenizer), Path(generator_run)
    generator_folder = generator_run / "generator" if (generator_run / "generator").is_dir() else generator_run
    for folder, what in ((tokenizer, "tokenizer"), (generator_folder, "generator")):
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise PipelineError(f"{folder / name}: missing ({what} folder expected)")
    run_json = generator_run / "run.json"
    run_info = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
    if normalization is None:
        normalization = tokenizer / "normalization"
    normalization = Path(normalization)
    for candidate in (normalization, normalization / "mean_std" / "vector_272", normalization / "normalization"):
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
    atomic_write_json(out / "text_encoder.json", {"name_or_path": text_name, "max_length": max_length})
    if evaluator is not None:
        shutil.copytree(evaluator, out / "evaluator", dirs_exist_ok=True)
    return out
