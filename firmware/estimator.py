"""Camera attitude: a Mahony filter on the gravity direction, in integers.

Why this filter: a handheld gimbal has an accelerometer and a gyro but no
magnetometer (motors sit next to the IMU), so only the gravity direction is
observable. The estimator keeps that direction ``d`` (unit "down" vector in
the camera's forward-right-down frame, Q28), rotates it with the gyro every
tick, and pulls it toward the measured one with Mahony's proportional and
integral terms; the integral term learns the gyro bias about the two
horizontal axes (bias about gravity is not observable and comes from the boot
calibration). Yaw is the integral of the exact Z-Y-X yaw rate. This is the
structure BruGi and EvvGC use for the same reason, and it needs only
multiplications: no quaternion renormalisation with division, no floats, so a
tick allocates nothing on MicroPython. Cost and allocation are measured by
``firmware/bench_tick.py`` (see docs/benchmarks.md).

    est = AttitudeEstimator()
    est.set_gains(kp_per_s=1.0, ki_per_s2=0.05, accel_reject_g=0.15)
    est.reset(accel_mean_counts, gyro_bias_mdps)
    est.update(body, dt_us)       # body: ax, ay, az, gx, gy, gz (FRD counts)
    est.angle_udeg                # [yaw, pitch, roll] in micro-degrees
    est.rate_mdps                 # [yaw, pitch, roll] Euler rates, mdps

Pure: time comes in as ``dt_us``; nothing here reads a clock.
"""

import math

from firmware.fixmath import atan2_udeg, isqrt
from firmware.imu import ACCEL_LSB_PER_G

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from firmware.mpcompat import const, micropython  # type: ignore[assignment,no-redef]


_ONE = const(1 << 28)  # Q28 1.0
_H2_MIN = const((1 << 28) // 50)  # cos^2(pitch) floor: the Euler rates blow up near +-82 deg
_H_MIN = const(37962506)  # sqrt(1/50) in Q28
_I_MAX = const(10000000)  # integral term limit: 10 deg/s, in mdps * 1000
# rad (Q28) per (mdps * us), scaled by 2**20
_W_Q28_PER_MDPS_US_Q20 = int(round(math.pi / 180e9 * (1 << 28) * (1 << 20)))
_MDPS_PER_RAD = 57295.77951308232  # mdps per rad/s; only used when gains are set


class AttitudeEstimator:
    def __init__(self):
        self.d = [0, 0, _ONE]  # down vector in the camera frame, Q28
        self.h = _ONE  # |(dy, dz)| = cos(pitch), Q28, kept for the square root's warm start
        self.bias_mdps = [0, 0, 0]  # boot calibration, body x y z
        self.i_corr = [0, 0, 0]  # Mahony integral term, mdps * 1000
        self.body_rate_mdps = [0, 0, 0]  # corrected p, q, r
        self.angle_udeg = [0, 0, 0]  # yaw, pitch, roll
        self.rate_mdps = [0, 0, 0]  # yaw, pitch, roll Euler rates
        self.yaw_ndeg = 0
        self.accel_used = False  # last update applied the accelerometer correction
        self._kp = 0
        self._ki = 0
        self._a2_lo = 0
        self._a2_hi = 0
        self.set_gains(1.0, 0.05, 0.15)

    def set_gains(self, kp_per_s, ki_per_s2, accel_reject_g):
        """Mahony gains, and how far |accel| may stray from 1 g before it is ignored."""
        self._kp = int(kp_per_s * _MDPS_PER_RAD)  # mdps per rad of error
        self._ki = int(ki_per_s2 * _MDPS_PER_RAD)  # mdps per s per rad of error
        lo = int((1.0 - accel_reject_g) * ACCEL_LSB_PER_G)
        hi = int((1.0 + accel_reject_g) * ACCEL_LSB_PER_G)
        self._a2_lo = lo * lo if lo > 0 else 0
        self._a2_hi = hi * hi

    def reset(self, accel_mean, bias_mdps, yaw_udeg=0):
        """Start from a still accelerometer reading (FRD counts) and the calibrated gyro bias."""
        ax = -accel_mean[0]
        ay = -accel_mean[1]
        az = -accel_mean[2]
        n = isqrt(ax * ax + ay * ay + az * az)
        d = self.d
        if n == 0:
            d[0] = 0
            d[1] = 0
            d[2] = _ONE
        else:
            d[0] = (ax << 28) // n
            d[1] = (ay << 28) // n
            d[2] = (az << 28) // n
        for i in range(3):
            self.bias_mdps[i] = bias_mdps[i]
            self.i_corr[i] = 0
        self.h = 0
        self.yaw_ndeg = yaw_udeg * 1000
        self._angles()

    @micropython.native
    def update(self, body, dt_us):
        d = self.d
        # measured down vector = minus the specific force
        ax = -body[0]
        ay = -body[1]
        az = -body[2]
        bias = self.bias_mdps
        # gyro counts -> mdps (65.5 counts per deg/s), inlined from imu.gyro_mdps
        p = (body[3] * 2000) // 131 - bias[0]
        q = (body[4] * 2000) // 131 - bias[1]
        r = (body[5] * 2000) // 131 - bias[2]
        a2 = ax * ax + ay * ay + az * az
        ic = self.i_corr
        self.accel_used = self._a2_lo <= a2 <= self._a2_hi
        if self.accel_used:
            # e = a x d_est: the rotation that would carry the estimate onto the
            # measurement, in rad (Q28) with |a| taken as 1 g (it is within the gate)
            ex = (ay * d[2] - az * d[1]) >> 13
            ey = (az * d[0] - ax * d[2]) >> 13
            ez = (ax * d[1] - ay * d[0]) >> 13
            kp = self._kp
            ki = self._ki
            p += (ex * kp) >> 28
            q += (ey * kp) >> 28
            r += (ez * kp) >> 28
            # a bias correction beyond 10 deg/s is not a bias: stop winding up
            x = ic[0] + (((ex * ki) >> 28) * dt_us) // 1000
            ic[0] = _I_MAX if x > _I_MAX else (-_I_MAX if x < -_I_MAX else x)
            x = ic[1] + (((ey * ki) >> 28) * dt_us) // 1000
            ic[1] = _I_MAX if x > _I_MAX else (-_I_MAX if x < -_I_MAX else x)
            x = ic[2] + (((ez * ki) >> 28) * dt_us) // 1000
            ic[2] = _I_MAX if x > _I_MAX else (-_I_MAX if x < -_I_MAX else x)
        p += ic[0] // 1000
        q += ic[1] // 1000
        r += ic[2] // 1000
        br = self.body_rate_mdps
        br[0] = p
        br[1] = q
        br[2] = r
        # Euler rates of the current estimate (Z-Y-X): with d = (-sin th,
        # sin ph cos th, cos ph cos th) no trigonometry is needed
        dx = d[0]
        dy = d[1]
        dz = d[2]
        h2 = (dy * dy + dz * dz) >> 28
        if h2 < _H2_MIN:
            h2 = _H2_MIN
        h = self.h  # |(dy, dz)| from the last _angles()
        if h < _H_MIN:
            h = _H_MIN
        yaw_rate = (q * dy + r * dz) // h2
        rate = self.rate_mdps
        rate[0] = yaw_rate
        rate[1] = (q * dz - r * dy) // h
        rate[2] = p + ((-dx * yaw_rate) >> 28)
        # fixmath.wrap_ndeg, inlined
        self.yaw_ndeg = (self.yaw_ndeg + yaw_rate * dt_us + 180000000000) % 360000000000 - 180000000000
        # rotate the down vector: d' = d x (w dt), w in rad Q28
        k = _W_Q28_PER_MDPS_US_Q20
        wx = (p * dt_us * k) >> 20
        wy = (q * dt_us * k) >> 20
        wz = (r * dt_us * k) >> 20
        nx = dx + ((dy * wz - dz * wy) >> 28)
        ny = dy + ((dz * wx - dx * wz) >> 28)
        nz = dz + ((dx * wy - dy * wx) >> 28)
        # first-order renormalisation toward |d| = 1
        c = _ONE - ((nx * nx + ny * ny + nz * nz) >> 28)
        d[0] = nx + ((nx * c) >> 29)
        d[1] = ny + ((ny * c) >> 29)
        d[2] = nz + ((nz * c) >> 29)
        self._angles()

    @micropython.native
    def _angles(self):
        d = self.d
        dy = d[1]
        dz = d[2]
        h = isqrt(dy * dy + dz * dz, self.h)
        self.h = h
        ang = self.angle_udeg
        ang[0] = self.yaw_ndeg // 1000
        ang[1] = atan2_udeg(-d[0], h)
        ang[2] = atan2_udeg(dy, dz)
