"""The tracker app's parts: config file, gestures to actions, capture slot, HUD.

Real MediaPipe on the real astronaut photo; simulated time everywhere.
"""

import os
import threading

import cv2
import numpy as np
import pytest

from opensteady.host.calibration import CameraMapping
from opensteady.host.capture import FrameGrabber, VideoFileSource
from opensteady.host.config import ConfigError, build_pipeline_config, load_config, set_value
from opensteady.host.pipeline import PipelineConfig, TrackingPipeline
from tests.micropython import ROOT as REPO_ROOT

ROOT = str(REPO_ROOT)
DT = 1 / 30


# --- config ----------------------------------------------------------------------

def test_documented_example_config_loads_and_matches_the_defaults_it_shows():
    path = os.path.join(ROOT, "docs", "config.example.toml")
    settings = load_config(path)
    assert settings == load_config(None)  # the example shows every default, unchanged
    text = open(path).read()
    from opensteady.host.config import SCHEMA

    for section, keys in SCHEMA.items():
        assert "[%s]" % section in text
        for key in keys:
            assert "\n%s = " % key in text or "\n# %s = " % key in text, "%s.%s is not documented" % (section, key)


def test_the_settings_defaults_are_the_components_own():
    """Drift check: the app's defaults build exactly the components a caller gets with no arguments."""
    import inspect

    from opensteady.host.capture import CameraSource
    from opensteady.host.framing import FramingConfig
    from opensteady.host.mount import Mount, create_backend
    from opensteady.host.mount.mavlink import MavlinkBackend
    from opensteady.host.mount.simplebgc import SimpleBGCBackend
    from opensteady.vision.pipeline import VisionConfig
    from opensteady.vision.tracker import TrackerConfig

    settings = load_config(None)
    built, plain = build_pipeline_config(settings), PipelineConfig()
    assert built.framing == FramingConfig() == plain.framing
    assert VisionConfig(**built.vision) == VisionConfig()
    assert TrackerConfig(calibration_point=built.calibration_point, **built.tracker) == TrackerConfig()
    for field in ("calibration_point", "camera_mapping", "gesture_actions", "gesture_hold_ms", "photo_countdown_s",
                  "hands_async", "nominal_dt_s"):
        assert getattr(built, field) == pytest.approx(getattr(plain, field)), field

    def defaults_of(component, names):
        params = inspect.signature(component).parameters
        return {name: params[name].default for name in names}

    cam, gimbal = settings["camera"], settings["gimbal"]
    assert defaults_of(CameraSource, ("width", "height", "fps", "retry_s")) == {
        k: cam[k] for k in ("width", "height", "fps", "retry_s")}
    assert defaults_of(Mount, ["stall_s"]) == {"stall_s": gimbal["stall_s"]}
    for backend in (create_backend, MavlinkBackend, SimpleBGCBackend):
        assert defaults_of(backend, ["baud"]) == {"baud": gimbal["baud"]}
    assert defaults_of(MavlinkBackend, settings["mavlink"]) == settings["mavlink"]
    assert defaults_of(SimpleBGCBackend, settings["simplebgc"]) == settings["simplebgc"]


def test_changing_loaded_settings_never_changes_the_defaults():
    settings = load_config(None)
    settings["vision"]["hands"] = not settings["vision"]["hands"]
    settings["gestures"]["victory"] = "none"
    assert load_config(None)["vision"]["hands"] != settings["vision"]["hands"]
    assert load_config(None)["gestures"]["victory"] == "photo"


@pytest.mark.parametrize("text,line,words", [
    ("[framing]\nkp = 2.0\nki = -1\n", 3, ["framing.ki = -1", "must be >= 0"]),
    ("[camera]\nfps = 30\n\n[gimbal]\ndrive = \"none\"\n", 5, ["unknown key gimbal.drive", "driver"]),
    ("[framing]\nlost_action = \"spin\"\n", 2, ["framing.lost_action = 'spin'", "'sweep'"]),
    ("\n[cameras]\nfps = 30\n", 2, ["unknown section [cameras]"]),
    ("[calibration]\npoint = \"middle\"\n", 2, ["calibration.point", "preset"]),
    ("[gestures]\nvictory = \"selfie\"\n", 2, ["gestures.victory = 'selfie'", "'photo'"]),
    ("[gimbal]\nbaud = 115200.5\n", 2, ["gimbal.baud", "integer"]),
    ("[camera]\nsource = true\n", 2, ["camera.source", "camera index"]),
])
def test_config_errors_name_the_line_key_value_and_reason(text, line, words):
    with pytest.raises(ConfigError) as err:
        load_config(text=text)
    message = str(err.value)
    assert message.startswith("<config>:%d: " % line), message
    for word in words:
        assert word in message


def test_config_syntax_error_names_the_line():
    with pytest.raises(ConfigError, match="line 3"):
        load_config(text="[framing]\nkp = 2.0\nki = = 1\n")


def test_file_overrides_defaults_and_flags_override_the_file(tmp_path):
    settings = load_config(text="[framing]\nmax_rate_dps = 50.0\norientation = \"portrait\"\n"
                                "[calibration]\npoint = \"top-third\"\noffset_x = -0.1\nscale_x = 0.8\n")
    cfg = build_pipeline_config(settings)
    assert cfg.framing.max_rate_dps == 50.0 and cfg.framing.roll_deg == 90.0
    assert cfg.calibration_point == pytest.approx((0.5, 1 / 3))
    assert cfg.camera_mapping == CameraMapping(offset_x=-0.1, scale_x=0.8)
    set_value(settings, "calibration", "point", "0.25,0.4", "--calibration")
    assert build_pipeline_config(settings).calibration_point == (0.25, 0.4)
    with pytest.raises(ConfigError, match="--calibration: calibration.point"):
        set_value(settings, "calibration", "point", "2,2", "--calibration")
    assert load_config(None)["framing"]["max_rate_dps"] == 120.0  # defaults untouched


# --- pipeline: gestures to actions -------------------------------------------------

@pytest.fixture(scope="module")
def astronaut_frame():
    import skimage.data

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(skimage.data.astronaut(), (480, 480))
    return frame


@pytest.fixture(scope="module")
def perception():
    from opensteady.vision.pipeline import Perception, VisionConfig

    with Perception(VisionConfig(hands=False)) as p:
        yield p


def make_pipeline(perception, **kw):
    return TrackingPipeline(PipelineConfig(vision={"hands": False}, **kw), perception=perception)


def run_frames(pipe, frame, t0, n):
    outs = []
    for i in range(n):
        outs.append(pipe.step(frame, t0 + i * DT))
    return outs


def test_pipeline_locks_on_the_real_face_and_turns_towards_it(perception, astronaut_frame):
    pipe = make_pipeline(perception)
    outs = run_frames(pipe, astronaut_frame, 0.0, 10)
    last = outs[-1]
    assert last.target.locked and last.target.source == "face"
    assert abs(last.target.x - 0.49) < 0.05 and last.target.y < 0.35  # head in the upper half
    assert last.setpoint.pitch_rate_dps > 0  # face above the centre: tilt up
    assert [e.kind for o in outs for e in o.events] == ["target_locked"]
    assert set(last.latency_ms) == {"vision", "tracker", "gestures", "framing", "total"}
    assert last.latency_ms["total"] >= last.latency_ms["vision"] > 0


def test_calibration_point_and_side_camera_mapping_change_the_error(perception, astronaut_frame):
    pipe = make_pipeline(perception)
    first = run_frames(pipe, astronaut_frame, 0.0, 3)[-1]
    assert abs(first.setpoint.yaw_error_deg) + abs(first.setpoint.pitch_error_deg) > 10
    pipe.set_calibration_point(first.target.x, first.target.y)  # as a click on the face would
    out = run_frames(pipe, astronaut_frame, 3 * DT, 3)[-1]
    assert abs(out.setpoint.yaw_error_deg) < 0.5 and abs(out.setpoint.pitch_error_deg) < 0.5
    shifted = make_pipeline(perception, camera_mapping=CameraMapping(offset_x=0.2))
    out = run_frames(shifted, astronaut_frame, 0.0, 3)[-1]
    assert out.setpoint.yaw_error_deg > 10  # the recording camera sees the face further right
    with pytest.raises(ValueError, match="inside the frame"):
        pipe.set_calibration_point(1.2, 0.5)


def test_gesture_actions_pause_photo_record_recentre_lock(perception, astronaut_frame):
    pipe = make_pipeline(perception, photo_countdown_s=3.0)
    t = 0.0
    run_frames(pipe, astronaut_frame, t, 5)
    t += 5 * DT

    def gesture(name):
        nonlocal t
        pipe.inject_gesture(name)
        out = pipe.step(astronaut_frame, t)
        t += DT
        return out, [(e.kind, e.detail) for e in out.events]

    out, ev = gesture("open_palm")
    assert ("gesture", "open_palm") in ev and ("action", "pause") in ev and out.paused
    outs = run_frames(pipe, astronaut_frame, t, 30)
    t += 30 * DT
    assert outs[-1].setpoint.state == "paused" and outs[-1].setpoint.is_still
    out, ev = gesture("open_palm")
    assert ("action", "resume") in ev and not out.paused

    out, ev = gesture("victory")
    assert ("action", "photo_countdown") in ev and out.photo_countdown_s == pytest.approx(3.0)
    photo_at = t - DT + 3.0
    fired = []
    for _ in range(100):
        o = pipe.step(astronaut_frame, t)
        if any(e.kind == "photo_now" for e in o.events):
            fired.append(t)
        t += DT
    assert len(fired) == 1 and photo_at <= fired[0] < photo_at + DT + 1e-9

    out, ev = gesture("fist")
    assert ("action", "record_start") in ev and out.recording
    out, ev = gesture("fist")
    assert ("action", "record_stop") in ev and not out.recording

    out, ev = gesture("pointing")
    assert ("action", "recentre") in ev and out.setpoint.state == "recentre" and out.setpoint.yaw_deg == 0.0

    pipe.tracker.release()
    out, ev = gesture("thumbs_up")
    assert ("action", "lock_on") in ev


def test_gesture_table_is_configurable_and_unknown_actions_refused(perception, astronaut_frame):
    pipe = make_pipeline(perception, gesture_actions={"open_palm": "none", "fist": "pause_toggle"})
    pipe.inject_gesture("open_palm")
    out = pipe.step(astronaut_frame, 0.0)
    assert not out.paused and [e.kind for e in out.events if e.kind == "action"] == []
    pipe.inject_gesture("fist")
    assert pipe.step(astronaut_frame, DT).paused
    with pytest.raises(ValueError, match="gestures.fist = 'dance'"):
        PipelineConfig(gesture_actions={"fist": "dance"}).validate()
    with pytest.raises(ValueError, match="went backwards"):
        pipe.step(astronaut_frame, 0.0)


def test_light_cycle_gesture_is_off_by_default_and_steps_the_light_when_mapped(perception, astronaut_frame):
    from opensteady.host.config import load_config
    from opensteady.host.pipeline import DEFAULT_GESTURE_ACTIONS

    assert "light_cycle" not in DEFAULT_GESTURE_ACTIONS.values()
    assert "light_cycle" not in {v for k, v in load_config(None)["gestures"].items() if isinstance(v, str)}
    pipe = make_pipeline(perception, gesture_actions=dict(DEFAULT_GESTURE_ACTIONS, thumbs_up="light_cycle"))
    assert pipe.light_level == 0
    levels = []
    for k in range(5):
        pipe.inject_gesture("thumbs_up")
        out = pipe.step(astronaut_frame, k * DT)
        levels.append(pipe.light_level)
        assert ("action", "light_%d" % pipe.light_level) in [(e.kind, e.detail) for e in out.events]
    assert levels == [1, 2, 3, 0, 1]
    pipe.set_light(3)
    assert pipe.light_level == 3
    with pytest.raises(ValueError, match="levels 0 .off. to 3"):
        pipe.set_light(4)
    with pytest.raises(ValueError, match="light_level"):
        PipelineConfig(light_level=-1).validate()


# --- capture -----------------------------------------------------------------------

class ListSource:
    """A live source over a list of frames, read as fast as possible (a camera faster than us)."""

    live = True
    description = "list"

    def __init__(self, n, fail_opens=0):
        self.n = n
        self.i = 0
        self.fail_opens = fail_opens
        self.opens = 0
        self.done = threading.Event()

    def open(self):
        from opensteady.host.capture import CaptureError

        self.opens += 1
        if self.opens <= self.fail_opens:
            raise CaptureError("list source not ready (%d)" % self.opens)

    def read(self):
        from opensteady.host.capture import EndOfStream, Frame

        if self.i >= self.n:
            self.done.set()
            raise EndOfStream()
        self.i += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), self.i * DT, self.i - 1, 0.0)

    def close(self):
        pass


def test_grabber_hands_over_the_newest_frame_and_counts_drops():
    source = ListSource(50)
    grabber = FrameGrabber(source).start()
    source.done.wait(10)
    grabber._thread.join(10)
    frame = grabber.latest(timeout_s=0)
    assert frame.index == 49  # the newest; the 49 before it were overwritten
    assert grabber.dropped == 49 and grabber.latest(timeout_s=0) is None and grabber.ended
    grabber.stop()


def test_grabber_retries_a_source_that_fails_to_open(caplog):
    source = ListSource(3, fail_opens=2)
    grabber = FrameGrabber(source, retry_s=0.01).start()
    source.done.wait(10)
    grabber._thread.join(10)
    assert source.opens == 3 and grabber.errors == 2
    assert grabber.latest(timeout_s=0).index == 2
    assert sum("not ready" in r.message for r in caplog.records) == 2
    grabber.stop()


def test_unpaced_video_file_delivers_every_frame_in_order(tmp_path):
    path = str(tmp_path / "count.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    grabber = FrameGrabber(VideoFileSource(path, paced=False)).start()
    frames = []
    while not grabber.ended:
        f = grabber.latest(timeout_s=1.0)
        if f is not None:
            frames.append(f)
    grabber.stop()
    assert [f.index for f in frames] == list(range(20))
    assert frames[3].t_s == pytest.approx(3 / 25.0) and grabber.dropped == 0
    assert abs(int(frames[7].rgb.mean()) - 70) <= 3


# --- HUD ---------------------------------------------------------------------------

def test_hud_draws_target_calibration_point_and_status(perception, astronaut_frame):
    from opensteady.host.hud import CYAN, draw_hud

    pipe = make_pipeline(perception, calibration_point=(0.25, 0.75))
    out = run_frames(pipe, astronaut_frame, 0.0, 3)[-1]
    img = cv2.cvtColor(astronaut_frame, cv2.COLOR_RGB2BGR)
    before = img.copy()
    draw_hud(img, out, {"fps": 29.5, "e2e_ms": 12.0, "gimbal": "none", "gesture": "victory"})
    cx, cy = int(0.25 * 640), int(0.75 * 480)
    assert tuple(img[cy, cx + 10]) == CYAN  # the ring around the calibration point
    tx, ty = int(out.target.x * 640), int(out.target.y * 480)
    assert (img[ty - 5:ty + 5, tx - 5:tx + 5] != before[ty - 5:ty + 5, tx - 5:tx + 5]).any()
    assert (img[:80, :400] != before[:80, :400]).any()  # status lines


def test_gimbal_telemetry_becomes_the_trackers_camera_shift(perception):
    pipe = make_pipeline(perception)
    assert pipe._camera_shift(None) == (0.0, 0.0)
    assert pipe._camera_shift({"yaw_deg": 179.0, "pitch_deg": 0.0}) == (0.0, 0.0)  # first sample
    dx, dy = pipe._camera_shift({"yaw_deg": -176.0, "pitch_deg": 2.0})  # +5 deg across the wrap, 2 deg up
    assert dx == pytest.approx(-np.radians(5.0) / (2 * np.tan(np.radians(35.0))))  # scene moves left
    assert dy == pytest.approx(np.radians(2.0) / (2 * np.tan(np.radians(55.4 / 2))))  # and down
    # raw MSG_TELEMETRY fields (0.01 deg) work too: the simulator's runner passes those
    dx, _ = pipe._camera_shift({"yaw_cdeg": -17100, "pitch_cdeg": 200})
    assert dx == pytest.approx(-np.radians(5.0) / (2 * np.tan(np.radians(35.0))))


def test_photo_and_recording_files(tmp_path):
    from opensteady.host.track import MediaOutput

    media = MediaOutput(str(tmp_path / "out"), fps=30)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)  # left half red (RGB)
    path = media.photo(frame, 7)
    saved = cv2.imread(path)
    assert path.endswith("-00007.jpg") and saved.shape == (48, 64, 3)
    assert saved[24, 10, 2] > 200 and saved[24, 10, 0] < 60  # still red after the BGR round trip
    for i in range(12):
        media.record(True, frame, i)
    media.record(False, frame, 12)
    media.close()
    assert len(media.videos) == 1
    cap = cv2.VideoCapture(media.videos[0])
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_feedforward_only_with_telemetry(perception):
    from opensteady.vision.tracker import TargetState

    pipe = make_pipeline(perception)
    moving = TargetState(True, 1, 0.5, 0.5, 0.2, -0.1, "face", None, 0.0, 0.0)
    assert pipe._framing_target(moving).yaw_rate_ff_dps == 0.0  # no telemetry: velocity includes our own turning
    pipe._camera_shift({"yaw_deg": 0.0, "pitch_deg": 0.0})
    ft = pipe._framing_target(moving)
    assert ft.yaw_rate_ff_dps == pytest.approx(np.degrees(0.2 * 2 * np.tan(np.radians(35.0))))
    assert ft.pitch_rate_ff_dps > 0  # moving up the image (vy < 0) is pitching up


def test_hands_on_a_worker_thread_at_a_limited_rate(astronaut_frame):
    pipe = TrackingPipeline(PipelineConfig(hands_async=True, hands_interval_s=0.1))
    try:
        worker = pipe.hands_worker
        assert worker is not None and not pipe.perception.config.hands  # faces in line, hands on the worker
        outs = []
        for i in range(12):  # 0.4 s of frames; wait for the worker each time so the count is exact
            outs.append(pipe.step(astronaut_frame, i * DT))
            assert worker.wait_idle(10.0)
        assert worker.processed == 4  # at t = 0, 0.1, 0.2, 0.3 s
        assert all(o.detections.faces for o in outs[3:]) and all(o.detections.hands == () for o in outs)
        assert outs[-1].target.locked
    finally:
        pipe.close()


def test_click_sets_a_normalised_point_and_keys_map_to_actions():
    from opensteady.host.hud import KEY_ACTIONS, ClickToPoint

    clicks = ClickToPoint()
    clicks.size = (640, 480)
    clicks.on_mouse(cv2.EVENT_MOUSEMOVE, 10, 10)
    assert clicks.take() is None
    clicks.on_mouse(cv2.EVENT_LBUTTONDOWN, 160, 360)
    assert clicks.take() == (0.25, 0.75) and clicks.take() is None
    clicks.on_mouse(cv2.EVENT_LBUTTONDOWN, 700, -5)  # dragged outside the window
    assert clicks.take() == (1.0, 0.0)
    assert KEY_ACTIONS[ord("q")] == "quit" and KEY_ACTIONS[27] == "quit" and KEY_ACTIONS[ord(" ")] == "pause_toggle"


# --- output folder -----------------------------------------------------------------

def test_the_default_output_folder_is_the_desktops_videos_folder_never_relative(tmp_path):
    from opensteady.host.config import default_output_dir, output_dir

    home = str(tmp_path)
    assert default_output_dir({}, "linux", home) == os.path.join(home, "Videos", "OpenSteady")
    assert default_output_dir({}, "darwin", home) == os.path.join(home, "Movies", "OpenSteady")
    assert default_output_dir({}, "win32", home) == os.path.join(home, "Videos", "OpenSteady")
    assert default_output_dir({"XDG_VIDEOS_DIR": "/media/v"}, "linux", home) == os.path.join("/media/v", "OpenSteady")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "user-dirs.dirs").write_text('# written by xdg-user-dirs-update\nXDG_VIDEOS_DIR="$HOME/Filme"\n')
    assert default_output_dir({"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, "linux", home) == os.path.join(
        home, "Filme", "OpenSteady")
    for platform in ("linux", "darwin", "win32"):
        assert default_output_dir({"OPENSTEADY_OUTPUT_DIR": "/data/os"}, platform, home) == "/data/os"
        assert os.path.isabs(default_output_dir({}, platform, home))
    settings = load_config(None)
    assert settings["output"]["dir"] == "" and os.path.isabs(output_dir(settings))
    set_value(settings, "output", "dir", "~/clips", "--output-dir")
    assert output_dir(settings) == os.path.expanduser("~/clips")


@pytest.mark.parametrize("vision, confirm_s", [({"hands": False}, 0.0),
                                               ({"hands": False, "pose": True}, 3.0),
                                               ({"hands": False, "pose": True, "persons": "none"}, 0.0)])
def test_a_pose_only_body_needs_the_person_detectors_confirmation_when_both_run(perception, vision, confirm_s):
    # pose alone can see a figure in a textured background; with a person detector beside it, a
    # body-only track must be confirmed by the detector (or a face) every BODY_CONFIRM_S
    pipe = TrackingPipeline(PipelineConfig(vision=vision, hands_async=False), perception=perception)
    try:
        assert pipe.tracker.config.body_confirm_s == confirm_s
    finally:
        pipe.tracker.close()
