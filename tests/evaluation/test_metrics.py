"""Every metric against a small case computed by hand."""

import numpy as np
import pytest

from motionmillion.evaluation import metrics


def test_frechet_distance_of_two_known_gaussians():
    d = 4
    # N(0, I) vs N(1, 4I): |mu|^2 = d, tr(I + 4I - 2 * sqrt(4I)) = d (1 + 4 - 4) = d  -> 2d
    assert metrics.frechet_distance(np.zeros(d), np.eye(d), np.ones(d), 4 * np.eye(d)) == pytest.approx(2 * d)
    assert metrics.frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), np.eye(d)) == pytest.approx(0, abs=1e-9)


def test_fid_of_shifted_samples_is_the_squared_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    shift = np.array([1.0, 2.0, 0.0, 0.0, -1.0])
    assert metrics.fid(x, x + shift) == pytest.approx(6.0, rel=1e-6)  # identical covariance
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_with_singular_covariance_is_finite():
    x = np.zeros((10, 3))
    x[:, 0] = np.arange(10)  # rank-1 covariance
    assert np.isfinite(metrics.fid(x, x + 1.0))


def test_r_precision_hits_of_constructed_matrix():
    # Row 0: own motion nearest -> rank 0. Row 1: one closer -> rank 1. Row 2: two closer -> rank 2.
    d = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.9], [0.1, 0.2, 0.3]])
    hits = metrics.r_precision_hits(d, top_k=3)
    assert hits.tolist() == [[True, True, True], [False, True, True], [False, False, True]]


def test_r_precision_among_32():
    rng = np.random.default_rng(1)
    motion = rng.normal(size=(64, 8))
    assert metrics.r_precision(motion, motion).tolist() == [1.0, 1.0, 1.0]  # text == motion: always nearest
    # Swap the texts of rows 0 and 1: each of those texts now sits exactly on the other's motion.
    text = motion.copy()
    text[[0, 1]] = text[[1, 0]]
    r = metrics.r_precision(text, motion, top_k=1)
    assert r[0] == pytest.approx(62 / 64)
    with pytest.raises(ValueError, match="at least 32"):
        metrics.r_precision(motion[:31], motion[:31])


def test_r_precision_drops_incomplete_group():
    motion = np.eye(40)
    text = motion.copy()
    text[35:] = 0  # broken rows only in the dropped tail
    assert metrics.r_precision(text, motion)[0] == 1.0


def test_mm_dist_and_distance_matrix():
    text = np.array([[0.0, 0.0], [1.0, 1.0]])
    motion = np.array([[3.0, 4.0], [1.0, 1.0]])
    assert metrics.mm_dist(text, motion) == pytest.approx(2.5)  # (5 + 0) / 2
    np.testing.assert_allclose(metrics.euclidean_distance_matrix(text, motion), [[5.0, np.sqrt(2)], [np.sqrt(13), 0.0]])


def test_diversity_of_two_points_and_seed():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    # Every pair is (a, a) -> 0 or (a, b) -> 5; with 2 samples and 2 pairs each draw is a permutation.
    value = metrics.diversity(x, num_pairs=300, seed=0)
    assert value in (0.0, 2.5, 5.0)
    points = np.random.default_rng(2).normal(size=(500, 3))
    assert metrics.diversity(points, seed=3) == metrics.diversity(points, seed=3)
    # Points on a regular simplex: every distinct pair has distance sqrt(2).
    simplex = np.eye(400)
    d = metrics.diversity(simplex, num_pairs=300, seed=5)
    rng = np.random.default_rng(5)
    a, b = rng.choice(400, 300, replace=False), rng.choice(400, 300, replace=False)
    assert d == pytest.approx(np.sqrt(2) * (a != b).mean())


def test_multimodality_constant_offsets():
    # Two samples per text at distance 2 from each other: any pair is 0 (same) or 2 (different).
    emb = np.zeros((5, 2, 3))
    emb[:, 1, 0] = 2.0
    value = metrics.multimodality(emb, num_pairs=2, seed=0)
    rng = np.random.default_rng(0)
    first = np.stack([rng.choice(2, 2, replace=False) for _ in range(5)])
    second = np.stack([rng.choice(2, 2, replace=False) for _ in range(5)])
    assert value == pytest.approx(2.0 * (first != second).mean())
    with pytest.raises(ValueError):
        metrics.multimodality(np.zeros((5, 1, 3)))


def test_retrieval_recall():
    motion = np.array([[0.0], [1.0], [2.0], [3.0]])
    text = np.array([[0.0], [1.0], [2.0], [0.1]])  # text 3 is nearest motion 0, its own is 4th (rank 3)
    r = metrics.retrieval_recall(text, motion, ks=(1, 4))
    assert r["t2m@1"] == 0.75 and r["t2m@4"] == 1.0
    # motion 3 = 3.0: texts at distance 2.9, 2, 1, 3 -> own text (2.9) has 2 closer -> rank 2
    assert r["m2t@1"] == 0.75
    exclude = np.zeros((4, 4), dtype=bool)
    exclude[3, :3] = True  # motions 0-2 are near-duplicates for query 3: its own becomes rank 0
    assert metrics.retrieval_recall(text, motion, ks=(1,), exclude=exclude)["t2m@1"] == 1.0


def test_mpjpe_is_pelvis_aligned():
    gt = np.zeros((2, 22, 3))
    pred = gt + np.array([5.0, 0.0, 0.0])  # pure translation: zero after pelvis alignment
    assert metrics.mpjpe(pred, gt) == 0.0
    assert metrics.mpjpe(pred, gt, align_pelvis=False) == pytest.approx(5.0)
    pred[:, 3] += [0.0, 0.22, 0.0]  # one joint of 22 off by 22 cm -> mean 1 cm
    assert metrics.mpjpe(pred, gt) == pytest.approx(0.01)


def test_mean_ci95():
    mean, ci = metrics.mean_ci95([1.0, 3.0])
    assert mean == 2.0 and ci == pytest.approx(1.96 * 1.0 / np.sqrt(2))
    assert metrics.mean_ci95([4.0]) == (4.0, 0.0)


def test_nan_embeddings_rejected():
    x = np.ones((40, 3))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.fid(x, x)
