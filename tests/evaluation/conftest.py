"""Synthetic clips in memory: 4 kinds of motion, each with its own captions, clearly separable."""

import numpy as np
import pytest

from motionmillion.evaluation.train import ClipSet
from motionmillion.motion.normalization import Normalizer

KINDS = {
    "walk": ["a person walks forward", "someone strolls ahead"],
    "wave": ["a person waves the right hand", "someone says goodbye with a hand"],
    "kick": ["a person kicks with the right leg", "someone kicks forward"],
    "bow": ["a person bows politely", "someone bends forward in a bow"],
}


def synthetic_clips(num_per_kind: int, seed: int, prefix: str) -> ClipSet:
    rng = np.random.default_rng(seed)
    names, motions, captions, labels = [], [], [], []
    for k, (kind, caps) in enumerate(KINDS.items()):
        signature = np.random.default_rng(100 + k).normal(size=272)  # same across splits
        for i in range(num_per_kind):
            length = int(rng.integers(40, 120))
            t = np.linspace(0, 1, length)[:, None]
            motion = signature[None] * np.sin(2 * np.pi * (k + 1) * t) + 0.3 * rng.normal(size=(length, 272))
            names.append(f"{prefix}/dataset-1_{kind}_style{i % 3}_{i:03d}")
            motions.append(motion.astype(np.float32))
            captions.append(list(caps))
            labels.append(f"{kind}/style{i % 3}")  # takes of one content/style: not each other's negatives
    return ClipSet(names, motions, captions, labels)


@pytest.fixture(scope="session")
def synthetic_splits():
    return {"train": synthetic_clips(16, 0, "syn"), "val": synthetic_clips(7, 1, "syn"), "test": synthetic_clips(10, 2, "syn")}


@pytest.fixture(scope="session")
def identity_normalizer():
    return Normalizer(np.zeros(272), np.ones(272))


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory, synthetic_splits):
    """The synthetic splits written in the MotionMillion layout (plausible-looking 272 features)."""
    from motionmillion.data.layout import write_clip, write_mean_std, write_split

    root = tmp_path_factory.mktemp("dataset")
    for split, clips in synthetic_splits.items():
        for name, motion, caps in zip(clips.names, clips.motions, clips.captions):
            write_clip(root, f"{split}/{name.split('/')[-1]}", motion, caps)
        write_split(root, "t2m_60_300", split, [f"{split}/{n.split('/')[-1]}" for n in clips.names])
    write_mean_std(root, np.zeros(272), np.ones(272))
    return root


@pytest.fixture(scope="session")
def tiny_evaluator(tmp_path_factory, synthetic_splits, identity_normalizer):
    from motionmillion.evaluation.config import PRESETS, RunConfig, TrainConfig
    from motionmillion.evaluation.evaluator import Evaluator
    from motionmillion.evaluation.train import train_evaluator

    run = tmp_path_factory.mktemp("evaluator")
    # 6 epochs of the 64 train clips (4 steps each), validated and saved after each
    train = TrainConfig(steps=24, eval_every=4, save_every=4, batch_size=16, lr=2e-3, warmup_steps=2)
    config = RunConfig(PRESETS["tiny"].model, train)
    train_evaluator("synthetic", run, config, splits=synthetic_splits, normalizer=identity_normalizer, progress=False)
    return run, Evaluator.from_pretrained(run)


class FakePipeline:
    """Stands in for MotionPipeline (contract 6): returns the training clip whose caption matches
    (so generations are "perfect"), cut or tiled to the requested length; 'explode' prompts give NaN."""

    def __init__(self, clips):
        self.by_caption = {c: m for caps, m in zip(clips.captions, clips.motions) for c in caps}
        self.calls = 0

    def __call__(self, prompts, seconds=None, num_samples=1, seed=None, guidance=3.0):
        self.calls += 1
        rng = np.random.default_rng(seed)
        out = []
        for i, prompt in enumerate(prompts):
            if "explode" in prompt:
                out.append(np.full((30, 272), np.nan))
                continue
            if "crash" in prompt:
                raise RuntimeError("model crashed")
            base = self.by_caption.get(prompt, next(iter(self.by_caption.values())))
            frames = int(round(seconds[i] * 30)) if seconds is not None else len(base)
            motion = np.resize(base, (frames, 272)) + 0.01 * rng.normal(size=(frames, 272))
            out.append(motion)
        return out


@pytest.fixture(scope="session")
def fake_pipeline(synthetic_splits):
    return FakePipeline(synthetic_splits["train"])
