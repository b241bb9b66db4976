"""Contrastive training of the evaluator (InfoNCE, near-duplicate captions removed from the negatives).

``train_evaluator(dataset_root, run_dir, config)`` reads the dataset (contracts 2/3), caches the frozen
text encoder's token features once per distinct caption, trains with a symmetric InfoNCE loss on
cosine similarities (temperature 0.1), keeps the checkpoint with the best validation retrieval, and
writes the evaluator folder plus ``metrics.json`` with test retrieval recall@1/5/10, R-precision
among 32 and real-vs-real sanity figures. It resumes from ``run_dir/checkpoints`` after an interruption.

Negatives: inside a batch, pair (i, j) is not used as a negative when the two captions are near
duplicates (cosine of their mean-pooled sentence embeddings > ``duplicate_threshold``) or the two
clips share a recipe label (from the dataset's import records: content/style and mirroring; clips without
a record are their own label).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from motionmillion.evaluation.evaluator import (
    PRESETS,
    EvaluatorConfig,
    Evaluator,
    EvaluatorModel,
    crop_to_max,
    pad_motions,
)
from motionmillion.evaluation import metrics
from motionmillion.motion.normalization import Normalizer
from motionmillion.text import TextFeatureCache
from motionmillion.training import Checkpoints, RunLog, check_resume, lr_at
from motionmillion.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    preset: str = "small"  # the EvaluatorConfig preset (the `model` section; `--set latent_dim=...` changes it)
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    temperature: float = 0.1
    duplicate_threshold: float = 0.85
    crop_prob: float = 0.5  # random contiguous crop keeping at least crop_min of the clip
    crop_min: float = 0.8
    split_kind: str = "t2m_60_300"
    seed: int = 0
    max_minutes: float = 0.0  # stop (and finish normally) after this much training time (0 = no limit)
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown evaluator preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(f"bad training sizes: epochs={self.epochs} batch_size={self.batch_size} lr={self.lr}")


# Fields that may change when a run is resumed: a longer run or another time budget.
RESUMABLE_CHANGES = {"epochs", "max_minutes", "keep_checkpoints"}


# ----------------------------------------------------------------------------------------- data


@dataclass
class ClipSet:
    """Clips of one split, de-normalised (T, 272) float32, with their captions and recipe labels."""

    names: list[str]
    motions: list[np.ndarray]
    captions: list[list[str]]
    # Clips with the same label are near-duplicates (takes of one content/style): never each other's
    # negatives. From the import records (data.records.ClipLabel.recipe); default: each clip its own.
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = list(self.names)

    def __len__(self) -> int:
        return len(self.names)


def load_split(dataset_root: str | Path, split: str, kind: str = "t2m_60_300") -> ClipSet:
    """Read one split with ``MotionDataset`` (captions) and ``PackedMotions`` when packed, skipping bad clips."""
    from motionmillion.data.records import clip_labels
    from motionmillion.data.layout import MotionDataset

    dataset = MotionDataset(dataset_root)
    names = dataset.names(split, kind=kind)
    recorded = clip_labels(dataset_root)
    packed = None
    if (Path(dataset_root) / "packed" / "index.npz").is_file():
        from motionmillion.data.packed import PackedMotions

        packed = PackedMotions(dataset_root)
    keep_names, motions, captions, skipped = [], [], [], []
    for name in names:
        try:
            motion = packed[packed.index_of(name)] if packed is not None else dataset.motion(name)
            texts = [t.strip() for t in dataset.texts(name) if t.strip()]
        except (OSError, KeyError, ValueError) as err:
            skipped.append(f"{name}: {err}")
            continue
        motion = np.asarray(motion, dtype=np.float32)
        if not texts or motion.ndim != 2 or len(motion) < 2 or not np.isfinite(motion).all():
            skipped.append(f"{name}: no caption, too short or NaN")
            continue
        keep_names.append(name)
        motions.append(motion)
        captions.append(texts)
    if skipped:
        log.warning("%s/%s: skipped %d clip(s), e.g. %s", kind, split, len(skipped), skipped[:3])
    if not keep_names:
        raise ValueError(f"{dataset_root}: split {kind}/{split} has no usable clips")
    labels = [recorded[name].recipe if name in recorded else name for name in keep_names]
    return ClipSet(keep_names, motions, captions, labels)


# ----------------------------------------------------------------------------------------- loss


def negative_mask(sentences: torch.Tensor, labels: list[str], threshold: float) -> torch.Tensor:
    """(B, B) True where j must not serve as a negative for i (near-duplicate caption or same recipe)."""
    same_label = torch.tensor([[a == b for b in labels] for a in labels])
    duplicate = (sentences @ sentences.T) > threshold
    return (same_label | duplicate) & ~torch.eye(len(labels), dtype=torch.bool)


def info_nce(text: torch.Tensor, motion: torch.Tensor, temperature: float, ignore: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on cosine similarities of unit embeddings; ``ignore`` masks false negatives."""
    logits = (text @ motion.T / temperature).masked_fill(ignore, float("-inf"))
    target = torch.arange(len(text))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


# ----------------------------------------------------------------------------------------- eval


@torch.no_grad()
def embed_clipset(model: EvaluatorModel, clips: ClipSet, cache: TextFeatureCache, normalizer: Normalizer,
                  batch_size: int = 128) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings of the first caption and of the (centre-cropped) motion of every clip."""
    model.eval()
    captions = [c[0] for c in clips.captions]
    text, motion = [], []
    for start in range(0, len(clips), batch_size):
        caps = captions[start : start + batch_size]
        text.append(model.encode_text_features(*cache.batch(caps)))
        batch = [normalizer.normalize(crop_to_max(m, model.config.max_frames)).astype(np.float32)
                 for m in clips.motions[start : start + batch_size]]
        motion.append(model.encode_motion_normalized(*pad_motions(batch)))
    return torch.cat(text).numpy(), torch.cat(motion).numpy(), captions


def retrieval_report(model, clips: ClipSet, cache: TextFeatureCache, normalizer: Normalizer,
                     threshold: float, seed: int = 0) -> dict[str, float]:
    """Recall@1/5/10 both ways (all candidates, and with near-duplicates of the query removed),
    R-precision among 32 (mean over 10 random groupings) and MM-Dist, on the first caption per clip."""
    text, motion, captions = embed_clipset(model, clips, cache, normalizer)
    out = {f"{k}": v for k, v in metrics.retrieval_recall(text, motion).items()}
    sentences = cache.sentence(captions)
    exclude = negative_mask(sentences, clips.labels, threshold).numpy()
    out.update({f"dedup_{k}": v for k, v in metrics.retrieval_recall(text, motion, exclude=exclude).items()})
    if len(clips) >= 32:
        rng = np.random.default_rng(seed)
        rp = np.mean([metrics.r_precision(text[p], motion[p]) for p in (rng.permutation(len(clips)) for _ in range(10))], axis=0)
        out.update({"r_precision_top1": float(rp[0]), "r_precision_top2": float(rp[1]), "r_precision_top3": float(rp[2])})
    out["mm_dist"] = metrics.mm_dist(text, motion)
    out["num_clips"] = len(clips)
    return out


# ----------------------------------------------------------------------------------------- training


def _augment(motion: np.ndarray, rng: np.random.Generator, config: TrainConfig, max_frames: int) -> np.ndarray:
    length = len(motion)
    keep = length
    if rng.random() < config.crop_prob:
        keep = int(round(length * rng.uniform(config.crop_min, 1.0)))
    keep = max(2, min(keep, max_frames))
    start = int(rng.integers(0, length - keep + 1))
    return motion[start : start + keep]


class EvaluatorTrainer:
    """setup (clips, text cache, model, resume) -> fit (epochs; validate after each, keep the best) ->
    finalize (the evaluator folder + metrics.json). Checkpoints: motionmillion.training.Checkpoints."""

    def __init__(self, dataset_root, run_dir: str | Path, config: TrainConfig, model_config: EvaluatorConfig,
                 splits: dict[str, ClipSet] | None = None, normalizer: Normalizer | None = None,
                 progress: bool = True) -> None:  # fmt: skip
        self.dataset_root, self.run_dir = dataset_root, Path(run_dir)
        self.config, self.model_config = config, model_config
        self.splits, self.normalizer, self.progress = splits, normalizer, progress

    def setup(self) -> EvaluatorTrainer:
        config, run_dir = self.config, self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_log = RunLog(run_dir, is_main=True)
        if self.splits is None:
            self.splits = {s: load_split(self.dataset_root, s, config.split_kind) for s in ("train", "val", "test")}
        if self.normalizer is None:
            from motionmillion.data.layout import MotionDataset

            self.normalizer = MotionDataset(self.dataset_root).normalizer()
        self.train_clips, self.val_clips = self.splits["train"], self.splits.get("val") or self.splits["test"]
        if len(self.train_clips) < 2:
            raise ValueError(f"{self.dataset_root}: the train split needs at least 2 clips, has {len(self.train_clips)}")
        log.info("clips: %s", {k: len(v) for k, v in self.splits.items()})
        captions = [c for s in self.splits.values() for caps in s.captions for c in caps]
        self.cache = TextFeatureCache.build(run_dir / "text_cache", captions, self.model_config.text_encoder,
                                            self.model_config.text_max_length)  # fmt: skip
        self.train_norm = [self.normalizer.normalize(m.astype(np.float64)).astype(np.float32)
                           for m in self.train_clips.motions]  # fmt: skip

        torch.manual_seed(config.seed)
        self.model = EvaluatorModel(self.model_config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = max(1, len(self.train_clips) // config.batch_size)
        self.state = {"epoch": 0, "step": 0, "elapsed_s": 0.0, "best_score": -1.0, "best_epoch": -1, "history": []}
        self.checkpoints = Checkpoints(run_dir, config.keep_checkpoints)
        run_config = {"model": asdict(self.model_config), "train": asdict(config)}
        resume = self.checkpoints.latest()
        if resume is not None:
            folder, state = resume
            check_resume(state["run_config"], run_config, folder / "trainer_state.json", RESUMABLE_CHANGES)
            self._load(folder)
            self.state = {k: v for k, v in state.items() if k not in ("run_config",)}
            log.info("resumed from epoch %d (step %d)", self.state["epoch"], self.state["step"])
        self.run_config = run_config
        log.info("evaluator %s: %.2fM trainable parameters", config.preset,
                 sum(p.numel() for p in self.model.parameters()) / 1e6)  # fmt: skip
        return self

    def fit(self) -> dict:
        from tqdm.auto import tqdm

        config, state = self.config, self.state
        total_steps = self.steps_per_epoch * config.epochs
        started = time.time() - state["elapsed_s"]
        for epoch in range(state["epoch"], config.epochs):
            if config.max_minutes and state["elapsed_s"] > config.max_minutes * 60:
                log.info("time budget of %.1f min reached after %d epochs", config.max_minutes, epoch)
                break
            self.model.train()
            # Batches and dropout masks depend only on (seed, epoch), so a resumed run repeats them exactly.
            rng = np.random.default_rng(config.seed * 1000 + epoch)
            torch.manual_seed(config.seed * 1000 + epoch)
            order = rng.permutation(len(self.train_clips))
            bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not self.progress,
                       leave=False)  # fmt: skip
            losses = []
            for b in bar:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(state["step"], config.lr, total_steps, config.warmup_steps)
                loss = self._loss(order[b * config.batch_size : (b + 1) * config.batch_size], rng)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                state["step"] += 1
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            val_report = self.validate()
            score = (val_report["dedup_t2m@5"] + val_report["dedup_m2t@5"]) / 2
            state["elapsed_s"], state["epoch"] = time.time() - started, epoch + 1
            state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_score": score,
                                     "val_t2m@5": val_report["t2m@5"], "elapsed_s": round(state["elapsed_s"], 1)})
            self.run_log.scalars({"loss": float(np.mean(losses)), "val_score": score}, state["step"])
            log.info("epoch %d loss %.4f val dedup R@5 %.3f (t2m@1 %.3f, t2m@5 %.3f, m2t@5 %.3f) %.0fs",
                     epoch + 1, np.mean(losses), score, val_report["t2m@1"], val_report["t2m@5"], val_report["m2t@5"],
                     state["elapsed_s"])  # fmt: skip
            if score > state["best_score"]:
                state["best_score"], state["best_epoch"] = score, epoch + 1
                _save_tensors(self.run_dir / "best.safetensors", self.model.state_dict())
            self.save_checkpoint()
        report = finalize(self.run_dir, self.model, self.splits, self.cache, self.normalizer, config, state,
                          self.dataset_root)  # fmt: skip
        self.run_log.close()
        return report

    def _loss(self, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        config, clips = self.config, self.train_clips
        captions = [clips.captions[i][rng.integers(len(clips.captions[i]))] for i in idx]
        motions, mask = pad_motions([_augment(self.train_norm[i], rng, config, self.model_config.max_frames) for i in idx])
        text_feats, text_mask = self.cache.batch(captions)
        ignore = negative_mask(self.cache.sentence(captions), [clips.labels[i] for i in idx], config.duplicate_threshold)
        return info_nce(self.model.encode_text_features(text_feats, text_mask),
                        self.model.encode_motion_normalized(motions, mask), config.temperature, ignore)  # fmt: skip

    def validate(self) -> dict[str, float]:
        return retrieval_report(self.model, self.val_clips, self.cache, self.normalizer, self.config.duplicate_threshold)

    def save_checkpoint(self) -> None:
        def write(folder: Path) -> None:
            _save_tensors(folder / "model.safetensors", self.model.state_dict())
            opt = self.optimizer.state_dict()
            tensors = {f"{pid}.{key}": value.reshape(-1) if value.ndim == 0 else value
                       for pid, s in opt["state"].items() for key, value in s.items()}  # fmt: skip
            _save_tensors(folder / "optimizer.safetensors", tensors)
            atomic_write_json(folder / "param_groups.json", opt["param_groups"])

        self.checkpoints.save(self.state["step"], write, {**self.state, "run_config": self.run_config})

    def _load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        opt_state: dict[int, dict] = {}
        for key, value in load_file(str(folder / "optimizer.safetensors")).items():
            pid, name = key.split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value.reshape(()) if name == "step" else value
        groups = json.loads((folder / "param_groups.json").read_text(encoding="utf-8"))
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def train_evaluator(dataset_root: str | Path, run_dir: str | Path, config: TrainConfig | None = None,
                    model_config: EvaluatorConfig | None = None, splits: dict[str, ClipSet] | None = None,
                    normalizer: Normalizer | None = None, progress: bool = True) -> dict:
    """Train (or resume) an evaluator into ``run_dir``; returns the metrics dictionary it writes.

    ``model_config`` defaults to the preset named by ``config.preset``. ``splits``/``normalizer`` may be
    given directly (tests, other sources); otherwise train/val/test of ``config.split_kind`` are read
    from ``dataset_root``.
    """
    config = config or TrainConfig()
    model_config = model_config or PRESETS[config.preset]
    return EvaluatorTrainer(dataset_root, run_dir, config, model_config, splits, normalizer, progress).setup().fit()


def finalize(run_dir: Path, model: EvaluatorModel, splits: dict[str, ClipSet], cache: TextFeatureCache,
             normalizer: Normalizer, config: TrainConfig, state: dict, dataset_root) -> dict:
    """Load the best weights, save the evaluator folder and write metrics.json (test recall + sanity)."""
    from safetensors.torch import load_file

    if (run_dir / "best.safetensors").is_file():
        model.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    model.eval()
    test = splits["test"]
    report = {"test": retrieval_report(model, test, cache, normalizer, config.duplicate_threshold)}
    # Sanity: real test motions vs real train motions should be close in FID; real R-precision >> 1/32.
    _, test_motion, _ = embed_clipset(model, test, cache, normalizer)
    _, train_motion, _ = embed_clipset(model, splits["train"], cache, normalizer)
    report["sanity"] = {
        "fid_real_test_vs_real_train": metrics.fid(test_motion, train_motion),
        "diversity_real_test": metrics.diversity(test_motion, seed=config.seed),
        "r_precision_chance_top1": 1 / 32,
    }
    report["training"] = {"epochs_run": state["epoch"], "best_epoch": state["best_epoch"], "steps": state["step"],
                          "elapsed_s": round(state["elapsed_s"], 1), "history": state["history"]}
    extra = {"training": {"dataset": str(dataset_root), "train_config": asdict(config),
                          "best_epoch": state["best_epoch"], "test": report["test"]}}
    report["weights_sha256"] = Evaluator(model, normalizer).save_pretrained(run_dir, extra=extra)
    atomic_write_json(run_dir / "metrics.json", report)
    return report
