"""A small rigid-body gimbal plant with the HAL interface, for tests and benchmarks (not flashed).

Three decoupled axes. The handle moves along a prescribed path (radians);
each camera axis is an inertia driven only through its motor, so a handle
jerk reaches the camera only through the motor's magnetic "spring": BLDC
torque = k * amplitude * sin(pole_pairs * (field_mech - joint)), minus
viscous damping on the joint. A servo is a stiff first-order follower. The
IMU is synthesised from the camera's Euler angles and rates in the MPU-6050
chip frame (default mount), with a constant gyro bias and deterministic
noise, so the same run gives the same bytes on CPython and MicroPython.

With ``handle_imu=True`` a second MPU-6050 sits on the handle
(``handle_imu_read``): its gyro from the handle path's rates, its
accelerometer from gravity at the handle's pitch and roll, each with a
constant bias.

It runs on MicroPython too (floats are fine here: it is the world, not the
firmware), so closed-loop tests run on the real VM.

    hal = PlantHAL()
    g = Gimbal(hal)
    for k in range(3000):
        hal.step(g.period_us)       # advance the world, refresh the IMU sample
        g.tick(hal.now_us)
"""

import math

from ..config import KEY_IDS, Config
from ..hal import BOARD_SIM, HAL
from ..motor import field_amplitude, field_angle_rad
from ..protocol import MODE_LOCK

try:
    import micropython
except ImportError:  # CPython
    from ..mpcompat import micropython, ptr16  # type: ignore[assignment,no-redef]

G_COUNTS = 8192.0
GYRO_COUNTS_PER_RAD_S = 65.5 * 180.0 / math.pi


def heap_per_tick(hal, gimbal, ticks):
    """Bytes ``gimbal.tick`` allocates over ``ticks`` plant steps (MicroPython's gc.mem_alloc, collected
    before each tick so only the tick's own allocations count)."""
    import gc

    total = 0
    for _ in range(ticks):
        hal.step(gimbal.period_us)
        gc.collect()
        before = gc.mem_alloc()
        gimbal.tick(hal.now_us)
        total += gc.mem_alloc() - before
    return total


def lock_config(cfg=None):
    """``cfg`` (default: the defaults) booting into MODE_LOCK, for tests of pure stabilisation.

    The firmware boots into follow (power on and go); a test that measures how
    still the camera stays against a wobbling handle wants lock instead.
    """
    cfg = Config() if cfg is None else cfg
    cfg.set(KEY_IDS["boot_mode"], MODE_LOCK)
    return cfg


class PlantHAL(HAL):
    board_id = BOARD_SIM

    def __init__(self, pole_pairs=7, handle_path=None, gyro_bias_counts=(12, -7, 5), noise_counts=2,
                 stiffness_nm_per_rad=0.6, inertia_kgm2=2e-4, damping_nms=0.01, start_angles=(0.0, 0.0, 0.0),
                 handle_imu=False):
        self.pole_pairs = pole_pairs
        self.handle_path = handle_path  # f(t_s, out3) -> handle yaw, pitch, roll (rad)
        self.bias = gyro_bias_counts
        self.noise = noise_counts
        self.k = stiffness_nm_per_rad
        self.j = inertia_kgm2
        self.b = damping_nms
        self.now_us = 0
        self.handle = [0.0, 0.0, 0.0]
        self.handle_rate = [0.0, 0.0, 0.0]
        self.cam = list(start_angles)  # camera Euler angles yaw, pitch, roll (rad)
        self.cam_rate = [0.0, 0.0, 0.0]
        self.duty = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]  # last BLDC duties per axis
        self.bldc_seen = [False, False, False]
        self.servo_us = [0, 0, 0]  # last servo pulse per axis, 0 = none
        self.light_fitted = True  # False: a board without a fill light
        self.light = [-2, 0, 0]  # the fill light's last (pin, freq_hz, duty_u16); pin -2: never written
        self.light_writes = 0
        self.enabled = False
        self.sample = [0, 0, 8192, 0, 0, 0]
        self.handle_imu_fitted = handle_imu
        self.handle_sample = [0, 0, 8192, 9, -4, 6]  # chip frame (forward-left-up), gyro biases 9, -4, 6
        self.imu_fail = False
        self.rx = bytearray()
        self._rx_pos = 0
        self.tx = bytearray()
        self.tx_bytes = 0
        self.capture_tx = True  # False: count only (benchmarks; the copy would allocate)
        self.stored = None
        self._rng = 12345
        self._tmp = [0.0, 0.0, 0.0]
        self.sensor_bits = 0  # 14: an ideal AS5048A on every joint (angle_read), 0: none
        self.angle_counts = [-1, -1, -1]
        self._synth()

    # --- HAL (native like a board's driver code, so benchmarks time the firmware) ---
    @micropython.native
    def imu_read(self, raw):
        if self.imu_fail:
            return False
        s = self.sample
        for i in range(6):
            raw[i] = s[i]
        return True

    @micropython.native
    def handle_imu_read(self, raw):
        if not self.handle_imu_fitted:
            return False
        s = self.handle_sample
        for i in range(6):
            raw[i] = s[i]
        return True

    @micropython.native
    def angle_read(self, axis):
        return self.angle_counts[axis]  # sampled by step(): no float work inside the firmware's tick

    @micropython.viper
    def angle_read_axes(self, mask: int, counts):
        a = self.angle_counts
        for i in range(3):
            if (mask >> i) & 1:
                counts[i] = a[i]

    def motors_enable(self, on):
        self.enabled = bool(on)

    def light_write(self, pin, freq_hz, duty_u16):
        if not self.light_fitted:
            return False
        self.light[0] = pin
        self.light[1] = freq_hz
        self.light[2] = duty_u16
        self.light_writes += 1
        return True

    # outputs are stored as ints (no allocation inside the measured tick) and
    # turned into torques by step()
    @micropython.native
    def bldc_write(self, axis, a, b, c):
        d = self.duty[axis]
        d[0] = a
        d[1] = b
        d[2] = c
        self.bldc_seen[axis] = True

    @micropython.viper
    def bldc_write_axes(self, mask: int, duties):
        src = ptr16(duties)
        out = self.duty
        seen = self.bldc_seen
        for i in range(3):
            if (mask >> i) & 1:
                d = out[i]
                k = 3 * i
                d[0] = src[k]
                d[1] = src[k + 1]
                d[2] = src[k + 2]
                seen[i] = True

    def servo_write(self, axis, pulse_us):
        self.servo_us[axis] = pulse_us

    @micropython.native
    def serial_read_into(self, buf):
        rx = self.rx
        pos = self._rx_pos
        n = len(rx) - pos
        if n <= 0:
            return 0
        if n > len(buf):
            n = len(buf)
        for i in range(n):
            buf[i] = rx[pos + i]
        self._rx_pos = pos + n
        return n

    def send_to_firmware(self, data):
        """Queue bytes for the firmware's next serial_read_into (call between ticks)."""
        if self._rx_pos >= len(self.rx):
            self.rx = bytearray(data)
            self._rx_pos = 0
        else:
            self.rx += data

    def serial_write(self, data):
        self.tx_bytes += len(data)
        if self.capture_tx:
            self.tx += data

    def config_load(self):
        return self.stored

    def config_save(self, data):
        self.stored = bytes(data)
        return True

    def ticks_us(self):
        return self.now_us

    def sleep_us(self, us):
        self.step(us)

    # --- the world ---------------------------------------------------------------
    def joint(self, i):
        d = self.cam[i] - self.handle[i]
        return math.atan2(math.sin(d), math.cos(d))

    def step(self, dt_us, substeps=4):
        h = dt_us * 1e-6 / substeps
        fields = []
        for i in range(3):
            d = self.duty[i]
            fields.append((field_angle_rad(d[0], d[1], d[2]), field_amplitude(d[0], d[1], d[2])))
        for _ in range(substeps):
            t = self.now_us * 1e-6
            if self.handle_path is not None:
                prev = list(self.handle)
                self.handle_path(t + h, self.handle)
                for i in range(3):
                    self.handle_rate[i] = (self.handle[i] - prev[i]) / h
            for i in range(3):
                self._axis(i, h, fields[i])
            self.now_us += dt_us / substeps
        self.now_us = int(round(self.now_us))
        self._synth()

    def _axis(self, i, h, field):
        joint = self.joint(i)
        joint_rate = self.cam_rate[i] - self.handle_rate[i]
        torque = -self.b * joint_rate
        if self.enabled and self.servo_us[i]:
            # a servo holds its horn position stiffly (10 us per degree)
            torque += 40.0 * self.k * (math.radians((self.servo_us[i] - 1500) / 10.0) - joint)
        elif self.enabled and self.bldc_seen[i]:
            angle, amp = field
            torque += self.k * amp * math.sin(angle - self.pole_pairs * joint)
        self.cam_rate[i] += torque / self.j * h
        self.cam[i] += self.cam_rate[i] * h

    def _noise(self):
        self._rng = (self._rng * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._rng >> 16) % (2 * self.noise + 1) - self.noise if self.noise else 0

    def _synth(self):
        yaw, pitch, roll = self.cam
        dyaw, dpitch, droll = self.cam_rate
        sp, cp = math.sin(pitch), math.cos(pitch)
        sr, cr = math.sin(roll), math.cos(roll)
        # specific force (FRD) = -g * down; chip frame (forward-left-up) flips y and z
        fx = sp * G_COUNTS
        fy = -sr * cp * G_COUNTS
        fz = -cr * cp * G_COUNTS
        p = droll - dyaw * sp
        q = dpitch * cr + dyaw * sr * cp
        r = -dpitch * sr + dyaw * cr * cp
        s = self.sample
        s[0] = self._clip(fx + self._noise())
        s[1] = self._clip(-fy + self._noise())
        s[2] = self._clip(-fz + self._noise())
        s[3] = self._clip(p * GYRO_COUNTS_PER_RAD_S + self.bias[0] + self._noise())
        s[4] = self._clip(-q * GYRO_COUNTS_PER_RAD_S + self.bias[1] + self._noise())
        s[5] = self._clip(-r * GYRO_COUNTS_PER_RAD_S + self.bias[2] + self._noise())
        if self.sensor_bits:
            cpr = 1 << self.sensor_bits
            for i in range(3):
                self.angle_counts[i] = int(math.floor(self.joint(i) / (2 * math.pi) * cpr)) % cpr
        if self.handle_imu_fitted:
            # the handle's own IMU: gravity at its pitch and roll, its rates (yaw, pitch, roll) in the chip frame
            _yaw, pitch, roll = self.handle
            hr = self.handle_rate
            h = self.handle_sample
            h[0] = self._clip(math.sin(pitch) * G_COUNTS)
            h[1] = self._clip(math.sin(roll) * math.cos(pitch) * G_COUNTS)
            h[2] = self._clip(math.cos(roll) * math.cos(pitch) * G_COUNTS)
            h[3] = int(hr[2] * GYRO_COUNTS_PER_RAD_S) + 9  # roll about x
            h[4] = -int(hr[1] * GYRO_COUNTS_PER_RAD_S) - 4  # pitch up turns about -y
            h[5] = -int(hr[0] * GYRO_COUNTS_PER_RAD_S) + 6  # yaw right turns about -z

    @staticmethod
    def _clip(v):
        v = int(round(v))
        return 32767 if v > 32767 else (-32768 if v < -32768 else v)
