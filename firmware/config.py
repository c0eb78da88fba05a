"""Firmware configuration: the one table of keys, validation and the file format.

Every tunable value has a numeric key id (sent in CONFIG_GET/SET/VALUE), a
name, a default, a range and a kind (``K_FLOAT`` or ``K_INT``). The firmware
and the simulator's board set-up (sim/board_config.py) both read this table,
so the ids exist in exactly one place.

Per-axis keys repeat for yaw, pitch and roll: key id = base + 16 * axis, with
bases ``YAW_BASE = 32``, pitch 48, roll 64, and names ``yaw_angle_kp``,
``pitch_angle_kp``, ... ::

    cfg = Config()                              # defaults
    status = cfg.set(KEY_IDS["pitch_rate_kp"], 0.8)   # protocol.ACK_OK or a NACK code
    data = cfg.to_bytes()                       # the file stored on flash
    cfg2, ok = Config.from_bytes(data)          # ok False: corrupt -> defaults

A value is checked against its key's range and kind, then the whole config is
checked for consistency (joint_min < joint_max) on a copy, and only a config
that passes replaces the current one: a rejected SET changes nothing.
"""

import struct

from . import protocol

K_FLOAT = 0
K_INT = 1

DRIVER_BLDC = 0
DRIVER_SERVO = 1
DRIVER_NONE = 2

COMMUTATION_SINE = 0
COMMUTATION_SVPWM = 1

AXIS_KEY_STRIDE = 16
YAW_BASE = 32

# (id, name, default, min, max, kind) for the global keys
_GLOBAL_KEYS = (
    (1, "loop_hz", 1000, 100, 2000, K_INT),
    (2, "telemetry_hz", 50, 0, 200, K_INT),
    (3, "failsafe_ms", 250, 20, 10000, K_INT),
    (4, "calib_ms", 1000, 100, 10000, K_INT),
    (5, "calib_still_dps", 2.0, 0.2, 20.0, K_FLOAT),  # gyro spread allowed while calibrating
    (6, "est_kp", 0.2, 0.0, 20.0, K_FLOAT),  # Mahony proportional gain, 1/s (docs/firmware.md: choosing est_kp)
    (7, "est_ki", 0.05, 0.0, 5.0, K_FLOAT),  # Mahony gyro-bias gain, 1/s^2
    (8, "accel_reject_g", 0.15, 0.01, 1.0, K_FLOAT),  # ignore accel when | |a| - 1 g | is larger
    (9, "imu_mount", 0, 0, 1, K_INT),  # 0 chip up, x to lens; 1 chip upside down, x to lens
    (10, "accel_off_x", 0, -4000, 4000, K_INT),  # counts, subtracted before scaling
    (11, "accel_off_y", 0, -4000, 4000, K_INT),
    (12, "accel_off_z", 0, -4000, 4000, K_INT),
    (13, "accel_scale", 1.0, 0.8, 1.25, K_FLOAT),
    (14, "boot_mode", 3, 0, 5, K_INT),  # mode entered after calibration: 3 follow (power on and go, no host)
    (15, "commutation", 0, 0, 1, K_INT),  # 0 sinusoidal, 1 SVPWM
    (16, "recentre_dps", 30.0, 1.0, 360.0, K_FLOAT),
    (17, "fault_recover_ms", 500, 0, 10000, K_INT),  # IMU healthy this long -> motors back on
    (18, "heartbeat_ms", 1000, 0, 10000, K_INT),  # device heartbeat period, 0 = none
    (19, "follow_tc_s", 0.5, 0.02, 10.0, K_FLOAT),  # pan/follow smoothing time constant
    (20, "handle_ff", 1.0, 0.0, 2.0, K_FLOAT),  # handle-IMU gyro fed forward into the joints (0 = off)
    (21, "rate_deadman_ms", 500, 20, 10000, K_INT),  # a rate SETPOINT runs this long unless renewed
    (22, "light_pin", -1, -1, 48, K_INT),  # fill light PWM pin; -1 = the board's pin map (firmware/boards/)
    (23, "light_pwm_hz", 20000, 100, 40000, K_INT),  # far above a camera's line rate: no banding
    (24, "light_level_1_permille", 200, 0, 1000, K_INT),  # MSG_LIGHT level 1 duty
    (25, "light_level_2_permille", 500, 0, 1000, K_INT),
    (26, "light_level_3_permille", 1000, 0, 1000, K_INT),
    # closed-loop axes: learn and feed forward the torque the handle's acceleration needs (0 = off;
    # firmware/torque_ff.py): the normalised LMS step
    (27, "torque_ff_mu", 0.0, 0.0, 0.05, K_FLOAT),
)

# Settings that may change while the motors are powered: gains, smoothing, timing of
# the link and telemetry. Every other key changes geometry or drive (joint limits, motor
# direction, IMU mount and calibration, pole pairs, power, driver, commutation, loop rate,
# the joint rate and slew limits) and is refused with NACK motors_on until MODE off.
LIVE_TUNABLE = (
    "telemetry_hz", "failsafe_ms", "est_kp", "est_ki", "accel_reject_g", "boot_mode", "recentre_dps",
    "fault_recover_ms", "heartbeat_ms", "follow_tc_s", "handle_ff", "rate_deadman_ms",
    "light_pin", "light_pwm_hz", "light_level_1_permille", "light_level_2_permille", "light_level_3_permille",
    "torque_ff_mu",
    "angle_kp", "rate_kp", "rate_ki", "rate_kd_ms", "rate_ff", "max_rate_dps", "follow_deadband_deg",
)

# (offset, name, default, min, max, kind) for each axis, names prefixed yaw_/pitch_/roll_
_AXIS_KEYS = (
    (0, "angle_kp", 20.0, 0.0, 100.0, K_FLOAT),  # 1/s: angle error -> rate setpoint
    (1, "rate_kp", 0.5, 0.0, 20.0, K_FLOAT),  # joint rate per camera rate error
    (2, "rate_ki", 30.0, 0.0, 500.0, K_FLOAT),  # 1/s
    (3, "rate_kd_ms", 0.0, 0.0, 100.0, K_FLOAT),  # derivative time, ms (on measurement)
    (4, "rate_ff", 1.0, 0.0, 2.0, K_FLOAT),  # share of the host rate fed forward
    (5, "max_rate_dps", 200.0, 1.0, 1000.0, K_FLOAT),  # angle loop output limit
    (6, "effort_limit_dps", 400.0, 1.0, 2000.0, K_FLOAT),  # joint rate limit (full effort)
    (7, "slew_dps2", 20000.0, 10.0, 1000000.0, K_FLOAT),  # joint rate change limit
    (8, "joint_min_deg", -170.0, -180.0, 180.0, K_FLOAT),
    (9, "joint_max_deg", 170.0, -180.0, 180.0, K_FLOAT),
    (10, "driver", DRIVER_BLDC, 0, 2, K_INT),  # 0 BLDC, 1 servo, 2 none
    (11, "pole_pairs", 7, 1, 64, K_INT),
    (12, "power_permille", 300, 0, 1000, K_INT),  # BLDC sine amplitude (power limit)
    (13, "motor_dir", 1, -1, 1, K_INT),  # -1 or 1
    (14, "servo_us_per_deg", 10.0, 1.0, 50.0, K_FLOAT),
    (15, "follow_deadband_deg", 2.0, 0.0, 45.0, K_FLOAT),
)

_AXIS_PREFIX = ("yaw_", "pitch_", "roll_")

# Closed-loop drive keys, per axis: id = FOC_BASE + FOC_STRIDE * axis + offset (docs/firmware.md)
FOC_BASE = 80
FOC_STRIDE = 8
DRIVE_OPEN = 0
DRIVE_FOC = 1
_FOC_KEYS = (
    (0, "drive", DRIVE_OPEN, 0, 1, K_INT),  # 0 open loop (field angle), 1 field-oriented on a rotor sensor
    (1, "sensor", 0, 0, 2, K_INT),  # rotor-angle sensor: 0 none, 1 AS5600 (I2C), 2 AS5048A (SPI)
    (2, "sensor_dir", 0, -1, 1, K_INT),  # found at start-up: sensor counts up (1) or down (-1); 0 = not yet
    (3, "foc_zero", -1, -1, 1535, K_INT),  # found at start-up: electrical zero (1536 per turn); -1 = not yet
    (4, "joint_zero_counts", -1, -1, 16383, K_INT),  # sensor reading at joint 0; -1 = not yet
)


def _build():
    keys = {}
    for k in _GLOBAL_KEYS:
        keys[k[0]] = (k[1], k[2], k[3], k[4], k[5])
    for axis in range(3):
        for off, name, default, lo, hi, kind in _AXIS_KEYS:
            keys[YAW_BASE + AXIS_KEY_STRIDE * axis + off] = (_AXIS_PREFIX[axis] + name, default, lo, hi, kind)
        for off, name, default, lo, hi, kind in _FOC_KEYS:
            keys[FOC_BASE + FOC_STRIDE * axis + off] = (_AXIS_PREFIX[axis] + name, default, lo, hi, kind)
    # per-axis defaults that differ from the shared row
    roll_min = YAW_BASE + 2 * AXIS_KEY_STRIDE + 8
    keys[roll_min] = ("roll_joint_min_deg", -45.0, -180.0, 180.0, K_FLOAT)
    keys[roll_min + 1] = ("roll_joint_max_deg", 45.0, -180.0, 180.0, K_FLOAT)
    pitch_min = YAW_BASE + AXIS_KEY_STRIDE + 8
    keys[pitch_min] = ("pitch_joint_min_deg", -100.0, -180.0, 180.0, K_FLOAT)
    keys[pitch_min + 1] = ("pitch_joint_max_deg", 100.0, -180.0, 180.0, K_FLOAT)
    return keys


# id -> (name, default, min, max, kind)
KEYS = _build()
KEY_IDS = {}
for _id in KEYS:
    KEY_IDS[KEYS[_id][0]] = _id
MAX_KEY = max(KEYS) + 1


def _live(name):
    for prefix in _AXIS_PREFIX:
        if name.startswith(prefix):
            return name[len(prefix):] in LIVE_TUNABLE
    return name in LIVE_TUNABLE


LIVE_KEYS = {}  # key id -> True for the keys CONFIG_SET may change while the motors are on
for _id in KEYS:
    if _live(KEYS[_id][0]):
        LIVE_KEYS[_id] = True


def axis_key(axis, name):
    """Key id of a per-axis key, e.g. axis_key(1, 'rate_kp') -> id of pitch_rate_kp."""
    return KEY_IDS[_AXIS_PREFIX[axis] + name]


_MAGIC = b"OSC1"
_ENTRY = "<Bf"
_ENTRY_LEN = 5


def _stored(key, value):
    """The value as the config holds it: an int, or a float rounded to float32 like the file and wire."""
    if KEYS[key][4] == K_INT:
        return int(value)
    return struct.unpack("<f", struct.pack("<f", value))[0]


def check_value(key, value):
    """protocol.ACK_OK if ``value`` is acceptable for ``key`` on its own, else a NACK code."""
    spec = KEYS.get(key)
    if spec is None:
        return protocol.NACK_UNKNOWN_KEY
    name, _default, lo, hi, kind = spec
    # NaN fails both comparisons, so it is rejected here too
    if not (lo <= value <= hi):
        return protocol.NACK_OUT_OF_RANGE
    if kind == K_INT and value != int(value):
        return protocol.NACK_OUT_OF_RANGE
    if name.endswith("motor_dir") and value == 0:
        return protocol.NACK_OUT_OF_RANGE
    return protocol.ACK_OK


def _consistent(values):
    for axis in range(3):
        if values[axis_key(axis, "joint_min_deg")] >= values[axis_key(axis, "joint_max_deg")]:
            return False
    return True


class Config:
    """A validated set of config values, indexed by key id (``cfg.values[key]``)."""

    def __init__(self, values=None):
        if values is None:
            values = [0.0] * MAX_KEY
            for key in KEYS:
                values[key] = _stored(key, KEYS[key][1])
        self.values = values

    def get(self, name):
        return self.values[KEY_IDS[name]]

    def axis(self, axis, name):
        return self.values[axis_key(axis, name)]

    def copy(self):
        return Config(list(self.values))

    def set(self, key, value):
        """Apply one value if valid; return protocol.ACK_OK or a NACK reason (then nothing changed)."""
        status = check_value(key, value)
        if status != protocol.ACK_OK:
            return status
        trial = list(self.values)
        trial[key] = _stored(key, value)
        if not _consistent(trial):
            return protocol.NACK_OUT_OF_RANGE
        self.values = trial
        return protocol.ACK_OK

    def to_bytes(self):
        """The config file: magic, count, (key u8, value f32) entries, CRC-16 of all before it."""
        out = bytearray(_MAGIC)
        keys = sorted(KEYS)
        out.append(len(keys))
        for key in keys:
            out += struct.pack(_ENTRY, key, self.values[key])
        crc = protocol.crc16(out)
        out.append(crc & 0xFF)
        out.append(crc >> 8)
        return bytes(out)

    @staticmethod
    def from_bytes(data):
        """Parse a config file. Returns (config, ok); a corrupt file gives (defaults, False).

        Keys missing from the file keep their defaults (files from older
        firmware load). Anything else wrong (magic, length, CRC, unknown key,
        bad value, inconsistent joint limits) rejects the whole file.
        """
        cfg = Config()
        if data is None:
            return cfg, True
        try:
            n = len(data)
            if n < len(_MAGIC) + 3 or bytes(data[: len(_MAGIC)]) != _MAGIC:
                return cfg, False
            count = data[len(_MAGIC)]
            end = len(_MAGIC) + 1 + count * _ENTRY_LEN
            if end + 2 != n:
                return cfg, False
            if protocol.crc16(data, 0, end) != (data[end] | (data[end + 1] << 8)):
                return cfg, False
            values = list(cfg.values)
            for i in range(count):
                key, value = struct.unpack_from(_ENTRY, data, len(_MAGIC) + 1 + i * _ENTRY_LEN)
                if check_value(key, value) != protocol.ACK_OK:
                    return cfg, False
                values[key] = _stored(key, value)
            if not _consistent(values):
                return cfg, False
            return Config(values), True
        except Exception:  # noqa: BLE001 - whatever is in the file, boot with defaults
            return Config(), False
