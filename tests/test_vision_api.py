"""Public API contract of vision/: types, config validation, bad input errors."""

import dataclasses
import doctest

import numpy as np
import pytest

import opensteady.vision.gestures
import opensteady.vision.types
from opensteady.vision import Box, Detections, TargetState, TargetTracker, TrackerConfig, VisionConfig
from opensteady.vision.pipeline import check_frame


def test_box_geometry_and_iou():
    a = Box(0.4, 0.2, 0.2, 0.2)
    assert a.cx == pytest.approx(0.5) and a.cy == pytest.approx(0.3) and a.area == pytest.approx(0.04)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(0.5, 0.2, 0.2, 0.2)) == pytest.approx(1 / 3)
    assert a.iou(Box(0.9, 0.9, 0.05, 0.05)) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        Box(0, 0, -1, 1)


def test_results_are_immutable_and_empty_not_none():
    d = Detections.empty(1.5, (640, 480))
    assert d.faces == () and d.hands == () and d.bodies == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.t_s = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"backend": "yolo"}, "backend"),
        ({"face_range": "near"}, "face_range"),
        ({"min_face_score": 1.5}, "min_face_score"),
        ({"backend": "haar", "hands": True}, "hands"),
        ({"faces": False, "hands": False, "pose": False, "persons": "none"}, "faces"),
        ({"hand_model_complexity": 2}, "hand_model_complexity"),
    ],
)
def test_vision_config_names_the_bad_key(kwargs, key):
    with pytest.raises(ValueError, match=f"VisionConfig.{key}="):
        VisionConfig(**kwargs)


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((480, 640, 3), np.float32), "dtype uint8"),
        (np.zeros((480, 640), np.uint8), "shape"),
        (np.zeros((480, 640, 4), np.uint8), "shape"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(frame, message):
    with pytest.raises((TypeError, ValueError), match=message):
        check_frame(frame)


def test_tracker_without_detections_returns_unlocked_state():
    tracker = TargetTracker(TrackerConfig())
    state = tracker.update(Detections.empty(0.0, (640, 480)), 0.0)
    assert isinstance(state, TargetState)
    assert state.locked is False and state.source == "none" and state.box is None


def test_tracker_config_names_the_bad_key():
    with pytest.raises(ValueError, match="TrackerConfig.select="):
        TrackerConfig(select="loudest")
    with pytest.raises(ValueError, match="TrackerConfig.lock_gesture="):
        TrackerConfig(lock_gesture="wave")


@pytest.mark.parametrize("module", [opensteady.vision.types, opensteady.vision.gestures])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
