"""Target selection, identity, body fallback, re-acquisition and prediction.

The first tests drive ``TargetTracker`` with hand-written ``Detections`` (exact
motions, fast); the last ones run real MediaPipe face detection on composites
of two real people (scikit-image's astronaut and cameraman).
"""

from __future__ import annotations

import math

import pytest

from opensteady.vision import (
    Body,
    Box,
    Detections,
    Face,
    Hand,
    Perception,
    TargetTracker,
    TrackerConfig,
    VisionConfig,
)
from opensteady.vision.scenes import Placement, compose

FPS = 30.0
SIZE = (640, 480)


def face(cx: float, cy: float, w: float) -> Face:
    return Face(Box.from_center(cx, cy, w, w * SIZE[0] / SIZE[1]), (), 0.9)  # square in pixels


def body_under(cx: float, cy: float, shoulder_w: float, turned_away: bool = False) -> Body:
    """A pose whose head is at (cx, cy); with ``turned_away`` the face landmarks are invisible."""
    kps = [(cx, cy)] * 11 + [(cx + shoulder_w / 2, cy + 0.6 * shoulder_w), (cx - shoulder_w / 2, cy + 0.6 * shoulder_w)]
    kps += [(cx, cy + 2 * shoulder_w)] * (33 - len(kps))
    vis = [0.1 if turned_away else 0.99] * 11 + [0.99] * 22
    box = Box(cx - shoulder_w, cy - 0.5 * shoulder_w, 2 * shoulder_w, 3 * shoulder_w)
    return Body(box, tuple(kps), 0.9, tuple(vis))


def dets(t: float, faces=(), bodies=(), hands=()) -> Detections:
    return Detections(t, SIZE, tuple(faces), tuple(hands), tuple(bodies))


def run(tracker: TargetTracker, frames):
    return [tracker.update(d, d.t_s) for d in frames]


def test_locks_on_largest_and_stays_when_another_face_grows_and_comes_closer():
    tracker = TargetTracker(TrackerConfig(select="largest"))
    states = []
    for i in range(90):
        t = i / FPS
        k = min(1.0, t / 2.0)
        # B walks towards the camera: grows from 0.08 to 0.35 wide and moves next to A.
        b = face(0.75 - 0.25 * k, 0.45, 0.08 + 0.27 * k)
        states.append(tracker.update(dets(t, [face(0.3, 0.4, 0.15), b]), t))
    locked = [s for s in states if s.locked]
    assert len(locked) >= 85
    assert len({s.track_id for s in locked}) == 1
    assert all(abs(s.x - 0.3) < 0.02 and abs(s.y - 0.4) < 0.02 for s in locked)


def test_a_face_reported_twice_does_not_spawn_a_twin_that_takes_the_target():
    """Seen in the dim-room scenario: the detector reported the locked face twice in one frame; the
    second box started a new track that matched the next frames a little better and took the face,
    so the target was 'lost' for a third of the run while its face was found in every frame."""
    tracker = TargetTracker(TrackerConfig(select="largest"))
    states = []
    for i in range(120):
        t = i / FPS
        if i < 40:
            faces = [face(0.50, 0.50, 0.060)]
        elif i == 40:
            faces = [face(0.50, 0.50, 0.060), face(0.515, 0.50, 0.055)]  # one face, two boxes
        else:
            faces = [face(0.515, 0.50, 0.055)]  # the detection settles where the second box was
        states.append(tracker.update(dets(t, faces), t))
    after = states[5:]
    assert all(s.locked and s.source == "face" for s in after), [(i, s.source) for i, s in enumerate(after) if s.source != "face"][:5]
    assert len({s.track_id for s in after}) == 1
    assert len(tracker.tracks) == 1


def test_crossing_faces_keep_identity_through_a_short_occlusion():
    tracker = TargetTracker(TrackerConfig(select="manual"))
    states = []
    for i in range(60):
        t = i / FPS
        ax, bx = 0.2 + 0.3 * t, 0.8 - 0.3 * t  # they meet at t = 1 s
        faces = [face(bx, 0.5, 0.12)]
        if not 0.85 <= t <= 1.15:  # A hidden behind B while they cross
            faces.append(face(ax, 0.5, 0.12))
        states.append(tracker.update(dets(t, faces), t))
        if i == 3:
            assert tracker.lock_on(point=(0.2, 0.5))
    target = states[5].track_id
    assert all(s.track_id == target for s in states[5:])
    hidden = [s for s, i in zip(states, range(60)) if 0.85 <= i / FPS <= 1.15]
    assert hidden and all(s.source == "predicted" for s in hidden)
    # Coasting carries the target across, it is re-acquired on the far side.
    assert states[-1].source == "face" and states[-1].x == pytest.approx(0.2 + 0.3 * 59 / FPS, abs=0.02)


def test_reacquires_the_same_person_after_occlusion_and_releases_after_timeout():
    cfg = TrackerConfig(select="largest", coast_s=0.3, lost_timeout_s=2.0)
    tracker = TargetTracker(cfg)
    run(tracker, [dets(i / FPS, [face(0.4, 0.4, 0.15), face(0.8, 0.5, 0.1)]) for i in range(10)])
    target = tracker.update(dets(10 / FPS, [face(0.4, 0.4, 0.15), face(0.8, 0.5, 0.1)]), 10 / FPS).track_id
    gone = run(tracker, [dets(t / FPS, [face(0.8, 0.5, 0.1)]) for t in range(11, 41)])  # 1 s hidden
    assert all(s.locked and s.track_id == target and s.source == "predicted" for s in gone)
    assert gone[-1].lost_s == pytest.approx(30 / FPS, abs=1e-6)
    back = tracker.update(dets(41 / FPS, [face(0.43, 0.41, 0.14), face(0.8, 0.5, 0.1)]), 41 / FPS)
    assert back.track_id == target and back.source == "face" and back.lost_s == 0.0
    # Hidden beyond lost_timeout_s: released, then the largest visible face is chosen anew.
    late = run(tracker, [dets(t / FPS, [face(0.8, 0.5, 0.1)]) for t in range(42, 42 + 75)])
    assert late[0].track_id == target
    assert any(not s.locked for s in late) or late[-1].track_id != target
    assert late[-1].locked and late[-1].track_id != target and late[-1].x == pytest.approx(0.8, abs=0.01)


def test_never_jumps_to_another_face_appearing_while_the_target_is_hidden_elsewhere():
    tracker = TargetTracker(TrackerConfig(select="largest"))
    run(tracker, [dets(i / FPS, [face(0.3, 0.4, 0.15)]) for i in range(10)])
    target = tracker.update(dets(10 / FPS, [face(0.3, 0.4, 0.15)]), 10 / FPS).track_id
    # Target hidden; a bigger face appears far away.
    states = run(tracker, [dets(t / FPS, [face(0.75, 0.45, 0.25)]) for t in range(11, 50)])
    assert all(s.track_id == target and s.source == "predicted" for s in states)
    assert all(abs(s.x - 0.3) < 0.02 for s in states)


def test_someone_walking_through_where_the_target_hid_is_not_taken_for_it():
    tracker = TargetTracker(TrackerConfig(select="manual", lost_timeout_s=3.0))
    run(tracker, [dets(i / FPS, [face(0.4, 0.45, 0.14), face(0.9, 0.45, 0.14)]) for i in range(5)])
    assert tracker.lock_on(point=(0.4, 0.45))
    passer_id = next(v.track_id for v in tracker.tracks if v.box.cx > 0.8)
    states = []
    for i in range(5, 50):  # the target is hidden; the other person walks left right through its place
        t = i / FPS
        states.append(tracker.update(dets(t, [face(0.9 - 0.6 * (t - 5 / FPS), 0.45, 0.14)]), t))
        assert any(v.track_id == passer_id and v.lost_s == 0.0 for v in tracker.tracks)
    assert all(s.source == "predicted" and abs(s.x - 0.4) < 0.01 for s in states)


def test_falls_back_to_the_body_when_the_face_turns_away_and_follows_it():
    tracker = TargetTracker(TrackerConfig(select="largest"))
    for i in range(15):  # face and body together: the face-to-pose offset is learnt
        t = i / FPS
        tracker.update(dets(t, [face(0.5, 0.4, 0.12)], [body_under(0.5, 0.42, 0.2)]), t)
    target = tracker.update(dets(15 / FPS, [face(0.5, 0.4, 0.12)], [body_under(0.5, 0.42, 0.2)]), 15 / FPS).track_id
    states = []
    for i in range(16, 76):  # turned away for 2 s and walking right at 0.1 /s
        t = i / FPS
        x = 0.5 + 0.1 * (t - 16 / FPS)
        states.append(tracker.update(dets(t, [], [body_under(x, 0.42, 0.2, turned_away=True)]), t))
    assert all(s.track_id == target and s.source == "body" and s.lost_s == 0.0 for s in states)
    final_x = 0.5 + 0.1 * (75 - 16) / FPS
    assert states[-1].x == pytest.approx(final_x, abs=0.02)  # head from the shoulders, offset applied
    assert states[-1].y == pytest.approx(0.4, abs=0.03)
    assert states[-1].vx == pytest.approx(0.1, abs=0.03)
    back = tracker.update(dets(76 / FPS, [face(final_x, 0.4, 0.12)], [body_under(final_x, 0.42, 0.2)]), 76 / FPS)
    assert back.track_id == target and back.source == "face"


def window_around(cx: float, cy: float, shoulder_w: float) -> Body:
    """A person detector's window (no keypoints) around the figure whose head is at (cx, cy)."""
    h = 6 * shoulder_w
    return Body(Box(cx - h / 4, cy - 0.125 * h, h / 2, h), (), 1.0)


@pytest.mark.parametrize("detector_confirms", [True, False])
def test_a_pose_alone_keeps_a_body_track_only_while_the_person_detector_confirms_it(detector_confirms):
    # A pose model can see a figure in a textured background and would be followed for ever;
    # with body_confirm_s, a track that only a pose still sees is dropped unless a face or the
    # person detector (every 8 frames here) confirms it.
    tracker = TargetTracker(TrackerConfig(select="largest", body_confirm_s=1.0))
    for i in range(15):
        t = i / FPS
        state = tracker.update(dets(t, [face(0.5, 0.4, 0.12)], [body_under(0.5, 0.42, 0.2)]), t)
    target = state.track_id
    states = []
    for i in range(15, 105):  # the face turned away for 3 s; the pose still sees the figure
        t = i / FPS
        bodies = [body_under(0.5, 0.42, 0.2, turned_away=True)]
        if detector_confirms and i % 8 == 0:
            bodies.append(window_around(0.5, 0.42, 0.2))
        states.append(tracker.update(dets(t, [], bodies), t))
    followed = [s for s in states if s.locked and s.track_id == target and s.source == "body"]
    if detector_confirms:
        assert len(followed) == len(states)
    else:
        # followed by the pose for body_confirm_s after the last face (30 frames), plus the
        # body_fresh_s a body sighting counts for (12), then no more
        assert 38 <= len(followed) <= 44 and states[-1].source != "body"


def test_a_body_that_belongs_to_another_visible_face_is_not_used():
    tracker = TargetTracker(TrackerConfig(select="manual"))
    run(tracker, [dets(i / FPS, [face(0.45, 0.4, 0.12), face(0.6, 0.4, 0.12)]) for i in range(5)])
    assert tracker.lock_on(point=(0.45, 0.4))
    # The target's face vanishes; the only pose is the other person's, right next to where it was.
    states = run(tracker, [dets(i / FPS, [face(0.6, 0.4, 0.12)], [body_under(0.6, 0.42, 0.2)]) for i in range(5, 15)])
    assert all(s.source == "predicted" and abs(s.x - 0.45) < 0.02 for s in states)


def test_a_false_face_on_the_back_of_the_head_does_not_take_the_pose():
    target_look, hair_look = (0.8, 0.2, 0.0, 0.0), (0.0, 0.1, 0.5, 0.4)  # similarity 0.4
    tracker = TargetTracker(TrackerConfig(select="largest"))
    for i in range(15):
        t = i / FPS
        f = Face(face(0.5, 0.4, 0.12).box, (), 0.95, target_look)
        state = tracker.update(dets(t, [f], [body_under(0.5, 0.42, 0.2)]), t)
    target = state.track_id
    for i in range(15, 30):  # turned away: the detector reports the hair as a weak face
        t = i / FPS
        hair = Face(face(0.5, 0.39, 0.12).box, (), 0.6, hair_look)
        state = tracker.update(dets(t, [hair], [body_under(0.5, 0.42, 0.2, turned_away=True)]), t)
        assert state.track_id == target and state.source == "body"


def test_prediction_compensates_latency_for_a_moving_face():
    latency = 0.12
    tracker = TargetTracker(TrackerConfig(select="largest", latency_s=latency))
    vx, vy = 0.25, -0.1
    for i in range(60):
        t = i / FPS
        state = tracker.update(dets(t, [face(0.2 + vx * t, 0.6 + vy * t, 0.1)]), t)
    t = 59 / FPS
    assert state.vx == pytest.approx(vx, abs=0.02) and state.vy == pytest.approx(vy, abs=0.02)
    assert state.x == pytest.approx(0.2 + vx * (t + latency), abs=0.005)
    assert state.y == pytest.approx(0.6 + vy * (t + latency), abs=0.005)


def test_camera_shift_keeps_a_still_subject_still_through_a_fast_pan():
    with_shift = TargetTracker(TrackerConfig(select="largest"))
    without = TargetTracker(TrackerConfig(select="largest"))
    x, states, plain = 0.85, [], []
    for i in range(30):
        t = i / FPS
        step = 0.16 if 10 <= i < 14 else 0.0  # the gimbal whips round: 0.16 frame widths per frame
        x -= step
        d = dets(t, [face(x, 0.5, 0.1)])
        states.append(with_shift.update(d, t, camera_shift=(-step, 0.0)))
        plain.append(without.update(d, t))
    locked = [s for s in states if s.locked]
    assert len({s.track_id for s in locked}) == 1 and len(locked) >= 28
    assert all(abs(s.vx) < 0.05 for s in locked)  # the subject never moved
    assert states[-1].source == "face" and states[-1].x == pytest.approx(x, abs=0.01)
    # Without it, the pan outruns the gate and the target is lost.
    assert plain[-1].source == "predicted"
    with pytest.raises(ValueError, match="camera_shift"):
        with_shift.update(dets(2.0), 2.0, camera_shift=(math.nan, 0.0))


def test_prediction_handles_irregular_frame_times():
    tracker = TargetTracker(TrackerConfig(select="largest"))
    t, times = 0.0, []
    for i in range(40):
        t += (0.02, 0.05, 0.033, 0.1)[i % 4]
        times.append(t)
    for t in times:
        state = tracker.update(dets(t, [face(0.1 + 0.2 * t, 0.5, 0.1)]), t)
    assert state.vx == pytest.approx(0.2, abs=0.02)


def test_coasts_for_coast_s_then_holds():
    tracker = TargetTracker(TrackerConfig(select="largest", coast_s=0.5, lost_timeout_s=3.0))
    for i in range(30):
        t = i / FPS
        tracker.update(dets(t, [face(0.2 + 0.3 * t, 0.5, 0.1)]), t)
    last_x = 0.2 + 0.3 * 29 / FPS
    coast = run(tracker, [dets(i / FPS, []) for i in range(30, 60)])
    at_quarter = coast[7]  # 0.27 s after the last sighting
    assert at_quarter.source == "predicted" and at_quarter.x == pytest.approx(last_x + 0.3 * 8 / FPS, abs=0.01)
    held = coast[-1]
    assert held.locked and held.vx == 0.0
    assert held.x == pytest.approx(last_x + 0.3 * 0.5, abs=0.02)  # stopped where coasting ended
    assert coast[-2].x == held.x


def test_lock_on_by_point_track_id_and_hand():
    tracker = TargetTracker(TrackerConfig(select="manual"))
    faces = [face(0.2, 0.3, 0.1), face(0.5, 0.3, 0.2), face(0.8, 0.3, 0.1)]
    state = tracker.update(dets(0.0, faces), 0.0)
    assert not state.locked  # manual: nobody until asked
    ids = {round(v.box.cx, 1): v.track_id for v in tracker.tracks}
    assert tracker.lock_on(point=(0.75, 0.5))
    assert tracker.update(dets(0.033, faces), 0.033).track_id == ids[0.8]
    assert tracker.lock_on(track_id=ids[0.2])
    assert tracker.update(dets(0.066, faces), 0.066).x == pytest.approx(0.2, abs=0.01)
    hand = Hand(tuple((0.52 + 0.01 * (k % 3), 0.62 - 0.01 * k, 0.0) for k in range(21)), "right", "open_palm", 0.9)
    assert tracker.lock_on(hand=hand)
    assert tracker.update(dets(0.1, faces, hands=[hand]), 0.1).x == pytest.approx(0.5, abs=0.01)
    assert not tracker.lock_on(track_id=999)
    with pytest.raises(ValueError, match="exactly one"):
        tracker.lock_on(point=(0.5, 0.5), track_id=1)
    with pytest.raises(ValueError, match="point"):
        tracker.lock_on(point=(math.nan, 0.5))
    tracker.release()
    assert not tracker.update(dets(0.133, faces), 0.133).locked


def test_nearest_to_calibration_point_selection():
    tracker = TargetTracker(TrackerConfig(select="nearest", calibration_point=(0.7, 0.3)))
    faces = [face(0.3, 0.5, 0.25), face(0.65, 0.35, 0.08)]
    state = run(tracker, [dets(i / FPS, faces) for i in range(3)])[-1]
    assert state.locked and state.x == pytest.approx(0.65, abs=0.01)


def test_gesture_selection_locks_on_the_person_holding_the_gesture():
    tracker = TargetTracker(TrackerConfig(select="gesture", lock_gesture="open_palm", gesture_hold_ms=300))
    big, small = face(0.3, 0.35, 0.2), face(0.75, 0.35, 0.08)
    palm = Hand(tuple((0.8, 0.55 - 0.005 * k, 0.0) for k in range(21)), "left", "open_palm", 0.9)
    states = run(tracker, [dets(i / FPS, [big, small], hands=[palm]) for i in range(15)])
    first_lock = next(i for i, s in enumerate(states) if s.locked)
    assert 8 <= first_lock <= 10  # 0.3 s of holding at 30 fps
    assert states[-1].x == pytest.approx(0.75, abs=0.01)  # the small face owns the hand


def test_rejects_time_going_backwards_and_wrong_types():
    tracker = TargetTracker()
    tracker.update(dets(1.0), 1.0)
    with pytest.raises(ValueError, match="earlier"):
        tracker.update(dets(0.5), 0.5)
    with pytest.raises(TypeError, match="Detections"):
        tracker.update([], 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="t_s"):
        tracker.update(dets(2.0), math.nan)


# -- real faces ---------------------------------------------------------------


@pytest.fixture(scope="module")
def faces_only():
    with Perception(VisionConfig(faces=True, hands=False, pose=False)) as perception:
        yield perception


def test_real_faces_lock_stays_on_astronaut_while_cameraman_approaches(faces_only):
    tracker = TargetTracker(TrackerConfig(select="largest"))
    states = []
    for i in range(40):
        t = i / FPS
        k = i / 39
        frame, (cam, astro) = compose([  # the cameraman walks up behind the astronaut
            Placement("cameraman", 0.85 - 0.13 * k, 0.45, 0.08 + 0.18 * k),  # ends larger and nearer the centre
            Placement("astronaut", 0.25, 0.42, 0.15),
        ])
        states.append(tracker.update(faces_only.process(frame, t), t))
    locked = [s for s in states if s.locked]
    assert len(locked) >= 35 and len({s.track_id for s in locked}) == 1
    assert all(astro.contains(s.x, s.y) for s in locked)
    assert cam.w > astro.w  # the other face did end up larger


def test_real_faces_reacquire_astronaut_after_occlusion(faces_only):
    tracker = TargetTracker(TrackerConfig(select="manual"))
    both = [Placement("astronaut", 0.35, 0.4, 0.15), Placement("cameraman", 0.75, 0.45, 0.12)]
    states = []
    for i in range(45):
        t = i / FPS
        hidden = 15 <= i < 30  # the astronaut leaves the frame for half a second
        frame, boxes = compose(both[1:] if hidden else both)
        states.append(tracker.update(faces_only.process(frame, t), t))
        if i == 3:
            assert tracker.lock_on(point=(0.3, 0.4))
    target = states[4].track_id
    assert all(s.track_id == target for s in states[4:])
    assert all(s.source == "predicted" for s in states[15:30])
    assert all(s.source == "face" for s in states[31:])
    assert states[-1].x == pytest.approx(0.35, abs=0.02)


def test_real_faces_someone_else_in_the_targets_place_is_not_reacquired(faces_only):
    """The astronaut steps out; the cameraman steps into her place; she comes back."""

    def run_with(min_similarity):
        config = TrackerConfig(select="largest", min_track_similarity=min_similarity,
                               min_reacquire_similarity=min_similarity)
        tracker = TargetTracker(config)
        states = []
        for i in range(40):
            t = 10.0 + i / FPS
            if i < 10:
                who = [Placement("astronaut", 0.35, 0.4, 0.15)]
            elif i < 25:
                who = [Placement("cameraman", 0.37, 0.42, 0.15)]
            else:
                who = [Placement("astronaut", 0.36, 0.4, 0.15)]
            frame, _ = compose(who)
            states.append(tracker.update(faces_only.process(frame, t), t))
        return states

    states = run_with(TrackerConfig().min_reacquire_similarity)
    target = states[5].track_id
    assert all(s.track_id == target for s in states[5:])
    assert all(s.source == "predicted" for s in states[10:25])  # not the cameraman
    assert all(s.source == "face" for s in states[26:])  # she is back
    # Position and size alone cannot tell: without appearance the cameraman is taken for her.
    blind = run_with(0.0)
    assert any(s.source == "face" for s in blind[10:25])
