# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Actuator models: a gimbal BLDC motor driven by three PWM duties, and a hobby servo.

Both are pure: they take the commanded output and the rotor state and return a
torque; time comes in as ``dt_s`` where a model has state.

BLDC (the firmware's ``bldc_write(axis, a, b, c)`` output, see firmware/hal.py)::

    motor = BldcMotor(BldcParams())
    torque_nm = motor.torque_nm(duty_a, duty_b, duty_c, rotor_rad, rotor_rads)

The three duties (0..65535, 32768 = mid-rail) set phase voltages
``V_k = (duty_k - mean) / 65535 * bus_v``; the common offset (SVPWM) drops out
because the star point floats. The Clarke transform of
``A ~ sin(theta), B ~ sin(theta - 120), C ~ sin(theta + 120)`` gives the
field's electrical angle ``theta_field`` and phase-voltage amplitude ``v_amp``.
With the rotor at electrical angle ``theta_rotor = pole_pairs * rotor_rad``
and the winding inductance neglected (L/R ~ 0.2 ms, below the 1 ms step), the
quadrature current is::

    i_q = (v_amp * sin(theta_field - theta_rotor) - ke * omega_mech) / R,  ke = 2/3 * kt

so the rotor is pulled towards ``theta_field / pole_pairs`` (the firmware's
convention) and back-EMF damps it. The current vector's magnitude is limited
so the copper loss ``1.5 * |i|^2 * R`` stays under ``power_limit_w`` (the
driver's current limit), and the torque ``kt * i_q`` gets a cogging ripple
``cogging_nm * sin(cogging_periods * rotor_rad)``.

Compiled with the simulator's other per-tick models in the ``compiled``
firmware mode (sim/lockstep.py; the C types are in motor.pxd).
"""

import math
from dataclasses import dataclass

from cython.cimports.libc.math import cos, sin, sqrt

_SQRT3 = math.sqrt(3.0)
_INV_SQRT3 = 1.0 / _SQRT3
DUTY_FULL = 65535


@dataclass(frozen=True)
class BldcParams:
    """A 22 mm, 12N14P gimbal motor on a 2S pack (see docs/sim.md for the numbers' basis)."""

    pole_pairs: int = 7
    phase_resistance_ohm: float = 8.0
    kt_nm_per_a: float = 0.060  # torque per amp of (amplitude-invariant) q current
    bus_v: float = 8.0
    power_limit_w: float = 2.5  # copper loss the driver allows (current limit)
    cogging_nm: float = 0.0003
    cogging_periods: int = 84  # lcm(12 slots, 14 poles) detents per turn

    def validate(self):
        for key in ("pole_pairs", "phase_resistance_ohm", "kt_nm_per_a", "bus_v", "power_limit_w", "cogging_periods"):
            if not getattr(self, key) > 0:
                raise ValueError("motor.%s = %r: must be positive" % (key, getattr(self, key)))
        if self.cogging_nm < 0:
            raise ValueError("motor.cogging_nm = %r: must not be negative" % self.cogging_nm)
        return self

    @property
    def peak_torque_nm(self):
        """Largest torque the power limit allows with the rotor still."""
        i_max = math.sqrt(self.power_limit_w / (1.5 * self.phase_resistance_ohm))
        v_max = self.bus_v / _SQRT3  # SVPWM reaches bus/sqrt(3) phase amplitude
        return self.kt_nm_per_a * min(i_max, v_max / self.phase_resistance_ohm)


def field_from_duties(duty_a, duty_b, duty_c, bus_v):
    """(theta_field_rad, v_amp) of three phase duties; the common-mode part drops out."""
    mean = (duty_a + duty_b + duty_c) / 3.0
    scale = bus_v / DUTY_FULL
    va = (duty_a - mean) * scale
    vb = (duty_b - mean) * scale
    vc = (duty_c - mean) * scale
    cos_part = (vc - vb) / _SQRT3  # = v_amp * cos(theta)
    return math.atan2(va, cos_part), math.hypot(va, cos_part)


class BldcMotor:
    """One axis' BLDC motor: duties + rotor state -> shaft torque."""

    def __init__(self, params=None):
        self.params = (params or BldcParams()).validate()
        p = self.params
        self._i_limit_a = math.sqrt(p.power_limit_w / (1.5 * p.phase_resistance_ohm))
        self._v_per_count = p.bus_v / DUTY_FULL
        self._pole_pairs = float(p.pole_pairs)
        self._inv_r = 1.0 / p.phase_resistance_ohm
        self._ke = (2.0 / 3.0) * p.kt_nm_per_a
        self._kt = p.kt_nm_per_a
        self._cog_nm = p.cogging_nm
        self._cog_periods = float(p.cogging_periods)
        self.enabled = False
        self.current_a = 0.0  # magnitude of the last current vector
        self.torque_nm_last = 0.0

    def torque_nm(self, duty_a, duty_b, duty_c, rotor_rad, rotor_rads):
        # Called three times per simulated millisecond: plain floats, constants
        # precomputed, and sin(theta_field - theta_rotor) expanded so the field
        # angle itself (an atan2) is never needed.
        cog = -self._cog_nm * sin(self._cog_periods * rotor_rad)
        if not self.enabled:
            # driver disabled: phases float, no current, only cogging
            self.current_a = 0.0
            self.torque_nm_last = cog
            return cog
        mean = (duty_a + duty_b + duty_c) * (1.0 / 3.0)
        s = self._v_per_count
        va = (duty_a - mean) * s  # = v_amp * sin(theta_field)
        vcos = (duty_c - duty_b) * s * _INV_SQRT3  # = v_amp * cos(theta_field)
        theta_rotor = self._pole_pairs * rotor_rad
        sr = sin(theta_rotor)
        cr = cos(theta_rotor)
        inv_r = self._inv_r
        # current vector in the rotor (d, q) frame; back-EMF acts on q only. With
        # amplitude-invariant currents, power balance gives ke = 2/3 * kt.
        i_d = (vcos * cr + va * sr) * inv_r
        i_q = (va * cr - vcos * sr - self._ke * rotor_rads) * inv_r
        i_mag = sqrt(i_d * i_d + i_q * i_q)
        if i_mag > self._i_limit_a:
            i_q *= self._i_limit_a / i_mag
            i_mag = self._i_limit_a
        self.current_a = i_mag
        tau = self._kt * i_q + cog
        self.torque_nm_last = tau
        return tau


@dataclass(frozen=True)
class ServoParams:
    """A metal-gear micro servo (MG90S class): 1500 us = joint at 0, 10 us per degree."""

    centre_us: float = 1500.0
    us_per_deg: float = 10.0  # the firmware's default servo_us_per_deg
    deadband_us: float = 5.0
    stall_torque_nm: float = 0.20
    max_speed_dps: float = 600.0  # 0.1 s / 60 deg
    kp_nm_per_rad: float = 2.0
    kd_nm_s_per_rad: float = 0.02
    frame_s: float = 0.020  # the servo samples its pulse once per 50 Hz frame

    def validate(self):
        for key in ("us_per_deg", "stall_torque_nm", "max_speed_dps", "kp_nm_per_rad", "frame_s"):
            if not getattr(self, key) > 0:
                raise ValueError("servo.%s = %r: must be positive" % (key, getattr(self, key)))
        if self.deadband_us < 0 or self.kd_nm_s_per_rad < 0:
            raise ValueError("servo.deadband_us and servo.kd_nm_s_per_rad must not be negative")
        return self


class ServoModel:
    """A position servo: its own P-D loop on the pulse it last sampled, torque and speed limited."""

    def __init__(self, params=None):
        self.params = (params or ServoParams()).validate()
        self.pulse_us = 0.0
        self._held_us = 0.0
        self._target_rad = None
        self._since_frame_s = 0.0

    def write(self, pulse_us):
        self.pulse_us = float(pulse_us)

    def torque_nm(self, rotor_rad, rotor_rads, dt_s):
        p = self.params
        self._since_frame_s += dt_s
        if self._since_frame_s >= p.frame_s:
            self._since_frame_s -= p.frame_s
            if self.pulse_us <= 0:
                self._target_rad = None  # no pulses: the servo goes limp
            elif self._target_rad is None or abs(self.pulse_us - self._held_us) > p.deadband_us:
                self._held_us = self.pulse_us
                self._target_rad = math.radians((self.pulse_us - p.centre_us) / p.us_per_deg)
        if self._target_rad is None:
            return 0.0
        torque = p.kp_nm_per_rad * (self._target_rad - rotor_rad) - p.kd_nm_s_per_rad * rotor_rads
        torque = max(-p.stall_torque_nm, min(p.stall_torque_nm, torque))
        # the motor's back-EMF leaves no torque at the no-load speed
        speed_frac = abs(rotor_rads) / math.radians(p.max_speed_dps)
        if torque * rotor_rads > 0:
            torque *= max(0.0, 1.0 - speed_frac)
        return torque
