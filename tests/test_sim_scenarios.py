"""Closed-loop tracking scenarios with real vision in the loop, shortened to a few simulated seconds.

Each run renders the virtual camera at 30 fps, runs the host's TrackingPipeline
(MediaPipe, target tracker, framing controller) on the frames, sends the
setpoints through the simulated serial link to the real firmware, and checks
the metrics against ground truth from the simulated world.
"""

import dataclasses
import json

import pytest

from opensteady.host.cli import main as opensteady
from opensteady.host.simrig import run_scenario
from opensteady.sim.scenario import Subject, load_scenario

pytestmark = pytest.mark.slow


def _short(name, seconds):
    return load_scenario(name, overrides={"seconds": seconds})


def test_track_crossing_follows_the_subject():
    m = run_scenario(_short("track-crossing", 5.0)).metrics
    assert m["faults"] == []
    assert m["frames_in_view"] >= 80
    assert m["tracking_lost_frac"] < 0.2
    # the subject moves from 0 to 60 deg azimuth between 3 and 5 s: the camera must have turned after it
    assert m["final_camera_ypr_deg"][0] > 25.0
    assert m["tracking_rms_frac"] < 0.2


def test_two_people_target_does_not_jump():
    m = run_scenario(_short("two-people", 7.0)).metrics
    assert m["frames_in_view"] >= 140
    assert m["wrong_target_frac"] == 0.0
    assert m["tracking_lost_frac"] < 0.2
    assert abs(m["final_camera_ypr_deg"][0]) < 10.0  # still pointing at the subject, not the passer-by


def test_gesture_pause_stops_and_resumes_tracking():
    sc = _short("gesture-pause", 8.0)
    r = run_scenario(sc)
    m = r.metrics
    assert m["paused_frames"] >= 60  # paused from 3.5 s to 6.5 s
    s = r.series
    yaw = s["camera_ypr_deg"][:, 0]
    t = s["t_s"]
    during = yaw[(t > 4.0) & (t < 6.4)]
    # the subject moves to 15 deg at 4-5 s; paused, the camera stays put
    assert during.max() - during.min() < 3.0
    assert yaw[-1] > 8.0  # resumed: it turned to the subject afterwards


def test_occlusion_reacquires_the_subject():
    sc = _short("track-occlusion", 8.0)
    m = run_scenario(sc).metrics
    assert m["frames"] - m["frames_in_view"] >= 25  # about 1 s hidden at 30 fps
    assert m["tracking_lost_frac"] < 0.25
    assert m["final_camera_ypr_deg"][0] > 25.0  # found and followed again after the occlusion


def test_subject_leaving_the_frame_is_survived_calmly():
    m = run_scenario(_short("subject-leaves-frame", 6.0)).metrics
    # Gone for over a second (73 of 120 frames in view without face descriptors; with them the tracker
    # recognises her again once the coasting camera brings her back into view: 89).
    assert m["frames"] - m["frames_in_view"] >= 20
    assert m["max_motor_effort"] < 1.2
    assert "imu_read" not in m["faults"] and "loop_overrun" not in m["faults"]


def test_track_crossing_in_micropython_firmware_matches_inprocess():
    sc = _short("track-crossing", 3.5)
    m = run_scenario(sc, firmware="micropython").metrics
    assert m["firmware"] == "micropython"
    assert m["mode_reached"] and m["faults"] == []
    assert m["frames_in_view"] >= 30
    assert m["tracking_lost_frac"] < 0.2
    assert m["tracking_rms_frac"] < 0.1  # the subject stands still in this part
    # vision in the loop too: the two co-simulation modes agree (tolerance 1e-6, docs/sim.md)
    a = run_scenario(sc, firmware="inprocess").metrics
    for key in ("tracking_rms_frac", "tracking_lost_frac", "camera_jitter_rms_deg", "max_motor_effort", "frames"):
        assert a[key] == pytest.approx(m[key], abs=1e-6), key


def test_baseline_tracker_runs_on_the_same_scenario():
    m = run_scenario(_short("track-crossing", 4.0), tracker="baseline").metrics
    assert m["tracker"] == "baseline"
    assert m["frames_in_view"] >= 50
    assert m["tracking_rms_frac"] < 0.2


def test_custom_face_image_and_bad_face(tmp_path):
    import cv2
    from skimage import data

    face = tmp_path / "me.png"
    cv2.imwrite(str(face), data.astronaut()[:, :, ::-1])
    sc = _short("two-people", 2.6)
    sc = dataclasses.replace(sc, subjects=(dataclasses.replace(sc.subjects[0]),))
    assert isinstance(sc.subjects[0], Subject)
    from opensteady.sim.world import load_face_image

    m = run_scenario(sc, face_image=load_face_image(face)).metrics
    assert m["frames_in_view"] > 0 and m["tracking_lost_frac"] < 0.5
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    assert opensteady(["sim", "--face", str(bad), "--json"]) == 2


def test_cli_json_last_line_and_errors(tmp_path, capsys):
    plot = tmp_path / "out.png"
    assert opensteady(["sim", "--scenario", "stabilize-still", "--seconds", "2.5", "--json", "--plot", str(plot),
                       "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    m = json.loads(out[-1])
    for key in ("scenario", "sim_seconds", "wall_seconds", "realtime_factor", "tracking_rms_frac",
                "tracking_lost_frac", "camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "faults"):
        assert key in m
    assert m["scenario"] == "stabilize-still" and m["sim_seconds"] == pytest.approx(2.5)
    assert plot.stat().st_size > 10000
    assert opensteady(["sim", "--scenario", "no-such-scenario"]) == 2
    assert "unknown scenario 'no-such-scenario'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    assert opensteady(["sim", "--scenario", str(bad)]) == 2
    assert "bad TOML" in capsys.readouterr().err


def test_no_argument_run_is_the_first_time_user_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert opensteady(["sim", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "track-crossing" in out and "tracking_rms_frac" in out
    # each figure says what it means and what is good; the baseline runs beside OpenSteady
    assert "frame widths (lower is better" in out and "tracking_rms_vs_baseline" in out
    assert "OpenSteady beside the baseline" in out
    assert (tmp_path / "opensteady-sim.png").stat().st_size > 10000
    import cv2

    video = cv2.VideoCapture(str(tmp_path / "opensteady-sim.mp4"))
    n = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = video.read()
    video.release()
    assert ok and first.shape == (480, 640, 3) and n > 200  # 10 s at 30 fps after boot, with the HUD
    assert "video written to opensteady-sim.mp4" in out
