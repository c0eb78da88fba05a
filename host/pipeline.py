"""One tracking step per frame: vision -> target -> gestures -> framing -> setpoint.

:class:`TrackingPipeline` is the per-frame step of the one host loop
(host/loop.py), which ``opensteady track`` and ``opensteady sim`` both run. It does no I/O and never reads the wall clock
for a decision: time comes in as ``t_s`` (camera or simulated time). The
wall clock is read only to *measure* per-stage latency.

    pipe = TrackingPipeline(PipelineConfig())
    out = pipe.step(frame_rgb, t_s)
    driver.send(out.setpoint)
    for ev in out.events: ...              # ("action", "photo"), ...

Gestures come from the hands vision finds, debounced by
``vision.gestures.GestureDebouncer``; ``inject_gesture()`` feeds one in
directly (the simulator has no photos of hands). Photo countdown and record
toggling are emitted as events; saving files is the application's job.
"""

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Optional

from opensteady.host.calibration import CameraMapping
from opensteady.host.framing import FramingConfig, FramingController, FramingTarget, SetpointCommand

# Actions a gesture can trigger.
ACTION_PAUSE_TOGGLE = "pause_toggle"
ACTION_PHOTO = "photo"  # start the countdown; a "photo_now" event follows
ACTION_RECORD_TOGGLE = "record_toggle"
ACTION_RECENTRE = "recentre"
ACTION_LOCK_ON = "lock_on"  # lock onto the person who made the gesture
ACTION_LIGHT_CYCLE = "light_cycle"  # the fill light: off -> 1 -> 2 -> 3 -> off (no gesture does it by default)
ACTION_NONE = "none"
ACTIONS = (ACTION_PAUSE_TOGGLE, ACTION_PHOTO, ACTION_RECORD_TOGGLE, ACTION_RECENTRE, ACTION_LOCK_ON, ACTION_LIGHT_CYCLE,
           ACTION_NONE)
LIGHT_LEVELS = 3  # the fill light: 0 off, 1..3 (firmware/light.py)

# With pose and a person detector, a body-only track must be confirmed by the detector (which runs
# every person_interval_s, 0.25 s) or a face at least this often (TrackerConfig.body_confirm_s).
BODY_CONFIRM_S = 3.0

DEFAULT_GESTURE_ACTIONS = {
    "open_palm": ACTION_PAUSE_TOGGLE,
    "victory": ACTION_PHOTO,
    "fist": ACTION_RECORD_TOGGLE,
    "pointing": ACTION_RECENTRE,
    "thumbs_up": ACTION_LOCK_ON,
}


@dataclass
class PipelineConfig:
    """Everything a TrackingPipeline needs; the TOML file maps onto this."""

    framing: FramingConfig = field(default_factory=FramingConfig)
    calibration_point: tuple = (0.5, 0.5)
    camera_mapping: CameraMapping = field(default_factory=CameraMapping)
    gesture_actions: dict = field(default_factory=lambda: dict(DEFAULT_GESTURE_ACTIONS))
    gesture_hold_ms: float = 1000.0
    photo_countdown_s: float = 3.0
    nominal_dt_s: float = 1 / 30  # used for the first frame only
    vision: dict = field(default_factory=dict)  # keyword arguments for vision.pipeline.VisionConfig
    tracker: dict = field(default_factory=dict)  # keyword arguments for vision.tracker.TrackerConfig
    # Run hand detection on a worker thread, off the frame -> setpoint path. Gestures
    # then use the newest finished hand result (at most hands_max_age_s old). Not
    # deterministic in time, so the simulator turns it off (hands in line).
    hands_async: bool = True
    hands_max_age_s: float = 0.3
    # With hands_async, start hand detection at most this often: gestures are held
    # for a second, so 10 Hz is plenty, and the core stays free for faces.
    hands_interval_s: float = 0.1
    # The fill light's level at start (0 off, 1..LIGHT_LEVELS); the host loop sends the pipeline's
    # light_level to the gimbal whenever it changes (a gesture, the panel, the API).
    light_level: int = 0

    def validate(self):
        self.framing.validate()
        self.camera_mapping.validate()
        x, y = self.calibration_point
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError("calibration_point = %r: must lie inside the frame (0..1)" % (self.calibration_point,))
        for gesture, action in self.gesture_actions.items():
            if action not in ACTIONS:
                raise ValueError("gestures.%s = %r: unknown action, expected one of %s"
                                 % (gesture, action, ", ".join(ACTIONS)))
        if self.gesture_hold_ms < 0:
            raise ValueError("gesture_hold_ms = %r: must not be negative" % self.gesture_hold_ms)
        if self.photo_countdown_s < 0:
            raise ValueError("photo_countdown_s = %r: must not be negative" % self.photo_countdown_s)
        check_light_level(self.light_level, "light_level")
        return self


def check_light_level(level, name="level"):
    """``level`` as an int 0..LIGHT_LEVELS, or ValueError naming ``name``."""
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= LIGHT_LEVELS:
        raise ValueError("%s = %r: the fill light has levels 0 (off) to %d" % (name, level, LIGHT_LEVELS))
    return level


@dataclass(frozen=True)
class PipelineEvent:
    t_s: float
    kind: str  # "gesture", "action", "photo_now", "target_locked", "target_lost"
    detail: str = ""


@dataclass
class PipelineOutput:
    t_s: float
    detections: object
    target: object  # vision.tracker.TargetState
    setpoint: SetpointCommand
    events: list
    gesture: Optional[str]  # the debounced gesture that fired this frame, if any
    paused: bool
    recording: bool
    photo_countdown_s: Optional[float]  # seconds left, None when no countdown runs
    calibration_point: tuple
    telemetry: Optional[dict]
    latency_ms: dict  # per stage: vision, tracker, gestures, framing, total


def attitude_deg(telemetry):
    """(yaw_deg, pitch_deg) of the camera from a telemetry dict, or None.

    Accepts the drivers' dict (``yaw_deg``, ``pitch_deg``) and raw OpenSteady
    MSG_TELEMETRY fields (``yaw_cdeg``, ``pitch_cdeg``).
    """
    if not telemetry:
        return None
    if telemetry.get("yaw_deg") is not None and telemetry.get("pitch_deg") is not None:
        return (float(telemetry["yaw_deg"]), float(telemetry["pitch_deg"]))
    if telemetry.get("yaw_cdeg") is not None and telemetry.get("pitch_cdeg") is not None:
        return (telemetry["yaw_cdeg"] / 100.0, telemetry["pitch_cdeg"] / 100.0)
    return None


def gimbal_following(telemetry):
    """False when the gimbal says it is in a mode that ignores setpoints (the OpenSteady
    firmware while it boots and calibrates, or in lock); True otherwise, also when the
    protocol reports no mode at all."""
    mode = telemetry.get("mode") if telemetry else None
    return mode is None or mode == "track"


class AsyncHands:
    """Hand detection on a worker thread: ``submit`` a frame when idle, ``take`` the newest result."""

    def __init__(self, perception):
        from opensteady.vision.workers import LatestWorker

        self.perception = perception
        self._worker = LatestWorker(lambda job: perception.process(*job), name="hands")

    @property
    def processed(self):
        return self._worker.processed

    def submit(self, frame_rgb, t_s):
        """Queue this frame unless the worker is busy; returns True when queued."""
        return self._worker.submit((frame_rgb, t_s))

    def wait_idle(self, timeout_s=5.0):
        """Block until the queued frame (if any) has been processed; True if idle in time."""
        return self._worker.wait_idle(timeout_s)

    def take(self):
        return self._worker.take()

    def close(self):
        self._worker.close()
        self.perception.close()


class TrackingPipeline:
    """Per-frame glue between vision, gestures and the framing controller.

    ``perception``, ``tracker`` and ``framing`` may be injected (tests, the
    simulator); by default they are built from ``config``.
    """

    def __init__(self, config=None, perception=None, tracker=None, framing=None):
        self.config = (config or PipelineConfig()).validate()
        self.calibration_point = tuple(self.config.calibration_point)
        self.hands_worker = None
        self._hands = None  # newest Detections from the hands worker
        self._hands_submitted_s = None
        if perception is None:
            from opensteady.vision.pipeline import Perception, VisionConfig

            vision = dict(self.config.vision)
            if self.config.hands_async and vision.get("hands", True):
                self.hands_worker = AsyncHands(Perception(VisionConfig(**dict(vision, faces=False, pose=False))))
                vision["hands"] = False
            perception = Perception(VisionConfig(**vision))
        if tracker is None:
            from opensteady.vision.pipeline import VisionConfig
            from opensteady.vision.tracker import TargetTracker, TrackerConfig

            tracker_kw = dict(self.config.tracker)
            vision_cfg = VisionConfig(**self.config.vision)
            if vision_cfg.pose and vision_cfg.persons != "none":
                # With both, a figure only the pose model sees (it can find one in a textured
                # background) must be confirmed by the person detector or a face now and then.
                tracker_kw.setdefault("body_confirm_s", BODY_CONFIRM_S)
            tracker = TargetTracker(TrackerConfig(calibration_point=self.calibration_point, **tracker_kw))
        from opensteady.vision.gestures import GestureDebouncer

        self.debouncer = GestureDebouncer(self.config.gesture_hold_ms)
        self.perception = perception
        self.tracker = tracker
        self.framing = framing or FramingController(self.config.framing)
        self.recording = False
        self.light_level = self.config.light_level  # the fill light level asked for; host.loop sends it
        self._injected = []
        self._requested = []
        self._last_t_s = None
        self._photo_at_s = None
        self._was_locked = False
        self._last_attitude = None  # (yaw_deg, pitch_deg) from the previous frame's telemetry

    # --- inputs besides frames ------------------------------------------------
    def inject_gesture(self, gesture):
        """Act on ``gesture`` at the next step as if it had been held long enough."""
        self._injected.append(gesture)

    def request_action(self, action):
        """Run ``action`` (one of ACTIONS) at the next step, as a key press or a button would."""
        if action not in ACTIONS:
            raise ValueError("unknown action %r, expected one of %s" % (action, ", ".join(ACTIONS)))
        self._requested.append(action)

    def set_light(self, level):
        """Ask for fill light ``level`` (0 off, 1..3); the host loop sends it to the gimbal."""
        self.light_level = check_light_level(level)

    def set_calibration_point(self, x, y):
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError("calibration point (%r, %r) must lie inside the frame (0..1)" % (x, y))
        self.calibration_point = (float(x), float(y))

    def close(self):
        if self.hands_worker is not None:
            self.hands_worker.close()
        close_tracker = getattr(self.tracker, "close", None)
        if close_tracker is not None:
            close_tracker()
        close = getattr(self.perception, "close", None)
        if close is not None:
            close()

    @property
    def paused(self):
        return self.framing.paused

    # --- the step -----------------------------------------------------------------
    def step(self, frame_rgb, t_s, telemetry=None):
        """Process one frame taken at ``t_s`` seconds; returns a PipelineOutput.

        ``telemetry``: the gimbal's latest telemetry (see :func:`attitude_deg`), or
        None. With it, the tracker discounts the camera's own turning and the
        subject's rate is fed forward.
        """
        cfg = self.config
        dt_s = cfg.nominal_dt_s if self._last_t_s is None else t_s - self._last_t_s
        if dt_s <= 0:
            raise ValueError("frame time went backwards or repeated: t_s=%r after %r" % (t_s, self._last_t_s))
        self._last_t_s = t_s
        events = []
        clock = time.perf_counter  # measurement only

        t0 = clock()
        detections = self.perception.process(frame_rgb, t_s)
        if self.hands_worker is not None:
            detections = self._merge_hands(detections, frame_rgb, t_s)
        t1 = clock()
        target = self.tracker.update(detections, t_s, camera_shift=self._camera_shift(telemetry), frame_rgb=frame_rgb)
        t2 = clock()
        fired = self._gestures(detections, t_s, events)
        if target.locked != self._was_locked:
            events.append(PipelineEvent(t_s, "target_locked" if target.locked else "target_lost",
                                        str(getattr(target, "track_id", ""))))
            self._was_locked = target.locked
        if self._photo_at_s is not None and t_s >= self._photo_at_s:
            events.append(PipelineEvent(t_s, "photo_now"))
            self._photo_at_s = None
        t3 = clock()
        if gimbal_following(telemetry):
            setpoint = self.framing.update(self._framing_target(target, telemetry), dt_s)
        else:
            setpoint = self.framing.hold(dt_s)
        t4 = clock()
        return PipelineOutput(
            t_s=t_s,
            detections=detections,
            target=target,
            setpoint=setpoint,
            events=events,
            gesture=fired,
            paused=self.framing.paused,
            recording=self.recording,
            photo_countdown_s=None if self._photo_at_s is None else self._photo_at_s - t_s,
            calibration_point=self.calibration_point,
            telemetry=telemetry,
            latency_ms={
                "vision": (t1 - t0) * 1e3,
                "tracker": (t2 - t1) * 1e3,
                "gestures": (t3 - t2) * 1e3,
                "framing": (t4 - t3) * 1e3,
                "total": (t4 - t0) * 1e3,
            },
        )

    def _camera_shift(self, telemetry):
        """Image motion of a still subject caused by the gimbal turning since the last frame.

        From telemetry's earth-frame yaw and pitch: yawing right moves the scene
        left (-x), pitching up moves it down (+y). (0, 0) without telemetry.
        """
        attitude = attitude_deg(telemetry)
        if attitude is None:
            self._last_attitude = None
            return (0.0, 0.0)
        last, self._last_attitude = self._last_attitude, attitude
        if last is None:
            return (0.0, 0.0)
        dyaw = (attitude[0] - last[0] + 180.0) % 360.0 - 180.0
        dpitch = attitude[1] - last[1]
        f = self.config.framing
        dx = -math.radians(dyaw) / (2.0 * math.tan(math.radians(f.hfov_deg) / 2.0))
        dy = math.radians(dpitch) / (2.0 * math.tan(math.radians(f.vfov_deg) / 2.0))
        return (dx, dy)

    def _merge_hands(self, detections, frame_rgb, t_s):
        if self._hands_submitted_s is None or t_s - self._hands_submitted_s >= self.config.hands_interval_s:
            if self.hands_worker.submit(frame_rgb, t_s):
                self._hands_submitted_s = t_s
        result = self.hands_worker.take()
        if result is not None:
            self._hands = result
        if self._hands is None or t_s - self._hands.t_s > self.config.hands_max_age_s:
            return detections
        return replace(detections, hands=self._hands.hands)

    def _framing_target(self, target, telemetry=None):
        cal_x, cal_y = self.calibration_point
        # Only a sighting this frame drives the gimbal. A 'predicted' position is
        # extrapolated in image coordinates as if the camera stood still, so
        # steering on it while the camera turns would chase a stale point.
        if not target.locked or target.source not in ("face", "body"):
            return FramingTarget(locked=False, cal_x=cal_x, cal_y=cal_y)
        m = self.config.camera_mapping
        x, y = m.apply(target.x, target.y)
        yaw_ff = pitch_ff = 0.0
        if self._last_attitude is not None:
            # With telemetry the tracker removed camera motion, so its velocity is the
            # subject's own; without it the velocity mixes in our own turning: no feed-forward.
            f = self.config.framing
            yaw_ff = math.degrees(target.vx * m.scale_x * 2.0 * math.tan(math.radians(f.hfov_deg) / 2.0))
            pitch_ff = -math.degrees(target.vy * m.scale_y * 2.0 * math.tan(math.radians(f.vfov_deg) / 2.0))
        # The camera's attitude when the frame was taken lets the framing controller estimate the
        # subject's rate from its bearing, which the camera's own motion does not enter.
        attitude = attitude_deg(telemetry) if self._last_attitude is not None else None
        return FramingTarget(locked=True, x=x, y=y, cal_x=cal_x, cal_y=cal_y,
                             yaw_rate_ff_dps=yaw_ff, pitch_rate_ff_dps=pitch_ff,
                             camera_yaw_deg=attitude[0] if attitude else None,
                             camera_pitch_deg=attitude[1] if attitude else None,
                             camera_attitude_span_s=telemetry.get("attitude_span_s") if attitude else None,
                             subject_id=getattr(target, "track_id", None))

    def _gestures(self, detections, t_s, events):
        """Classify and debounce hand gestures, run their actions; returns the gesture that fired."""
        seen = None
        maker = None
        for hand in detections.hands:
            name = hand.gesture  # classified by vision from the 21 landmarks
            if name and name != "unknown":
                seen, maker = name, hand
                break
        fired = self.debouncer.update(seen, t_s)
        if self._injected:
            fired, maker = self._injected.pop(0), None
        if fired:
            events.append(PipelineEvent(t_s, "gesture", fired))
            action = self.config.gesture_actions.get(fired, ACTION_NONE)
            if action != ACTION_NONE:
                self._act(action, maker, detections, t_s, events)
        while self._requested:
            self._act(self._requested.pop(0), None, detections, t_s, events)
        return fired

    def _act(self, action, hand, detections, t_s, events):
        if action == ACTION_NONE:
            return
        if action == ACTION_PAUSE_TOGGLE:
            if self.framing.paused:
                self.framing.resume()
                detail = "resume"
            else:
                self.framing.pause()
                detail = "pause"
        elif action == ACTION_PHOTO:
            self._photo_at_s = t_s + self.config.photo_countdown_s
            detail = "photo_countdown"
        elif action == ACTION_RECORD_TOGGLE:
            self.recording = not self.recording
            detail = "record_start" if self.recording else "record_stop"
        elif action == ACTION_RECENTRE:
            self.framing.recentre()
            detail = "recentre"
        elif action == ACTION_LIGHT_CYCLE:
            self.light_level = (self.light_level + 1) % (LIGHT_LEVELS + 1)
            detail = "light_%d" % self.light_level
        else:  # ACTION_LOCK_ON: the person whose hand made it, or (injected) the face nearest the calibration point
            found = self.tracker.lock_on(hand=hand) if hand is not None else self.tracker.lock_on(point=self.calibration_point)
            detail = "lock_on" if found else "lock_on_no_person"
        events.append(PipelineEvent(t_s, "action", detail))


class PipelineLoader:
    """``TrackingPipeline(config)`` built on a thread, so start-up work can go on beside it.

    MediaPipe's import and graph building are most of ``opensteady track``'s
    start-up (docs/benchmarks.md); meanwhile the board handshakes, the gimbal
    is held and the camera opens. The thread is not a daemon: the process
    never exits with MediaPipe half built.

        loader = PipelineLoader(config)
        ...                                  # open the gimbal, the camera
        while not loader.wait(0.05): ...     # hold the gimbal
        pipeline = loader.result()           # raises what the build raised
    """

    def __init__(self, config, build=None, start=True):
        self.config = config
        self._build = build or TrackingPipeline
        self._done = threading.Event()
        self._pipeline = None
        self._error = None
        self.seconds = None  # how long the build took
        self._thread = threading.Thread(target=self._run, args=(config,), name="load-models")
        if start:
            self.start()

    def start(self):
        """Start building (once)."""
        if not self._thread.is_alive() and not self._done.is_set():
            self._thread.start()

    def _run(self, config):
        t0 = time.perf_counter()
        try:
            self._pipeline = self._build(config)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - t0
            self._done.set()

    def wait(self, timeout_s):
        """True once the build has finished (or failed)."""
        return self._done.wait(timeout_s)

    def result(self):
        """The pipeline (waits for it); raises the build's exception if it failed."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._pipeline

    def discard(self):
        """Not needed after all (start-up failed): wait for the build and close what it built."""
        if not self._thread.is_alive() and not self._done.is_set():
            return  # never started
        self._done.wait()
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
