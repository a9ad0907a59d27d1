"""Matching: results against a plain brute-force reference, both descriptor layouts."""
import numpy as np
import pytest

from edgepoint_ros import matching
from edgepoint_ros.features import Features
from edgepoint_ros.matching import match_descriptors, match_features


def reference_match(dist, mutual, ratio, max_distance):
    """Textbook loops over a full distance matrix."""
    out = []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        j = order[0]
        if ratio > 0 and dist.shape[1] >= 2 and not dist[i, j] < ratio * dist[i, order[1]]:
            continue
        if max_distance is not None and dist[i, j] > max_distance:
            continue
        if mutual and np.argmin(dist[:, j]) != i:
            continue
        out.append((i, j, dist[i, j]))
    return out


def random_unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("mutual,ratio,max_distance",
                         [(True, 0.0, None), (False, 0.0, None), (True, 0.9, None),
                          (False, 0.8, 1.0), (True, 0.0, 0.5)])
def test_float_matches_reference(mutual, ratio, max_distance):
    rng = np.random.default_rng(1)
    a = random_unit(rng, 120, 32)
    b = np.concatenate([a[:80] + 0.05 * rng.standard_normal((80, 32)).astype(np.float32),
                        random_unit(rng, 50, 32)])
    dist = np.linalg.norm(a[:, None].astype(np.float64) - b[None], axis=2)
    expected = reference_match(dist, mutual, ratio, max_distance)
    ia, ib, d = match_descriptors(a, b, mutual=mutual, ratio=ratio, max_distance=max_distance)
    assert ia.dtype == np.int64 and ib.dtype == np.int64 and d.dtype == np.float32
    assert [(i, j) for i, j, _ in expected] == list(zip(ia.tolist(), ib.tolist()))
    np.testing.assert_allclose(d, [e[2] for e in expected], atol=1e-4)
    assert len(ia) > 10  # the noisy copies must match


def hamming_matrix(a, b):
    bits_a = np.unpackbits(a, axis=1).astype(np.int32)
    bits_b = np.unpackbits(b, axis=1).astype(np.int32)
    return (bits_a[:, None, :] != bits_b[None, :, :]).sum(axis=2).astype(np.float64)


@pytest.mark.parametrize("nbytes", [32, 5, 61])
@pytest.mark.parametrize("mutual,ratio", [(True, 0.0), (False, 0.8)])
def test_binary_matches_reference(nbytes, mutual, ratio):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (90, nbytes), dtype=np.uint8)
    flips = np.packbits(rng.random((60, nbytes * 8)) < 0.08, axis=1)
    b = np.concatenate([a[:60] ^ flips, rng.integers(0, 256, (40, nbytes), dtype=np.uint8)])
    dist = hamming_matrix(a, b)
    expected = reference_match(dist, mutual, ratio, None)
    ia, ib, d = match_descriptors(a, b, descriptor_type="binary", mutual=mutual, ratio=ratio)
    assert [(i, j) for i, j, _ in expected] == list(zip(ia.tolist(), ib.tolist()))
    np.testing.assert_array_equal(d, [e[2] for e in expected])
    assert len(ia) >= 40


def test_block_processing_gives_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = random_unit(rng, 300, 16), random_unit(rng, 200, 16)
    bits_a = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    bits_b = rng.integers(0, 256, (200, 8), dtype=np.uint8)
    whole_f = match_descriptors(a, b, ratio=0.95)
    whole_b = match_descriptors(bits_a, bits_b, descriptor_type="binary")
    monkeypatch.setattr(matching, "_BLOCK_ENTRIES", 200 * 7)  # blocks of 7 rows
    blocked = match_descriptors(a, b, ratio=0.95)
    np.testing.assert_array_equal(whole_f[0], blocked[0])
    np.testing.assert_array_equal(whole_f[1], blocked[1])
    np.testing.assert_allclose(whole_f[2], blocked[2], atol=1e-5)  # BLAS block rounding
    for x, y in zip(whole_b, match_descriptors(bits_a, bits_b, descriptor_type="binary")):
        np.testing.assert_array_equal(x, y)


def test_mutual_check_removes_many_to_one():
    a = np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32)
    b = np.array([[1, 0], [0, 1]], np.float32)
    ia, ib, _ = match_descriptors(a, b, mutual=True)
    assert ia.tolist() == [0, 2] and ib.tolist() == [0, 1]
    ia, ib, _ = match_descriptors(a, b, mutual=False)
    assert ia.tolist() == [0, 1, 2] and ib.tolist() == [0, 0, 1]


def test_empty_inputs_give_empty_outputs():
    for a, b in [(np.zeros((0, 8), np.float32), np.ones((3, 8), np.float32)),
                 (np.ones((3, 8), np.float32), np.zeros((0, 8), np.float32))]:
        ia, ib, d = match_descriptors(a, b)
        assert ia.shape == ib.shape == d.shape == (0,)
        assert ia.dtype == np.int64 and d.dtype == np.float32
    ia, _, _ = match_descriptors(np.zeros((0, 4), np.uint8), np.zeros((2, 4), np.uint8),
                                 descriptor_type="binary")
    assert len(ia) == 0


def test_single_candidate_skips_ratio_test():
    ia, ib, _ = match_descriptors(np.ones((2, 4), np.float32), np.ones((1, 4), np.float32),
                                  ratio=0.8, mutual=False)
    assert ia.tolist() == [0, 1] and ib.tolist() == [0, 0]


@pytest.mark.parametrize("a,b,kwargs,message", [
    (np.ones((3, 8), np.float32), np.ones((3, 4), np.float32), {}, "sizes differ"),
    (np.ones((3, 8), np.uint8), np.ones((3, 8), np.uint8), {}, "float dtype"),
    (np.ones((3, 8), np.float32), np.ones((3, 8), np.float32),
     {"descriptor_type": "binary"}, "uint8"),
    (np.ones(8, np.float32), np.ones((3, 8), np.float32), {}, "2-D"),
    (np.ones((3, 8), np.float32), np.ones((3, 8), np.float32), {"ratio": 1.5}, "ratio"),
    (np.ones((3, 8), np.float32), np.ones((3, 8), np.float32),
     {"descriptor_type": "hamming"}, "descriptor_type"),
    (np.full((3, 8), np.nan, np.float32), np.ones((3, 8), np.float32), {}, "NaN"),
    (np.ones((3, 8), np.float32), np.ones((3, 8), np.float32),
     {"max_distance": -1.0}, "max_distance"),
    ([[1.0]], np.ones((1, 1), np.float32), {}, "numpy array"),
])
def test_bad_inputs_raise_clear_errors(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        match_descriptors(a, b, **kwargs)


def test_match_features_uses_descriptor_layout():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    kp = rng.random((20, 2)).astype(np.float32) * 100
    fa = Features(kp, np.ones(20), bits, (100, 100), "binary", 256)
    fb = Features(kp[::-1], np.ones(20), bits[::-1], (100, 100), "binary", 256)
    ia, ib, d = match_features(fa, fb)
    assert ia.tolist() == list(range(20)) and ib.tolist() == list(range(19, -1, -1))
    assert (d == 0).all()
    ff = Features(kp, np.ones(20), random_unit(rng, 20, 256), (100, 100))
    with pytest.raises(ValueError, match="cannot match binary"):
        match_features(fa, ff)


def test_blas_threads_can_be_capped():
    from threadpoolctl import threadpool_info, threadpool_limits

    from edgepoint_ros.matching import limit_blas_threads
    with threadpool_limits(limits=None):  # restores the library default afterwards
        assert limit_blas_threads(0) is None
        assert limit_blas_threads(1) == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info()
                   if pool["user_api"] == "blas")
