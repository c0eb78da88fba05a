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
``firmware/offboard/bench_tick.py`` (see docs/benchmarks.md).

    est = AttitudeEstimator()
    est.set_gains(kp_per_s=1.0, ki_per_s2=0.05, accel_reject_g=0.15)
    est.reset(accel_mean_counts, gyro_bias_mdps)
    est.update(body, dt_us)       # body: ax, ay, az, gx, gy, gz (FRD counts)
    est.angle_udeg                # [yaw, pitch, roll] in micro-degrees
    est.rate_mdps                 # [yaw, pitch, roll] Euler rates, mdps

Pure: time comes in as ``dt_us``; nothing here reads a clock.
"""

from array import array

from .fixmath import atan2_udeg, isqrt, wrap_udeg
from .imu import ACCEL_LSB_PER_G, gyro_mdps

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]


_ONE = const(0x10000000)  # Q28 1.0 (the down vector's state format)
_H2_MIN = const(5368709)  # 2**28 // 50  # cos^2(pitch) floor, Q28: the Euler rates blow up near +-82 deg
_H19_MIN = const(74146)  # sqrt(1/50) in Q19
_I_MAX = const(10000000)  # integral term limit: 10 deg/s, in mdps * 1000
_W_MAX = const(524287)  # corrected body rates are clamped to +-2**19 mdps (524 deg/s; the gyro ends at 500)
_RATE_MAX = const(4000000)  # Euler rates clamp, mdps (they grow as 1/cos(pitch))
_DT_MAX = const(40000)  # us: longer steps are integrated as 40 ms
_KDT = const(19651)  # rad Q28 per (mdps * us), times 2**22: w = omega * ((dt * _KDT) >> 10) >> 12
_MDPS_PER_RAD = 57295.77951308232  # mdps per rad/s; only used when gains are set
# AttitudeEstimator.packed: the gains and state update() reads and writes, one word each in an array('i')
# read through viper's ptr32 instead of an attribute (a hash lookup) or a list item (~120-150 instructions on
# the unix port) each; the signed words (yaw, the down vector, the integral term) are stored + _OFF (ptr32
# loads are unsigned on 64-bit ports; each of them is within +-2**29)
_E_KP = const(0)  # mdps per rad of error, / 64
_E_KI = const(1)
_E_A2_LO = const(2)  # the accelerometer gate, counts squared
_E_A2_HI = const(3)
_E_H = const(4)  # |(dy, dz)| = cos(pitch), Q14, kept for the square root's warm start
_E_YAW = const(5)  # udeg + _OFF
_E_YAW_FRAC = const(6)  # ndeg below it, 0..999 (yaw integrates mdps * us exactly)
_E_ACCEL_USED = const(7)  # 1: the last update applied the accelerometer correction
_E_D = const(8)  # 8, 9, 10: the down vector, Q28, + _OFF
_E_I = const(11)  # 11, 12, 13: the Mahony integral term, mdps * 1000, + _OFF
_E_WORDS = const(14)
_OFF = const(0x20000000)


def _gain_steps(gain):
    """A Mahony gain in its fixed-point steps (mdps per rad, / 64): a non-zero gain below one step
    (0.00112) is one step, not 0, so a small est_ki still learns the gyro bias instead of silently not."""
    steps = int(round(gain * _MDPS_PER_RAD / 64))
    return 1 if steps == 0 and gain > 0 else steps


class AttitudeEstimator:
    """Units: ``d`` Q28 (1.0 = 2**28), ``h`` = cos(pitch) Q14, rates mdps, angles udeg.

    Every product in ``update`` keeps within +-2**30 (small ints on 32-bit
    MicroPython): the state is Q28, but each product takes a Q14 or Q15
    copy of the vector and splits the other factor where its range needs it.
    """

    def __init__(self):
        self.bias_mdps = [0, 0, 0]  # boot calibration, body x y z
        self._gyro_mdps = [0, 0, 0]  # gyro_mdps' output in update(): the gyro less that bias
        self.angle_udeg = [0, 0, 0]  # yaw, pitch, roll
        self.rate_mdps = [0, 0, 0]  # yaw, pitch, roll Euler rates
        self.packed = array("i", [0] * _E_WORDS)  # the _E_* words above
        p = self.packed
        p[_E_H] = 1 << 14
        p[_E_YAW] = _OFF
        for k in range(3):
            p[_E_D + k] = _OFF
            p[_E_I + k] = _OFF
        p[_E_D + 2] = _ONE + _OFF  # down vector in the camera frame, Q28
        self.set_gains(1.0, 0.05, 0.15)

    @property
    def d(self):
        """The down vector in the camera frame, Q28 (a new list)."""
        return [self.packed[_E_D + k] - _OFF for k in range(3)]

    @property
    def i_corr(self):
        """The Mahony integral term (learnt gyro bias correction), mdps * 1000 (a new list)."""
        return [self.packed[_E_I + k] - _OFF for k in range(3)]

    @property
    def accel_used(self):
        """The last update applied the accelerometer correction."""
        return self.packed[_E_ACCEL_USED] != 0

    @property
    def yaw_udeg(self):
        return self.packed[_E_YAW] - _OFF

    def set_gains(self, kp_per_s, ki_per_s2, accel_reject_g):
        """Mahony gains, and how far |accel| may stray from 1 g before it is ignored."""
        p = self.packed
        # mdps per rad of error, / 64 (so that (error Q14) * gain stays under 2**30)
        p[_E_KP] = _gain_steps(kp_per_s)
        p[_E_KI] = _gain_steps(ki_per_s2)  # mdps per s per rad, / 64
        lo = int((1.0 - accel_reject_g) * ACCEL_LSB_PER_G)
        hi = int((1.0 + accel_reject_g) * ACCEL_LSB_PER_G)
        p[_E_A2_LO] = lo * lo if lo > 0 else 0
        p[_E_A2_HI] = hi * hi

    def reset(self, accel_mean, bias_mdps, yaw_udeg=0):
        """Start from a still accelerometer reading (FRD counts) and the calibrated gyro bias.

        Runs once when calibration ends (not per tick), so big ints are fine here.
        """
        ax = -accel_mean[0]
        ay = -accel_mean[1]
        az = -accel_mean[2]
        n = isqrt(ax * ax + ay * ay + az * az)
        d = [0, 0, _ONE] if n == 0 else [(ax << 28) // n, (ay << 28) // n, (az << 28) // n]
        p = self.packed
        for i in range(3):
            self.bias_mdps[i] = bias_mdps[i]
            p[_E_D + i] = d[i] + _OFF
            p[_E_I + i] = _OFF
        p[_E_YAW] = yaw_udeg + _OFF
        p[_E_YAW_FRAC] = 0
        self.angle_udeg[0] = yaw_udeg
        p[_E_H] = _pitch_roll(d[0], d[1], d[2], 0, self.angle_udeg)

    @micropython.viper
    def update(self, body, dt_us: int):
        # viper: machine-word integers; every value below stays within +-2**30
        # (bench_int31 checks it), so a 32-bit board computes exactly what the
        # 64-bit unix port and CPython compute
        if dt_us > _DT_MAX:
            dt_us = _DT_MAX
        w = ptr32(self.packed)
        dx = w[_E_D] - _OFF
        dy = w[_E_D + 1] - _OFF
        dz = w[_E_D + 2] - _OFF
        # measured down vector = minus the specific force
        ax = 0 - int(body[0])
        ay = 0 - int(body[1])
        az = 0 - int(body[2])
        br = self._gyro_mdps
        gyro_mdps(body, self.bias_mdps, br)
        p = int(br[0])
        q = int(br[1])
        r = int(br[2])
        ix = w[_E_I] - _OFF
        iy = w[_E_I + 1] - _OFF
        iz = w[_E_I + 2] - _OFF
        used = 0
        # |a| <= 2 g whenever it can pass the gate, so the squares stay under 3 * 2**28
        if -16384 <= ax and ax <= 16384 and -16384 <= ay and ay <= 16384 and -16384 <= az and az <= 16384:
            a2 = ax * ax + ay * ay + az * az
            if w[_E_A2_LO] <= a2 and a2 <= w[_E_A2_HI]:
                used = 1
        w[_E_ACCEL_USED] = used
        if used:
            # e = a x d_est: the rotation that would carry the estimate onto the
            # measurement, rad Q28 with |a| taken as 1 g (it is within the gate);
            # d as Q15 so each product is < 2**29 (|a| < 2**14)
            sx = dx >> 13
            sy = dy >> 13
            sz = dz >> 13
            ex = (ay * sz - az * sy) >> 14  # Q14 from here
            ey = (az * sx - ax * sz) >> 14
            ez = (ax * sy - ay * sx) >> 14
            kp = w[_E_KP]
            p += (ex * kp) >> 8
            q += (ey * kp) >> 8
            r += (ez * kp) >> 8
            # integral, mdps * 1000 per tick = (mdps/s) * dt / 1000, dt split in ms and us
            ki = w[_E_KI]
            ms = dt_us // 1000
            us = dt_us - ms * 1000
            k = (ex * ki) >> 8
            ix += k * ms + (k * us) // 1000
            k = (ey * ki) >> 8
            iy += k * ms + (k * us) // 1000
            k = (ez * ki) >> 8
            iz += k * ms + (k * us) // 1000
            # a bias correction beyond 10 deg/s is not a bias: stop winding up
            ix = _I_MAX if ix > _I_MAX else (-_I_MAX if ix < -_I_MAX else ix)
            iy = _I_MAX if iy > _I_MAX else (-_I_MAX if iy < -_I_MAX else iy)
            iz = _I_MAX if iz > _I_MAX else (-_I_MAX if iz < -_I_MAX else iz)
            w[_E_I] = ix + _OFF
            w[_E_I + 1] = iy + _OFF
            w[_E_I + 2] = iz + _OFF
        p += ix // 1000
        q += iy // 1000
        r += iz // 1000
        p = _W_MAX if p > _W_MAX else (-_W_MAX if p < -_W_MAX else p)
        q = _W_MAX if q > _W_MAX else (-_W_MAX if q < -_W_MAX else q)
        r = _W_MAX if r > _W_MAX else (-_W_MAX if r < -_W_MAX else r)
        # Euler rates of the current estimate (Z-Y-X): with d = (-sin th,
        # sin ph cos th, cos ph cos th) no trigonometry is needed.
        # yaw = (q dy + r dz) / cos^2, pitch = (q dz - r dy) / cos: d in Q14,
        # the rates split at 2**5, the division in two steps by a Q19 divisor.
        xq = dx >> 14
        yq = dy >> 14
        zq = dz >> 14
        qh = q >> 5
        ql = q & 31
        rh = r >> 5
        rl = r & 31
        h2 = (yq * yq + zq * zq) >> 9  # cos^2(pitch), Q19
        if h2 < (_H2_MIN >> 9):
            h2 = _H2_MIN >> 9
        n = qh * yq + rh * zq
        y1 = n // h2
        yaw_rate = (y1 << 10) + (((n - y1 * h2) << 10) + ((ql * yq + rl * zq) << 5)) // h2
        h = w[_E_H] << 5  # |(dy, dz)| from the last _pitch_roll(), Q19
        if h < _H19_MIN:
            h = _H19_MIN
        n = qh * zq - rh * yq
        y1 = n // h
        pitch_rate = (y1 << 10) + (((n - y1 * h) << 10) + ((ql * zq - rl * yq) << 5)) // h
        if yaw_rate > _RATE_MAX:
            yaw_rate = _RATE_MAX
        elif yaw_rate < -_RATE_MAX:
            yaw_rate = -_RATE_MAX
        if pitch_rate > _RATE_MAX:
            pitch_rate = _RATE_MAX
        elif pitch_rate < -_RATE_MAX:
            pitch_rate = -_RATE_MAX
        rate = self.rate_mdps
        rate[0] = yaw_rate
        rate[1] = pitch_rate
        # roll = p - sin(th) * yaw_rate: -dx (Q14) times yaw_rate split at 2**10
        n = 0 - xq
        x = p + ((n * (yaw_rate >> 10) + ((n * (yaw_rate & 1023)) >> 10)) >> 4)
        rate[2] = _RATE_MAX if x > _RATE_MAX else (-_RATE_MAX if x < -_RATE_MAX else x)
        # yaw += yaw_rate * dt (ndeg), kept as udeg + ndeg remainder: exact
        x = yaw_rate // 1000
        f = w[_E_YAW_FRAC] + (yaw_rate - x * 1000) * dt_us
        y = (w[_E_YAW] - _OFF) + x * dt_us + f // 1000
        w[_E_YAW_FRAC] = f % 1000
        y = int(wrap_udeg(y))
        w[_E_YAW] = y + _OFF
        # rotate the down vector: d' = d + d x w, w = omega * dt in rad Q28
        # (omega split at 2**10 so each product with kdt < 2**20 stays < 2**30)
        k = (dt_us * _KDT) >> 10
        wx = ((p >> 10) * k + (((p & 1023) * k) >> 10)) >> 2
        wy = ((q >> 10) * k + (((q & 1023) * k) >> 10)) >> 2
        wz = ((r >> 10) * k + (((r & 1023) * k) >> 10)) >> 2
        # d (Q14 copy: xq yq zq) x w (split at 2**14), Q28
        hx = wx >> 14
        hy = wy >> 14
        hz = wz >> 14
        wx &= 16383
        wy &= 16383
        wz &= 16383
        nx = dx + yq * hz - zq * hy + ((yq * wz - zq * wy) >> 14)
        ny = dy + zq * hx - xq * hz + ((zq * wx - xq * wz) >> 14)
        nz = dz + xq * hy - yq * hx + ((xq * wy - yq * wx) >> 14)
        # first-order renormalisation toward |d| = 1: |n|^2 in Q28 from
        # 14-bit halves, then n += n * (1 - |n|^2) / 2 with the factor split
        hx = nx >> 14
        hy = ny >> 14
        hz = nz >> 14
        c = _ONE - (hx * hx + hy * hy + hz * hz) - ((hx * (nx & 16383) + hy * (ny & 16383) + hz * (nz & 16383)) >> 13)
        k = c >> 14
        c &= 16383
        dx = nx + ((hx * k + ((hx * c) >> 14)) >> 1)
        dy = ny + ((hy * k + ((hy * c) >> 14)) >> 1)
        dz = nz + ((hz * k + ((hz * c) >> 14)) >> 1)
        w[_E_D] = dx + _OFF
        w[_E_D + 1] = dy + _OFF
        w[_E_D + 2] = dz + _OFF
        ang = self.angle_udeg
        ang[0] = y
        w[_E_H] = int(_pitch_roll(dx, dy, dz, w[_E_H], ang))


@micropython.viper
def _pitch_roll(dx: int, dy: int, dz: int, h: int, ang) -> int:
    """Pitch and roll (udeg) of the down vector (Q28) into ``ang[1:3]``; returns h = cos(pitch), Q14.

    ``h`` in is last tick's, the square root's warm start. A function of the
    vector, not a method: the tick passes the components it already holds
    (viper: values within +-2**30).
    """
    yq = dy >> 14
    zq = dz >> 14
    n = yq * yq + zq * zq
    # |(dy, dz)| moves slowly: last tick's root is often still the floor root, and then no call is needed
    if h * h > n or (h + 1) * (h + 1) <= n:
        h = int(isqrt(n, h))
    # atan2 is scale-free: Q19 arguments keep its division under 2**30
    ang[1] = atan2_udeg(0 - (dx >> 9), h << 5)
    ang[2] = atan2_udeg(dy >> 9, dz >> 9)
    return h
