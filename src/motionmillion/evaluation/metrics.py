"""Text-to-motion metrics on evaluator embeddings (numpy only), after Guo et al. 2022.

Embeddings are ``(N, D)`` arrays where row i of the text embeddings is paired with row i of the
motion embeddings. Distances are Euclidean, as in the standard protocol; our evaluator returns
unit-norm embeddings, so these are monotone in cosine similarity and FID is on that scale.

- ``fid``: Fréchet distance between Gaussians fitted to two embedding sets.
- ``r_precision``: top-1..k retrieval accuracy of the paired motion among ``group_size`` (32)
  candidates, in consecutive groups (the last incomplete group is dropped, as in the reference).
- ``mm_dist`` (a.k.a. matching score): mean distance between each text and its paired motion.
- ``diversity``: mean distance between ``num_pairs`` (300) random pairs of motions (seeded).
- ``multimodality``: mean distance between random pairs of motions generated for the same text.
- ``retrieval_recall``: recall@k for text->motion and motion->text over a whole set.
- ``mpjpe``: pelvis-aligned mean per-joint position error (metres) between two joint sequences.
- ``mean_ci95``: mean and 95% confidence half-width (1.96 std / sqrt(n)) over repeats.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances between rows of ``a`` (N, D) and ``b`` (M, D)."""
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    squared = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"frechet_distance: shape mismatch {mu1.shape} {mu2.shape} {sigma1.shape} {sigma2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular products are handled just below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Near-singular product: add a small diagonal, as in the reference implementation.
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _as_2d(embeddings, "embeddings")
    if len(x) < 2:
        raise ValueError("FID needs at least 2 embeddings per set")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def fid(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted (mean, full covariance) to two embedding sets."""
    return max(frechet_distance(*gaussian_stats(embeddings_a), *gaussian_stats(embeddings_b)), 0.0)


def r_precision_hits(distances: np.ndarray, top_k: int = 3) -> np.ndarray:
    """For a square (G, G) text x motion distance matrix: (G, top_k) bool, hit[i, k-1] if motion i is
    among the k nearest motions of text i. Ties are broken in favour of lower indices (stable sort)."""
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(f"r_precision needs a square distance matrix, got {distances.shape}")
    order = np.argsort(distances, axis=1, kind="stable")
    rank = np.argmax(order == np.arange(len(distances))[:, None], axis=1)  # 0 = nearest
    return rank[:, None] < np.arange(1, top_k + 1)[None, :]


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, top_k: int = 3, group_size: int = 32) -> np.ndarray:
    """Top-1..top_k R-precision (fractions, shape (top_k,)) among ``group_size`` candidates.

    Samples are taken in consecutive groups of ``group_size`` (shuffle beforehand for random
    groups); an incomplete last group is dropped. Raises if fewer than ``group_size`` samples.
    """
    text_emb, motion_emb = _as_2d(text_emb, "text embeddings"), _as_2d(motion_emb, "motion embeddings")
    if text_emb.shape != motion_emb.shape:
        raise ValueError(f"r_precision: {text_emb.shape} text vs {motion_emb.shape} motion embeddings")
    num_groups = len(text_emb) // group_size
    if num_groups == 0:
        raise ValueError(f"R-precision needs at least {group_size} samples, got {len(text_emb)}")
    hits = np.zeros(top_k)
    for g in range(num_groups):
        rows = slice(g * group_size, (g + 1) * group_size)
        hits += r_precision_hits(euclidean_distance_matrix(text_emb[rows], motion_emb[rows]), top_k).sum(0)
    return hits / (num_groups * group_size)


def mm_dist(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """Mean Euclidean distance between each text embedding and its paired motion (matching score)."""
    text_emb, motion_emb = _as_2d(text_emb, "text embeddings"), _as_2d(motion_emb, "motion embeddings")
    if text_emb.shape != motion_emb.shape:
        raise ValueError(f"mm_dist: {text_emb.shape} text vs {motion_emb.shape} motion embeddings")
    return float(np.linalg.norm(text_emb - motion_emb, axis=1).mean())


matching_score = mm_dist


def diversity(motion_emb: np.ndarray, num_pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between ``num_pairs`` random pairs (two independent draws without replacement).

    With fewer than ``num_pairs`` samples, as many pairs as samples are used.
    """
    x = _as_2d(motion_emb, "motion embeddings")
    if len(x) < 2:
        raise ValueError("diversity needs at least 2 motions")
    num_pairs = min(num_pairs, len(x))
    rng = np.random.default_rng(seed)
    first = rng.choice(len(x), num_pairs, replace=False)
    second = rng.choice(len(x), num_pairs, replace=False)
    return float(np.linalg.norm(x[first] - x[second], axis=1).mean())


def multimodality(motion_emb: np.ndarray, num_pairs: int = 10, seed: int = 0) -> float:
    """``motion_emb`` (num_texts, num_samples, D): mean distance between ``num_pairs`` random pairs of
    samples of the same text (two independent draws without replacement per text), averaged over texts."""
    x = np.asarray(motion_emb, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError(f"multimodality needs (num_texts, num_samples >= 2, D), got {x.shape}")
    num_pairs = min(num_pairs, x.shape[1])
    rng = np.random.default_rng(seed)
    first = np.stack([rng.choice(x.shape[1], num_pairs, replace=False) for _ in range(len(x))])
    second = np.stack([rng.choice(x.shape[1], num_pairs, replace=False) for _ in range(len(x))])
    rows = np.arange(len(x))[:, None]
    return float(np.linalg.norm(x[rows, first] - x[rows, second], axis=-1).mean())


def retrieval_recall(
    text_emb: np.ndarray, motion_emb: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), exclude: np.ndarray | None = None
) -> dict[str, float]:
    """Recall@k over the whole set by Euclidean distance: ``t2m@k`` (text i finds motion i among all
    motions) and ``m2t@k``. ``exclude`` (N, N) bool, symmetric: candidates j to ignore for query i
    (near-duplicates of i, TMR-style); the diagonal is always kept."""
    distances = euclidean_distance_matrix(text_emb, motion_emb)
    if distances.shape[0] != distances.shape[1]:
        raise ValueError("retrieval_recall needs paired embeddings")
    ignore = np.zeros(distances.shape, dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool).copy()
    np.fill_diagonal(ignore, False)
    out = {}
    for name, d, ign in (("t2m", distances, ignore), ("m2t", distances.T, ignore.T)):
        rank = ((d < np.diag(d)[:, None]) & ~ign).sum(axis=1)  # how many kept candidates are strictly closer
        for k in ks:
            out[f"{name}@{k}"] = float((rank < k).mean())
    return out


def mpjpe(pred_joints: np.ndarray, gt_joints: np.ndarray, align_pelvis: bool = True) -> float:
    """Mean per-joint position error (same unit as the input, metres for our joints).

    ``pred_joints`` and ``gt_joints``: (..., T, J, 3). With ``align_pelvis`` each frame's joints are
    taken relative to joint 0 (pelvis) first, which removes global drift from the comparison.
    """
    pred, gt = np.asarray(pred_joints, dtype=np.float64), np.asarray(gt_joints, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"mpjpe: shapes differ or are not (..., J, 3): {pred.shape} vs {gt.shape}")
    if align_pelvis:
        pred = pred - pred[..., :1, :]
        gt = gt - gt[..., :1, :]
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width 1.96 * std / sqrt(n) (population std, as in the protocol)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_ci95 of no values")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
