"""Binary descriptors: sign binarisation of float descriptors, packed to bits.

Each float dimension becomes one bit, 1 where the value is > 0 and 0
otherwise, packed eight to a byte with `numpy.packbits` (most significant bit
first, the bit order the `edgepoint_msgs/Keypoints` message documents). A
64-dimensional float descriptor (256 bytes) becomes 8 bytes, and matching
uses the Hamming distance (`matching.match_descriptors(...,
descriptor_type="binary")`), one XOR and popcount per 64-bit word.

Why the sign: for unit-length descriptors compared by cosine similarity, the
sign pattern keeps the coarse direction (Hamming distance between signs
estimates the angle between vectors: sign random projections), needs no
training and no threshold, and is what ZippyPoint-style binary heads produce
at inference. The learned models apply it at the end of `extract` when
`config.binary_descriptors` is set (`apply_descriptor_setting`).
"""
from __future__ import annotations

import numpy as np

from .features import Features


def binarize(descriptors: np.ndarray) -> np.ndarray:
    """(N, D) float descriptors -> (N, ceil(D / 8)) uint8, bit = value > 0, MSB first."""
    descriptors = np.asarray(descriptors)
    if descriptors.ndim != 2:
        raise ValueError(f"descriptors must be a 2-D (N, D) array, got shape {descriptors.shape}")
    if not np.issubdtype(descriptors.dtype, np.floating):
        raise ValueError(f"binarize takes float descriptors, got dtype {descriptors.dtype}")
    return np.packbits(descriptors > 0, axis=1)


def unpack(binary: np.ndarray, dim: int) -> np.ndarray:
    """(N, ceil(dim / 8)) packed uint8 -> (N, dim) uint8 bits (0/1), MSB first."""
    binary = np.asarray(binary)
    if binary.dtype != np.uint8 or binary.ndim != 2:
        raise ValueError(f"packed descriptors must be a 2-D uint8 array, got {binary.dtype} "
                         f"with shape {binary.shape}")
    if binary.shape[1] != (dim + 7) // 8:
        raise ValueError(f"{binary.shape[1]} bytes per row cannot hold {dim} bits "
                         f"(need {(dim + 7) // 8})")
    return np.unpackbits(binary, axis=1, count=dim)


def to_binary(features: Features) -> Features:
    """The same keypoints with sign-binarised descriptors (binary input returned as is)."""
    if features.descriptor_type == "binary":
        return features
    return Features(features.keypoints, features.scores, binarize(features.descriptors),
                    features.image_size, "binary", features.descriptor_dim,
                    dict(features.timings_ms))


def apply_descriptor_setting(features: Features, binary_descriptors: bool) -> Features:
    """What a learned model returns at the end of `extract`: binary when asked."""
    return to_binary(features) if binary_descriptors else features
