"""OpenCV ORB and SIFT behind the FeatureModel interface (classical baselines).

Both run on the grey image (cv2.COLOR_BGR2GRAY) with OpenCV's default
detector parameters; keypoints are OpenCV's (pixel centres at integers, the
package's convention), scores are the detector responses.

ORB: 256-bit binary descriptors, `descriptor_type="binary"` always (the
  `binary_descriptors` setting changes nothing). The 32 bytes per keypoint are
  stored exactly as OpenCV writes them. OpenCV fills each byte least
  significant bit first while our layout (Keypoints.msg) numbers bits most
  significant first, so bit j in our numbering is ORB test 8*(j//8) + 7 - j%8.
  That is a fixed permutation applied to every descriptor, and Hamming distance
  does not change under it, so matching is exactly OpenCV's NORM_HAMMING; and
  the bytes stay interchangeable with any other OpenCV ORB user (e.g. a C++
  VSLAM front end), which is why they are not re-ordered.
  `max_keypoints` is ORB's `nfeatures` budget; ORB needs one, so 0 means
  ORB_DEFAULT_BUDGET = 5000 (the benchmark protocol's cap).

SIFT: 128-d float32 descriptors, L2-normalised to unit length (OpenCV scales
  them to a norm of about 512; normalising makes distances comparable with the
  learned models' and does not change nearest-neighbour order in practice).
  Plain SIFT, not RootSIFT, as in the benchmark protocol. `max_keypoints` is
  SIFT's `nfeatures` (0 = all that pass its contrast threshold). SIFT
  histograms are non-negative, so `binary_descriptors` is refused.

Common settings: `score_threshold` keeps responses >= the threshold (when
> 0); `border` drops keypoints closer than that to the image edge (ORB also
keeps its own 31 px edgeThreshold); `resize_width/height` run the detector on
a resized copy (INTER_AREA) and map keypoints back to original pixels.
`nms_radius` and `subpixel` do not apply (OpenCV's detectors do their own
suppression and, for SIFT, sub-pixel refinement).
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from ..config import ExtractorConfig
from ..features import Features
from .base import FeatureModel, as_bgr8

ORB_DEFAULT_BUDGET = 5000


class OpenCVModel(FeatureModel):
    def __init__(self, name: str, config: ExtractorConfig):
        config.validate()
        self.config = config
        self.name = name
        if name == "orb":
            self.detector = cv2.ORB_create(nfeatures=config.max_keypoints or ORB_DEFAULT_BUDGET)
            self.descriptor_type, self.descriptor_dim = "binary", 256
        elif name == "sift":
            if config.binary_descriptors:
                raise ValueError("binary_descriptors does not apply to SIFT (its histograms "
                                 "are non-negative); use model 'orb' for binary descriptors")
            self.detector = cv2.SIFT_create(nfeatures=config.max_keypoints)
            self.descriptor_type, self.descriptor_dim = "float32", 128
        else:
            raise ValueError(f"unknown OpenCV baseline {name!r}; expected 'orb' or 'sift'")

    def runtime_info(self) -> dict:
        return {"runtime": "opencv", "device": "cpu",
                "precision": "uint8" if self.name == "orb" else "fp32",
                "opencv_version": cv2.__version__}

    def extract(self, image: np.ndarray) -> Features:
        t0 = time.perf_counter()
        grey = cv2.cvtColor(as_bgr8(image), cv2.COLOR_BGR2GRAY)
        height, width = grey.shape
        c = self.config
        sx = sy = 1.0
        if c.resize_width and (c.resize_width, c.resize_height) != (width, height):
            grey = cv2.resize(grey, (c.resize_width, c.resize_height),
                              interpolation=cv2.INTER_AREA)
            sx, sy = width / c.resize_width, height / c.resize_height
        t1 = time.perf_counter()
        cv_keypoints, descriptors = self.detector.detectAndCompute(grey, None)
        t2 = time.perf_counter()
        if descriptors is None or len(cv_keypoints) == 0:
            return Features.empty((width, height), self.descriptor_dim, self.descriptor_type)
        keypoints = np.array([kp.pt for kp in cv_keypoints], np.float32)
        scores = np.array([kp.response for kp in cv_keypoints], np.float32)
        keep = np.ones(len(keypoints), bool)
        if c.score_threshold > 0:
            keep &= scores >= c.score_threshold
        if c.border > 0:
            h, w = grey.shape
            keep &= ((keypoints[:, 0] >= c.border) & (keypoints[:, 0] <= w - 1 - c.border)
                     & (keypoints[:, 1] >= c.border) & (keypoints[:, 1] <= h - 1 - c.border))
        keypoints, scores, descriptors = keypoints[keep], scores[keep], descriptors[keep]
        if self.name == "sift":
            descriptors = descriptors.astype(np.float32)
            descriptors /= np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
        if sx != 1.0 or sy != 1.0:
            keypoints = (keypoints + 0.5) * np.array([sx, sy], np.float32) - 0.5
        order = np.argsort(-scores, kind="stable")
        t3 = time.perf_counter()
        return Features(keypoints[order], scores[order], descriptors[order], (width, height),
                        self.descriptor_type, self.descriptor_dim,
                        {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                         "postprocess": (t3 - t2) * 1e3})
