"""The debug pictures without ROS: keypoints, tracks and side-by-side matches
drawn on copies of the input (the nodes publish them: test_ros_pipeline.py)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepoint_ros.drawing import blank_canvas, draw_keypoints, draw_side_by_side, draw_tracks


def _grey(width=80, height=60, value=100):
    return np.full((height, width), value, np.uint8)


def test_keypoints_are_circles_coloured_by_score_on_a_copy():
    image = _grey()
    drawing = draw_keypoints(image, np.array([[20.0, 30.0], [60.0, 30.0]]),
                             np.array([0.1, 0.9]), radius=3)
    assert drawing.shape == (60, 80, 3) and drawing.dtype == np.uint8
    assert np.all(image == 100)  # the input is untouched
    low, high = drawing[30, 17], drawing[30, 57]  # on each circle's left edge
    assert low[0] > low[2] and high[2] > high[0]  # blue for the low score, red for the high
    assert np.all(drawing[5, 5] == 100)  # away from the keypoints: the image


def test_no_keypoints_gives_the_image_in_colour():
    drawing = draw_keypoints(_grey(), np.zeros((0, 2)))
    assert drawing.shape == (60, 80, 3) and np.all(drawing == 100)


def test_tracks_are_green_lines_to_the_current_position_and_grey_rings_elsewhere():
    image = np.zeros((60, 80, 3), np.uint8)
    drawing = draw_tracks(image, np.array([[10.0, 10.0]]), np.array([[50.0, 10.0]]),
                          unmatched_xy=np.array([[40.0, 45.0]]))
    assert np.all(image == 0)
    assert drawing[10, 30, 1] > 150 and drawing[10, 30, 0] == drawing[10, 30, 2] == 0
    assert drawing[10, 50, 1] == 255  # the filled dot where the keypoint is now
    ring = drawing[45, 38]
    assert ring[0] == ring[1] == ring[2] > 0  # grey


def test_side_by_side_puts_b_right_of_a_with_one_line_per_match():
    a, b = _grey(40, 30, 0), _grey(50, 20, 0)
    kp_a = np.array([[5.0, 5.0], [20.0, 25.0]])
    kp_b = np.array([[45.0, 5.0], [10.0, 15.0]])
    picture = draw_side_by_side(a, kp_a, b, kp_b, np.array([0, 1]), np.array([0, 1]))
    assert picture.shape == (30, 90, 3)
    assert picture[25, 70].sum() == 0  # below the shorter frame B: black
    assert picture[5, 60].sum() > 0  # the line from A's (5, 5) to B's (45, 5) + 40
    again = draw_side_by_side(a, kp_a, b, kp_b, np.array([0, 1]), np.array([0, 1]))
    np.testing.assert_array_equal(picture, again)  # colours and subset come from a seed


def test_side_by_side_draws_at_most_max_lines():
    a = b = _grey(100, 100, 0)
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (500, 2))
    few = draw_side_by_side(a, kp, b, kp, np.arange(500), np.arange(500), max_lines=5)
    many = draw_side_by_side(a, kp, b, kp, np.arange(500), np.arange(500), max_lines=300)
    assert (few > 0).any(axis=2).sum() < (many > 0).any(axis=2).sum()


@pytest.mark.parametrize("width, height", [(64, 48), (1, 1)])
def test_blank_canvas_is_dark_grey(width, height):
    canvas = blank_canvas(width, height)
    assert canvas.shape == (height, width, 3) and np.all(canvas == 32)
