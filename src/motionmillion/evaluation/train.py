"""Contrastive training of the evaluator (InfoNCE, near-duplicate captions removed from the negatives).

``train_evaluator(dataset_root, run_dir, config)`` reads the dataset (contracts 2/3), caches the frozen
text encoder's token features once per distinct caption, trains with a symmetric InfoNCE loss on
cosine similarities (temperature 0.1), keeps the checkpoint with the best validation retrieval, and
writes the evaluator folder plus ``metrics.json`` with test retrieval recall@1/5/10, R-precision
among 32 and real-vs-real sanity figures. It resumes from ``run_dir/checkpoint`` after an interruption.

Negatives: inside a batch, pair (i, j) is not used as a negative when the two captions are near
duplicates (cosine of their mean-pooled sentence embeddings > ``duplicate_threshold``) or the two
clips share a recipe label (Bandai names ``[M]dataset-N_<content>_<style>_<take>`` -> content, style
and mirroring; other names are their own label).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
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
from motionmillion.text import TextFeatureCache
from motionmillion.motion.normalization import Normalizer

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    preset: str = "small"
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
    max_minutes: float | None = None  # stop (and finish normally) after this much training time
    num_threads: int | None = None
    model: dict = field(default_factory=dict)  # overrides of the preset's EvaluatorConfig fields

    def evaluator_config(self) -> EvaluatorConfig:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown evaluator preset {self.preset!r}; choose from {sorted(PRESETS)}")
        return EvaluatorConfig.from_dict({**asdict(PRESETS[self.preset]), **self.model})


# ----------------------------------------------------------------------------------------- data


@dataclass
class ClipSet:
    """Clips of one split, de-normalised (T, 272) float32, with their captions and recipe labels."""

    names: list[str]
    motions: list[np.ndarray]
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def labels(self) -> list[str]:
        return [recipe_label(n) for n in self.names]


_BANDAI = re.compile(r"^(M?dataset-\d+_[^_]+_[^_]+)(?:_\d+)+$")


def recipe_label(name: str) -> str:
    """'bandai/Mdataset-1_walk_sad_003[_01]' -> 'Mdataset-1_walk_sad' (all takes and windows of one
    recipe); other names are their own label."""
    base = name.rsplit("/", 1)[-1]
    match = _BANDAI.match(base)
    return match.group(1) if match else name


def load_split(dataset_root: str | Path, split: str, kind: str = "t2m_60_300") -> ClipSet:
    """Read one split with ``MotionDataset`` (captions) and ``PackedMotions`` when packed, skipping bad clips."""
    from motionmillion.data.layout import MotionDataset

    dataset = MotionDataset(dataset_root)
    names = dataset.names(split, kind=kind)
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
    return ClipSet(keep_names, motions, captions)


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


def _save_checkpoint(folder: Path, model, optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    from motionmillion.utils.io import atomic_path, atomic_write_json

    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    opt = optimizer.state_dict()
    tensors = {f"{pid}.{key}": value.reshape(-1) if value.ndim == 0 else value
               for pid, s in opt["state"].items() for key, value in s.items()}
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    atomic_write_json(folder / "state.json", {**state, "param_groups": opt["param_groups"]})


def _load_checkpoint(folder: Path, model, optimizer) -> dict:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    state = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state


def _augment(motion: np.ndarray, rng: np.random.Generator, config: TrainConfig, max_frames: int) -> np.ndarray:
    length = len(motion)
    keep = length
    if rng.random() < config.crop_prob:
        keep = int(round(length * rng.uniform(config.crop_min, 1.0)))
    keep = max(2, min(keep, max_frames))
    start = int(rng.integers(0, length - keep + 1))
    return motion[start : start + keep]


def train_evaluator(dataset_root: str | Path, run_dir: str | Path, config: TrainConfig | None = None,
                    splits: dict[str, ClipSet] | None = None, normalizer: Normalizer | None = None,
                    progress: bool = True) -> dict:
    """Train (or resume) an evaluator into ``run_dir``; returns the metrics dictionary it writes.

    ``splits``/``normalizer`` may be given directly (tests, other sources); otherwise they are read
    from ``dataset_root`` (train/val/test of ``config.split_kind``).
    """
    from tqdm.auto import tqdm

    from motionmillion.utils.io import atomic_write_json

    config = config or TrainConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    model_config = config.evaluator_config()

    if splits is None:
        splits = {s: load_split(dataset_root, s, config.split_kind) for s in ("train", "val", "test")}
    if normalizer is None:
        from motionmillion.data.layout import MotionDataset

        normalizer = MotionDataset(dataset_root).normalizer()
    train, val = splits["train"], splits.get("val") or splits["test"]
    if len(train) < 2:
        raise ValueError(f"{dataset_root}: the train split needs at least 2 clips, has {len(train)}")
    log.info("clips: %s", {k: len(v) for k, v in splits.items()})

    all_captions = [c for s in splits.values() for caps in s.captions for c in caps]
    cache = TextFeatureCache.build(run_dir / "text_cache", all_captions, model_config.text_encoder,
                                   model_config.text_max_length)
    train_norm = [normalizer.normalize(m.astype(np.float64)).astype(np.float32) for m in train.motions]
    train_labels = train.labels

    torch.manual_seed(config.seed)
    model = EvaluatorModel(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    ckpt = run_dir / "checkpoint"
    state = {"epoch": 0, "step": 0, "elapsed_s": 0.0, "best_score": -1.0, "best_epoch": -1, "history": []}
    if (ckpt / "state.json").is_file():
        saved_config = json.loads((ckpt / "state.json").read_text()).get("train_config")
        if saved_config is not None and saved_config != json.loads(json.dumps(asdict(config))):
            log.warning("resuming %s with a different training config than it was started with", ckpt)
        state = _load_checkpoint(ckpt, model, optimizer)
        log.info("resumed from epoch %d (step %d)", state["epoch"], state["step"])
    num_params = sum(p.numel() for p in model.parameters())
    log.info("evaluator %s: %.2fM trainable parameters", config.preset, num_params / 1e6)

    started = time.time() - state["elapsed_s"]
    for epoch in range(state["epoch"], config.epochs):
        if config.max_minutes is not None and state["elapsed_s"] > config.max_minutes * 60:
            log.info("time budget of %.1f min reached after %d epochs", config.max_minutes, epoch)
            break
        model.train()
        rng = np.random.default_rng(config.seed * 1000 + epoch)
        order = rng.permutation(len(train))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        losses = []
        for b in bar:
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            captions = [train.captions[i][rng.integers(len(train.captions[i]))] for i in idx]
            motions, mask = pad_motions([_augment(train_norm[i], rng, config, model_config.max_frames) for i in idx])
            text_feats, text_mask = cache.batch(captions)
            ignore = negative_mask(cache.sentence(captions), [train_labels[i] for i in idx], config.duplicate_threshold)
            loss = info_nce(model.encode_text_features(text_feats, text_mask),
                            model.encode_motion_normalized(motions, mask), config.temperature, ignore)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state["step"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state["step"] += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        val_report = retrieval_report(model, val, cache, normalizer, config.duplicate_threshold)
        score = (val_report["dedup_t2m@5"] + val_report["dedup_m2t@5"]) / 2
        state["elapsed_s"] = time.time() - started
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_score": score,
                                 "val_t2m@5": val_report["t2m@5"], "elapsed_s": round(state["elapsed_s"], 1)})
        log.info("epoch %d loss %.4f val dedup R@5 %.3f (t2m@1 %.3f, t2m@5 %.3f, m2t@5 %.3f) %.0fs",
                 epoch + 1, np.mean(losses), score, val_report["t2m@1"], val_report["t2m@5"], val_report["m2t@5"], state["elapsed_s"])
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch + 1
            from safetensors.torch import save_file

            from motionmillion.utils.io import atomic_path

            with atomic_path(run_dir / "best.safetensors") as tmp:
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        _save_checkpoint(ckpt, model, optimizer, {**state, "train_config": asdict(config)})

    return finalize(run_dir, model, splits, cache, normalizer, config, state, dataset_root)


def finalize(run_dir: Path, model: EvaluatorModel, splits: dict[str, ClipSet], cache: TextFeatureCache,
             normalizer: Normalizer, config: TrainConfig, state: dict, dataset_root) -> dict:
    """Load the best weights, save the evaluator folder and write metrics.json (test recall + sanity)."""
    from safetensors.torch import load_file

    from motionmillion.utils.io import atomic_write_json

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
