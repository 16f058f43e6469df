"""Candidate pairs without comparing all pairs: a radius search on shift-probed embeddings through a k-d tree.

The embedding of a thumbnail (`signature.THUMB_WH`, 48x64) is its 6x8 grid of RGB cell means (`CELL` pixels a side)
less their mean, at unit length (contrast normalised: a brightness or contrast change barely moves it, and two
unrelated persons, who differ in colours and outline, lie far apart), plus `CONTRAST_WEIGHT` times the log of its
RMS contrast (so grey garments of different darkness, equal at unit length, stay apart). A shift of a few pixels
moves such an embedding as far as a different person does, so each image is also embedded shifted by `SHIFTS` in
each direction (edges repeated): the distance of a pair is the least distance between one's shifted embeddings and
the other's own, which a shift, crop or pad of a few per cent leaves small.

The search: the own embeddings and the shifted ones are projected on the own embeddings' leading principal axes (a
projection never lengthens a distance, so no pair within the radius is lost). A k-d tree of the own projections on
their `TREE_DIMS` leading axes is queried with every shifted projection (``cKDTree.query_ball_point``, a chunk of
images at a time), the points found are kept if within the radius on all `PROJECTED_DIMS` axes, and each pair then
only if its full distance is. The result does not depend on the projection or the tree: they only prune. Why a tree
on few axes, and a tree of the N own points queried by the 9N shifted ones: the images lie densely at the scale of
the radius on the leading axes, so a tree's cells prune little beyond about 8 axes, while the pairs within the radius
on 12 axes still grow about as N squared (on synthetic persons, 35,000 at N = 32,000 against 372 in full, 550 on 32
axes); the own tree (N points) answers the 9N queries faster than the shifted tree (9N points) the N ones.
"""
from __future__ import annotations

import itertools

import numpy as np

CELL = 8  # thumbnail pixels a side of a cell: 48x64 -> a 6x8 grid
SHIFTS = (-1, 0, 1)  # thumbnail pixels (2% of the width, 1.6% of the height), in x and y
CONTRAST_WEIGHT = 0.5
MIN_CONTRAST = 1 / 255  # RMS contrast floor (one level): a blank image has an embedding too
PROJECTED_DIMS = 32  # principal axes a pair is checked on before its full distance
TREE_DIMS = 8  # of which the k-d tree indexes the leading ones
LEAF_SIZE = 128  # points per leaf of the k-d tree
CHUNK = 1024  # thumbnails embedded at once (bounds the memory of their shifted copies)
_SLACK = 1e-5  # float32 rounding of the projected distances: never lose a pair at the radius
OFFSETS = tuple((dy, dx) for dy in SHIFTS for dx in SHIFTS)
OWN = OFFSETS.index((0, 0))


def _aggregation(size: int, shifts: tuple[int, ...]) -> np.ndarray:
    """(len(shifts), size // CELL, size): for each shift, the matrix whose row r sums the pixels of cell r of the
    content moved by that shift, edges repeated (pixel y of the moved content is pixel y - shift, clipped)."""
    out = np.zeros((len(shifts), size // CELL, size), np.float32)
    for k, shift in enumerate(shifts):
        np.add.at(out[k], (np.arange(size) // CELL, np.clip(np.arange(size) - shift, 0, size - 1)), 1.0)
    return out


def _embed_chunk(thumbs: np.ndarray, shifts: tuple[int, ...]) -> np.ndarray:
    """(n, len(shifts) ** 2, D) embeddings of ``thumbs`` (n, H, W, 3) uint8, moved by each pair of ``shifts`` (see
    the module)."""
    n, height, width = thumbs.shape[:3]
    # cell sums of every moved copy at once: integers below 2**24, exact in float32
    sums = np.einsum("ayh,nhwc,bxw->nabyxc", _aggregation(height, shifts), thumbs.astype(np.float32),
                     _aggregation(width, shifts), optimize=True)
    vectors = sums.reshape(n, len(shifts) ** 2, -1).astype(np.float64) / (255.0 * CELL * CELL)
    vectors -= vectors.mean(axis=2, keepdims=True)
    size = vectors.shape[2]
    rms = np.maximum(np.linalg.norm(vectors, axis=2) / np.sqrt(size), MIN_CONTRAST)
    unit = vectors / (rms * np.sqrt(size))[..., None]
    return np.concatenate([unit, CONTRAST_WEIGHT * np.log(rms)[..., None]], axis=2)


def embeddings(thumbs: np.ndarray, shifts: tuple[int, ...] = SHIFTS) -> np.ndarray:
    """(n, len(shifts) ** 2, D) float64 embeddings of ``thumbs`` (n, H, W, 3) uint8 (H, W multiples of `CELL`): the
    content moved by each (dy, dx) of ``shifts``; with the default, by each of `OFFSETS`, `OWN` the unmoved one."""
    if thumbs.shape[1] % CELL or thumbs.shape[2] % CELL:
        raise ValueError(f"thumbnail size {thumbs.shape[2]}x{thumbs.shape[1]} is not a multiple of {CELL}")
    return np.concatenate([_embed_chunk(thumbs[k:k + CHUNK], shifts) for k in range(0, max(len(thumbs), 1), CHUNK)])


def principal_axes(vectors: np.ndarray, dims: int = PROJECTED_DIMS) -> np.ndarray:
    """The ``dims`` leading principal axes (columns) of ``vectors`` (eigenvectors of the D x D scatter matrix,
    linear in N)."""
    centred = vectors - vectors.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    return axes[:, ::-1][:, :dims]


def pair_distances(thumbs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The distance of each pair (i, j) of ``pairs``: the least distance between the shifted embeddings of one and
    the own embedding of the other (each image involved embedded once)."""
    used, index = np.unique(pairs, return_inverse=True)
    index = index.reshape(pairs.shape)
    probes = embeddings(thumbs[used])
    one_way = [np.linalg.norm(probes[index[:, a]] - probes[index[:, b], OWN][:, None], axis=2).min(axis=1)
               for a, b in ((0, 1), (1, 0))]
    return np.minimum(*one_way)


def _probe_hits(shifted: np.ndarray, own: np.ndarray, tree, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (probe, own point) of the ``shifted`` projections (rows) within ``bound`` of an ``own`` projection on
    all its axes, found by ``tree`` (of ``own`` on its leading `TREE_DIMS` axes)."""
    found = tree.query_ball_point(shifted[:, :TREE_DIMS], bound, return_sorted=False)
    lengths = np.fromiter(map(len, found), np.int64, len(found))
    probe = np.repeat(np.arange(len(found)), lengths)
    other = np.fromiter(itertools.chain.from_iterable(found), np.int64, int(lengths.sum()))
    near = np.linalg.norm(shifted[probe] - own[other], axis=1) <= bound
    return probe[near], other[near]


def candidate_pairs(thumbs: np.ndarray, radius: float, dims: int = PROJECTED_DIMS) -> tuple[np.ndarray, np.ndarray]:
    """(k, 2) int64 index pairs i < j, sorted, whose distance (`pair_distances`) is at most ``radius``, and their
    distances (k,)."""
    from scipy.spatial import cKDTree

    thumbs = np.asarray(thumbs, dtype=np.uint8)
    if len(thumbs) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    own = embeddings(thumbs, shifts=(0,))[:, 0]
    axes = principal_axes(own, dims)
    own = own @ axes
    tree = cKDTree(own[:, :TREE_DIMS], leafsize=LEAF_SIZE)
    found = []
    for start in range(0, len(thumbs), CHUNK):  # the shifted embeddings of a chunk at a time
        shifted = (embeddings(thumbs[start:start + CHUNK]) @ axes).reshape(-1, axes.shape[1])
        probe, other = _probe_hits(shifted, own, tree, radius + _SLACK)
        found.append(np.stack([start + probe // len(OFFSETS), other], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)  # sorted by i, then j
    if not len(pairs):
        return pairs.reshape(0, 2), np.zeros(0)
    distances = pair_distances(thumbs, pairs)
    keep = distances <= radius
    return pairs[keep], distances[keep]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances of two arrays of 64-bit hashes (uint64)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
