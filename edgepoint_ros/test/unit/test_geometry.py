"""Geometric verification on synthetic two-view scenes with known outliers."""
import numpy as np
import pytest

from edgepoint_ros.geometry import (epipolar_distance, homography_transfer_error,
                                    sampson_distance, verify_matches)

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _rotation(rx, ry, rz):
    import cv2
    R, _ = cv2.Rodrigues(np.array([rx, ry, rz], float))
    return R


def _project(points_3d, R, t):
    cam = points_3d @ R.T + t
    uv = cam @ K.T
    return uv[:, :2] / uv[:, 2:3]


def _two_views(n=200, n_outliers=40, seed=0, planar=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-2, 2, (n, 2))
    z = np.full((n, 1), 6.0) if planar else rng.uniform(4, 10, (n, 1))
    points = np.hstack([xy, z])
    R, t = _rotation(0.02, -0.05, 0.01), np.array([0.3, 0.05, 0.1])
    ref = _project(points, np.eye(3), np.zeros(3))
    cur = _project(points, R, t)
    outliers = rng.choice(n, n_outliers, replace=False)
    cur[outliers] += rng.uniform(25, 60, (n_outliers, 2)) * rng.choice([-1, 1], (n_outliers, 2))
    truth = np.ones(n, bool)
    truth[outliers] = False
    # the true fundamental matrix, F = K^-T [t]x R K^-1
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    Kinv = np.linalg.inv(K)
    F = Kinv.T @ tx @ R @ Kinv
    return ref.astype(np.float32), cur.astype(np.float32), truth, F


def test_fundamental_ransac_separates_inliers_from_outliers():
    ref, cur, truth, _ = _two_views()
    result = verify_matches(ref, cur, method="fundamental", threshold_px=1.0)
    assert result.model_found and result.code == 1
    # every planted outlier is rejected, nearly every true match kept
    assert not result.inliers[~truth].any()
    assert result.inliers[truth].mean() > 0.95
    assert result.num_outliers == len(truth) - result.num_inliers


def test_fundamental_is_deterministic():
    ref, cur, _, _ = _two_views(seed=3)
    a = verify_matches(ref, cur)
    b = verify_matches(ref, cur)
    np.testing.assert_array_equal(a.inliers, b.inliers)


def test_threshold_parameter_changes_what_counts_as_inlier():
    ref, cur, truth, _ = _two_views(n_outliers=0, seed=1)
    noisy = cur + np.random.default_rng(1).normal(0, 0.5, cur.shape).astype(np.float32)
    strict = verify_matches(ref, noisy, threshold_px=0.2)
    loose = verify_matches(ref, noisy, threshold_px=5.0)
    assert strict.num_inliers < 0.5 * len(ref)
    assert loose.num_inliers >= 0.95 * len(ref)


@pytest.mark.parametrize("count", [0, 1, 7])
def test_too_few_matches_for_f_are_flagged_not_verified(count):
    ref, cur, _, _ = _two_views()
    result = verify_matches(ref[:count], cur[:count], method="fundamental")
    assert result.model is None and not result.model_found
    assert result.inliers.shape == (count,) and not result.inliers.any()


def test_homography_on_a_planar_scene():
    ref, cur, truth, _ = _two_views(planar=True, seed=2)
    result = verify_matches(ref, cur, method="homography", threshold_px=1.0)
    assert result.code == 2 and result.model_found
    assert not result.inliers[~truth].any() and result.inliers[truth].all()
    errors = homography_transfer_error(result.model, ref, cur)
    assert (errors[truth] < 1.0).all() and (errors[~truth] > 10.0).all()
    few = verify_matches(ref[:3], cur[:3], method="homography")
    assert few.model is None and not few.inliers.any()


def test_none_accepts_everything():
    ref, cur, _, _ = _two_views()
    result = verify_matches(ref, cur, method="none")
    assert result.inliers.all() and result.model is None and result.code == 0


def test_degenerate_input_gives_no_model_instead_of_raising():
    same = np.tile(np.float32([[100, 100]]), (20, 1))
    result = verify_matches(same, same)
    assert not result.inliers.any()


def test_distances_of_the_true_model():
    ref, cur, truth, F = _two_views(seed=4)
    d = epipolar_distance(F, ref, cur)
    s = sampson_distance(F, ref, cur)
    assert (d[truth] < 1e-2).all() and np.median(d[~truth]) > 5.0
    assert (s[truth] < 1e-2).all()
    # Sampson error is the first-order approximation of the reprojection error:
    # never larger than the symmetric point-line distance
    assert (s <= d + 1e-6).all()


@pytest.mark.parametrize("kwargs,needle", [
    ({"method": "affine"}, "verification method must be one of"),
    ({"threshold_px": 0.0}, "threshold_px must be > 0"),
    ({"confidence": 1.0}, "confidence must be in"),
    ({"max_iters": 0}, "max_iters must be >= 1"),
])
def test_bad_parameters_are_named(kwargs, needle):
    ref, cur, _, _ = _two_views()
    with pytest.raises(ValueError, match=needle):
        verify_matches(ref, cur, **kwargs)


def test_bad_points_are_named():
    ref, cur, _, _ = _two_views()
    with pytest.raises(ValueError, match="points_ref has 200 points but points_cur has 199"):
        verify_matches(ref, cur[:-1])
    with pytest.raises(ValueError, match=r"points_cur must have shape \(M, 2\)"):
        verify_matches(ref, cur[:, :1])
    bad = cur.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="points_cur contains NaN"):
        verify_matches(ref, bad)
    with pytest.raises(ValueError, match="model must be a 3x3 matrix"):
        sampson_distance(np.eye(2), ref, cur)
