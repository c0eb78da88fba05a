"""IMU model: the MPU-6050 counts the firmware reads through ``HAL.imu_read``.

Input is the true angular rate (rad/s) and specific force (m/s^2) in the chip
frame (x lens, y left, z up: firmware/hal.py), straight from MuJoCo's gyro and
accelerometer sensors at the ``imu`` site. Output is ``ax, ay, az, gx, gy, gz``
as int16 counts at +-4 g (8192 LSB/g) and +-500 deg/s (65.5 LSB/(deg/s)).

Error terms, per axis, all seeded (deterministic for a seed):

- white noise from the noise density over the Nyquist band of the sample rate;
- a constant turn-on bias (what the firmware's boot calibration removes);
- bias drift as a random walk (what calibration cannot remove);
- quantisation to counts and saturation at full scale;
- the sample rate: a new sample every ``1 / sample_hz``; reads in between see
  the last one (zero-order hold).

    imu = ImuModel(ImuParams(), seed=1)
    imu.update(t_s, gyro_rads, accel_mps2)    # call every physics step
    imu.read_into(raw)                        # raw: array('h', 6)
"""

import math
import random
from dataclasses import dataclass

GRAVITY_MPS2 = 9.80665
ACCEL_LSB_PER_G = 8192.0
GYRO_LSB_PER_DPS = 65.5


@dataclass(frozen=True)
class ImuParams:
    """MPU-6050 datasheet noise densities; biases are assumptions for a factory-trimmed part."""

    sample_hz: float = 1000.0
    gyro_noise_dps_per_rthz: float = 0.005  # datasheet: rate noise spectral density
    accel_noise_g_per_rthz: float = 400e-6  # datasheet: 400 ug/sqrt(Hz)
    gyro_bias_dps: float = 0.8  # 1-sigma turn-on bias per axis
    accel_bias_g: float = 0.010  # 1-sigma turn-on bias per axis
    gyro_bias_walk_dps_per_rts: float = 0.002  # bias random walk, (deg/s)/sqrt(s)
    accel_bias_walk_g_per_rts: float = 0.0002

    def validate(self):
        if not self.sample_hz > 0:
            raise ValueError("imu.sample_hz = %r: must be positive" % self.sample_hz)
        for key in ("gyro_noise_dps_per_rthz", "accel_noise_g_per_rthz", "gyro_bias_dps", "accel_bias_g",
                    "gyro_bias_walk_dps_per_rts", "accel_bias_walk_g_per_rts"):
            if getattr(self, key) < 0:
                raise ValueError("imu.%s = %r: must not be negative" % (key, getattr(self, key)))
        return self


def _to_count(value, lsb_per_unit):
    c = int(round(value * lsb_per_unit))
    return 32767 if c > 32767 else (-32768 if c < -32768 else c)


class ImuModel:
    def __init__(self, params=None, seed=0):
        self.params = (params or ImuParams()).validate()
        p = self.params
        self._rng = random.Random(seed)
        gauss = self._rng.gauss
        self.gyro_bias_dps = [gauss(0.0, p.gyro_bias_dps) for _ in range(3)]
        self.accel_bias_g = [gauss(0.0, p.accel_bias_g) for _ in range(3)]
        nyquist_hz = p.sample_hz / 2.0
        self._gyro_sigma_dps = p.gyro_noise_dps_per_rthz * math.sqrt(nyquist_hz)
        self._accel_sigma_g = p.accel_noise_g_per_rthz * math.sqrt(nyquist_hz)
        self._period_s = 1.0 / p.sample_hz
        self._next_sample_s = 0.0
        self.counts = [0, 0, int(ACCEL_LSB_PER_G), 0, 0, 0]
        self.samples = 0

    def update(self, t_s, gyro_rads, accel_mps2):
        """Take every sample due by ``t_s`` from the current true motion."""
        while self._next_sample_s <= t_s + 1e-12:
            self._sample(gyro_rads, accel_mps2)
            self._next_sample_s += self._period_s

    def _sample(self, gyro_rads, accel_mps2):
        p = self.params
        gauss = self._rng.gauss
        walk_s = math.sqrt(self._period_s)
        c = self.counts
        for k in range(3):
            self.accel_bias_g[k] += gauss(0.0, p.accel_bias_walk_g_per_rts * walk_s)
            self.gyro_bias_dps[k] += gauss(0.0, p.gyro_bias_walk_dps_per_rts * walk_s)
            a_g = accel_mps2[k] / GRAVITY_MPS2 + self.accel_bias_g[k] + gauss(0.0, self._accel_sigma_g)
            w_dps = math.degrees(gyro_rads[k]) + self.gyro_bias_dps[k] + gauss(0.0, self._gyro_sigma_dps)
            c[k] = _to_count(a_g, ACCEL_LSB_PER_G)
            c[3 + k] = _to_count(w_dps, GYRO_LSB_PER_DPS)
        self.samples += 1

    def read_into(self, raw):
        c = self.counts
        for k in range(6):
            raw[k] = c[k]
