"""`opensteady track` end to end on a video built from a real photo, plus its failure paths.

The video is scikit-image's astronaut (a real face) moved across a 640x480
frame; the real MediaPipe pipeline runs in a real `opensteady` process.
"""

import errno
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading

import cv2
import matplotlib
import numpy as np
import pytest

from opensteady.host.track_bench import FACE_SIZE, face_offset_x, write_astronaut_video
from tests.micropython import ROOT as REPO_ROOT

ROOT = str(REPO_ROOT)
N_FRAMES = 60


def true_face_cx(i):
    # MediaPipe finds the astronaut's face at x 0.35..0.54 of the photo (FACTS: box 0.35, 0.16, 0.19, 0.19)
    return (face_offset_x(i, N_FRAMES) + FACE_SIZE * (0.35 + 0.19 / 2)) / 640.0


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_astronaut_video(tmp_path_factory.mktemp("video") / "astronaut.avi", N_FRAMES)


def opensteady(*args, cwd=None, env=None, **kw):
    """Run the real CLI from a scratch directory, with its default output folder in a scratch directory too."""
    if env is None:
        env = dict(os.environ, OPENSTEADY_OUTPUT_DIR=tempfile.mkdtemp(prefix="opensteady-output-"))
    env = dict(env, PYTHONPATH=ROOT)
    cwd = cwd or tempfile.mkdtemp(prefix="opensteady-cli-")
    return subprocess.run([sys.executable, "-m", "opensteady.host.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, **kw)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def tracked(video, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    log = out / "session.jsonl"
    result = opensteady("track", "--video", str(video), "--no-pace", "--headless", "--json", "--gimbal", "none",
                        "--log", str(log), "--output-dir", str(out), "--calibration", "top-third")
    return result, log, out


def test_track_headless_video_follows_the_face_and_prints_a_summary(tracked):
    result, log, _ = tracked
    assert result.returncode == 0, result.stderr[-2000:]
    lines = json_lines(result.stdout)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["exit"] == "end_of_stream"
    assert summary["frames"] == N_FRAMES
    assert summary["frames_with_target"] >= N_FRAMES - 3
    assert 0 < summary["pipeline_ms_p50"] <= summary["pipeline_ms_p95"]
    # hold setpoints while the models loaded, then one per frame; none of the video's frames skipped
    up = summary["startup"]
    assert up["hold_setpoints"] >= 1 and summary["setpoints_sent"] == N_FRAMES + up["hold_setpoints"]
    assert summary["dropped_frames"] == 0
    # the first setpoint went out before the models were ready, the first tracked one after
    assert up["first_setpoint_unix_s"] <= up["models_ready_unix_s"] <= up["first_tracked_setpoint_unix_s"]
    assert up["models_load_s"] > 0
    assert all(line["type"] == "status" for line in lines[:-1])
    for status in lines[:-1]:  # one a second; a fast machine may finish before the first
        assert status["target"] == "face" and status["state"] in ("tracking", "deadband")

    from opensteady.host.session_log import read_log

    records, problems = read_log(str(log))
    assert problems == []
    assert records[0]["type"] == "start" and records[-1]["type"] == "summary"
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["frame"] for r in frames] == list(range(N_FRAMES))
    errors = []
    agree = total = 0
    for r in frames:
        if r["target"]["source"] != "face":
            continue
        truth = true_face_cx(r["frame"])
        errors.append(abs(r["target"]["x"] - truth))
        if abs(truth - 0.5) > 0.12:  # clearly off-centre: the gimbal must turn towards the face
            total += 1
            agree += (r["setpoint"]["yaw_rate_dps"] > 0) == (truth > 0.5)
    assert np.median(errors) < 0.03
    assert total > 20 and agree >= 0.9 * total
    # the subject is held on the upper third line: a face at y ~0.3 needs almost no pitch
    assert all(r["calibration_point"] == pytest.approx([0.5, 1 / 3]) for r in frames)
    pitch_errors = [abs(r["setpoint"]["pitch_error_deg"]) for r in frames if r["target"]["source"] == "face"]
    assert np.median(pitch_errors) < 3.0
    assert all(r["faces"] for r in frames[:5])


def test_replay_plots_the_session(tracked, tmp_path):
    _, log, _ = tracked
    png = tmp_path / "replay.png"
    result = opensteady("replay", str(log), "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert "%d frames" % N_FRAMES in result.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    img = cv2.imread(str(png))
    assert img.shape[0] > 500 and img.std() > 10


def test_replay_reports_a_truncated_line_and_keeps_the_rest(tracked, tmp_path):
    _, log, _ = tracked
    damaged = tmp_path / "damaged.jsonl"
    text = log.read_text()
    damaged.write_text(text + '{"type": "frame", "t_s": 9')  # a write cut short by a crash
    result = opensteady("replay", str(damaged))
    assert result.returncode == 0
    assert "not a JSON line" in result.stderr and "%d frames" % N_FRAMES in result.stdout


def ctrl_c_reaches_the_child():
    """Popen preexec_fn: SIGINT at its default in the tracker, as in a terminal.

    A test run started in the background of a non-interactive shell inherits SIGINT
    ignored, and Python then never turns it into KeyboardInterrupt; a user's Ctrl-C
    always arrives with the default disposition.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(proc):
    """Ctrl-C the tracker; its (stdout, stderr) once it has exited. Only a hung tracker meets the timeout."""
    try:
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_until_hangup(fd, into):
    """Read a pty master until every slave end is closed (EIO): nothing written before that is lost."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not chunk:
            return
        into += chunk


def test_ctrl_c_stops_the_gimbal_closes_the_port_and_keeps_the_log(video, tmp_path):
    """SIGINT while the tracker streams setpoints from a looping video (a source that never ends).

    No step waits on the wall clock: the interrupt is sent once setpoints have
    been seen on the port, and the port is read until the tracker's end is
    closed, so every byte it wrote is checked whatever the machine's speed.
    """
    from opensteady.host.mount import simplebgc as sbgc

    master, slave = os.openpty()
    log = tmp_path / "session.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "opensteady.host.cli", "track", "--video", str(video), "--loop", "--no-pace",
         "--headless", "--json", "--gimbal", "simplebgc", "--port", os.ttyname(slave), "--log", str(log),
         "--output-dir", str(tmp_path), "--portrait"], preexec_fn=ctrl_c_reaches_the_child,
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received = bytearray()
    reader = None
    try:
        # wait (on I/O) until CMD_CONTROL setpoints stream in, then interrupt
        while not any(cmd == sbgc.CMD_CONTROL for cmd, _ in sbgc.Parser().feed(bytes(received))):
            ready, _, _ = select.select([master], [], [], 120)  # only a hung tracker gets here
            assert ready, "no bytes from the tracker"
            received += os.read(master, 4096)
        # keep draining the port so the tracker never blocks on a full pty buffer
        reader = threading.Thread(target=read_until_hangup, args=(master, received))
        reader.start()
        out, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(slave)  # the tracker has exited: ours was the last open slave end
        if reader is not None:
            reader.join()
        os.close(master)
    assert proc.returncode == 130, err[-2000:]
    summary = json_lines(out)[-1]
    assert summary["type"] == "summary" and summary["exit"] == "interrupted"
    frames = sbgc.Parser().feed(bytes(received))
    assert frames[0] == (sbgc.CMD_MOTORS_ON, b"")
    controls = [payload for cmd, payload in frames[1:-1] if cmd == sbgc.CMD_CONTROL]
    assert controls and all(c[:1] == bytes([sbgc.MODE_ANGLE]) and c[5:7] == (4096).to_bytes(2, "little")
                            for c in controls)  # --portrait: roll held at 90 deg
    assert frames[-1] == (sbgc.CMD_CONTROL, sbgc.no_control_frame()[4:-2])  # last word: stop, board holds
    last = log.read_text().splitlines()[-1]
    assert json.loads(last)["type"] == "summary"


def test_missing_camera_gives_one_clear_message_and_keeps_retrying(tmp_path):
    """Waits on the tracker's own status lines (events), not on a wall-clock budget, then interrupts it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opensteady.host.cli", "track", "--camera", "97", "--headless", "--json",
         "--gimbal", "none", "--no-log"], preexec_fn=ctrl_c_reaches_the_child,
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines = []
    for line in proc.stdout:  # one status line a second while the camera is away
        lines.append(json.loads(line))
        if lines[-1].get("camera_errors", 0) >= 2:
            break
    out, err = interrupt(proc)
    lines += json_lines(out)
    status = [line for line in lines if line["type"] == "status"]
    assert status and status[-1]["camera"] == "retrying" and status[-1]["camera_errors"] >= 2, err[-2000:]
    assert "camera 97 could not be opened" in status[-1]["camera_error"]
    assert err.count("camera 97 could not be opened") == 1  # reported once, however often it is retried
    assert "retrying every 1.0 s" in err
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["exit"] == "interrupted" and proc.returncode == 130
    assert summary["frames"] == 0 and summary["camera_errors"] >= 2


def test_bad_config_file_is_refused_with_its_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[framing]\nkp = 2.0\n\n[gimbal]\ndriver = \"dji\"\n")
    result = opensteady("track", "--config", str(cfg), "--headless", "--video", "nothing.avi")
    assert result.returncode == 2
    assert "bad.toml:5" in result.stderr and "gimbal.driver = 'dji'" in result.stderr


def test_missing_video_file_and_missing_port_are_clear_errors(tmp_path):
    result = opensteady("track", "--video", str(tmp_path / "none.avi"), "--headless")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = opensteady("track", "--video", str(tmp_path / "none.avi"), "--headless", "--gimbal", "simplebgc")
    assert result.returncode == 2
    out = tmp_path / "out"
    result = opensteady("track", "--camera", "97", "--headless", "--port", str(tmp_path / "ttyNOPE"), cwd=str(tmp_path),
                        env=dict(os.environ, OPENSTEADY_OUTPUT_DIR=str(out)))
    assert result.returncode == 2 and "does not exist" in result.stderr and "ttyNOPE" in result.stderr
    assert not out.exists() and os.listdir(tmp_path) == []  # no session log for a run that never started


def test_files_go_to_the_desktop_videos_folder_never_the_current_directory(video, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k != "OPENSTEADY_OUTPUT_DIR"}
    env["HOME"] = str(home)
    env["MPLCONFIGDIR"] = matplotlib.get_cachedir()  # mediapipe imports matplotlib: keep its font cache
    result = opensteady("track", "--video", str(video), "--no-pace", "--headless", "--gimbal", "none",
                        "--max-frames", "3", cwd=str(cwd), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = home / "Videos" / "OpenSteady"
    (log,) = folder.glob("session-*.jsonl")
    assert "session log: %s" % log in result.stdout and os.listdir(cwd) == []
    env["OPENSTEADY_OUTPUT_DIR"] = str(tmp_path / "chosen")
    help_text = opensteady("track", "--help", cwd=str(cwd), env=env).stdout
    assert "$OPENSTEADY_OUTPUT_DIR" in help_text and str(folder) in "".join(help_text.split())  # argparse wraps it


def test_track_sim_gesture_pause_scenario_runs_the_real_protocol(tmp_path):
    log = tmp_path / "sim.jsonl"
    args = ("track", "--sim", "--scenario", "gesture-pause", "--headless", "--json", "--no-hands", "--log", str(log))
    result = opensteady(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json_lines(result.stdout)[-1]
    assert summary["gimbal"] == "opensteady" and summary["sim"]["scenario"] == "gesture-pause"
    # 10 s at 30 fps from t = 0; each frame reaches the host 30 ms after capture, within the 10 s
    assert summary["frames"] == 300 and summary["setpoints_sent"] == 300
    assert summary["bytes_written"] >= 300 * 14  # every setpoint crossed the simulated UART
    from opensteady.host.session_log import read_log

    frames = [r for r in read_log(str(log))[0] if r["type"] == "frame"]
    # telemetry decoded from the simulated firmware, which is switched to track mode once calibrated
    modes = [r["telemetry"]["mode"] for r in frames if r["telemetry"]]
    assert "off" in modes[:10] and modes[-1] == "track"
    # the scenario injects open_palm at 3.5 s (pause) and 6.5 s (resume)
    actions = [(e["t_s"], e["detail"]) for e in summary["events"] if e["kind"] == "action"]
    assert [a for _, a in actions] == ["pause", "resume"]
    assert 3.5 <= actions[0][0] < 3.5 + 1 / 30 and 6.5 <= actions[1][0] < 6.5 + 1 / 30
    paused = [r for r in frames if 3.6 <= r["t_s"] < 6.5]
    assert paused and all(r["paused"] and r["setpoint"]["state"] == "paused" for r in paused)
    assert all(r["setpoint"]["yaw_rate_dps"] == 0 and r["setpoint"]["pitch_rate_dps"] == 0 for r in paused[10:])
    assert not any(r["paused"] for r in frames if r["t_s"] > 6.6)
    # repeatable: the same seed gives the same detections, setpoints and telemetry
    again_log = tmp_path / "again.jsonl"
    again = opensteady(*args[:-1], str(again_log), "--max-frames", "150")
    assert again.returncode == 0
    again_frames = [r for r in read_log(str(again_log))[0] if r["type"] == "frame"]
    keys = ("faces", "target", "setpoint", "telemetry")
    assert len(again_frames) == 150
    assert [[r[k] for k in keys] for r in again_frames] == [[r[k] for k in keys] for r in frames[:150]]


def test_track_sim_crossing_keeps_the_subject_framed():
    # closed loop through vision, tracker, framing, the wire protocol, the firmware and the plant
    result = opensteady("track", "--sim", "--scenario", "track-crossing", "--headless", "--json", "--no-hands",
                        "--no-log")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json_lines(result.stdout)[-1]
    sim = summary["sim"]
    assert sim["frames_in_view"] >= 0.95 * sim["frames"] and sim["tracking_lost_frac"] < 0.05
    assert sim["tracking_rms_frac"] < 0.03 and sim["faults"] == [] and sim["mode_reached"]
    assert summary["frames_with_target"] >= 0.9 * summary["frames"]


def test_without_a_display_the_preview_is_skipped_not_fatal(video):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = opensteady("track", "--video", str(video), "--no-pace", "--gimbal", "none", "--no-log",
                        "--max-frames", "5", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no display" in result.stderr and "5 frames" in result.stdout
