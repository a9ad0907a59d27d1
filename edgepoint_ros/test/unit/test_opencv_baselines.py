"""ORB and SIFT baselines: same output as OpenCV, in our layout, with our settings applied."""
import cv2
import numpy as np
import pytest

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.matching import match_features
from edgepoint_ros.models import create_model
from edgepoint_ros.models.opencv_baselines import OpenCVModel
from edgepoint_ros.paths import opencv_sample_data_dir


@pytest.fixture(scope="module")
def image():
    path = opencv_sample_data_dir() / "graf1.png"
    img = cv2.imread(str(path))
    assert img is not None, f"missing sample image {path}"
    return img


def model(name, **overrides):
    return create_model(ExtractorConfig(model=name, **{"border": 0, **overrides}))


def test_orb_bytes_are_opencvs_and_hamming_agrees(image):
    features = model("orb", max_keypoints=800).extract(image)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    cv_kp, cv_desc = cv2.ORB_create(nfeatures=800).detectAndCompute(grey, None)
    assert features.descriptor_type == "binary" and features.descriptor_dim == 256
    assert features.descriptors.shape == (len(cv_kp), 32)
    by_position = {tuple(np.float32(kp.pt)): row for kp, row in zip(cv_kp, cv_desc)}
    for xy, row in zip(features.keypoints[:50], features.descriptors[:50]):
        np.testing.assert_array_equal(row, by_position[tuple(xy)])
    assert np.all(np.diff(features.scores) <= 0)
    # Our Hamming distances are OpenCV's NORM_HAMMING on the stored bytes.
    other = model("orb", max_keypoints=800).extract(cv2.GaussianBlur(image, (3, 3), 0))
    ia, ib, dist = match_features(features, other)
    assert len(ia) > 100
    for i, j, d in list(zip(ia, ib, dist))[:20]:
        assert d == cv2.norm(features.descriptors[i], other.descriptors[j], cv2.NORM_HAMMING)


def test_sift_is_unit_length_float(image):
    features = model("sift", max_keypoints=0).extract(image)
    cv_kp = cv2.SIFT_create().detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None)
    assert len(features) == len(cv_kp)
    assert features.descriptor_type == "float32" and features.descriptors.shape[1] == 128
    np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)
    assert len(model("sift", max_keypoints=300).extract(image)) <= 310  # ties at the cut
    with pytest.raises(ValueError, match="binary_descriptors does not apply to SIFT"):
        model("sift", binary_descriptors=True)


@pytest.mark.parametrize("name", ["orb", "sift"])
def test_settings(name, image):
    full = model(name, max_keypoints=2000).extract(image)
    height, width = image.shape[:2]
    bordered = model(name, max_keypoints=2000, border=40).extract(image)
    assert 0 < len(bordered) < len(full)
    assert bordered.keypoints.min() >= 40
    assert bordered.keypoints[:, 0].max() <= width - 41
    threshold = float(np.median(full.scores))
    strong = model(name, max_keypoints=2000, score_threshold=threshold).extract(image)
    assert 0 < len(strong) < len(full) and strong.scores.min() >= threshold
    small = model(name, max_keypoints=2000, resize_width=width // 2,
                  resize_height=height // 2).extract(image)
    assert small.image_size == (width, height)
    assert small.keypoints[:, 0].max() > 0.75 * width  # mapped back to original pixels
    flat = model(name).extract(np.full((120, 160), 128, np.uint8))
    assert len(flat) == 0 and flat.descriptor_type == full.descriptor_type
    assert model(name).runtime_info()["runtime"] == "opencv"


def test_orb_zero_budget_means_default(image):
    assert model("orb", max_keypoints=0).detector.getMaxFeatures() == 5000


def test_unknown_baseline():
    with pytest.raises(ValueError, match="unknown OpenCV baseline"):
        OpenCVModel("surf", ExtractorConfig(model="orb"))
