"""Re-identification and bodies as targets, on real photos of three people and real street footage.

The people are scikit-image's astronaut and cameraman and matplotlib's Grace
Hopper (``vision.scenes``); the street frames are ten frames of OpenCV's
sample ``vtest.avi`` (tests/data/vtest/README.md). Face descriptors are dlib's
(``vision.reid``), computed in line (``reid='inline'``) so every run is the same.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from opensteady.vision import (
    Body,
    Box,
    Detections,
    Face,
    Perception,
    TargetTracker,
    TrackerConfig,
    VisionConfig,
    reid,
)
from opensteady.vision.bench import evaluate_reid
from opensteady.vision.scenes import PEOPLE, Placement, compose, degrade, reid_sequences

SIZE = (640, 480)
FPS = 30.0
VTEST = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "data", "vtest", "*.jpg")))


@pytest.fixture(scope="module")
def faces_only():
    with Perception(VisionConfig(hands=False, persons="none")) as perception:
        yield perception


def _rgb(path: str) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))


# -- descriptors ---------------------------------------------------------------
def test_descriptors_tell_the_three_people_apart_across_size_rotation_and_exposure(faces_only):
    describer = reid.FaceDescriber.load()
    views = [(0.5, 0.4, 0.2, 0.0, 1.0, 0.0), (0.3, 0.5, 0.12, 0.0, 1.0, 0.0), (0.5, 0.5, 0.15, 20.0, 1.0, 0.0),
             (0.4, 0.4, 0.15, 0.0, 0.35, 8.0)]
    vectors = {}
    for who in PEOPLE:
        for k, (cx, cy, w, angle, gain, noise) in enumerate(views):
            frame, (truth,) = compose([Placement(who, cx, cy, w, angle)])
            frame = degrade(frame, gain, noise, seed=k)
            found = [f for f in faces_only.process(frame, float(k)).faces if f.box.iou(truth) > 0.3]
            assert found, f"{who} view {k}: no face found"
            vectors[who, k] = describer.describe(frame, found[0].box)
    assert all(v.shape == (reid.DESCRIPTOR_SIZE,) for v in vectors.values())
    keys = list(vectors)
    same = [reid.distance(vectors[a], vectors[b]) for i, a in enumerate(keys) for b in keys[i + 1:] if a[0] == b[0]]
    other = [reid.distance(vectors[a], vectors[b]) for i, a in enumerate(keys) for b in keys[i + 1:] if a[0] != b[0]]
    assert max(same) < reid.OTHER_PERSON_ABOVE
    assert min(other) > reid.OTHER_PERSON_ABOVE


def test_the_worker_thread_computes_what_inline_does(faces_only):
    describer = reid.FaceDescriber.load()
    frame, (truth,) = compose([Placement("hopper", 0.5, 0.45, 0.18)])
    inline = reid.DescriptorWorker(describer, asynchronous=False)
    inline.submit("a", frame, truth)
    worker = reid.DescriptorWorker(describer, asynchronous=True)
    try:
        worker.submit("a", frame.copy(), truth)
        assert worker.wait_idle(30.0)
        ((key, vector),) = worker.results()
    finally:
        worker.close()
    assert key == "a" and reid.distance(vector, inline.results()[0][1]) < 1e-4


# -- re-identification on scripted shots of the three people ----------------------
@pytest.mark.parametrize("name", ["cut", "occlusion", "leave_and_return"])
def test_recognises_the_target_within_two_frames_of_return_and_never_takes_another(faces_only, name):
    tracker = TargetTracker(TrackerConfig(select="manual", reid="inline"))
    result = evaluate_reid(reid_sequences(FPS)[name], faces_only, tracker)
    assert tracker.reid_status == "on (inline)"
    assert result["wrong_frames"] == 0 and result["switches"] == 0 and result["id_changes"] == 0
    assert result["delays"] and all(d is not None and d <= 2 for d in result["delays"]), result


@pytest.mark.parametrize("name", ["cut", "occlusion"])
def test_on_the_worker_a_returning_candidate_is_still_judged_on_its_own_frame(faces_only, name):
    # The application's mode: descriptors on the worker thread, except that while the target is
    # lost the most target-like new face is described on the frame path. So however slow the
    # worker is, the target is recognised on the frame it comes back in.
    tracker = TargetTracker(TrackerConfig(select="manual", reid="async"))
    try:
        result = evaluate_reid(reid_sequences(FPS)[name], faces_only, tracker, settle_after_lock=True)
    finally:
        tracker.close()
    assert result["wrong_frames"] == 0 and result["switches"] == 0 and result["id_changes"] == 0
    assert result["delays"] == [0], result


def test_without_descriptors_a_cut_loses_the_target_but_takes_no_one_else(faces_only):
    tracker = TargetTracker(TrackerConfig(select="manual", reid="off"))
    result = evaluate_reid(reid_sequences(FPS)["cut"], faces_only, tracker)
    assert result["wrong_frames"] == 0 and result["delays"] == [None]


def test_missing_dlib_degrades_to_position_and_colour_with_the_reason(monkeypatch, faces_only):
    monkeypatch.setattr(reid, "reid_status", lambda: (False, "dlib is not installed; install opensteady[reid]"))
    tracker = TargetTracker(TrackerConfig(select="largest"))
    assert tracker.reid_status.startswith("unavailable: dlib is not installed")
    frame, _ = compose([Placement("astronaut", 0.4, 0.45, 0.15)])
    for i in range(3):
        state = tracker.update(faces_only.process(frame, i / FPS), i / FPS, frame_rgb=frame)
    assert state.locked and state.source == "face"
    assert tracker.reid_status.startswith("unavailable: dlib is not installed")


# -- bodies as targets ---------------------------------------------------------------
def person(cx: float, top: float, height: float, signature=()) -> Body:
    """A person detector's window (64x128 pixels in shape) with its top centre at (cx, top)."""
    w = height * 0.5 * SIZE[1] / SIZE[0]
    return Body(Box(cx - w / 2, top, w, height), (), 1.0, (), tuple(signature))


def dets(t: float, faces=(), bodies=()) -> Detections:
    return Detections(t, SIZE, tuple(faces), (), tuple(bodies))


def face_at(cx: float, cy: float, w: float) -> Face:
    return Face(Box.from_center(cx, cy, w, w * SIZE[0] / SIZE[1]), (), 0.9)


RED, BLUE = (1.0, 0.0), (0.0, 1.0)  # two distinct clothing signatures


def test_a_body_alone_is_selected_locked_and_followed_from_behind():
    tracker = TargetTracker(TrackerConfig(select="largest", reid="off"))
    states = []
    for i in range(40):
        t = i / FPS
        bodies = [person(0.3 + 0.005 * i, 0.3, 0.4, RED), person(0.8, 0.4, 0.2, BLUE)] if i % 4 == 0 else []
        states.append(tracker.update(dets(t, [], bodies), t))
    locked = [s for s in states[5:] if s.locked]
    assert len(locked) == len(states[5:]) and len({s.track_id for s in locked}) == 1
    assert all(s.source in ("body", "predicted") for s in locked)
    assert abs(locked[-1].x - (0.3 + 0.005 * 36)) < 0.03  # followed the walking figure, head high in the box
    assert locked[-1].y < 0.3 + 0.4 * 0.35


def test_face_and_body_hand_over_keeping_one_identity():
    tracker = TargetTracker(TrackerConfig(select="largest", reid="off"))
    states = []
    for i in range(90):
        t = i / FPS
        x = 0.3 + 0.003 * i
        body = person(x, 0.25, 0.6, RED)
        show_face = i < 30 or i >= 60  # turned away in the middle second
        faces = [face_at(x, 0.25 + 0.6 * 0.18, 0.06)] if show_face else []
        states.append(tracker.update(dets(t, faces, [body] if i % 3 == 0 else []), t))
    ids = {s.track_id for s in states[2:]}
    assert len(ids) == 1 and all(s.locked for s in states[2:])
    assert {s.source for s in states[31:59]} <= {"body", "predicted"} and states[40].source == "body"
    assert states[-1].source == "face"


def test_a_body_first_then_its_face_is_the_same_target():
    tracker = TargetTracker(TrackerConfig(select="largest", reid="off"))
    for i in range(30):
        t = i / FPS
        faces = [face_at(0.5, 0.3 + 0.5 * 0.18, 0.05)] if i >= 15 else []  # turns round after half a second
        state = tracker.update(dets(t, faces, [person(0.5, 0.3, 0.5, RED)] if i % 3 == 0 else []), t)
        if i == 10:
            first = state.track_id
    assert state.track_id == first and state.source == "face" and len(tracker.tracks) == 1


def test_a_lost_body_target_is_not_retaken_by_someone_in_other_clothes():
    tracker = TargetTracker(TrackerConfig(select="manual", reid="off"))
    for i in range(10):
        state = tracker.update(dets(i / FPS, [], [person(0.4, 0.3, 0.4, RED)]), i / FPS)
        if i == 1:
            assert tracker.lock_on(point=(0.4, 0.4))
    target = state.track_id
    states = [tracker.update(dets(i / FPS, [], [person(0.42, 0.3, 0.4, BLUE)]), i / FPS) for i in range(20, 40)]
    assert all(s.track_id == target for s in states)
    assert all(s.source == "predicted" for s in states if s.lost_s > 0.4)  # not following the blue coat
    assert len(tracker.tracks) == 2
    back = tracker.update(dets(41 / FPS, [], [person(0.43, 0.3, 0.4, RED)]), 41 / FPS)
    assert back.track_id == target and back.source == "body"


def test_real_street_footage_people_without_faces_are_found_and_one_is_followed():
    assert len(VTEST) == 10, "tests/data/vtest frames are missing"
    config = VisionConfig(hands=False, persons="hog", person_async=False, person_interval_s=0.0)
    tracker = TargetTracker(TrackerConfig(select="largest", reid="off", min_hits=1))
    with Perception(config) as perception:
        counts, states = [], []
        for i, path in enumerate(VTEST):
            t = i * 0.2  # every other frame of a 10 fps video
            frame = _rgb(path)
            d = perception.process(frame, t)
            counts.append(len(d.bodies))
            assert not d.faces  # too small for a face detector: bodies are all there is
            assert all(b.signature for b in d.bodies)
            states.append(tracker.update(d, t, frame_rgb=frame))
    assert sum(counts) >= 2 * len(VTEST) and min(counts) >= 1  # several people per frame
    locked = [s for s in states if s.locked]
    assert len(locked) >= 8 and len({s.track_id for s in locked}) == 1
