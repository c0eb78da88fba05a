# cython: boundscheck=False, wraparound=False, initializedcheck=False
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

Compiled with the simulator's other per-tick models in the ``compiled``
firmware mode (sim/lockstep.py; its C types are in imu.pxd).
"""

import math
from array import array
from dataclasses import dataclass

import cython
import numpy as np

if not cython.compiled:
    from math import floor as ifloor  # compiled: imu.pxd's C floor cast to a long (math.floor's int, unboxed)

GRAVITY_MPS2 = 9.80665
ACCEL_LSB_PER_G = 8192.0
GYRO_LSB_PER_DPS = 65.5
_BLOCK = 1024  # samples of noise and bias drift drawn at once (numpy), not per sample


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
    # a second MPU-6050 on the handle (firmware HAL handle_imu_read), same part and noise model,
    # its own seeded errors; false = not fitted (the HAL reports it missing, as on a plain board)
    handle_imu: bool = True

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


# true value -> counts: accelerometer m/s^2 -> LSB, gyro rad/s -> LSB
_ACCEL_COUNTS_PER_MPS2 = ACCEL_LSB_PER_G / GRAVITY_MPS2
_GYRO_COUNTS_PER_RADS = GYRO_LSB_PER_DPS * 180.0 / math.pi


class ImuModel:
    def __init__(self, params=None, seed=0):
        self.params = (params or ImuParams()).validate()
        p = self.params
        self._rng = np.random.default_rng(seed)
        self._bias0 = np.concatenate((self._rng.normal(0.0, p.accel_bias_g, 3),
                                      self._rng.normal(0.0, p.gyro_bias_dps, 3)))  # g, g, g, dps, dps, dps
        self._errors = None  # a block of samples' error terms (bias + noise + 0.5), in counts
        self._bias_path = None
        self._error_i = _BLOCK
        self._period_s = 1.0 / p.sample_hz
        if p.dlpf_hz > 0:
            band_hz = math.pi / 2 * p.dlpf_hz
            self._alpha = 1.0 - math.exp(-2 * math.pi * p.dlpf_hz * self._period_s)
        else:
            band_hz = p.sample_hz / 2.0
            self._alpha = 1.0
        self._gyro_sigma_dps = p.gyro_noise_dps_per_rthz * math.sqrt(band_hz)
        self._accel_sigma_g = p.accel_noise_g_per_rthz * math.sqrt(band_hz)
        # ax, ay, az, gx, gy, gz after the DLPF, in counts (unrounded); a list interpreted (cheaper to index),
        # an array compiled (a typed view of it)
        self._filtered = array("d", [0.0] * 6) if cython.compiled else [0.0] * 6
        self._started = False  # the filter starts from the first sample
        self._next_sample_s = 0.0
        self.counts = array("h", [0, 0, int(ACCEL_LSB_PER_G), 0, 0, 0])  # int16, as the chip's registers
        self._counts = self.counts  # compiled: a typed view of it, for the per-sample stores
        self.samples = 0
        walk_s = math.sqrt(self._period_s)
        lsb = np.repeat([ACCEL_LSB_PER_G, GYRO_LSB_PER_DPS], 3)
        # per sample: white noise (accel x y z, gyro x y z) and bias random-walk steps, in counts
        self._noise_sigma = np.repeat([self._accel_sigma_g, self._gyro_sigma_dps], 3) * lsb
        self._walk_sigma = np.repeat([p.accel_bias_walk_g_per_rts * walk_s,
                                      p.gyro_bias_walk_dps_per_rts * walk_s], 3) * lsb
        self._bias_counts = self._bias0 * lsb  # the bias after the last precomputed sample

    @property
    def accel_bias_g(self):
        """Current accelerometer bias (g) of each axis, turn-on bias plus drift so far."""
        return [float(v) for v in self._bias_now()[0:3] / ACCEL_LSB_PER_G]

    @property
    def gyro_bias_dps(self):
        """Current gyro bias (deg/s) of each axis, turn-on bias plus drift so far."""
        return [float(v) for v in self._bias_now()[3:6] / GYRO_LSB_PER_DPS]

    def _bias_now(self):
        if self._bias_path is None:
            return self._bias_counts
        # bias of the last sample taken: the block's bias path up to it
        return self._bias_path[max(0, self._error_i - 1)]

    @property
    def delay_s(self):
        """How far the counts lag the true motion at a steady rate: the DLPF's delay, T / (e^(2 pi f T) - 1) for
        this sampled first-order filter (1 / (2 pi f) less half a sample, 3.3 ms at 42 Hz); 0 with it off."""
        if self.params.dlpf_hz <= 0:
            return 0.0
        return self._period_s / (math.exp(2 * math.pi * self.params.dlpf_hz * self._period_s) - 1.0)

    def update(self, t_s, gyro_rads, accel_mps2):
        """Take every sample due by ``t_s`` from the current true motion."""
        self.update_at(t_s, np.array([gyro_rads[0], gyro_rads[1], gyro_rads[2],
                                      accel_mps2[0], accel_mps2[1], accel_mps2[2]], dtype=float), 0, 3)

    def update_at(self, t_s, sens, gyro_at, accel_at):
        """:meth:`update` from one array of sensor values: the gyro's at ``gyro_at``, the accelerometer's at
        ``accel_at`` (the world passes MuJoCo's whole sensordata, as a list or, compiled, a typed view)."""
        while self._next_sample_s <= t_s + 1e-12:
            self._sample(sens, gyro_at, accel_at)
            self._next_sample_s += self._period_s

    def _next_errors(self):
        # The error terms do not depend on the motion, so a block of samples' worth is drawn at
        # once: bias (turn-on + random walk) plus white noise, per axis, in counts.
        draws = self._rng.standard_normal((_BLOCK, 12))
        path = self._bias_counts + np.cumsum(draws[:, 6:12] * self._walk_sigma, axis=0)
        self._bias_counts = path[-1].copy()
        self._bias_path = path
        errors = path + draws[:, 0:6] * self._noise_sigma + 0.5  # + 0.5: floor rounds
        # compiled: a typed view of the array; interpreted: lists of floats, cheaper to index there
        self._errors = errors if cython.compiled else errors.tolist()
        self._error_i = 0

    def _sample(self, sens, g, a):
        # once per simulated millisecond per IMU: unrolled float maths (C doubles when compiled)
        if self._error_i >= _BLOCK:
            self._next_errors()
        e = self._errors[self._error_i]
        self._error_i += 1
        ka = _ACCEL_COUNTS_PER_MPS2
        kg = _GYRO_COUNTS_PER_RADS
        f = self._filtered
        if not self._started:
            self._started = True
            f[0] = sens[a] * ka
            f[1] = sens[a + 1] * ka
            f[2] = sens[a + 2] * ka
            f[3] = sens[g] * kg
            f[4] = sens[g + 1] * kg
            f[5] = sens[g + 2] * kg
        else:
            al = self._alpha
            f[0] += al * (sens[a] * ka - f[0])
            f[1] += al * (sens[a + 1] * ka - f[1])
            f[2] += al * (sens[a + 2] * ka - f[2])
            f[3] += al * (sens[g] * kg - f[3])
            f[4] += al * (sens[g + 1] * kg - f[4])
            f[5] += al * (sens[g + 2] * kg - f[5])
        c = self._counts
        for k in range(6):
            v = ifloor(f[k] + e[k])
            c[k] = 32767 if v > 32767 else (-32768 if v < -32768 else v)
        self.samples += 1

    def read_into(self, raw):
        """The latest counts into ``raw`` (an array('h') of 6, as the firmware's HAL.imu_read fills)."""
        raw[0:6] = self.counts  # one array slice copy (a typed view of raw would cost a memoryview a call)
