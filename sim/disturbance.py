"""Handle disturbance profiles: how the user's hand moves the gimbal's handle.

A profile is a pure function of time: ``pose(t_s)`` returns the hand's
position offset (metres, MuJoCo frame x forward, y left, z up) and attitude
(yaw, pitch, roll in degrees, the firmware's aerospace convention: yaw right,
pitch up, roll right). Random phases and frequencies come from the seed.

- ``still``: on a table or tripod, no motion;
- ``tremor``: physiological hand tremor, 8-12 Hz, about 0.15 deg RMS per axis;
- ``walking``: 1.6-2.0 Hz step bob, half-rate sway and yaw, plus tremor;
- ``running``: 2.6-3.0 Hz, larger and richer in harmonics, plus tremor; the
  vertical acceleration peaks near 2.5 g, so in the flight phase of each
  stride the IMU reads close to 0 g (as on a runner's torso);
- ``pan``: a deliberate minimum-jerk yaw pan of ``pan_deg`` over
  ``pan_duration_s``, plus tremor.

Walking and running happen on the spot (no forward travel), so billboards keep
their distance. The motion fades in over ``ramp_s`` after ``start_s``; the
firmware calibrates its gyro in the still time before that.

    hand = HandleDisturbance(HandleMotion("walking", start_s=1.5), seed=3)
    pos_m, ypr_deg = hand.pose(2.0)
"""

import math
import random
from dataclasses import dataclass

import numpy as np

PROFILES = ("still", "tremor", "walking", "running", "pan")


@dataclass(frozen=True)
class HandleMotion:
    profile: str = "still"
    scale: float = 1.0  # multiplies every amplitude
    start_s: float = 0.0
    ramp_s: float = 0.5
    pan_deg: float = 60.0
    pan_start_s: float = 2.0  # after start_s
    pan_duration_s: float = 2.0

    def validate(self):
        if self.profile not in PROFILES:
            raise ValueError("handle.profile = %r: unknown, expected one of %s" % (self.profile, ", ".join(PROFILES)))
        for key in ("scale", "start_s", "ramp_s", "pan_start_s"):
            if getattr(self, key) < 0:
                raise ValueError("handle.%s = %r: must not be negative" % (key, getattr(self, key)))
        if not self.pan_duration_s > 0:
            raise ValueError("handle.pan_duration_s = %r: must be positive" % self.pan_duration_s)
        return self


# (channel, amplitude, frequency multiple of the step rate); channels 0-2 are
# x, y, z in metres, 3-5 are yaw, pitch, roll in degrees.
_WALK = (
    (2, 0.020, 1.0), (2, 0.006, 2.0),  # vertical bob at the step rate
    (1, 0.015, 0.5),  # lateral sway at the stride rate
    (0, 0.008, 1.0),  # surge
    (4, 1.5, 1.0), (4, 0.5, 2.0),
    (5, 2.5, 0.5), (5, 0.6, 1.5),
    (3, 2.0, 0.5), (3, 0.5, 1.0),
)
_RUN = (
    (2, 0.040, 1.0), (2, 0.008, 2.0), (2, 0.002, 3.0),  # peaks near 2.5 g: flight phases read ~0 g
    (1, 0.030, 0.5), (0, 0.020, 1.0),
    (4, 4.0, 1.0), (4, 1.5, 2.0), (4, 0.6, 3.0),
    (5, 5.0, 0.5), (5, 1.5, 1.5),
    (3, 4.0, 0.5), (3, 1.5, 1.0), (3, 0.5, 2.0),
)


def _smoothstep(x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


def _min_jerk(x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


class HandleDisturbance:
    def __init__(self, motion=None, seed=0):
        self.motion = (motion or HandleMotion()).validate()
        rng = random.Random(seed)
        self._waves = []  # (channel, amplitude, freq_hz, phase_rad)
        profile = self.motion.profile
        if profile != "still":
            self._add_tremor(rng, 1.0 if profile in ("tremor", "walking", "pan") else 2.0)
        if profile == "walking":
            self._add_gait(rng, _WALK, rng.uniform(1.6, 2.0))
        elif profile == "running":
            self._add_gait(rng, _RUN, rng.uniform(2.6, 3.0))
        # (channel, amplitude, omega_rad_per_s, phase): plain floats are cheaper than numpy at this size
        self._terms = [(c, a, 2 * math.pi * f, p) for c, a, f, p in self._waves]
        n = len(self._waves)
        self._mix = np.zeros((n, 6))
        for k, (channel, amplitude, _f, _p) in enumerate(self._waves):
            self._mix[k, channel] = amplitude
        self._omega = np.array([t[2] for t in self._terms])
        self._phase = np.array([t[3] for t in self._terms])

    def _add_tremor(self, rng, gain):
        # six lines spread over 8-12 Hz per rotation axis: ~0.15 deg RMS each
        for channel in (3, 4, 5):
            for _ in range(6):
                self._waves.append((channel, gain * 0.087, rng.uniform(8.0, 12.0), rng.uniform(0, 2 * math.pi)))
        for channel in (0, 1, 2):
            self._waves.append((channel, gain * 0.0002, rng.uniform(8.0, 12.0), rng.uniform(0, 2 * math.pi)))

    def _add_gait(self, rng, table, step_hz):
        for channel, amplitude, multiple in table:
            self._waves.append((channel, amplitude, step_hz * multiple, rng.uniform(0, 2 * math.pi)))

    def pose(self, t_s):
        """(pos_m [x, y, z], ypr_deg [yaw, pitch, roll]) of the hand at ``t_s``."""
        m = self.motion
        out = [0.0] * 6
        local_s = t_s - m.start_s
        if local_s <= 0.0:
            return out[:3], out[3:]
        envelope = m.scale * (_smoothstep(local_s / m.ramp_s) if m.ramp_s > 0 else 1.0)
        sin = math.sin
        for channel, amplitude, omega, phase in self._terms:
            out[channel] += envelope * amplitude * sin(omega * local_s + phase)
        if m.profile == "pan":
            out[3] += m.scale * m.pan_deg * _min_jerk((local_s - m.pan_start_s) / m.pan_duration_s)
        return out[:3], out[3:]

    def poses(self, t_s):
        """Vectorised :meth:`pose` for an array of times: an (N, 6) array of x, y, z, yaw, pitch, roll."""
        m = self.motion
        local = np.asarray(t_s, dtype=float) - m.start_s
        active = local > 0.0
        if m.ramp_s > 0:
            x = np.clip(local / m.ramp_s, 0.0, 1.0)
            envelope = m.scale * x * x * (3.0 - 2.0 * x)
        else:
            envelope = np.full(local.shape, float(m.scale))
        envelope = np.where(active, envelope, 0.0)
        out = (envelope[:, None] * np.sin(np.outer(local, self._omega) + self._phase)) @ self._mix
        if m.profile == "pan":
            x = np.clip((local - m.pan_start_s) / m.pan_duration_s, 0.0, 1.0)
            out[:, 3] += np.where(active, m.scale * m.pan_deg * x * x * x * (10.0 - 15.0 * x + 6.0 * x * x), 0.0)
        return out
