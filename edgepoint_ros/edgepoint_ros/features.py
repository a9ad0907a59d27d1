"""The one container every model, matcher, node and evaluation passes around.

`Features` holds the keypoints of one image in the pixel convention of the
`edgepoint_msgs/Keypoints` message: (0, 0) is the centre of the top-left pixel,
x to the right, y down, coordinates in the original (not resized) image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DescriptorType = Literal["float32", "binary"]


@dataclass
class Features:
    """Keypoints, scores and descriptors of one image.

    keypoints:   (N, 2) float32, pixel x, y.
    scores:      (N,) float32, higher is more reliable.
    descriptors: (N, D) float32 (unit length for learned models) when
                 descriptor_type == "float32"; (N, ceil(D/8)) uint8 bit-packed
                 (MSB first) when "binary". descriptor_dim is D in both cases
                 (bits for binary).
    image_size:  (width, height) of the image the keypoints refer to.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]
    descriptor_type: DescriptorType = "float32"
    descriptor_dim: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.ascontiguousarray(self.keypoints, dtype=np.float32).reshape(-1, 2)
        self.scores = np.ascontiguousarray(self.scores, dtype=np.float32).reshape(-1)
        n = len(self.keypoints)
        if self.descriptor_type == "float32":
            self.descriptors = np.ascontiguousarray(self.descriptors, dtype=np.float32)
            if self.descriptors.ndim != 2:
                self.descriptors = self.descriptors.reshape(n, -1)
            if not self.descriptor_dim:
                self.descriptor_dim = int(self.descriptors.shape[1])
            expected_cols = self.descriptor_dim
        elif self.descriptor_type == "binary":
            self.descriptors = np.ascontiguousarray(self.descriptors, dtype=np.uint8)
            if self.descriptors.ndim != 2:
                self.descriptors = self.descriptors.reshape(n, -1)
            if not self.descriptor_dim:
                self.descriptor_dim = int(self.descriptors.shape[1]) * 8
            expected_cols = (self.descriptor_dim + 7) // 8
        else:
            raise ValueError(
                f"descriptor_type must be 'float32' or 'binary', got {self.descriptor_type!r}")
        if len(self.scores) != n or len(self.descriptors) != n:
            raise ValueError(
                f"inconsistent feature arrays: {n} keypoints, {len(self.scores)} scores, "
                f"{len(self.descriptors)} descriptors")
        if n and self.descriptors.shape[1] != expected_cols:
            raise ValueError(
                f"descriptor rows have {self.descriptors.shape[1]} columns, expected "
                f"{expected_cols} for {self.descriptor_type} descriptors of dimension "
                f"{self.descriptor_dim}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, image_size: tuple[int, int], descriptor_dim: int,
              descriptor_type: DescriptorType = "float32") -> "Features":
        cols = descriptor_dim if descriptor_type == "float32" else (descriptor_dim + 7) // 8
        dtype = np.float32 if descriptor_type == "float32" else np.uint8
        return cls(np.zeros((0, 2), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, cols), dtype), image_size, descriptor_type, descriptor_dim)

    def subset(self, index: np.ndarray) -> "Features":
        return Features(self.keypoints[index], self.scores[index], self.descriptors[index],
                        self.image_size, self.descriptor_type, self.descriptor_dim,
                        dict(self.timings_ms))

    def save_npz(self, path) -> None:
        """The `extract` file format: keypoints, scores, descriptors (+ metadata)."""
        np.savez(path, keypoints=self.keypoints, scores=self.scores,
                 descriptors=self.descriptors,
                 image_size=np.asarray(self.image_size, np.int32),
                 descriptor_type=np.asarray(self.descriptor_type),
                 descriptor_dim=np.asarray(self.descriptor_dim, np.int32))

    @classmethod
    def load_npz(cls, path) -> "Features":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["keypoints"], z["scores"], z["descriptors"],
                       tuple(int(v) for v in z["image_size"]),
                       str(z["descriptor_type"]), int(z["descriptor_dim"]))
