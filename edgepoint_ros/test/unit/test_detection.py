import cv2
import numpy as np
import pytest

from edgepoint_ros.detection import detect_keypoints, find_peaks, sample_descriptors


def test_nms_threshold_border_and_topk():
    scores = np.zeros((40, 50), np.float32)
    scores[10, 10] = 0.9
    scores[10, 11] = 0.8   # suppressed by its neighbour within radius 2
    scores[20, 30] = 0.7
    scores[1, 25] = 0.95   # inside the border
    scores[30, 40] = 0.3   # below threshold
    kp, sc = detect_keypoints(scores, nms_radius=2, score_threshold=0.5, border=4, subpixel=False)
    assert kp.tolist() == [[10, 10], [30, 20]]
    np.testing.assert_allclose(sc, [0.9, 0.7])
    kp, _ = detect_keypoints(scores, nms_radius=2, score_threshold=0.5, border=4,
                             max_keypoints=1, subpixel=False)
    assert kp.tolist() == [[10, 10]]


def test_subpixel_moves_towards_stronger_neighbour():
    scores = np.zeros((20, 20), np.float32)
    scores[10, 10] = 1.0
    scores[10, 11] = 0.9
    kp, _ = detect_keypoints(scores, nms_radius=2, border=2, subpixel=True)
    assert 10.0 < kp[0, 0] < 10.5 and abs(kp[0, 1] - 10.0) < 1e-6


def test_descriptor_sampling_hits_cell_centres_and_normalises():
    desc = np.zeros((2, 3, 4), np.float32)   # C=2, h=3, w=4, stride 8
    desc[0] = np.arange(12).reshape(3, 4)
    desc[1] = 1.0
    # centre of cell (row 1, col 2) is pixel (8*2+3.5, 8*1+3.5)
    out = sample_descriptors(desc, np.array([[19.5, 11.5]], np.float32), 8, normalize=False)
    np.testing.assert_allclose(out[0], [6.0, 1.0])
    half = sample_descriptors(desc, np.array([[23.5, 11.5]], np.float32), 8, normalize=False)
    np.testing.assert_allclose(half[0], [6.5, 1.0])
    unit = sample_descriptors(desc, np.array([[19.5, 11.5]], np.float32), 8)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)


def test_bad_score_map_is_named():
    with pytest.raises(ValueError, match="score map must be 2-D"):
        detect_keypoints(np.zeros((1, 4, 4), np.float32))


def test_flat_score_map_gives_no_keypoints():
    # a black frame gives a constant score map: every pixel equals its local max
    flat = np.full((64, 64), 0.3, np.float32)
    kp, _ = detect_keypoints(flat, nms_radius=2, max_keypoints=100)
    assert len(kp) == 0
    flat[30, 30] = 0.5
    kp, _ = detect_keypoints(flat, nms_radius=2, max_keypoints=100, subpixel=False)
    assert kp.tolist() == [[30, 30]]


def _peaks_by_definition(scores, radius, threshold, border):
    """Step 1-2 over the whole map: equal to the window maximum, a lower pixel in
    the window (coordinates clamped), score >= threshold, outside the border."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    high = cv2.dilate(scores, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    low = cv2.erode(scores, kernel, borderType=cv2.BORDER_REPLICATE)
    mask = (scores == high) & (low < scores) & (scores >= threshold)
    b = min(border, scores.shape[0] // 2, scores.shape[1] // 2)
    if b:
        mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = False, False, False, False
    ys, xs = np.nonzero(mask)
    return set(zip(xs.tolist(), ys.tolist()))


@pytest.mark.parametrize("radius, threshold, border", [(2, 0.0, 4), (1, 0.5, 0), (3, 0.0, 1)])
def test_peaks_match_their_whole_map_definition_on_plateaus_of_every_size(radius, threshold,
                                                                          border):
    rng = np.random.default_rng(3)
    maps = [rng.random((120, 160), dtype=np.float32),
            (rng.random((120, 160)) * 4).round().astype(np.float32) / 4,  # many small plateaus
            np.zeros((120, 160), np.float32)]
    maps[2][20:30, 20:90] = 0.6          # one plateau, a larger one ...
    maps[2][25, 50] = 0.7                # ... with a peak on it
    maps[2][0:3, 0:3] = 0.9              # a plateau in the corner
    big = np.full((120, 160), 0.2, np.float32)   # mostly flat (a black frame)
    big[60:64, 80:90] = rng.random((4, 10), dtype=np.float32)
    maps.append(big)
    for scores in maps:
        xs, ys, values = find_peaks(scores, nms_radius=radius, score_threshold=threshold,
                                    border=border)
        assert set(zip(xs.tolist(), ys.tolist())) == _peaks_by_definition(
            scores, radius, threshold, border)
        assert np.all(np.diff(values) <= 0) and np.array_equal(values, scores[ys, xs])


@pytest.mark.parametrize("radius, border, threshold, subpixel",
                         [(2, 4, 0.0, True), (1, 0, 0.3, True), (3, 2, 0.0, False)])
def test_the_detection_graph_finds_what_numpy_finds(radius, border, threshold, subpixel):
    import onnxruntime as ort

    from edgepoint_ros.detection import detect_keypoints, find_peaks, sample_descriptors
    from edgepoint_ros.detection_graph import build_detection_graph
    rng = np.random.default_rng(radius)
    scores = cv2.GaussianBlur(rng.random((70, 90)).astype(np.float32), (0, 0), 1.2)
    padded = np.zeros((1, 1, 96, 96), np.float32)   # network output padded to 32
    padded[0, 0, :70, :90] = scores
    descriptors = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    session = ort.InferenceSession(build_detection_graph(radius).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    keypoints, values, described = session.run(None, {
        "scores": padded, "descriptors": descriptors, "size": np.array([70, 90]),
        "k": np.array([50]), "threshold": np.array([threshold], np.float32),
        "border": np.array([border]), "subpixel": np.array([float(subpixel)], np.float32)})
    keep = values >= 0
    expected, expected_scores = detect_keypoints(scores, nms_radius=radius,
                                                 score_threshold=threshold, max_keypoints=50,
                                                 border=border, subpixel=subpixel)
    assert keep.sum() == len(expected) > 10
    np.testing.assert_array_equal(values[keep], expected_scores)
    np.testing.assert_allclose(keypoints[keep], expected, atol=1e-5)
    np.testing.assert_allclose(described[keep], sample_descriptors(descriptors[0], expected, 8),
                               atol=1e-5)


def test_a_channels_last_map_samples_the_same_descriptors():
    rng = np.random.default_rng(6)
    channels_first = rng.normal(size=(16, 7, 9)).astype(np.float32)
    points = rng.uniform(-3, 75, size=(50, 2)).astype(np.float32)   # some off the map
    expected = sample_descriptors(channels_first, points, 8)
    got = sample_descriptors(np.ascontiguousarray(channels_first.transpose(1, 2, 0)), points, 8,
                             channels_last=True)
    np.testing.assert_array_equal(got, expected)
