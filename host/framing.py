"""Framing controller: keep the subject at the calibration point.

Pure core: ``update(target, dt_s)`` takes the subject's normalised position
and the elapsed time and returns a :class:`SetpointCommand`. It never reads a
clock and does no I/O, so the simulator and the tests drive it with simulated
time.

The chain, per axis::

    normalised offset -> angle error through the pinhole model (FOV)
      -> low-pass smoothing -> deadband (stop and clear the integral when on
      target and not following) -> simple-pid (rate out) + the subject's own rate
      (feed-forward) -> rate limit -> acceleration limit -> yaw/pitch rate setpoints

The subject's own rate, when the camera's attitude at the frame's capture is
known (``FramingTarget.camera_yaw_deg``/``camera_pitch_deg``, from
time-aligned gimbal telemetry), comes from :class:`BearingEstimator`: a
constant-velocity Kalman filter on the subject's earth-frame bearing (camera
attitude + the subject's angle in the picture), which the camera's own
motion does not enter. Otherwise it is the tracker's image velocity with the
camera's turning removed (``*_rate_ff_dps``), low-passed.

Sign conventions (the same as the wire protocol's setpoints):
positive yaw turns the camera towards image +x (right), positive pitch tilts
it towards image -y (up). Image coordinates are normalised, origin top-left.

Usage::

    ctl = FramingController(FramingConfig(hfov_deg=70.0))
    cmd = ctl.update(FramingTarget(locked=True, x=0.62, y=0.45), dt_s=1 / 30)
    flags, yaw, pitch, roll = cmd.to_protocol()
"""

import math
from dataclasses import dataclass
from typing import Optional

from simple_pid import PID

from opensteady.firmware import protocol

LOST_ACTIONS = ("hold", "recentre", "sweep")
_HOLD_BELOW_DPS = 0.1  # a coasting rate decayed below this is a hold

# Controller states reported in SetpointCommand.state
STATE_IDLE = "idle"  # no target has been locked yet
STATE_TRACKING = "tracking"
STATE_DEADBAND = "deadband"  # on target, stopped
STATE_COAST = "coast"  # target lost a moment ago: following its predicted motion
STATE_LOST_HOLD = "lost_hold"
STATE_RECENTRE = "recentre"
STATE_SWEEP = "sweep"
STATE_PAUSED = "paused"
STATE_STALLED = "stalled"  # the frame interval was too long to trust
STATE_WAITING = "waiting"  # the gimbal reports a mode that ignores setpoints (booting, calibrating, lock)


@dataclass
class FramingConfig:
    """Framing controller settings; defaults suit a 70 deg webcam at 30 fps."""

    hfov_deg: float = 70.0  # horizontal field of view of the camera the calibration point refers to
    vfov_deg: float = 55.4  # vertical field of view (70 deg at 4:3 gives 55.4 deg)
    # Tuned in the simulator (opensteady track --sim, 30 fps, 30 ms latency) and on a
    # model with 70-130 ms of delay: a 20 deg step overshoots by 5-10 deg. With the
    # feed-forward carrying a moving subject's rate, the PID only removes what the rate
    # estimate misses. kp 6 / ki 2 track a crossing a little tighter, but together with
    # the feed-forward they ring (+-5 deg at 1.6 Hz) after a 14 deg step (gesture-pause).
    kp: float = 4.0  # (deg/s) per deg of error
    ki: float = 1.0  # (deg/s) per deg*s: learns what the feed-forward misses of a moving subject's rate
    kd: float = 0.05
    deadband_deg: float = 1.0  # errors smaller than this command no motion (once settled)
    settle_rate_dps: float = 3.0  # inside the deadband, stop only if the learnt follow rate is below this
    max_rate_dps: float = 120.0
    max_accel_dps2: float = 1200.0  # the bearing estimator's starts and stops need it (600 with it off)
    smoothing_s: float = 0.05  # time constant of the error low-pass; 0 disables it
    # Gain on the subject's own angular rate (FramingTarget.*_rate_ff_dps); 0 disables. The rate is
    # the earth-frame one (image velocity with the camera's own turning removed), so 1.0 follows it
    # exactly and leaves the PID only what the estimate misses. The low-pass keeps frame-to-frame
    # noise in the estimate (detection jitter, telemetry a little older than the frame) from closing
    # a fast loop through the camera's own motion: unfiltered, 0.8 already oscillated in the
    # simulator's track-crossing; filtered over 50 ms, 1.0 is stable there and in the other scenarios.
    feedforward: float = 1.0
    feedforward_smoothing_s: float = 0.05  # time constant of the feed-forward low-pass; 0 disables it
    # The subject-motion estimator (BearingEstimator), used when the camera's attitude at each
    # frame's capture is known. Process noise: the spectral density of the subject's angular
    # acceleration, (deg/s^2)^2 per Hz; larger follows starts and stops sooner, smaller is
    # smoother; 0 turns the estimator off (the tracker's low-passed rate is fed forward).
    # It needs the attitude lined up with the frame to within a few ms (host.attitude_history):
    # 10 ms off, the camera's own ringing (+-40 deg/s at 4-5 Hz on an open-loop motor) reads as
    # subject motion and is fed back (docs/benchmarks.md, "Following a fast crossing").
    # Measurement noise: how far one frame's bearing may be off (detection jitter, the hand's
    # translation, telemetry interpolation).
    motion_noise: float = 10000.0
    bearing_noise_deg: float = 0.3
    # How fast the camera's own rate may change between telemetry samples (an open-loop gimbal rings
    # at 4-5 Hz with +-40 deg/s: about 1100 deg/s^2). A frame's attitude interpolated between samples
    # span_s apart may then be off by camera_accel_dps2 * span_s^2 / 8, which is added to that frame's
    # bearing noise: 0.06 deg at 50 Hz telemetry, 0.5 deg across two frames lost on the link.
    camera_accel_dps2: float = 1100.0
    roll_deg: float = 0.0  # 0 holds the horizon, 90 is portrait
    invert_yaw: bool = False
    invert_pitch: bool = False
    # Coasting through a short loss (an occlusion, a missed detection): keep turning at the
    # subject's last estimated earth-frame rate (the tracker's velocity with the camera's own
    # turning removed, as fed forward; not the PID's output, which also holds the correction of
    # a position error and would pan away from a subject that stood still) for coast_s, then
    # let that rate decay with time constant
    # coast_decay_s towards a hold. A subject that walks behind a pillar is then met where they
    # come out instead of about 15 deg behind. 0 disables coasting (stop at once).
    coast_s: float = 1.0
    coast_decay_s: float = 0.5
    # The subject's rate averaged over this long (a low-pass time constant) is what coasting follows
    # and what decides whether a subject inside the deadband is moving: one frame's estimate
    # jitters by several deg/s (the bearing estimator's by +-8 deg/s on a subject standing still),
    # and a single frame's jitter must neither kick a settled camera nor set a coast's rate.
    subject_rate_smoothing_s: float = 0.25
    lost_hold_s: float = 2.0  # hold (or coast) this long after losing the target
    lost_action: str = "recentre"  # then: hold | recentre | sweep
    recentre_s: float = 1.5  # how long a recentre command is held
    sweep_rate_dps: float = 20.0
    sweep_amplitude_deg: float = 45.0
    max_dt_s: float = 0.5  # a longer frame interval means the detector stalled

    def validate(self):
        """Raise ValueError naming the setting, value and reason."""
        def need(ok, key, reason):
            if not ok:
                raise ValueError("framing.%s = %r: %s" % (key, getattr(self, key), reason))

        need(0 < self.hfov_deg < 180, "hfov_deg", "must be between 0 and 180")
        need(0 < self.vfov_deg < 180, "vfov_deg", "must be between 0 and 180")
        for key in ("kp", "ki", "kd", "deadband_deg", "settle_rate_dps", "smoothing_s", "feedforward",
                    "feedforward_smoothing_s", "motion_noise", "coast_s", "coast_decay_s", "subject_rate_smoothing_s",
                    "lost_hold_s",
                    "recentre_s"):
            need(getattr(self, key) >= 0, key, "must not be negative")
        need(self.camera_accel_dps2 >= 0, "camera_accel_dps2", "must not be negative")
        for key in ("bearing_noise_deg", "max_rate_dps", "max_accel_dps2", "sweep_rate_dps", "sweep_amplitude_deg", "max_dt_s"):
            need(getattr(self, key) > 0, key, "must be positive")
        need(-180 <= self.roll_deg <= 180, "roll_deg", "must be between -180 and 180")
        need(self.lost_action in LOST_ACTIONS, "lost_action", "must be one of " + ", ".join(LOST_ACTIONS))
        return self


@dataclass(frozen=True)
class FramingTarget:
    """What the controller needs to know about the subject this frame.

    ``x``/``y`` are normalised image coordinates of the subject (None when
    not seen); ``cal_x``/``cal_y`` the calibration point it should sit on.
    """

    locked: bool
    x: Optional[float] = None
    y: Optional[float] = None
    cal_x: float = 0.5
    cal_y: float = 0.5
    # The subject's own angular rate (earth frame, camera motion removed), when known
    # from tracker velocity plus gimbal telemetry; fed forward so a moving subject is
    # followed without waiting for an error to build up.
    yaw_rate_ff_dps: float = 0.0
    pitch_rate_ff_dps: float = 0.0
    # The camera's earth-frame attitude when this frame was taken (telemetry lined up
    # with the frame's capture time), or None. With it, the subject's rate is estimated
    # from its bearing (BearingEstimator) instead of from the *_rate_ff_dps above.
    camera_yaw_deg: Optional[float] = None
    camera_pitch_deg: Optional[float] = None
    # how far apart the telemetry samples behind that attitude were (host.attitude_history); None: unknown
    camera_attitude_span_s: Optional[float] = None
    # Who is followed (the tracker's track id); when it changes, the subject-motion
    # estimate starts again instead of reading the jump to someone else as motion.
    subject_id: Optional[int] = None


class BearingEstimator:
    """Constant-velocity Kalman filter on one axis of the subject's earth-frame bearing.

    ``update(bearing_deg, dt_s)`` once per frame with the subject's bearing
    (the camera's attitude when the frame was taken plus the subject's angle
    from the calibration point in the picture) and the time since the last
    one; it returns the estimated rate in deg/s. Because the camera's own
    motion cancels in the bearing, the estimate does not feed the gimbal's
    motion back into itself, so it needs no extra low-pass. Angles wrap:
    innovations are taken the short way round.

        est = BearingEstimator(motion_noise=1e4, bearing_noise_deg=0.3)
        rate_dps = est.update(12.5, 1 / 30)           # once per frame
        est.reset()                                   # a loss, or someone else followed
    """

    def __init__(self, motion_noise, bearing_noise_deg):
        self.q = float(motion_noise)
        self.r = float(bearing_noise_deg) ** 2
        self.reset()

    def reset(self):
        self.bearing_deg = None
        self.rate_dps = 0.0

    def update(self, bearing_deg, dt_s, rate_hint_dps=0.0, extra_noise_deg=0.0):
        """Correct with this frame's bearing; returns the rate. ``rate_hint_dps`` starts the
        estimate after a reset (the tracker's own idea of the subject's rate, which it keeps
        through a short occlusion); ``extra_noise_deg``: how much less sure this frame's bearing is
        (its camera attitude interpolated across lost telemetry)."""
        if self.bearing_deg is None:
            # A start, or back after a loss: from the hint, unsure by a walking person's rate.
            self.bearing_deg, self.rate_dps = bearing_deg, rate_hint_dps
            self._p = [self.r, 0.0, 50.0 ** 2]  # covariance: bearing, cross, rate
            return self.rate_dps
        q, dt = self.q, dt_s
        pbb, pbv, pvv = self._p
        # predict: bearing += rate * dt, white acceleration noise of density q
        b = self.bearing_deg + self.rate_dps * dt
        pbb = pbb + 2 * dt * pbv + dt * dt * pvv + q * dt ** 3 / 3
        pbv = pbv + dt * pvv + q * dt * dt / 2
        pvv = pvv + q * dt
        # correct with this frame's bearing (less sure of it by extra_noise_deg: see FramingConfig)
        s = pbb + self.r + extra_noise_deg * extra_noise_deg
        kb, kv = pbb / s, pbv / s
        innovation = (bearing_deg - b + 180.0) % 360.0 - 180.0
        self.bearing_deg = b + kb * innovation
        self.rate_dps += kv * innovation
        self._p = [(1 - kb) * pbb, (1 - kb) * pbv, pvv - kv * pbv]
        return self.rate_dps


@dataclass(frozen=True)
class SetpointCommand:
    """One gimbal setpoint. Rates in deg/s, angles in deg.

    Yaw and pitch are rates unless ``yaw_deg``/``pitch_deg`` is set, which
    makes that axis an absolute angle (used to recentre). Yaw and pitch rates
    and roll are in the earth frame; a recentring yaw angle is relative to
    the handle (straight ahead), a recentring pitch angle is earth-level.
    """

    yaw_rate_dps: float = 0.0
    pitch_rate_dps: float = 0.0
    roll_deg: float = 0.0
    yaw_deg: Optional[float] = None
    pitch_deg: Optional[float] = None
    state: str = STATE_IDLE
    yaw_error_deg: float = 0.0
    pitch_error_deg: float = 0.0

    @property
    def is_still(self):
        """True when the command asks for no motion relative to the earth."""
        return self.yaw_deg is None and self.pitch_deg is None and self.yaw_rate_dps == 0 and self.pitch_rate_dps == 0

    def to_protocol(self):
        """The OpenSteady MSG_SETPOINT fields: (flags, yaw, pitch, roll) as ints."""
        flags = protocol.SP_ROLL_IN_EARTH_FRAME
        if self.yaw_deg is None:
            flags |= protocol.SP_YAW_IS_RATE | protocol.SP_YAW_IN_EARTH_FRAME
            yaw = self.yaw_rate_dps
        else:
            yaw = self.yaw_deg
        if self.pitch_deg is None:
            flags |= protocol.SP_PITCH_IS_RATE | protocol.SP_PITCH_IN_EARTH_FRAME
            pitch = self.pitch_rate_dps
        else:
            flags |= protocol.SP_PITCH_IN_EARTH_FRAME
            pitch = self.pitch_deg
        return (
            flags,
            protocol.sat_i16(yaw * 100.0),
            protocol.sat_i16(pitch * 100.0),
            protocol.sat_i16(self.roll_deg * 100.0),
        )


def offset_to_angle_deg(pos, cal, fov_deg):
    """Angle between the rays through normalised image coords ``pos`` and ``cal``.

    Pinhole model: a normalised coordinate u maps to the ray angle
    atan((2u - 1) * tan(fov / 2)). Exact for an undistorted camera, unlike
    the linear ``(pos - cal) * fov`` which overstates errors at the edges.
    """
    t = math.tan(math.radians(fov_deg) / 2.0)
    return math.degrees(math.atan((2.0 * pos - 1.0) * t) - math.atan((2.0 * cal - 1.0) * t))


class _AxisLoop:
    """One axis: smoothing, deadband, PID, rate and acceleration limits."""

    def __init__(self, cfg):
        self.cfg = cfg
        # time_fn pinned so simple-pid never reads the wall clock; dt is always passed.
        self.pid = PID(cfg.kp, cfg.ki, cfg.kd, setpoint=0.0, sample_time=None,
                       output_limits=(-cfg.max_rate_dps, cfg.max_rate_dps), time_fn=lambda: 0.0)
        self.rate_dps = 0.0
        self.filtered_deg = None
        self.ff_dps = None  # low-passed feed-forward rate
        self.subject_rate_dps = 0.0  # the subject's estimated earth-frame rate (smoothed), while followed
        self.mean_ff_dps = None  # the feed-forward rate low-passed over subject_rate_smoothing_s
        self.motion = BearingEstimator(cfg.motion_noise, cfg.bearing_noise_deg)

    def reset(self):
        self.pid.reset()
        self.filtered_deg = None
        self.ff_dps = None
        self.mean_ff_dps = None
        self.motion.reset()

    def track(self, error_deg, dt_s, ff_dps=0.0, bearing_deg=None, bearing_extra_noise_deg=0.0):
        """Advance with a measured error and the subject's rate (``ff_dps``, or estimated from
        ``bearing_deg`` when the camera's attitude is known, less sure of it by
        ``bearing_extra_noise_deg``); returns (rate_dps, in_deadband)."""
        cfg = self.cfg
        if self.filtered_deg is None or cfg.smoothing_s <= 0:
            self.filtered_deg = error_deg
        else:
            a = dt_s / (cfg.smoothing_s + dt_s)
            self.filtered_deg += a * (error_deg - self.filtered_deg)
        e = self.filtered_deg
        if bearing_deg is not None and cfg.motion_noise > 0:
            # already filtered: no low-pass
            self.ff_dps = self.motion.update(bearing_deg, dt_s, ff_dps, bearing_extra_noise_deg)
        else:  # no attitude: the tracker's rate, low-passed
            self.motion.reset()
            if self.ff_dps is None or cfg.feedforward_smoothing_s <= 0:
                self.ff_dps = ff_dps
            else:
                self.ff_dps += dt_s / (cfg.feedforward_smoothing_s + dt_s) * (ff_dps - self.ff_dps)
        ff_dps = self.ff_dps * cfg.feedforward
        if self.mean_ff_dps is None or cfg.subject_rate_smoothing_s <= 0:
            self.mean_ff_dps = ff_dps
        else:
            self.mean_ff_dps += dt_s / (cfg.subject_rate_smoothing_s + dt_s) * (ff_dps - self.mean_ff_dps)
        if (abs(e) <= cfg.deadband_deg and abs(self.pid.components[1]) <= cfg.settle_rate_dps
                and abs(ff_dps) <= cfg.settle_rate_dps):
            # On target and not following a moving subject: stop, and clear the
            # integral so a small constant offset cannot creep the gimbal. Motion
            # restarts only once the error leaves the deadband; the acceleration
            # limit smooths that start.
            self.pid.reset()
            self.subject_rate_dps = 0.0
            return self.ramp_to(0.0, dt_s), True
        # Following (or settling): the full error drives the PID, so the integral
        # keeps a moving subject's rate and bleeds off once the subject stops.
        want = ff_dps + self.pid(-e, dt=dt_s)  # simple-pid's error = setpoint(0) - input
        self.subject_rate_dps = self.mean_ff_dps
        return self.ramp_to(want, dt_s), abs(e) <= cfg.deadband_deg

    def ramp_to(self, want_dps, dt_s):
        """Move the rate towards ``want_dps`` within the rate and acceleration limits."""
        cfg = self.cfg
        want_dps = max(-cfg.max_rate_dps, min(cfg.max_rate_dps, want_dps))
        step = cfg.max_accel_dps2 * dt_s
        self.rate_dps += max(-step, min(step, want_dps - self.rate_dps))
        return self.rate_dps

    def coast(self, lost_s, dt_s):
        """Follow the subject's last estimated rate ``lost_s`` into a loss, decaying to a hold."""
        cfg = self.cfg
        self.filtered_deg = None  # the error before the loss says nothing about the next sighting
        self.ff_dps = None
        self.motion.reset()
        self.pid.reset()
        if lost_s <= cfg.coast_s:
            want = self.subject_rate_dps
        elif cfg.coast_decay_s > 0:
            want = self.subject_rate_dps * math.exp(-(lost_s - cfg.coast_s) / cfg.coast_decay_s)
        else:
            want = 0.0
        if abs(want) < _HOLD_BELOW_DPS:
            want = 0.0  # the decay has reached a hold: stand still, not creep
        return self.ramp_to(want, dt_s)

    def stop(self):
        self.rate_dps = 0.0
        self.subject_rate_dps = 0.0
        self.reset()


class FramingController:
    """Turns the subject's offset from the calibration point into setpoints.

    ``update()`` once per processed frame. ``pause()``/``resume()`` freeze the
    gimbal (gesture pause); ``recentre()`` points it straight ahead for
    ``recentre_s``. When the target is lost it coasts along the subject's last
    estimated rate for ``coast_s`` and lets that decay to a hold, all within
    ``lost_hold_s``; then it performs ``lost_action``.
    """

    def __init__(self, config=None):
        self.config = (config or FramingConfig()).validate()
        self.yaw = _AxisLoop(self.config)
        self.pitch = _AxisLoop(self.config)
        self.paused = False
        self._ever_locked = False
        self._lost_s = 0.0
        self._recentre_left_s = 0.0
        self._sweep_yaw_deg = 0.0  # integral of our own sweep command
        self._sweep_dir = 1.0
        self._subject_id = None

    # --- commands (from gestures, the HUD or the CLI) -------------------------
    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False
        self._lost_s = 0.0

    def recentre(self):
        self._recentre_left_s = self.config.recentre_s

    # --- the loop ---------------------------------------------------------------
    def update(self, target, dt_s):
        """Advance by ``dt_s`` seconds with this frame's ``target``; returns a SetpointCommand."""
        cfg = self.config
        if dt_s <= 0:
            raise ValueError("dt_s must be positive, got %r" % (dt_s,))
        if dt_s > cfg.max_dt_s:
            # Stale or stalled input: do not integrate a huge step; stop now.
            self.yaw.stop()
            self.pitch.stop()
            return self._command(STATE_STALLED)
        if self._recentre_left_s > 0:
            self._recentre_left_s -= dt_s
            self._stop_loops()
            return self._command(STATE_RECENTRE, yaw_deg=0.0, pitch_deg=0.0)
        if self.paused:
            return self._coast(STATE_PAUSED, dt_s)
        seen = target is not None and target.locked and target.x is not None and target.y is not None
        if seen:
            if target.subject_id != self._subject_id:
                self._subject_id = target.subject_id
                self.yaw.motion.reset()
                self.pitch.motion.reset()
            self._ever_locked = True
            self._lost_s = 0.0
            self._sweep_yaw_deg = 0.0
            if self.yaw.rate_dps:
                self._sweep_dir = math.copysign(1.0, self.yaw.rate_dps)  # search where it went
            yaw_err = offset_to_angle_deg(target.x, target.cal_x, cfg.hfov_deg)
            pitch_err = -offset_to_angle_deg(target.y, target.cal_y, cfg.vfov_deg)  # image y points down
            if cfg.invert_yaw:
                yaw_err = -yaw_err
            if cfg.invert_pitch:
                pitch_err = -pitch_err
            yaw_ff = -target.yaw_rate_ff_dps if cfg.invert_yaw else target.yaw_rate_ff_dps
            pitch_ff = -target.pitch_rate_ff_dps if cfg.invert_pitch else target.pitch_rate_ff_dps
            # The subject's bearing in the gimbal's own earth frame: where the camera pointed when
            # the frame was taken plus where the subject sat from the calibration point (both
            # after any axis inversion, so the estimated rate is in the gimbal's sense).
            yaw_bearing = None if target.camera_yaw_deg is None else target.camera_yaw_deg + yaw_err
            pitch_bearing = None if target.camera_pitch_deg is None else target.camera_pitch_deg + pitch_err
            # an attitude interpolated across lost telemetry may miss the camera's own swing
            span = target.camera_attitude_span_s
            extra = 0.0 if span is None else cfg.camera_accel_dps2 * min(span, 1.0) ** 2 / 8.0
            yaw_rate, yaw_db = self.yaw.track(yaw_err, dt_s, yaw_ff, yaw_bearing, extra)
            pitch_rate, pitch_db = self.pitch.track(pitch_err, dt_s, pitch_ff, pitch_bearing, extra)
            state = STATE_DEADBAND if (yaw_db and pitch_db) else STATE_TRACKING
            return self._command(state, yaw_error_deg=yaw_err, pitch_error_deg=pitch_err)
        if not self._ever_locked:
            return self._coast(STATE_IDLE, dt_s)
        self._lost_s += dt_s
        if self._lost_s <= cfg.lost_hold_s or cfg.lost_action == "hold":
            if cfg.coast_s > 0 and (self.yaw.subject_rate_dps or self.pitch.subject_rate_dps):
                self.yaw.coast(self._lost_s, dt_s)
                self.pitch.coast(self._lost_s, dt_s)
                moving = self.yaw.rate_dps != 0.0 or self.pitch.rate_dps != 0.0
                return self._command(STATE_COAST if moving else STATE_LOST_HOLD)
            return self._coast(STATE_LOST_HOLD, dt_s)
        if cfg.lost_action == "recentre":
            self._stop_loops()
            return self._command(STATE_RECENTRE, yaw_deg=0.0, pitch_deg=0.0)
        return self._sweep(dt_s)

    def hold(self, dt_s):
        """The gimbal is not following setpoints yet: ramp to zero with the PID cleared, so nothing winds up."""
        return self._coast(STATE_WAITING, dt_s)

    def _stop_loops(self):
        self.yaw.stop()
        self.pitch.stop()

    def _coast(self, state, dt_s):
        # Ramp both rates to zero within the acceleration limit, PID cleared.
        self.yaw.reset()
        self.pitch.reset()
        self.yaw.subject_rate_dps = self.pitch.subject_rate_dps = 0.0
        self.yaw.ramp_to(0.0, dt_s)
        self.pitch.ramp_to(0.0, dt_s)
        return self._command(state)

    def _sweep(self, dt_s):
        cfg = self.config
        # Triangle wave in yaw around where the target was lost, estimated by
        # integrating our own command (no telemetry needed).
        if self._sweep_yaw_deg >= cfg.sweep_amplitude_deg:
            self._sweep_dir = -1.0
        elif self._sweep_yaw_deg <= -cfg.sweep_amplitude_deg:
            self._sweep_dir = 1.0
        self.yaw.reset()
        self.pitch.reset()
        rate = self.yaw.ramp_to(self._sweep_dir * cfg.sweep_rate_dps, dt_s)
        self.pitch.ramp_to(0.0, dt_s)
        self._sweep_yaw_deg += rate * dt_s
        return self._command(STATE_SWEEP)

    def _command(self, state, yaw_deg=None, pitch_deg=None, yaw_error_deg=0.0, pitch_error_deg=0.0):
        return SetpointCommand(
            yaw_rate_dps=0.0 if yaw_deg is not None else self.yaw.rate_dps,
            pitch_rate_dps=0.0 if pitch_deg is not None else self.pitch.rate_dps,
            roll_deg=self.config.roll_deg,
            yaw_deg=yaw_deg,
            pitch_deg=pitch_deg,
            state=state,
            yaw_error_deg=yaw_error_deg,
            pitch_error_deg=pitch_error_deg,
        )
