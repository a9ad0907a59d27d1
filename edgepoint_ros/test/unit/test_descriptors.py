"""Sign binarisation and bit packing of descriptors (MSB first, Keypoints.msg layout)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepoint_ros.descriptors import apply_descriptor_setting, binarize, to_binary, unpack
from edgepoint_ros.features import Features
from edgepoint_ros.matching import match_descriptors


def test_sign_bits_are_packed_most_significant_first():
    desc = np.array([[0.5, -0.1, 0.0, 0.2, -3.0, 1.0, 1.0, -1.0,   # 1001 0110
                      -0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7]],    # 0100 0001
                    np.float32)
    assert binarize(desc).tolist() == [[0b10010110, 0b01000001]]


def test_64_dimensions_become_8_bytes_and_unpack_inverts():
    rng = np.random.default_rng(0)
    desc = rng.standard_normal((100, 64)).astype(np.float32)
    packed = binarize(desc)
    assert packed.shape == (100, 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack(packed, 64), (desc > 0).astype(np.uint8))


def test_dimensions_not_a_multiple_of_8_pad_with_zero_bits():
    desc = np.ones((2, 10), np.float32)
    packed = binarize(desc)
    assert packed.tolist() == [[0xFF, 0b11000000]] * 2
    assert unpack(packed, 10).sum() == 20


def test_hamming_distance_counts_sign_disagreements():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 64)).astype(np.float32)
    b = a.copy()
    flips = [0, 3, 17, 40]
    b[2, flips] *= -1
    idx_a, idx_b, dist = match_descriptors(binarize(a), binarize(b[2:3]),
                                           descriptor_type="binary", mutual=False)
    assert dist[idx_a.tolist().index(2)] == len(flips)


def test_features_become_binary_with_the_same_keypoints():
    rng = np.random.default_rng(2)
    features = Features(rng.random((7, 2)) * 100, rng.random(7), rng.standard_normal((7, 64)),
                        (640, 480), timings_ms={"inference": 3.0})
    binary = to_binary(features)
    assert binary.descriptor_type == "binary" and binary.descriptor_dim == 64
    assert binary.descriptors.shape == (7, 8)
    np.testing.assert_array_equal(binary.keypoints, features.keypoints)
    assert binary.timings_ms == {"inference": 3.0}
    assert to_binary(binary) is binary
    assert apply_descriptor_setting(features, False) is features
    assert apply_descriptor_setting(features, True).descriptor_type == "binary"


def test_wrong_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="2-D"):
        binarize(np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="float descriptors"):
        binarize(np.zeros((3, 8), np.uint8))
    with pytest.raises(ValueError, match="cannot hold 64 bits"):
        unpack(np.zeros((3, 4), np.uint8), 64)
    with pytest.raises(ValueError, match="uint8"):
        unpack(np.zeros((3, 8), np.float32), 64)
