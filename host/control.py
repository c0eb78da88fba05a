"""Remote control of the tracker: validated commands in, a status snapshot out.

The browser panel, the JSON API (host.web) and the VISCA port (host.visca)
all speak to one :class:`Controls`. They run on their own threads; the
tracking loop owns the pipeline. So commands are validated where they arrive
(a bad one raises :class:`ControlError` naming the field) and queued, and the
loop applies them between frames:

    controls = Controls()
    controls.submit("lock", {"x": 0.3, "y": 0.4})       # any thread
    ...
    controls.apply(pipeline, out_before)                 # loop, before pipeline.step
    setpoint = controls.override(out.setpoint, telemetry, dt_s)
    controls.update_status(out, extra)                   # loop, after the step
    controls.status()                                    # any thread

Manual moves (VISCA drive, absolute position, home) replace the tracker's
setpoint while they last; :class:`ManualDrive` is their pure core (``dt`` in,
no clock). A drive is a temporary override: when it stops and tracking was on,
the tracker takes the subject's new place in the picture as the framing
(calibration point) and carries on from there instead of pulling back. An
absolute move or home points the camera and pauses tracking until it is
switched on again. A panel nudge works the same way without moving the
gimbal first: it shifts the framing by an angle.
"""

import math
import threading

from opensteady.host.framing import SetpointCommand

# action -> {field: (kind, low, high)}; kind "num" (finite float), "int", "bool", "mapping", "str"
ACTIONS = {
    "calibration": {"x": ("num", 0.0, 1.0), "y": ("num", 0.0, 1.0)},
    "lock": {"x": ("num", 0.0, 1.0), "y": ("num", 0.0, 1.0)},
    "release": {},
    "pause": {},
    "resume": {},
    "tracking": {"on": ("bool",)},
    "recentre": {},
    "nudge": {"yaw_deg": ("num", -90.0, 90.0), "pitch_deg": ("num", -90.0, 90.0)},
    "gestures": {"enabled": ("bool",), "mapping": ("mapping",)},
    "drive": {"yaw_rate_dps": ("num", -360.0, 360.0), "pitch_rate_dps": ("num", -360.0, 360.0)},
    "position": {"yaw_deg": ("num", -180.0, 180.0), "pitch_deg": ("num", -90.0, 90.0),
                 "speed_dps": ("num", 0.1, 360.0)},
    "home": {"speed_dps": ("num", 0.1, 360.0)},
    "stop": {},
    "power": {"on": ("bool",)},
    "light": {"level": ("int", 0, 3)},  # the fill light: 0 off, 1..3
}
OPTIONAL = {("gestures", "enabled"), ("gestures", "mapping"), ("position", "speed_dps"), ("home", "speed_dps")}
DEFAULT_MOVE_SPEED_DPS = 60.0


class ControlError(ValueError):
    """A command that cannot be carried out; ``field`` names the culprit."""

    def __init__(self, field, message):
        super().__init__("%s: %s" % (field, message))
        self.field = field
        self.message = message


def validate(action, params):
    """Check ``params`` for ``action``; returns a clean dict or raises ControlError."""
    if not isinstance(action, str) or action not in ACTIONS:
        raise ControlError("action", "unknown action %r; expected one of %s" % (action, ", ".join(ACTIONS)))
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ControlError("body", "expected a JSON object, got %s" % type(params).__name__)
    spec = ACTIONS[action]
    extra = sorted(set(params) - set(spec))
    if extra:
        raise ControlError(extra[0], "not a field of %r (fields: %s)" % (action, ", ".join(spec) or "none"))
    clean = {}
    for name, rule in spec.items():
        if name not in params:
            if (action, name) in OPTIONAL:
                continue
            raise ControlError(name, "missing (required by %r)" % action)
        value = params[name]
        if rule[0] == "num":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ControlError(name, "expected a number, got %r" % (value,))
            if not rule[1] <= value <= rule[2]:
                raise ControlError(name, "%r is out of range %g..%g" % (value, rule[1], rule[2]))
            clean[name] = float(value)
        elif rule[0] == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ControlError(name, "expected a whole number, got %r" % (value,))
            if not rule[1] <= value <= rule[2]:
                raise ControlError(name, "%r is out of range %d..%d" % (value, rule[1], rule[2]))
            clean[name] = value
        elif rule[0] == "bool":
            if not isinstance(value, bool):
                raise ControlError(name, "expected true or false, got %r" % (value,))
            clean[name] = value
        elif rule[0] == "mapping":
            clean[name] = _validate_mapping(name, value)
    if action == "gestures" and not clean:
        raise ControlError("enabled", "give enabled and/or mapping")
    return clean


def _validate_mapping(name, value):
    from opensteady.host.pipeline import ACTIONS as PIPELINE_ACTIONS
    from opensteady.vision.gestures import GESTURES

    if not isinstance(value, dict):
        raise ControlError(name, "expected an object {gesture: action}, got %r" % (value,))
    for gesture, act in value.items():
        if gesture not in GESTURES:
            raise ControlError("%s.%s" % (name, gesture), "unknown gesture; expected one of %s" % ", ".join(GESTURES))
        if act not in PIPELINE_ACTIONS:
            raise ControlError("%s.%s" % (name, gesture),
                               "unknown action %r; expected one of %s" % (act, ", ".join(PIPELINE_ACTIONS)))
    return dict(value)


def nudge_point(point, yaw_deg, pitch_deg, hfov_deg, vfov_deg):
    """The calibration point after turning the camera by (yaw_deg, pitch_deg): the subject stays where it lands.

    Turning right (+yaw) moves the subject left in the picture; tilting up
    (+pitch) moves it down. Pinhole model; the result is kept inside the frame.
    """
    def shift(p, angle_deg, fov_deg):
        f = 0.5 / math.tan(math.radians(fov_deg) / 2.0)  # focal length in picture widths
        ray = math.atan((p - 0.5) / f)
        return min(1.0, max(0.0, 0.5 + f * math.tan(ray - math.radians(angle_deg))))

    return (shift(point[0], yaw_deg, hfov_deg), shift(point[1], -pitch_deg, vfov_deg))


class ManualDrive:
    """Manual gimbal moves as setpoints: a rate drive, or a ramp to an absolute angle. Pure: dt in."""

    def __init__(self):
        self.mode = None  # None, "drive", "position"
        self.yaw_rate_dps = self.pitch_rate_dps = 0.0
        self.target = None  # (yaw_deg, pitch_deg)
        self.speed_dps = DEFAULT_MOVE_SPEED_DPS
        self._cmd = None  # the angle commanded so far, ramping towards target

    @property
    def active(self):
        return self.mode is not None

    def drive(self, yaw_rate_dps, pitch_rate_dps):
        self.mode = "drive"
        self.yaw_rate_dps, self.pitch_rate_dps = yaw_rate_dps, pitch_rate_dps

    def position(self, yaw_deg, pitch_deg, speed_dps, attitude):
        """Move to (yaw_deg, pitch_deg) at ``speed_dps``, starting from ``attitude`` (or straight there without one)."""
        self.mode = "position"
        self.target = (yaw_deg, pitch_deg)
        self.speed_dps = speed_dps
        self._cmd = tuple(attitude) if attitude is not None else self.target

    def stop(self):
        self.mode = None
        self._cmd = None

    def setpoint(self, dt_s, roll_deg=0.0):
        """This tick's SetpointCommand, or None when no manual move is active."""
        if self.mode == "drive":
            return SetpointCommand(yaw_rate_dps=self.yaw_rate_dps, pitch_rate_dps=self.pitch_rate_dps,
                                   roll_deg=roll_deg, state="manual")
        if self.mode == "position":
            step = self.speed_dps * max(0.0, dt_s)
            self._cmd = tuple(c + max(-step, min(step, t - c)) for c, t in zip(self._cmd, self.target))
            return SetpointCommand(yaw_deg=self._cmd[0], pitch_deg=self._cmd[1], roll_deg=roll_deg, state="manual")
        return None


class Controls:
    """The queue between the remote controls and the tracking loop, and the status they read back."""

    def __init__(self, hfov_deg=70.0, vfov_deg=55.4):
        self.hfov_deg, self.vfov_deg = hfov_deg, vfov_deg
        self.manual = ManualDrive()
        self.power = True
        self._lock = threading.Lock()
        self._queue = []
        self._status = {"frame": None}
        self._gestures_enabled = True
        self._gesture_mapping = None  # the pipeline's mapping, kept while gestures are off
        self._resume_after_drive = False
        self._last_target = None
        self._changed = threading.Condition(self._lock)
        self._applied = 0
        self._submitted = 0

    # --- any thread -------------------------------------------------------------
    def submit(self, action, params=None):
        """Validate and queue a command; returns its sequence number. Raises ControlError."""
        clean = validate(action, params)
        with self._lock:
            if action == "power":
                self.power = clean["on"]
            self._queue.append((action, clean))
            self._submitted += 1
            return self._submitted

    def wait_applied(self, seq, timeout_s=5.0):
        """Block until the loop has applied command ``seq`` (tests, the API's ?wait=1)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._applied >= seq, timeout_s)

    def status(self):
        with self._lock:
            return dict(self._status)

    @property
    def attitude(self):
        """(pan_deg, tilt_deg) from the newest telemetry, or None.

        The frames of an absolute move (SetpointCommand.yaw_deg/pitch_deg): pan is
        the yaw joint's angle from the handle (a PTZ camera's pan from its base),
        tilt the earth-level pitch.
        """
        with self._lock:
            att = self._status.get("attitude")
        if att is None:
            return None
        pan = att["yaw_deg"] if att.get("pan_deg") is None else att["pan_deg"]
        return (pan, att["pitch_deg"])

    # --- the tracking loop ------------------------------------------------------
    def apply(self, pipeline):
        """Carry out the queued commands on ``pipeline``; returns a message per command."""
        with self._lock:
            queue, self._queue = self._queue, []
        messages = [self._apply_one(pipeline, action, params) for action, params in queue]
        with self._changed:
            self._applied += len(queue)
            self._changed.notify_all()
        return messages

    def _apply_one(self, pipeline, action, p):
        framing = pipeline.framing
        if action == "calibration":
            pipeline.set_calibration_point(p["x"], p["y"])
            return "calibration point (%.2f, %.2f)" % (p["x"], p["y"])
        if action == "lock":
            found = pipeline.tracker.lock_on(point=(p["x"], p["y"]))
            return "locked on the person nearest (%.2f, %.2f)" % (p["x"], p["y"]) if found else "no person to lock on"
        if action == "release":
            pipeline.tracker.release()
            return "released the target"
        if action in ("pause", "resume", "tracking"):
            on = action == "resume" or (action == "tracking" and p["on"])
            self.manual.stop()
            self._resume_after_drive = False
            framing.resume() if on else framing.pause()
            return "tracking on" if on else "tracking paused"
        if action == "recentre":
            self.manual.stop()
            framing.recentre()
            return "recentre"
        if action == "nudge":
            pipeline.set_calibration_point(*nudge_point(pipeline.calibration_point, p["yaw_deg"], p["pitch_deg"],
                                                        self.hfov_deg, self.vfov_deg))
            return "framing nudged by yaw %+.1f, pitch %+.1f deg" % (p["yaw_deg"], p["pitch_deg"])
        if action == "gestures":
            return self._gestures(pipeline, p)
        if action == "drive":
            if p["yaw_rate_dps"] == 0 and p["pitch_rate_dps"] == 0:
                return self._stop(pipeline)
            if not self.manual.active:
                self._resume_after_drive = not framing.paused
            framing.pause()
            self.manual.drive(p["yaw_rate_dps"], p["pitch_rate_dps"])
            return "manual drive"
        if action in ("position", "home"):
            yaw, pitch = (p["yaw_deg"], p["pitch_deg"]) if action == "position" else (0.0, 0.0)
            framing.pause()
            self._resume_after_drive = False
            self.manual.position(yaw, pitch, p.get("speed_dps", DEFAULT_MOVE_SPEED_DPS), self.attitude)
            return "moving to yaw %+.1f, pitch %+.1f deg; tracking paused" % (yaw, pitch)
        if action == "stop":
            return self._stop(pipeline)
        if action == "light":
            pipeline.set_light(p["level"])
            return "fill light %s" % ("off" if p["level"] == 0 else "level %d" % p["level"])
        if action == "power":
            if not p["on"]:
                self.manual.stop()
                framing.pause()
            return "power %s" % ("on" if p["on"] else "standby (tracking paused)")
        raise AssertionError(action)

    def _stop(self, pipeline):
        was_drive = self.manual.mode == "drive"
        if self.manual.mode == "position":
            return "holding the position"  # an absolute move is not stopped half-way by a drive stop
        self.manual.stop()
        if was_drive and self._resume_after_drive:
            self._resume_after_drive = False
            target = self._last_target
            if target is not None and target.locked and target.source in ("face", "body"):
                pipeline.set_calibration_point(min(1.0, max(0.0, target.x)), min(1.0, max(0.0, target.y)))
            pipeline.framing.resume()
            return "drive stopped; tracking holds the new framing"
        return "stopped"

    def _gestures(self, pipeline, p):
        cfg = pipeline.config
        if self._gesture_mapping is None:
            self._gesture_mapping = dict(cfg.gesture_actions)
        if "mapping" in p:
            self._gesture_mapping.update(p["mapping"])
        if "enabled" in p:
            self._gestures_enabled = p["enabled"]
        cfg.gesture_actions = dict(self._gesture_mapping) if self._gestures_enabled else {}
        return "gestures %s" % ("on" if self._gestures_enabled else "off")

    def override(self, setpoint, dt_s):
        """The setpoint to send: a manual move's while one is active, else the tracker's."""
        manual = self.manual.setpoint(dt_s, roll_deg=setpoint.roll_deg)
        return setpoint if manual is None else manual

    def update_status(self, out, pipeline=None, telemetry=None, **extra):
        """Publish a snapshot of this frame for status() readers (panel, API, VISCA inquiries); the attitude
        is ``telemetry`` (the gimbal's newest) when given, else the one the frame was processed with."""
        t = out.target
        self._last_target = t
        from opensteady.host.pipeline import attitude_deg

        telemetry = out.telemetry if telemetry is None else telemetry
        att = attitude_deg(telemetry)
        roll = (telemetry or {}).get("roll_deg")
        pan = (telemetry or {}).get("yaw_joint_deg")
        mapping = self._gesture_mapping if self._gesture_mapping is not None else (
            dict(pipeline.config.gesture_actions) if pipeline is not None else {})
        status = {
            "t_s": out.t_s,
            "mode": "manual" if self.manual.active else ("paused" if out.paused else out.setpoint.state),
            "power": self.power,
            "attitude": None if att is None else {"yaw_deg": att[0], "pitch_deg": att[1], "roll_deg": roll,
                                                  "pan_deg": pan},
            "target": {"locked": t.locked, "track_id": t.track_id, "x": t.x, "y": t.y, "source": t.source},
            "faces": [{"x": f.box.x, "y": f.box.y, "w": f.box.w, "h": f.box.h} for f in out.detections.faces],
            "calibration_point": list(out.calibration_point),
            "gestures": {"enabled": self._gestures_enabled, "mapping": mapping},
            "recording": out.recording,
            "light": getattr(pipeline, "light_level", None),
            "pipeline_ms": out.latency_ms.get("total"),
        }
        status.update(extra)
        with self._lock:
            self._status = status
