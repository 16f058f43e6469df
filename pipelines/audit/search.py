"""Candidate pairs without comparing all pairs: a radius search on the embeddings through a k-d tree.

The embeddings (`signature.EMBED_DIM` values) are projected on their leading principal axes; a projection never
lengthens a distance, so every pair within the radius in full is within it in the projection, where scipy's
``cKDTree.query_pairs`` finds them in about O(N log N + pairs found); each found pair is then kept only if its full
distance is within the radius. The result does not depend on how the projection rounds: it only prunes.
"""
from __future__ import annotations

import numpy as np

PROJECTED_DIMS = 12
_SLACK = 1e-5  # float32 rounding of the projected distances: never lose a pair at the radius


def principal_axes(vectors: np.ndarray, dims: int = PROJECTED_DIMS) -> np.ndarray:
    """The ``dims`` leading principal axes (columns) of ``vectors`` (eigenvectors of the D x D scatter matrix,
    linear in N)."""
    centred = vectors - vectors.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    return axes[:, ::-1][:, :dims]


def candidate_pairs(vectors: np.ndarray, radius: float, dims: int = PROJECTED_DIMS) -> np.ndarray:
    """(k, 2) int64 index pairs i < j, sorted, whose Euclidean distance is at most ``radius``."""
    from scipy.spatial import cKDTree

    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return np.zeros((0, 2), np.int64)
    projected = vectors @ principal_axes(vectors, min(dims, vectors.shape[1]))
    found = cKDTree(projected).query_pairs(radius + _SLACK, output_type="ndarray").astype(np.int64)
    if len(found):
        found.sort(axis=1)
        found = found[np.linalg.norm(vectors[found[:, 0]] - vectors[found[:, 1]], axis=1) <= radius]
    return found[np.lexsort((found[:, 1], found[:, 0]))] if len(found) else found.reshape(0, 2)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances of two arrays of 64-bit hashes (uint64)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
