"""Rotation conversions (numpy, any leading batch shape). The one place the project converts rotations.

Conventions: rotation matrices act on column vectors; the 6D form is the **first two rows** of the
matrix, row-major ``[R00, R01, R02, R10, R11, R12]`` (the 272 representation's convention, which
differs from HumanML3D's first two columns).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_EPS = 1e-12


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` for (..., 3) arrays, written out: several times faster on the small batched arrays
    of per-frame kinematics (numpy's moves axes and copies on every call)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def matrix_to_6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first two rows."""
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def sixd_to_matrix(sixd: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; the rows are b1, b2, b1 x b2."""
    a1, a2 = sixd[..., :3], sixd[..., 3:6]
    b1 = _normalize(a1)
    b2 = _normalize(a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def yaw_matrix(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about +Y: [[c, 0, s], [0, 1, 0], [-s, 0, c]]; shape (..., 3, 3)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.stack(
        [np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2
    )


def heading_angle(matrix: np.ndarray) -> np.ndarray:
    """Yaw of the body's forward axis (+Z rotated by ``matrix``) about +Y, in radians."""
    return np.arctan2(matrix[..., 0, 2], matrix[..., 2, 2])


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    flat = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix()
    return flat.reshape(*axis_angle.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    flat = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec()
    return flat.reshape(*matrix.shape[:-2], 3)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions, scalar last (x, y, z, w) as glTF stores them."""
    flat = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_quat()
    return flat.reshape(*matrix.shape[:-2], 4)


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles in degrees, in BVH channel order (e.g. "ZXY" means R = Rz Rx Ry)."""
    flat = Rotation.from_euler(order.upper(), angles_deg.reshape(-1, 3), degrees=True).as_matrix()
    return flat.reshape(*angles_deg.shape[:-1], 3, 3)


def matrix_to_euler(matrix: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`; degrees."""
    flat = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_euler(order.upper(), degrees=True)
    return flat.reshape(*matrix.shape[:-2], 3)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction ``a`` onto direction ``b``; (..., 3) -> (..., 3, 3).

    Antiparallel inputs rotate by pi about an axis perpendicular to ``a``.
    """
    a, b = np.broadcast_arrays(_normalize(np.asarray(a, float)), _normalize(np.asarray(b, float)))
    axis = cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    # Where a and b are (anti)parallel the cross product vanishes: pick any axis perpendicular to a.
    fallback = cross(a, np.array([1.0, 0.0, 0.0]))
    fallback = np.where(np.linalg.norm(fallback, axis=-1, keepdims=True) < 1e-6, cross(a, [0.0, 1.0, 0.0]), fallback)
    axis = np.where(sin[..., None] < 1e-9, fallback, axis)
    return axis_angle_to_matrix(_normalize(axis) * angle[..., None])


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation R minimising sum w |R s_i - t_i|^2; source/target (..., N, 3) -> (..., 3, 3)."""
    if weights is not None:
        source = source * weights[..., None]
    cov = np.swapaxes(target, -1, -2) @ source  # (..., 3, 3) = sum t s^T
    u, _, vt = np.linalg.svd(cov)
    det = np.linalg.det(u @ vt)
    fix = np.ones(cov.shape[:-1])
    fix[..., -1] = np.sign(det)
    return (u * fix[..., None, :]) @ vt
