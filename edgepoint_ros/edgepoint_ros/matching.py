"""Brute-force descriptor matching: nearest neighbour, mutual check, ratio test.

One function, `match_descriptors`, serves the matcher node, the evaluation and
the tests, for both descriptor layouts of `edgepoint_msgs/Keypoints`:

* float32 rows: Euclidean distance. It is computed from the dot product,
  ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b``, as one BLAS matrix product of rows
  extended by two columns, ``[a, |a|^2, 1] . [-2 b, 1, |b|^2]``, so no
  element-wise pass over the matrix adds the norms. Rounding can make a
  squared distance slightly negative (near-identical rows): the nearest
  neighbours are found on the values as computed, and the best and second-best
  distances are clipped at 0 before the ratio test and the square root.
  Nearest neighbours and the ratio test work on squared distances (same
  order, ratio squared); only the kept matches get a square root. For
  unit-length descriptors the distance is ``sqrt(2 - 2 cos)``.
* binary rows (bit-packed uint8, MSB first): Hamming distance, the popcount of
  the XOR. Rows are zero-padded to a multiple of 8 bytes and viewed as uint64
  words, so each pair costs ceil(bytes / 8) XORs and `numpy.bitwise_count`
  calls instead of one per byte. Padding bits are zero on both sides, so they
  never count.

The distance matrix is computed in blocks of rows of `desc_a` (about 16 M
entries per block), keeping per-row best/second-best and per-column best as it
goes, so 5000 x 5000 (or larger) sets never hold a full matrix of
intermediates in memory.

Matching rules, applied in this order to the nearest neighbour b = NN(a):
  * ratio test (Lowe): keep when d1 < ratio * d2, with d1/d2 the distances to
    the nearest and second-nearest neighbour of a; ratio = 0 disables it (and it
    is skipped when B has a single row, as there is no second neighbour);
  * max_distance: keep when d1 <= max_distance (None disables);
  * mutual: keep only when a is also the nearest neighbour of b in A.
Ties are broken towards the lower index.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .features import Features

DESCRIPTOR_TYPES = ("float32", "binary")
# Distance-matrix entries computed per block: 2^18 keeps a block's
# intermediates in cache (1 MB of float32); measured for 1000x1000 on this
# machine: float 9.0 -> 4.6 ms, 64-bit binary 13.9 -> 2.7 ms against 2^24.
_BLOCK_ENTRIES = 1 << 18


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, *,
                      descriptor_type: str = "float32", mutual: bool = True,
                      ratio: float = 0.0, max_distance: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match the rows of `desc_a` to the rows of `desc_b`.

    desc_a: (Na, D) float32 or (Na, B) uint8 packed bits; desc_b likewise with
    the same number of columns. Returns (idx_a int64[M], idx_b int64[M],
    distances float32[M]) sorted by idx_a; distances are Euclidean for float
    descriptors and Hamming (bit count) for binary ones.
    """
    if descriptor_type not in DESCRIPTOR_TYPES:
        raise ValueError(f"descriptor_type must be one of {', '.join(DESCRIPTOR_TYPES)}; "
                         f"got {descriptor_type!r}")
    ratio = float(ratio)
    if not (0.0 <= ratio <= 1.0):
        raise ValueError(f"ratio must be in [0, 1] (0 disables the ratio test); got {ratio}")
    if max_distance is not None and not float(max_distance) >= 0.0:
        raise ValueError(f"max_distance must be >= 0 or None; got {max_distance}")
    desc_a = _check_descriptors("desc_a", desc_a, descriptor_type)
    desc_b = _check_descriptors("desc_b", desc_b, descriptor_type)
    if desc_a.shape[1] != desc_b.shape[1]:
        unit = "dimensions" if descriptor_type == "float32" else "bytes"
        raise ValueError(f"descriptor sizes differ: desc_a has {desc_a.shape[1]} {unit} per row, "
                         f"desc_b has {desc_b.shape[1]}")
    if len(desc_a) == 0 or len(desc_b) == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    use_ratio = ratio > 0.0 and len(desc_b) >= 2
    # Blocks of a monotone cost: squared Euclidean distance (float) or Hamming
    # distance (binary); only the kept entries are turned into distances.
    if descriptor_type == "float32":
        cost_blocks = _squared_euclidean_blocks(desc_a, desc_b)
        ratio_on_cost = ratio * ratio
    else:
        cost_blocks = _hamming_blocks(desc_a, desc_b)
        ratio_on_cost = ratio

    na, nb = len(desc_a), len(desc_b)
    best_b = np.empty(na, np.int64)
    best_cost = np.empty(na, np.float32)
    second_cost = np.full(na, np.inf, np.float32)
    col_best_cost = np.full(nb, np.inf, np.float32)
    col_best_a = np.zeros(nb, np.int64)
    for start, cost in cost_blocks:
        rows = np.arange(len(cost))
        stop = start + len(cost)
        arg = np.argmin(cost, axis=1)
        best_b[start:stop] = arg
        best_cost[start:stop] = cost[rows, arg]
        if mutual:
            col_cost, col_arg = _column_minima(cost)
            better = col_cost < col_best_cost  # strict: earlier (lower-index) rows win ties
            col_best_cost[better] = col_cost[better]
            col_best_a[better] = col_arg[better] + start
        if use_ratio:  # second-best: hide the best entry, take the minimum again
            cost[rows, arg] = np.inf
            second_cost[start:stop] = cost.min(axis=1)

    if descriptor_type == "float32":
        np.maximum(best_cost, 0.0, out=best_cost)
        np.maximum(second_cost, 0.0, out=second_cost)
    distances = np.sqrt(best_cost) if descriptor_type == "float32" else best_cost
    keep = np.ones(na, bool)
    if use_ratio:
        keep &= best_cost < ratio_on_cost * second_cost
    if max_distance is not None:
        keep &= distances <= float(max_distance)
    if mutual:
        keep &= col_best_a[best_b] == np.arange(na)
    idx_a = np.flatnonzero(keep).astype(np.int64)
    return idx_a, best_b[idx_a], distances[idx_a].astype(np.float32)


def match_features(a: "Features", b: "Features", **kwargs
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`match_descriptors` on two `Features`; their descriptor layouts must agree."""
    if a.descriptor_type != b.descriptor_type or a.descriptor_dim != b.descriptor_dim:
        raise ValueError(
            f"cannot match {a.descriptor_type} descriptors of dimension {a.descriptor_dim} "
            f"with {b.descriptor_type} descriptors of dimension {b.descriptor_dim}")
    if "descriptor_type" in kwargs:
        raise ValueError("match_features takes the descriptor type from the Features")
    return match_descriptors(a.descriptors, b.descriptors,
                             descriptor_type=a.descriptor_type, **kwargs)


def _check_descriptors(name: str, desc, descriptor_type: str) -> np.ndarray:
    if not isinstance(desc, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(desc).__name__}")
    if desc.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows = keypoints), got shape {desc.shape}")
    if descriptor_type == "float32":
        if desc.dtype not in (np.float32, np.float64, np.float16):
            raise ValueError(f"{name}: float32 descriptors must have a float dtype, "
                             f"got {desc.dtype} (binary descriptors need "
                             "descriptor_type='binary')")
        desc = np.ascontiguousarray(desc, dtype=np.float32)
        if desc.size and not np.isfinite(desc).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return desc
    if desc.dtype != np.uint8:
        raise ValueError(f"{name}: binary descriptors must be bit-packed uint8 rows, "
                         f"got dtype {desc.dtype}")
    return np.ascontiguousarray(desc)


def _column_minima(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, argmin) of each column of a block, the first row on ties: what
    `np.argmin(cost, axis=0)` gives, without it.

    numpy's argmin along the first axis of a C-ordered array does not
    vectorise (measured 1.2 ms for a 256 x 1024 block here), while its min
    does: the minima come from `min(axis=0)`, and the rows holding them from
    the entries equal to their column's minimum, which `flatnonzero` lists in
    row-major order, so each column's first listing is its lowest row."""
    nb = cost.shape[1]
    minima = cost.min(axis=0)
    rows, cols = np.divmod(np.flatnonzero(cost == minima), nb)
    first = np.unique(cols, return_index=True)[1]
    argmin = np.empty(nb, np.int64)
    argmin[cols[first]] = rows[first]
    return minima, argmin


def _block_rows(na: int, nb: int) -> int:
    return max(1, min(na, _BLOCK_ENTRIES // max(nb, 1)))


def _squared_euclidean_blocks(desc_a: np.ndarray, desc_b: np.ndarray):
    """Blocks of |a|^2 + |b|^2 - 2 a.b, each one matrix product of the
    extended rows [a, |a|^2, 1] and [-2 b, 1, |b|^2] (measured 1000 x 1000,
    one BLAS thread: 2.9 ms against 4.4 ms for a product and three passes)."""
    dim = desc_a.shape[1]
    extended_a = np.empty((len(desc_a), dim + 2), np.float32)
    extended_a[:, :dim] = desc_a
    extended_a[:, dim] = np.einsum("ij,ij->i", desc_a, desc_a)
    extended_a[:, dim + 1] = 1.0
    extended_b_t = np.empty((dim + 2, len(desc_b)), np.float32)
    np.multiply(desc_b.T, -2.0, out=extended_b_t[:dim])
    extended_b_t[dim] = 1.0
    extended_b_t[dim + 1] = np.einsum("ij,ij->i", desc_b, desc_b)
    step = _block_rows(len(desc_a), len(desc_b))
    for start in range(0, len(desc_a), step):
        yield start, extended_a[start:start + step] @ extended_b_t


def _as_uint64_words(desc: np.ndarray) -> np.ndarray:
    n, nbytes = desc.shape
    padded_bytes = -(-nbytes // 8) * 8
    if padded_bytes != nbytes:
        padded = np.zeros((n, padded_bytes), np.uint8)
        padded[:, :nbytes] = desc
        desc = padded
    return desc.view(np.uint64)


def _hamming_blocks(desc_a: np.ndarray, desc_b: np.ndarray):
    words_a = _as_uint64_words(desc_a)
    words_b = _as_uint64_words(desc_b)
    n_words = words_a.shape[1]
    count_dtype = np.uint16 if n_words * 64 < 1 << 16 else np.uint32
    # Each block holds one uint64 XOR plane at a time plus the running count.
    step = _block_rows(len(desc_a), len(desc_b))
    xor = np.empty((step, len(desc_b)), np.uint64)
    bits = np.empty((step, len(desc_b)), np.uint8)
    for start in range(0, len(desc_a), step):
        block = words_a[start:start + step]
        rows = len(block)
        count = np.zeros((rows, len(desc_b)), count_dtype)
        for w in range(n_words):
            np.bitwise_xor(block[:, w, None], words_b[None, :, w], out=xor[:rows])
            np.bitwise_count(xor[:rows], out=bits[:rows])
            count += bits[:rows]
        yield start, count.astype(np.float32)


def limit_blas_threads(count: int) -> int | None:
    """Cap the threads numpy's BLAS uses in this process (float matching is a
    matrix product). Returns the cap in force, or None when `count` is 0
    (library default) or threadpoolctl is not installed."""
    if count <= 0:
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    threadpool_limits(limits=int(count), user_api="blas")
    return int(count)
