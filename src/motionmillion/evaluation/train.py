"""Contrastive training of the evaluator (InfoNCE, near-duplicate captions removed from the negatives).

``train_evaluator(dataset_root, run_dir, config)`` reads the dataset (contracts 2/3), caches the frozen
text encoder's token features once per distinct caption, trains with a symmetric InfoNCE loss on
cosine similarities (temperature 0.1), validates every ``eval_every`` steps and keeps the weights with the
best validation retrieval, and writes the evaluator folder plus ``metrics.json`` with test retrieval
recall@1/5/10, R-precision among 32 and real-vs-real sanity figures. It resumes from ``run_dir/checkpoints``
after an interruption and then ends with the same weights as an uninterrupted run.

Negatives: inside a batch, pair (i, j) is not used as a negative when the two captions are near
duplicates (cosine of their mean-pooled sentence embeddings > ``duplicate_threshold``) or the two
clips share a recipe label (from the dataset's import records: content/style and mirroring; clips without
a record are their own label).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from motionmillion.evaluation import metrics
from motionmillion.evaluation.config import PRESETS, RunConfig, TrainConfig
from motionmillion.evaluation.evaluator import Evaluator, EvaluatorModel, crop_to_max, pad_motions
from motionmillion.motion.normalization import Normalizer
from motionmillion.text import TextFeatureCache
from motionmillion.training import Checkpoints, RunLog, TimeBudget, check_resume, preset, resolve_mixed_precision
from motionmillion.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

# Training fields that may change when a run is resumed (they do not change what a step computes).
RESUMABLE_CHANGES = {"steps", "max_minutes", "log_every", "eval_every", "save_every", "keep_checkpoints"}


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
    """setup (clips, text cache, model, resume) -> fit (validate every eval_every steps, keep the best) ->
    finalize (the evaluator folder + metrics.json). Checkpoints: motionmillion.training.Checkpoints.

    Batches go through the train clips epoch by epoch. An epoch's order, caption picks, crops and dropout
    come from generators seeded by (seed, epoch); a checkpoint inside an epoch stores their states."""

    def __init__(self, dataset_root, run_dir: str | Path, config: RunConfig, splits: dict[str, ClipSet] | None = None,
                 normalizer: Normalizer | None = None, progress: bool = True) -> None:  # fmt: skip
        self.dataset_root, self.run_dir = dataset_root, Path(run_dir)
        self.config, self.model_config = config.train, config.model
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
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                                           weight_decay=config.weight_decay)  # fmt: skip
        self.steps_per_epoch = max(1, len(self.train_clips) // config.batch_size)
        self.state = {"step": 0, "elapsed_seconds": 0.0, "best_score": -1.0, "best_step": -1, "history": []}
        self.order, self.resumed_rng = None, None
        self.checkpoints = Checkpoints(run_dir, config.keep_checkpoints)
        self.run_config = RunConfig(self.model_config, config).to_dict()
        resume = self.checkpoints.latest()
        recorded = None
        if resume is not None:
            folder, state = resume
            state_file = folder / "trainer_state.json"
            saved = RunConfig.from_dict(_upgrade_run_config(state["run_config"], self.steps_per_epoch), state_file)
            check_resume(saved.to_dict(), self.run_config, state_file, RESUMABLE_CHANGES)
            self._load(folder, state)
            recorded = state.get("mixed_precision")
            progress = {k: v for k, v in state.items() if k not in ("run_config", "mixed_precision", "numpy_rng")}
            self.state = _upgrade_state(progress, self.steps_per_epoch)
            log.info("resumed at step %d", self.state["step"])
        self.mixed = resolve_mixed_precision(config.mixed_precision, recorded)
        log.info("evaluator: %.2fM trainable parameters, %d steps per epoch, mixed precision %s",
                 sum(p.numel() for p in self.model.parameters()) / 1e6, self.steps_per_epoch, self.mixed)  # fmt: skip
        return self

    def fit(self) -> dict:
        from tqdm.auto import tqdm

        config, state = self.config, self.state
        self.budget = TimeBudget(config.max_minutes, state["elapsed_seconds"])
        bar = tqdm(total=config.steps, initial=state["step"], desc="evaluator", disable=not self.progress, leave=False)
        losses, logged, time_up = [], 0, False
        self.model.train()
        while state["step"] < config.steps and not time_up:
            epoch, batch = divmod(state["step"], self.steps_per_epoch)
            if batch == 0 or self.order is None:
                self._start_epoch(epoch, None if batch == 0 else self.resumed_rng)
            for group in self.optimizer.param_groups:
                group["lr"] = config.learning_rate(state["step"])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.mixed == "bf16"):
                loss = self._loss(self.order[batch * config.batch_size : (batch + 1) * config.batch_size], self.rng)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            state["step"] += 1
            step = state["step"]
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            state["elapsed_seconds"], time_up = self.budget.check()
            if step % config.log_every == 0:
                mean = float(np.mean(losses[logged:]))
                logged = len(losses)
                self.run_log.scalars({"loss": mean, "lr": self.optimizer.param_groups[0]["lr"]}, step)
                log.info("step %d loss %.4f lr %.3e", step, mean, self.optimizer.param_groups[0]["lr"])
            if (config.eval_every and step % config.eval_every == 0) or step == config.steps or time_up:
                self.evaluate(losses)
                losses, logged = [], 0
            if step % config.save_every == 0 or step == config.steps or time_up:
                self.save_checkpoint()
            if time_up:
                log.info("time budget of %.1f min reached at step %d", config.max_minutes, step)
        bar.close()
        if not state["history"] or state["history"][-1]["step"] != state["step"]:
            self.evaluate(losses)  # a resumed run that had ended before its last validation
        report = finalize(self.run_dir, self.model, self.splits, self.cache, self.normalizer, config, state,
                          self.dataset_root)  # fmt: skip
        self.run_log.close()
        return report

    def _start_epoch(self, epoch: int, resumed: dict | None) -> None:
        """The epoch's generators and clip order; ``resumed``: a checkpoint's generator states inside the epoch."""
        seed = self.config.seed * 1000 + epoch
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.train_clips))
        if resumed is None:
            torch.manual_seed(seed)
        else:
            self.rng.bit_generator.state = resumed["numpy"]
            torch.set_rng_state(resumed["torch"])

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

    def evaluate(self, losses: list[float]) -> None:
        """Validate, record, and keep the weights if they score best so far (``best.safetensors``)."""
        state, step = self.state, self.state["step"]
        val_report = self.validate()
        self.model.train()
        score = (val_report["dedup_t2m@5"] + val_report["dedup_m2t@5"]) / 2
        loss = float(np.mean(losses)) if losses else float("nan")
        state["history"].append({"step": step, "loss": loss, "val_score": score, "val_t2m@5": val_report["t2m@5"],
                                 "elapsed_seconds": round(state["elapsed_seconds"], 1)})  # fmt: skip
        self.run_log.scalars({"score": score, "t2m@5": val_report["t2m@5"]}, step, prefix="val")
        log.info("step %d loss %.4f val dedup R@5 %.3f (t2m@1 %.3f, t2m@5 %.3f, m2t@5 %.3f) %.0fs", step, loss, score,
                 val_report["t2m@1"], val_report["t2m@5"], val_report["m2t@5"], state["elapsed_seconds"])  # fmt: skip
        if score > state["best_score"]:
            state["best_score"], state["best_step"] = score, step
            _save_tensors(self.run_dir / "best.safetensors", self.model.state_dict())

    def save_checkpoint(self) -> None:
        def write(folder: Path) -> None:
            _save_tensors(folder / "model.safetensors", self.model.state_dict())
            opt = self.optimizer.state_dict()
            tensors = {f"{pid}.{key}": value.reshape(-1) if value.ndim == 0 else value
                       for pid, s in opt["state"].items() for key, value in s.items()}  # fmt: skip
            _save_tensors(folder / "optimizer.safetensors", tensors)
            atomic_write_json(folder / "param_groups.json", opt["param_groups"])
            _save_tensors(folder / "rng.safetensors", {"torch": torch.get_rng_state()})

        extra = {"mixed_precision": self.mixed, "numpy_rng": self.rng.bit_generator.state, "run_config": self.run_config}
        self.checkpoints.save(self.state["step"], write, {**self.state, **extra})

    def _load(self, folder: Path, state: dict) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        opt_state: dict[int, dict] = {}
        for key, value in load_file(str(folder / "optimizer.safetensors")).items():
            pid, name = key.split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value.reshape(()) if name == "step" else value
        groups = json.loads((folder / "param_groups.json").read_text(encoding="utf-8"))
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        if (folder / "rng.safetensors").is_file() and "numpy_rng" in state:
            torch_rng = load_file(str(folder / "rng.safetensors"))["torch"]
            self.resumed_rng = {"numpy": state["numpy_rng"], "torch": torch_rng}
        elif state["step"] % self.steps_per_epoch:  # checkpoints of older versions all lie at epoch ends
            raise ValueError(f"{folder}: a checkpoint inside an epoch without rng.safetensors; use a new --out folder")


# Runs started when the evaluator counted epochs (one validation and one checkpoint after each) keep
# resuming: their epochs become steps (an epoch is steps_per_epoch steps, as then), their other settings
# were today's defaults or are resumable.
def _upgrade_run_config(run_config: dict, steps_per_epoch: int) -> dict:
    train = dict(run_config["train"])
    if "epochs" in train:
        train["steps"] = train.pop("epochs") * steps_per_epoch
        train.setdefault("eval_every", steps_per_epoch)
        train.setdefault("save_every", steps_per_epoch)
    return {**run_config, "train": train}


def _upgrade_state(state: dict, steps_per_epoch: int) -> dict:
    if "best_epoch" in state:
        state["best_step"] = state.pop("best_epoch") * steps_per_epoch
    state.pop("epoch", None)
    for entry in [state, *state["history"]]:
        if "elapsed_s" in entry:
            entry["elapsed_seconds"] = entry.pop("elapsed_s")
        if "epoch" in entry:
            entry["step"] = entry.pop("epoch") * steps_per_epoch
    return state


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def train_evaluator(dataset_root: str | Path, run_dir: str | Path, config: RunConfig | None = None,
                    splits: dict[str, ClipSet] | None = None, normalizer: Normalizer | None = None,
                    progress: bool = True) -> dict:
    """Train (or resume) an evaluator into ``run_dir``; returns the metrics dictionary it writes.

    ``config`` defaults to the ``small`` preset. ``splits``/``normalizer`` may be given directly (tests,
    other sources); otherwise train/val/test of ``config.train.split_kind`` are read from ``dataset_root``.
    """
    config = config or preset(PRESETS, "small")
    return EvaluatorTrainer(dataset_root, run_dir, config, splits, normalizer, progress).setup().fit()


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
    report["training"] = {"steps": state["step"], "best_step": state["best_step"],
                          "elapsed_seconds": round(state["elapsed_seconds"], 1), "history": state["history"]}
    extra = {"training": {"dataset": str(dataset_root), "train_config": asdict(config),
                          "best_step": state["best_step"], "test": report["test"]}}
    report["weights_sha256"] = Evaluator(model, normalizer).save_pretrained(run_dir, extra=extra)
    atomic_write_json(run_dir / "metrics.json", report)
    return report
