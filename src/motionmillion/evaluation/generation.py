"""Generating for evaluation: a pipeline called on many prompts in batches, failures isolated and counted.

A generation that raises, or returns NaN, infinite or malformed features, is a failure (never raised):
the runners (:mod:`protocol`, :mod:`prompt_sets`) leave it out of the metrics and report the rate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from motionmillion.motion.representation import FEATURE_DIM

log = logging.getLogger(__name__)


@dataclass
class Generated:
    features: list[np.ndarray | None]  # None where generation failed
    errors: list[str | None]


def _valid_features(x) -> np.ndarray | None:
    features = getattr(x, "features", x)
    try:
        features = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM or len(features) < 1 or not np.isfinite(features).all():
        return None
    return features


def generate(pipe: Callable, prompts: Sequence[str], seconds: Sequence[float] | None, seed: int,
             batch_size: int = 32, progress=None) -> Generated:
    """Call ``pipe(prompts, seconds=[...] or None, num_samples=1, seed=...)`` in batches.

    A batch that raises is retried prompt by prompt so one bad prompt fails alone; NaN or malformed
    motions count as failures (never raised). Under ``accelerate launch`` the batches are dealt out to the
    processes (batch k to rank k % world) and every rank gets all results back, in order: each batch's
    seed depends only on its position, so the motions are the ones a single process generates.
    """
    rank, world = _rank_and_world()
    limit = getattr(pipe, "max_seconds", None)  # the model's longest motion: longer targets are capped
    done: dict[int, tuple[list, list]] = {}
    for k, start in enumerate(range(0, len(prompts), batch_size)):
        if k % world != rank:
            continue
        features, errors = done.setdefault(start, ([], []))
        chunk = list(prompts[start : start + batch_size])
        secs = None if seconds is None else [float(s) for s in seconds[start : start + batch_size]]
        if secs is not None and limit is not None:
            secs = [min(s, float(limit)) for s in secs]
        try:
            outputs = list(pipe(chunk, seconds=secs, num_samples=1, seed=seed + start))
            if len(outputs) != len(chunk):
                raise RuntimeError(f"pipeline returned {len(outputs)} motions for {len(chunk)} prompts")
        except Exception as err:  # isolate the failing prompt(s)
            log.warning("batch at %d failed (%s); retrying prompt by prompt", start, err)
            outputs = []
            for i, prompt in enumerate(chunk):
                try:
                    outputs.append(pipe([prompt], seconds=None if secs is None else [secs[i]], num_samples=1, seed=seed + start + i)[0])
                except Exception as one_err:
                    outputs.append(one_err)
        for out in outputs:
            if isinstance(out, Exception):
                features.append(None)
                errors.append(f"{type(out).__name__}: {out}")
                continue
            valid = _valid_features(out)
            features.append(valid)
            errors.append(None if valid is not None else "NaN, infinite or malformed motion")
        if progress is not None:
            progress(len(chunk))
    if world > 1:
        from accelerate.utils import gather_object

        done = {start: part for parts in gather_object([done]) for start, part in parts.items()}
    return Generated([f for start in sorted(done) for f in done[start][0]],
                     [e for start in sorted(done) for e in done[start][1]])  # fmt: skip


def _rank_and_world() -> tuple[int, int]:
    """This process among those ``accelerate launch`` started (0 of 1 when not launched)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes join over gloo only with cpu=True
    return state.process_index, state.num_processes
