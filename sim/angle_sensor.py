# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Rotor-angle sensor model: the counts an AS5600 or AS5048A on each motor shaft gives the firmware.

The firmware's closed-loop drive (firmware/foc.py) reads one sensor per
motor through ``HAL.angle_read(axis)``. This model turns the plant's joint
angle into those counts, with what a real part adds:

- the magnet's unknown orientation on the shaft (``mount_offset_deg``, a
  different one per axis) and the chip's counting direction
  (``direction``): the firmware must find both at start-up;
- white noise (``noise_counts`` RMS, datasheet: AS5048A about 0.5 count at
  14 bit, AS5600 about 0.3 count at 12 bit with the 2x filter) and
  quantisation to counts;
- the read's time inside the tick: the firmware reads the IMU first
  (``imu_read_us``) and then the three sensors one after another
  (``read_us`` each), so axis k's sample is taken
  ``imu_read_us + (k + 0.5) * read_us`` after the tick starts, and the motor
  outputs change only when every read and the maths are done
  (``output_delay_us``; the world holds the old duties until then).

    sensor = AngleSensorModel(AngleSensorParams(kind="as5048a"), seed=3)
    counts = sensor.read(axis, joint_rad, joint_rads)     # 0 .. cpr-1

Compiled with the simulator's other per-tick models in the ``compiled``
firmware mode (sim/lockstep.py; the C types are in angle_sensor.pxd).
"""

import math
import random
from dataclasses import dataclass

from cython.cimports.libc.math import floor

KINDS = ("none", "as5600", "as5048a")
_BITS = {"as5600": 12, "as5048a": 14}
# one 2-byte register read at 400 kHz (about 45 bit times), or two 16-bit SPI frames at 10 MHz with CS gaps
_READ_US = {"as5600": 110.0, "as5048a": 5.0}
_NOISE = {"as5600": 0.3, "as5048a": 0.5}
_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class AngleSensorParams:
    kind: str = "none"  # none | as5600 | as5048a
    noise_counts: float = -1.0  # RMS; -1 = the part's typical value
    mount_offset_deg: float = 37.0  # magnet orientation on the yaw shaft; pitch and roll add 113 deg each
    direction: int = 1  # 1: counts rise with the joint angle; -1: the chip counts the other way
    imu_read_us: float = 450.0  # the MPU-6050 burst before the sensors (14 bytes at 400 kHz)
    compute_us: float = 100.0  # the tick's maths after the reads, on a board (RP2040 scale)

    def validate(self):
        if self.kind not in KINDS:
            raise ValueError("sensor.kind = %r: expected one of %s" % (self.kind, ", ".join(KINDS)))
        if self.direction not in (-1, 1):
            raise ValueError("sensor.direction = %r: must be 1 or -1" % (self.direction,))
        if self.noise_counts != -1.0 and not self.noise_counts >= 0:
            raise ValueError("sensor.noise_counts = %r: must be >= 0 (or -1 for the part's)" % self.noise_counts)
        if self.imu_read_us < 0 or self.compute_us < 0:
            raise ValueError("sensor.imu_read_us and sensor.compute_us must not be negative")
        return self

    @property
    def fitted(self):
        return self.kind != "none"

    @property
    def bits(self):
        return _BITS.get(self.kind, 0)

    @property
    def read_us(self):
        return _READ_US.get(self.kind, 0.0)

    @property
    def output_delay_us(self):
        """From the tick's start to new duties on the pins: IMU read, three sensor reads, maths."""
        return self.imu_read_us + 3 * self.read_us + self.compute_us


class AngleSensorModel:
    def __init__(self, params=None, seed=0):
        self.params = (params or AngleSensorParams()).validate()
        p = self.params
        self.cpr = 1 << p.bits if p.fitted else 0
        self._rng = random.Random(seed)
        self._noise = (_NOISE.get(p.kind, 0.0) if p.noise_counts == -1.0 else p.noise_counts)
        self._direction = p.direction
        self._offset = [math.radians(p.mount_offset_deg + 113.0 * k) for k in range(3)]
        self._sample_s = [(p.imu_read_us + (k + 0.5) * p.read_us) * 1e-6 for k in range(3)]

    def read(self, axis, joint_rad, joint_rads):
        """Counts for one axis' sensor at its sample time in this tick, from the joint state at the tick's start."""
        angle = joint_rad + joint_rads * self._sample_s[axis]
        turns = self._direction * (angle + self._offset[axis]) / _TWO_PI
        c = turns * self.cpr + (self._rng.gauss(0.0, self._noise) if self._noise else 0.0)
        v = int(floor(c))  # compiled: a C cast of C floor
        return v % self.cpr
