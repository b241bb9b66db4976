"""``MotionPipeline``: text in, ``Motion`` out. One folder holds everything (contract 6):

    tokenizer/            MotionTokenizer (config.json + model.safetensors)
    generator/            prefix-LM (config.json + model.safetensors)
    normalization/        mean.npy, std.npy of the training data
    text_encoder.json     {"name_or_path": ..., "max_length": ...}
    skeleton.json         optional: the training data's rigid skeleton that generated motions are posed on
    evaluator/            optional

    pipe = MotionPipeline.from_pretrained()            # the bundled default model
    motions = pipe("a person waves the left hand", seconds=4, num_samples=2, seed=0)
    motions[0].save("out", "wave")

    # the batched form that the CLI and the server use: any mix of prompts, seeds and options
    for motion in pipe.generate([GenerationRequest("a person bows", seconds=3, seed=1), ...]):
        ...
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionmillion.motion import FPS, Motion, Normalizer
from motionmillion.motion.consistency import SKELETON_FILE, load_skeleton, make_consistent, save_skeleton

log = logging.getLogger(__name__)

MAX_FRAMES = 300  # the training budget of the paper (150 tokens at 2 frames per token)
MIN_SECONDS = 1.0  # shorter requests are not motions the model was trained on (its clips are 2-10 s)
REINSTALL_HINT = "reinstall with `pip install --force-reinstall motionmillion` or rebuild the folder"


class PipelineError(ValueError):
    """A pipeline folder that is missing, incomplete, damaged or inconsistent."""


class PromptError(ValueError):
    """Unusable generation input (empty prompt, bad duration, bad sample count, ...)."""


def default_model_path() -> Path:
    from importlib.resources import files

    return Path(str(files("motionmillion"))) / "assets" / "default_model"


class MotionPipeline:
    def __init__(
        self,
        tokenizer,
        generator,
        text_encoder,
        normalizer: Normalizer,
        folder: Path | None = None,
        skeleton: np.ndarray | None = None,
    ):
        self.tokenizer = tokenizer.eval()
        self.generator = generator.eval()
        self.text_encoder = text_encoder
        self.normalizer = normalizer
        self.folder = folder
        self.fps = FPS
        # The training data's rigid skeleton: every generated motion is re-derived from its root and
        # rotations on it (motionmillion.motion.consistency); None = each motion's own best fit.
        self.skeleton = skeleton
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
        device = _check_device(device)
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
        skeleton = None
        if (folder / SKELETON_FILE).is_file():
            try:
                skeleton = load_skeleton(folder / SKELETON_FILE)
            except ValueError as err:
                raise PipelineError(f"{err}; {REINSTALL_HINT}") from err
        return cls(tokenizer, generator, text_encoder, normalizer, folder=folder, skeleton=skeleton)

    def save_pretrained(self, folder: str | Path) -> Path:
        from motionmillion.utils.io import atomic_write_json

        folder = Path(folder)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.generator.save_pretrained(folder / "generator")
        self.normalizer.save(folder / "normalization")
        if self.skeleton is not None:
            save_skeleton(folder / SKELETON_FILE, self.skeleton, source=f"copied from {self.folder}")
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
        fix_feet: bool = False,
        batch_size: int = 32,
        use_cache: bool = True,
    ) -> list[Motion]:
        """Motions for every prompt, prompt-major: [p0 s0, p0 s1, ..., p1 s0, ...].

        seconds: target duration per prompt (or one for all), in [MIN_SECONDS, max_seconds]; None = the
        model ends the motion itself. Sample j of prompt i uses seed ``seed + i * num_samples + j``
        (random if None). guidance: classifier-free guidance scale (None = the model's default; 1 = off).
        temperature 0 = greedy decoding. fix_feet: remove foot sliding (post-process).
        """
        requests = self.requests(prompts, seconds, num_samples, seed, guidance=guidance, temperature=temperature,
                                 top_k=top_k, top_p=top_p, fix_feet=fix_feet)  # fmt: skip
        return list(self.generate(requests, batch_size=batch_size, use_cache=use_cache))

    def requests(
        self,
        prompts: str | list[str],
        seconds: float | list[float | None] | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        **options,
    ) -> list[GenerationRequest]:
        """The checked requests ``__call__`` would run: one per (prompt, sample), seeds assigned.

        ``options`` are GenerationRequest fields shared by all (guidance, temperature, top_k, top_p, fix_feet).
        Raises PromptError naming the bad prompt or option before any model work.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        elif not isinstance(prompts, (list, tuple)):
            raise PromptError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
        if not prompts:
            raise PromptError("no prompts given")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise PromptError(f"num_samples must be a positive integer, got {num_samples!r}")
        if seconds is None or isinstance(seconds, (int, float, str, bytes)):
            seconds = [seconds] * len(prompts)
        elif not isinstance(seconds, (list, tuple)):
            raise PromptError(f"seconds must be a number, None or a list of them, got {type(seconds).__name__}")
        if len(seconds) != len(prompts):
            raise PromptError(f"got {len(seconds)} durations for {len(prompts)} prompts")
        seed = _check_seed(seed, "seed", extra=len(prompts) * num_samples)
        requests = [
            GenerationRequest(prompt, target, seed + i * num_samples + j, meta={"prompt_index": i, "sample_index": j},
                              **options)  # fmt: skip
            for i, (prompt, target) in enumerate(zip(prompts, seconds))
            for j in range(num_samples)
        ]
        return [self.check(request, where=f"prompt {request.meta['prompt_index'] + 1}") for request in requests]

    def check(self, request: GenerationRequest, where: str = "request", warn: bool = False) -> GenerationRequest:
        """The request with defaults filled in (random seed, the model's guidance); PromptError if unusable.
        ``warn``: also warn about text the encoder may misread (``generate`` does, once per request)."""
        from motionmillion.generator.sample import SamplingOptions

        prompt = request.prompt
        if not isinstance(prompt, str):
            raise PromptError(f"{where}: the prompt must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise PromptError(f"{where}: the prompt is empty or whitespace only")
        problem = _unreadable_text(prompt)
        if problem and warn:
            warnings.warn(f"prompt {prompt.strip()[:40]!r} {problem}; the text encoder was trained on English",
                          stacklevel=3)  # fmt: skip
        seconds = request.seconds
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
                raise PromptError(f"{where}: seconds must be a number or None, got {seconds!r}")
            if not MIN_SECONDS <= seconds <= self.max_seconds + 1e-9:
                raise PromptError(f"{where}: seconds must be in [{MIN_SECONDS:g}, {self.max_seconds:g}], got {seconds!r}")
        seed = _check_seed(request.seed, f"{where}: seed")
        guidance = self.generator.config.default_guidance if request.guidance is None else request.guidance
        if guidance != 1.0 and not self.generator.config.has_null_prefix:
            raise PromptError(f"{where}: this model was trained without condition dropout: use guidance=1 (no guidance)")
        try:
            SamplingOptions(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p, guidance=guidance)
        except (TypeError, ValueError) as err:
            raise PromptError(f"{where}: {err}") from None
        return dataclasses.replace(request, prompt=prompt.strip(), seed=seed, guidance=float(guidance))

    def generate(
        self, requests: Sequence[GenerationRequest], batch_size: int = 32, use_cache: bool = True
    ) -> Iterator[Motion]:
        """Motions for ``requests``, yielded in request order as soon as each exists (bounded memory).

        Requests with the same sampling options are sampled together, ``batch_size`` rows per KV-cached
        sampler call; each row's tokens depend only on its own prompt, options and seed.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PromptError(f"batch_size must be a positive integer, got {batch_size!r}")
        requests = [self.check(r, where=f"request {i + 1}", warn=True) for i, r in enumerate(requests)]
        ready: dict[int, Motion] = {}
        next_index = 0
        for batch in _batches(requests, batch_size):
            for index, motion in zip(batch, self._sample([requests[i] for i in batch], use_cache)):
                ready[index] = motion
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1

    def _sample(self, requests: list[GenerationRequest], use_cache: bool) -> list[Motion]:
        """One sampler call for requests that share their sampling options."""
        from motionmillion.generator.sample import SamplingOptions, length_window, sample_tokens

        first = requests[0]
        options = SamplingOptions(temperature=first.temperature, top_k=first.top_k, top_p=first.top_p,
                                  guidance=first.guidance, use_cache=use_cache)  # fmt: skip
        windows = [length_window(r.seconds, self.frames_per_token, self.max_tokens, fps=self.fps) for r in requests]
        encoded = self.text_encoder.encode([r.prompt for r in requests])
        device = self.device
        codes = sample_tokens(
            self.generator, encoded.features.to(device), encoded.mask.to(device), seeds=[r.seed for r in requests],
            min_tokens=[low for low, _ in windows], max_tokens=[high for _, high in windows], options=options,
        )  # fmt: skip
        return [self._motion(request, ids) for request, ids in zip(requests, codes)]

    def _motion(self, request: GenerationRequest, codes: list[int]) -> Motion:
        """Decode one row's codes into a Motion (de-normalised features, the request in its meta)."""
        import torch

        ids = torch.tensor([codes], dtype=torch.long, device=self.device)
        with torch.no_grad():
            normalized = self.tokenizer.decode(ids)[0].float().cpu().numpy()
        # One motion in every output: features, joints, rotations, BVH and video from one rigid skeleton.
        features = make_consistent(self.normalizer.denormalize(normalized.astype(np.float64)), self.skeleton)
        features = features.astype(np.float32)
        meta = {**request.meta, "seed": request.seed, "tokens": len(codes), "requested_seconds": request.seconds,
                "guidance": request.guidance, "temperature": request.temperature, "top_k": request.top_k,
                "top_p": request.top_p}  # fmt: skip
        if request.fix_feet:
            from motionmillion.postprocess import fix_foot_sliding

            features = fix_foot_sliding(features, fps=self.fps, source=request.prompt[:40])
            meta["fix_feet"] = True
        return Motion(features, fps=self.fps, text=request.prompt, meta=meta)


@dataclass(frozen=True)
class GenerationRequest:
    """One motion to make; ``MotionPipeline.check`` validates it and fills in the defaults."""

    prompt: str
    seconds: float | None = None  # None = the model ends the motion itself
    seed: int | None = None  # None = a random seed (reported in Motion.meta["seed"])
    guidance: float | None = None  # classifier-free guidance; None = the model's default, 1 = off
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = 0.95
    fix_feet: bool = False
    meta: dict = field(default_factory=dict, compare=False)  # copied into Motion.meta (e.g. prompt_index)

    @property
    def sampling_key(self) -> tuple:
        """Requests with equal keys can share one sampler call."""
        return (self.temperature, self.top_k, self.top_p, self.guidance)


def _batches(requests: list[GenerationRequest], batch_size: int) -> Iterator[list[int]]:
    """Indices of requests grouped by sampling options (first-seen order), ``batch_size`` at most each.

    Groups are emitted in order of their earliest pending request, so results can be yielded in order
    with little buffering."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.sampling_key, []).append(index)
    pending = {key: [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
               for key, indices in groups.items()}  # fmt: skip
    while pending:
        key = min(pending, key=lambda k: pending[k][0][0])
        yield pending[key].pop(0)
        if not pending[key]:
            del pending[key]


def _check_device(device: str | None) -> str:
    """The torch device to load on (None = cuda when available); PromptError for unusable names."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        raise PromptError(f"device {device!r} is not a torch device; use cpu or cuda") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise PromptError(f"device {device!r} is not available on this machine; use cpu"
                          + (" (this torch has no CUDA device)" if kind == "cuda" else ""))  # fmt: skip
    return device


def _check_seed(seed, name: str, extra: int = 1) -> int:
    """A seed in [0, 2**63 - extra] (torch generators take 64-bit seeds); None = a random one."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PromptError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= seed <= 2**63 - extra:
        raise PromptError(f"{name} must be in [0, 2**63 - {extra}], got {seed}")
    return seed


def _unreadable_text(text: str) -> str | None:
    """Why an English text encoder may misread ``text`` (mostly non-Latin letters, emoji), or None."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(ord(c) > 0x24F for c in letters) > len(letters) / 2:
        return "looks non-English"
    if any(unicodedata.category(c) == "So" for c in text):
        return "contains emoji or symbols"
    return None


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
    ``normalization/``; a dataset root also gives ``skeleton.json``) and the text encoder (None = the one the generator was trained with)."""
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
    if (normalization / "motion_data").is_dir():  # a dataset root: its clips give the skeleton
        from motionmillion.data.stats import dataset_skeleton

        offsets, clips = dataset_skeleton(normalization)
        save_skeleton(out / SKELETON_FILE, offsets, source=f"mean of {clips} training clips of {normalization}", clips=clips)
    atomic_write_json(out / "text_encoder.json", {"name_or_path": text_name, "max_length": max_length})
    if evaluator is not None:
        shutil.copytree(evaluator, out / "evaluator", dirs_exist_ok=True)
    return out
