"""The one training toolkit, shared by the tokenizer, generator and evaluator trainers.

- ``TrainConfig``: the settings every trainer reads, with one name and one meaning each (``steps``,
  ``batch_size``, ``lr``, ``warmup_steps``, ``schedule``, ``eval_every``, ``save_every``, ``max_minutes``,
  ``seed``, ``mixed_precision`` ...); each stage's ``TrainConfig`` extends it with its own fields;
- ``RunConfig``: a stage's whole configuration, one dataclass field per section (model, loss, train);
  each stage names its ready-made ones in ``PRESETS: dict[str, RunConfig]`` and ``preset(PRESETS, name)``
  hands out a copy; ``apply_overrides`` applies ``--set key=value`` / ``--set section.key=value``;
  ``from_dict`` reads what older versions wrote (their field names mapped to today's);
- ``lr_at``: linear warm-up, then cosine (to a floor), multistep or constant;
- ``resolve_mixed_precision``: bf16 autocast only where it is fast (``auto``);
- ``TimeBudget``: training time over all resumes of a run, the same on every rank;
- ``RunLog``: ``train.log`` + TensorBoard on the main process;
- ``Checkpoints``: ``checkpoints/step_XXXXXXXX/`` folders written to a temp name then renamed, a
  ``checkpoints/latest.json`` pointer, the newest N kept, each with its ``trainer_state.json``;
- ``check_resume``: a run folder refuses a resume with a changed config (naming the changed keys).

It knows no model: what goes into a checkpoint folder is the trainer's ``write`` function.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from motionmillion.utils.io import atomic_write_json

SCHEDULES = ("cosine", "multistep", "constant")
MIXED_PRECISION = ("auto", "bf16", "no")


# ---------------------------------------------------------------- schedule and precision
def lr_at(
    step: int,
    lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
    milestones: Iterable[int] = (),
    gamma: float = 0.1,
) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps`` (``lr`` at the last warm-up step), then cosine down
    to ``min_lr_ratio * lr`` at ``total_steps``, multistep (x ``gamma`` at each milestone) or constant."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "multistep":
        return lr * gamma ** sum(step >= m for m in milestones)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@functools.lru_cache(maxsize=1)
def bf16_is_fast() -> bool:
    """Whether bf16 autocast is faster than fp32 here: CUDA with bf16, or a CPU with native bf16 math
    (AVX512-BF16/AMX) where a quick matmul confirms it. Without them bf16 autocast is ~60x slower than
    fp32; with AVX512-BF16 (e.g. AMD Zen 4) it is ~3x faster."""
    import time

    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if not any(check() for check in checks if check is not None):
        return False
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def seconds(bf16: bool) -> float:  # the best of three, so a busy machine does not decide
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            a @ b  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(5):
                    a @ b
                times.append(time.perf_counter() - start)
        return min(times)

    return seconds(True) < seconds(False)


def resolve_mixed_precision(requested: str, recorded: str | None = None) -> str:
    """``auto`` -> ``bf16`` where it is fast, else ``no``; ``bf16``/``no`` as given. ``recorded``: what a
    run being resumed resolved ``auto`` to, kept so that a resumed run computes exactly what it did."""
    if requested not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {requested!r}")
    if requested == "auto":
        if recorded in ("bf16", "no"):
            return recorded
        return "bf16" if bf16_is_fast() else "no"
    return requested


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


# ---------------------------------------------------------------- configs, presets, overrides
C = TypeVar("C")
R = TypeVar("R", bound="RunConfig")


def config_from_dict(cls: type[C], data: Mapping[str, Any], source: str | Path | None = None) -> C:
    """``cls(**data)`` for a config dataclass read from a file: names in ``cls.LEGACY_NAMES`` (if it has
    one) are renamed first; unknown names and bad values are refused, naming ``source`` (the file) if given."""
    prefix = f"{source}: " if source else ""
    data = dict(data)
    for old, new in getattr(cls, "LEGACY_NAMES", {}).items():
        if old in data:
            value = data.pop(old)
            if new is not None and new not in data:
                data[new] = value
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{prefix}unknown {cls.__name__} fields: {unknown}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{prefix}invalid {cls.__name__}: {err}") from err


@dataclass
class TrainConfig:
    """What every trainer reads, with the same meaning in each. A stage's ``TrainConfig`` subclasses it,
    adds its own fields and may redeclare a field here to give it another default (it keeps its meaning)."""

    steps: int = 1_000  # optimizer steps of the whole run; a resumed run continues to this step
    batch_size: int = 32  # per process
    lr: float = 3e-4  # peak learning rate
    warmup_steps: int = 0  # linear warm-up to lr
    schedule: str = "cosine"  # after warm-up (lr_at): cosine to min_lr_ratio * lr, multistep or constant
    min_lr_ratio: float = 0.0
    milestones: list[int] = field(default_factory=list)  # multistep: lr x gamma from each of these steps
    gamma: float = 0.1
    weight_decay: float = 0.0  # AdamW
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    mixed_precision: str = "auto"  # auto = bf16 autocast only where it is fast (resolve_mixed_precision); bf16 | no
    seed: int = 123
    log_every: int = 50  # steps between train-loss log lines
    eval_every: int = 0  # steps between validations on the val split (0 = only at the end)
    save_every: int = 1_000  # steps between checkpoints (one is also written at the end)
    keep_checkpoints: int = 2  # the newest N checkpoint folders are kept
    max_minutes: float = 0.0  # stop (checkpoint, validate, save) after this much training time, all resumes; 0 = none

    # Names older versions wrote into run folders (run_config.json, run.json, trainer_state.json) -> today's
    # (None: no longer a setting), so that their runs still load and resume. From before the three trainers
    # shared this class: the tokenizer's max_steps, the generator's val_every.
    LEGACY_NAMES: ClassVar[dict[str, str | None]] = {"max_steps": "steps", "val_every": "eval_every"}

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives lists
        self.milestones = [int(m) for m in self.milestones]
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        for name in ("steps", "batch_size", "log_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "weight_decay", "grad_clip", "max_minutes", "min_lr_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def learning_rate(self, step: int) -> float:
        """The learning rate of ``step`` (0-based) under this config's warm-up and schedule."""
        return lr_at(step, self.lr, self.steps, self.warmup_steps, self.schedule, self.min_lr_ratio,
                     self.milestones, self.gamma)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | Path | None = None) -> TrainConfig:
        return config_from_dict(cls, data, source)


@dataclass
class RunConfig:
    """A stage's whole configuration. Its fields are the sections (``model``, ``loss``, ``train``) that
    ``--set section.field=value`` addresses; each has a ``default_factory`` (its config class)."""

    STAGE: ClassVar[str] = ""  # "tokenizer", "generator", "evaluator": named in error messages

    def sections(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], source: str | Path | None = None) -> R:
        """Read what ``to_dict`` wrote, by this or an older version (missing settings take today's defaults)."""
        prefix = f"{source}: " if source else ""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{prefix}unknown sections {unknown} (expected {', '.join(fields)})")
        sections = {name: config_from_dict(f.default_factory, data.get(name, {}), source) for name, f in fields.items()}
        try:
            return cls(**sections)
        except ValueError as err:
            raise ValueError(f"{prefix}{err}") from err


def preset(presets: Mapping[str, R], name: str) -> R:
    """A copy of ``presets[name]`` (a stage's ``PRESETS``) that the caller may change."""
    if name not in presets:
        stage = next((f"{type(run).STAGE} " for run in presets.values() if type(run).STAGE), "")
        raise ValueError(f"unknown {stage}preset {name!r}; choose one of {', '.join(presets)}")
    return copy.deepcopy(presets[name])


def requested_run(presets: dict, name: str, overrides: list[str] | None, threads: int = 0):
    """What a ``train`` command asked for: the preset with its ``--set`` overrides; ``threads`` > 0 also sets
    torch's CPU threads (on a CPU shared with other jobs 1 is often faster than 2)."""
    import torch

    config = apply_overrides(preset(presets, name), overrides or [])
    if threads > 0:
        torch.set_num_threads(threads)
    return config


def apply_overrides(config: R, overrides: Iterable[str]) -> R:
    """A copy of a ``RunConfig`` with ``key=value`` overrides applied (``--set``).

    ``key`` is ``section.field`` or a bare ``field`` that exactly one section has; values are parsed
    as JSON when possible (``lr=3e-4``, ``levels=[8,5,5,5]``, ``causal=true``), else taken as text.
    Validation runs again, so a bad value is refused with the config's own message.
    """
    sections = config.sections()
    changes: dict[str, dict[str, Any]] = {name: {} for name in sections}
    fields = {name: {f.name for f in dataclasses.fields(section)} for name, section in sections.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        section, dot, name = key.rpartition(".")
        if dot:
            if section not in sections or name not in fields[section]:
                raise ValueError(f"--set {item!r}: no setting {key!r} (sections: {', '.join(sections)})")
            owners = [section]
        else:
            owners = [s for s in sections if name in fields[s]]
            if not owners:
                raise ValueError(f"--set {item!r}: no setting {name!r} in {', '.join(sections)}")
            if len(owners) > 1:
                raise ValueError(f"--set {item!r}: {name!r} exists in {' and '.join(owners)}; write section.{name}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        changes[owners[0]][name] = value
    try:
        return type(config)(**{name: dataclasses.replace(section, **changes[name]) for name, section in sections.items()})
    except (TypeError, ValueError) as err:
        raise ValueError(f"--set: {err}") from err


# ---------------------------------------------------------------- time budget
class TimeBudget:
    """Training time of a run over all its resumes, and whether ``max_minutes`` (0 = none) is spent.

    ``check`` returns rank 0's clock on every rank (``accelerator`` given and several processes), so that
    all ranks stop, or take a timed snapshot, at the same step."""

    def __init__(self, max_minutes: float, elapsed_before: float = 0.0, accelerator: Any = None) -> None:
        self.max_minutes, self.elapsed_before, self.accelerator = max_minutes, elapsed_before, accelerator
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds of training so far, this process's clock."""
        return self.elapsed_before + time.monotonic() - self.started

    def check(self) -> tuple[float, bool]:
        """(elapsed seconds as rank 0 measures them, whether the budget is spent)."""
        now = self.elapsed()
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            import torch
            from accelerate.utils import broadcast

            now = broadcast(torch.tensor([now], dtype=torch.float64, device=self.accelerator.device), 0).item()
        return now, self.max_minutes > 0 and now >= self.max_minutes * 60


# ---------------------------------------------------------------- logging
class RunLog:
    """``out/train.log`` with every ``motionmillion`` log record of the run (the trainer's and e.g. the
    data readers' skipped clips), and TensorBoard events in ``out/tensorboard``; main process only."""

    def __init__(self, out: Path, is_main: bool) -> None:
        self.logger = logger = logging.getLogger("motionmillion")
        logger.setLevel(logging.INFO)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:  # an earlier run in-process
            logger.removeHandler(old)
            old.close()
        self.writer = None
        if is_main:
            handler = logging.FileHandler(Path(out) / "train.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out) / "tensorboard"))

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "train") -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        for handler in [h for h in self.logger.handlers if isinstance(h, logging.FileHandler)]:
            self.logger.removeHandler(handler)
            handler.close()


# ---------------------------------------------------------------- checkpoints and resume
class Checkpoints:
    """``run/checkpoints/step_XXXXXXXX/`` folders, each complete before it gets its name.

    ``save`` calls ``write(tmp_folder)`` on every process (distributed state savers need all ranks),
    then the main process adds ``trainer_state.json``, renames the folder, points ``latest.json`` at it
    and deletes all but the newest ``keep``. A crash at any moment leaves the previous checkpoint usable.
    """

    def __init__(self, run_dir: str | Path, keep: int = 2) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.keep = max(1, keep)

    def latest(self) -> tuple[Path, dict] | None:
        """The newest complete checkpoint and its trainer state, or None."""
        pointer = self.root / "latest.json"
        if not pointer.is_file():
            return None
        try:
            folder = self.root / json.loads(pointer.read_text(encoding="utf-8"))["dir"]
            state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{pointer}: damaged checkpoint pointer ({err}); delete {self.root} to start over") from err
        return folder, state

    def save(
        self,
        step: int,
        write: Callable[[Path], None],
        trainer_state: Mapping[str, Any],
        is_main: bool = True,
        barrier: Callable[[], None] = lambda: None,
    ) -> Path:
        name = f"step_{step:08d}"
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        if is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        barrier()
        write(tmp)
        barrier()  # every rank's files are written before the folder gets its name
        if is_main:
            atomic_write_json(tmp / "trainer_state.json", {"step": step, **trainer_state})
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            atomic_write_json(self.root / "latest.json", {"dir": name, "step": step})
            for stale in sorted(p for p in self.root.glob("step_*") if p.is_dir())[: -self.keep]:
                shutil.rmtree(stale, ignore_errors=True)
        barrier()
        return final


def check_resume(saved: Mapping[str, Any], requested: Mapping[str, Any], path: Path, may_change: Iterable[str] = ()) -> None:
    """Refuse to resume a run whose config changed, except the keys in ``may_change`` (dotted names)."""
    flat_saved, flat_requested = _flatten(saved), _flatten(requested)
    allowed = set(may_change)
    changed = sorted(
        key for key in flat_saved.keys() | flat_requested.keys()
        if flat_saved.get(key) != flat_requested.get(key) and key not in allowed and key.rpartition(".")[2] not in allowed
    )  # fmt: skip
    if changed:
        details = ", ".join(f"{k}: {flat_saved.get(k)!r} -> {flat_requested.get(k)!r}" for k in changed[:6])
        raise ValueError(f"{path}: this run was started with a different config ({details}); "
                         "use a new --out folder or the original settings")  # fmt: skip


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value  # JSON turns tuples into lists
    return flat
