"""MPU-6050 driver, IMU scaling into the camera frame, and boot calibration.

The driver takes its I2C bus as an argument (anything with
``readfrom_mem_into`` and ``writeto_mem``), so it runs against a fake bus in
tests; only board modules build a real ``machine.I2C``. The rest is pure:
counts in, counts or mdps out, no clock.

    imu = MPU6050(i2c)         # validates arguments, touches nothing
    imu.init()                 # wakes the chip: +-4 g, +-500 deg/s, DLPF 44 Hz
    raw = array('h', 6)
    ok = imu.read_into(raw)    # ax, ay, az, gx, gy, gz counts, no allocation
"""

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]


_ADDR_DEFAULT = const(0x68)
_REG_SMPLRT_DIV = const(0x19)
_REG_CONFIG = const(0x1A)
_REG_GYRO_CONFIG = const(0x1B)
_REG_ACCEL_CONFIG = const(0x1C)
_REG_ACCEL_XOUT_H = const(0x3B)  # 14 bytes: accel xyz, temperature, gyro xyz (big-endian)
_REG_PWR_MGMT_1 = const(0x6B)
_REG_WHO_AM_I = const(0x75)
_WHO_AM_I_VALUE = const(0x68)
_PWR_CLK_PLL_GYRO_X = const(0x01)  # awake, clocked from the gyro PLL (more stable than 8 MHz RC)
_GYRO_FS_500 = const(0x08)
_ACCEL_FS_4G = const(0x08)

ACCEL_LSB_PER_G = const(8192)
GYRO_COUNTS_TO_MDPS_NUM = const(2000)  # mdps = counts * 2000 // 131 (65.5 LSB per deg/s)
GYRO_COUNTS_TO_MDPS_DEN = const(131)
_QUARTER_G = const(2048)  # ACCEL_LSB_PER_G // 4
# How far the gyro's output lags the motion (us) for each DLPF_CFG 0..6: the MPU-6050 register map's table
# for register 26 (CONFIG). The attitude integrated from it lags by as much (VERSION reports it to the host).
GYRO_DELAY_US = (980, 1900, 2800, 4800, 8300, 13400, 18600)


def _i16(buf, i):
    v = (buf[i] << 8) | buf[i + 1]
    return v - 0x10000 if v & 0x8000 else v


class MPU6050:
    """InvenSense MPU-6050 on I2C, read in one 14-byte burst into a preallocated buffer."""

    def __init__(self, i2c, addr=_ADDR_DEFAULT, dlpf=3):
        if addr not in (0x68, 0x69):
            raise ValueError("MPU6050 addr must be 0x68 or 0x69, got %r" % (addr,))
        if not 0 <= dlpf <= 6:
            raise ValueError("MPU6050 dlpf must be 0..6, got %r" % (dlpf,))
        self.i2c = i2c
        self.addr = addr
        self.dlpf = dlpf
        self.delay_us = GYRO_DELAY_US[dlpf]  # what HAL.imu_delay_us reports for this chip
        self._burst = bytearray(14)
        self._one = bytearray(1)

    def _write(self, reg, value):
        self._one[0] = value
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def init(self):
        """Wake the chip and set the ranges the firmware assumes. Return True if it answered."""
        try:
            self.i2c.readfrom_mem_into(self.addr, _REG_WHO_AM_I, self._one)
            if self._one[0] != _WHO_AM_I_VALUE:
                return False
            self._write(_REG_PWR_MGMT_1, _PWR_CLK_PLL_GYRO_X)
            self._write(_REG_SMPLRT_DIV, 0)  # 1 kHz output rate with the DLPF on
            self._write(_REG_CONFIG, self.dlpf)
            self._write(_REG_GYRO_CONFIG, _GYRO_FS_500)
            self._write(_REG_ACCEL_CONFIG, _ACCEL_FS_4G)
        except OSError:
            return False
        return True

    def read_into(self, raw):
        """Fill raw[0:6] with ax, ay, az, gx, gy, gz counts; False on a bus error."""
        buf = self._burst
        try:
            self.i2c.readfrom_mem_into(self.addr, _REG_ACCEL_XOUT_H, buf)
        except OSError:
            return False
        raw[0] = _i16(buf, 0)
        raw[1] = _i16(buf, 2)
        raw[2] = _i16(buf, 4)
        raw[3] = _i16(buf, 8)  # bytes 6-7 are the temperature
        raw[4] = _i16(buf, 10)
        raw[5] = _i16(buf, 12)
        return True


@micropython.native
def to_body(raw, out, mount, off_x, off_y, off_z, scale_q12):
    """Chip counts -> camera forward-right-down frame: out[0:3] accel counts, out[3:6] gyro counts.

    mount 0: chip component side up, x to the lens (chip frame is
    forward-left-up). mount 1: chip upside down, x to the lens (already
    forward-right-down). Accelerometer offset is subtracted and the scale
    (Q12, 4096 = 1.0) applied before the axes are turned.
    """
    ax = ((raw[0] - off_x) * scale_q12) >> 12
    ay = ((raw[1] - off_y) * scale_q12) >> 12
    az = ((raw[2] - off_z) * scale_q12) >> 12
    if mount == 0:
        out[0] = ax
        out[1] = -ay
        out[2] = -az
        out[3] = raw[3]
        out[4] = -raw[4]
        out[5] = -raw[5]
    else:
        out[0] = ax
        out[1] = ay
        out[2] = az
        out[3] = raw[3]
        out[4] = raw[4]
        out[5] = raw[5]


@micropython.viper
def gyro_mdps(body, bias_mdps, out):
    """Body-frame gyro counts (``body[3:6]``, +-500 deg/s range) minus a bias in mdps -> ``out[0:3]`` in mdps."""
    for i in range(3):
        out[i] = (int(body[3 + i]) * GYRO_COUNTS_TO_MDPS_NUM) // GYRO_COUNTS_TO_MDPS_DEN - int(bias_mdps[i])


def gyro_mean_mdps(total_counts, n):
    """The mean of ``n`` gyro samples summing to ``total_counts``, in mdps (a calibrated bias; not per tick)."""
    return (total_counts * GYRO_COUNTS_TO_MDPS_NUM) // (GYRO_COUNTS_TO_MDPS_DEN * n)


class PlausibilityCheck:
    """Whether the IMU has failed, from several samples in a row, not one.

    A stuck bus reads the same six words every time: ``stuck_samples`` of
    them in a row mean a dead IMU. A specific force under 0.25 g is what a
    dead accelerometer reads, but also what a good one reads at the top of a
    running stride (the hand and the gimbal briefly fall freely): only
    ``low_g_us`` of it without a break counts as dead. Until then the tick
    goes on with the gyro (the estimator ignores an accelerometer that is
    far from 1 g anyway), so running no longer turns the motors off.

        check = PlausibilityCheck()
        if check.dead(raw, body, dt_us):   # each tick: the chip's words and the body-frame sample
            ...fault
    """

    def __init__(self, stuck_samples=3, low_g_us=300000):
        if stuck_samples < 1 or low_g_us < 0:
            raise ValueError("stuck_samples >= 1 and low_g_us >= 0 needed, got %r, %r" % (stuck_samples, low_g_us))
        self.stuck_samples = stuck_samples
        self.low_g_us = low_g_us
        self.stuck = 0
        self.low_us = 0

    def reset(self):
        self.stuck = 0
        self.low_us = 0

    @micropython.native
    def dead(self, raw, body, dt_us):
        # a stuck bus: the chip's six words read the same (before any axis is turned or scaled)
        stuck = 0
        if raw[0] == raw[1] == raw[2] == raw[3] == raw[4] == raw[5]:
            stuck = self.stuck + 1
        self.stuck = stuck
        ax = body[0]
        ay = body[1]
        az = body[2]
        low = 0
        # |a| < 0.25 g needs every axis under 2048 counts, so the squares stay within +-2**30
        if (-_QUARTER_G < ax < _QUARTER_G and -_QUARTER_G < ay < _QUARTER_G and -_QUARTER_G < az < _QUARTER_G
                and ax * ax + ay * ay + az * az < _QUARTER_G * _QUARTER_G):
            low = self.low_us
            if low < 0x3FFFFFFF - dt_us:
                low += dt_us
        self.low_us = low
        return stuck >= self.stuck_samples or low >= self.low_g_us


CAL_RUNNING = const(0)
CAL_DONE = const(1)
CAL_MOVED = const(2)


class GyroCalibrator:
    """Gyro bias from ``n_samples`` body-frame samples, refused if the gimbal moved.

    Moved means a gyro axis spread (max - min) above ``still_counts``, or an
    accelerometer axis spread above 0.05 g. ``add()`` returns CAL_RUNNING,
    CAL_DONE (``bias_mdps`` and ``accel_mean`` are valid) or CAL_MOVED (the
    calibrator restarts itself; the caller reports the fault).
    """

    def __init__(self, n_samples, still_counts):
        if n_samples < 1:
            raise ValueError("calibration needs at least 1 sample, got %r" % (n_samples,))
        self.n_samples = n_samples
        self.still_counts = still_counts
        self.accel_still_counts = ACCEL_LSB_PER_G // 20
        self.bias_mdps = [0, 0, 0]
        self.accel_mean = [0, 0, 0]
        self._sum = [0, 0, 0, 0, 0, 0]
        self._lo = [0, 0, 0, 0, 0, 0]
        self._hi = [0, 0, 0, 0, 0, 0]
        self.n = 0

    def reset(self):
        self.n = 0

    @micropython.native
    def add(self, body):
        s = self._sum
        lo = self._lo
        hi = self._hi
        if self.n == 0:
            for i in range(6):
                s[i] = 0
                lo[i] = body[i]
                hi[i] = body[i]
        self.n += 1
        for i in range(6):
            v = body[i]
            s[i] += v
            if v < lo[i]:
                lo[i] = v
            if v > hi[i]:
                hi[i] = v
            limit = self.still_counts if i >= 3 else self.accel_still_counts
            if hi[i] - lo[i] > limit:
                self.n = 0
                return CAL_MOVED
        if self.n < self.n_samples:
            return CAL_RUNNING
        n = self.n
        for i in range(3):
            self.accel_mean[i] = s[i] // n
            self.bias_mdps[i] = gyro_mean_mdps(s[3 + i], n)
        self.n = 0
        return CAL_DONE


def accel_offset_scale(pose_means):
    """Accelerometer offsets (counts) and one scale from six still poses.

    ``pose_means`` holds the mean (x, y, z) chip counts with each axis
    pointing up and then down, in any order. Each axis sees +1 g and -1 g:
    its offset is the midpoint, and the scale maps the average half-span to
    ACCEL_LSB_PER_G. Returns (off_x, off_y, off_z, scale) ready for the
    accel_off_* and accel_scale config keys.
    """
    if len(pose_means) != 6:
        raise ValueError("need 6 poses (each axis up and down), got %d" % len(pose_means))
    offs = []
    spans = 0
    for axis in range(3):
        vals = [p[axis] for p in pose_means]
        hi = max(vals)
        lo = min(vals)
        if hi - lo < ACCEL_LSB_PER_G:
            raise ValueError("axis %d never saw +-1 g (span %d counts): check the poses" % (axis, hi - lo))
        offs.append(int(round((hi + lo) / 2)))
        spans += (hi - lo) / 2
    scale = ACCEL_LSB_PER_G / (spans / 3)
    return offs[0], offs[1], offs[2], scale
