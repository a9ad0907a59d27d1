"""Settings a built model takes live (`FeatureModel.reconfigure`, asked by the
extractor node before it rebuilds anything): the reconfigured model extracts
exactly what a model built with the new settings extracts."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.models import create_model
from edgepoint_ros.paths import opencv_sample_data_dir

BASE = ExtractorConfig(model="edgepoint", runtime="onnxruntime", device="cpu", precision="fp32",
                       max_keypoints=512, num_threads=1)
CHANGES = {
    "thresholds": dict(max_keypoints=300, score_threshold=0.05, nms_radius=3, border=8),
    "subpixel and binary": dict(subpixel=False, binary_descriptors=True),
    "resize": dict(resize_width=256, resize_height=192),
    "pyramid": dict(pyramid_levels=2, pyramid_scale=0.6),
}


@pytest.fixture(scope="module")
def image():
    import cv2
    picture = cv2.imread(str(opencv_sample_data_dir() / "graf1.png"))
    if picture is None:
        pytest.skip("opencv-doc's graf1.png is not installed")
    return cv2.resize(picture, (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def model():
    return create_model(BASE)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_live_change_extracts_what_a_rebuilt_model_extracts(model, image, change):
    config = replace(BASE, **CHANGES[change])
    try:
        assert model.reconfigure(config), f"{change} is not taken live"
        live = model.extract(image)
    finally:
        assert model.reconfigure(BASE)
    rebuilt = create_model(config).extract(image)
    assert (live.descriptor_type, live.descriptor_dim) == (rebuilt.descriptor_type,
                                                           rebuilt.descriptor_dim)
    np.testing.assert_array_equal(live.keypoints, rebuilt.keypoints)
    np.testing.assert_array_equal(live.scores, rebuilt.scores)
    np.testing.assert_array_equal(live.descriptors, rebuilt.descriptors)


def test_a_change_of_model_runtime_or_weights_is_not_taken_live(model):
    for change in (dict(model="orb"), dict(precision="int8"), dict(weights="/other.onnx")):
        assert not model.reconfigure(replace(BASE, **change)), change
    assert model.config == BASE
