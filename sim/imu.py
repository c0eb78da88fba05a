"""IMU model: the MPU-6050 counts the firmware reads through ``HAL.imu_read``.

Input is the true angular rate (rad/s) and specific force (m/s^2) in the chip
frame (x lens, y left, z up: firmware/hal.py), straight from MuJoCo's gyro and
accelerometer sensors at the ``imu`` site. Output is ``ax, ay, az, gx, gy, gz``
as int16 counts at +-4 g (8192 LSB/g) and +-500 deg/s (65.5 LSB/(deg/s)).

Error terms, per axis, all seeded (deterministic for a seed):

- the chip's digital low-pass filter (``dlpf_hz``; the firmware's MPU6050 driver
  sets DLPF_CFG 3, about 42 Hz), modelled as a first-order low-pass: it
  delays the signal by about 1 / (2 pi dlpf_hz) and sets the noise bandwidth;
- white noise from the noise density over that bandwidth (pi/2 * dlpf_hz for
  a first-order filter; the Nyquist band when the filter is off);
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
from dataclasses import dataclass

import numpy as np

GRAVITY_MPS2 = 9.80665
ACCEL_LSB_PER_G = 8192.0
GYRO_LSB_PER_DPS = 65.5
_BLOCK = 1024  # samples of noise drawn at once (one numpy call instead of 12 per sample)


@dataclass(frozen=True)
class ImuParams:
    """MPU-6050 datasheet noise densities; biases are assumptions for a factory-trimmed part."""

    sample_hz: float = 1000.0
    dlpf_hz: float = 42.0  # 0 = filter off
    gyro_noise_dps_per_rthz: float = 0.005  # datasheet: rate noise spectral density
    accel_noise_g_per_rthz: float = 400e-6  # datasheet: 400 ug/sqrt(Hz)
    gyro_bias_dps: float = 0.8  # 1-sigma turn-on bias per axis
    accel_bias_g: float = 0.010  # 1-sigma turn-on bias per axis
    gyro_bias_walk_dps_per_rts: float = 0.002  # bias random walk, (deg/s)/sqrt(s)
    accel_bias_walk_g_per_rts: float = 0.0002

    def validate(self):
        if not self.sample_hz > 0:
            raise ValueError("imu.sample_hz = %r: must be positive" % self.sample_hz)
        if not 0 <= self.dlpf_hz < self.sample_hz / 2:
            raise ValueError("imu.dlpf_hz = %r: must be 0 (off) or below half of sample_hz" % self.dlpf_hz)
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
        self._rng = np.random.default_rng(seed)
        self.gyro_bias_dps = [float(v) for v in self._rng.normal(0.0, p.gyro_bias_dps, 3)]
        self.accel_bias_g = [float(v) for v in self._rng.normal(0.0, p.accel_bias_g, 3)]
        self._noise = []
        self._noise_i = _BLOCK
        self._period_s = 1.0 / p.sample_hz
        if p.dlpf_hz > 0:
            band_hz = math.pi / 2 * p.dlpf_hz
            self._alpha = 1.0 - math.exp(-2 * math.pi * p.dlpf_hz * self._period_s)
        else:
            band_hz = p.sample_hz / 2.0
            self._alpha = 1.0
        self._gyro_sigma_dps = p.gyro_noise_dps_per_rthz * math.sqrt(band_hz)
        self._accel_sigma_g = p.accel_noise_g_per_rthz * math.sqrt(band_hz)
        self._filtered = None  # [ax, ay, az in g, gx, gy, gz in deg/s] after the DLPF
        self._next_sample_s = 0.0
        self.counts = [0, 0, int(ACCEL_LSB_PER_G), 0, 0, 0]
        self.samples = 0
        walk_s = math.sqrt(self._period_s)
        # per sample: accel noise, gyro noise, accel bias step, gyro bias step (x, y, z each)
        self._sigmas = np.repeat([self._accel_sigma_g, self._gyro_sigma_dps,
                                  p.accel_bias_walk_g_per_rts * walk_s, p.gyro_bias_walk_dps_per_rts * walk_s], 3)

    def update(self, t_s, gyro_rads, accel_mps2):
        """Take every sample due by ``t_s`` from the current true motion."""
        while self._next_sample_s <= t_s + 1e-12:
            self._sample(gyro_rads, accel_mps2)
            self._next_sample_s += self._period_s

    def _next_noise(self):
        if self._noise_i >= _BLOCK:
            self._noise = (self._rng.standard_normal((_BLOCK, 12)) * self._sigmas).tolist()
            self._noise_i = 0
        n = self._noise[self._noise_i]
        self._noise_i += 1
        return n

    def _sample(self, gyro_rads, accel_mps2):
        n = self._next_noise()
        true = [accel_mps2[0] / GRAVITY_MPS2, accel_mps2[1] / GRAVITY_MPS2, accel_mps2[2] / GRAVITY_MPS2,
                math.degrees(gyro_rads[0]), math.degrees(gyro_rads[1]), math.degrees(gyro_rads[2])]
        f = self._filtered
        if f is None:
            f = self._filtered = true
        else:
            a = self._alpha
            for k in range(6):
                f[k] += a * (true[k] - f[k])
        c = self.counts
        ab = self.accel_bias_g
        gb = self.gyro_bias_dps
        for k in range(3):
            ab[k] += n[6 + k]
            gb[k] += n[9 + k]
            a_g = f[k] + ab[k] + n[k]
            w_dps = f[3 + k] + gb[k] + n[3 + k]
            c[k] = _to_count(a_g, ACCEL_LSB_PER_G)
            c[3 + k] = _to_count(w_dps, GYRO_LSB_PER_DPS)
        self.samples += 1

    def read_into(self, raw):
        c = self.counts
        for k in range(6):
            raw[k] = c[k]
