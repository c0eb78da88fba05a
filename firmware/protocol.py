"""OpenSteady wire protocol: framing, CRC and message layouts (MicroPython subset).

One module serves the firmware, the host and the simulator, so the bytes on
the wire have exactly one definition. docs/protocol.md is the spec; the golden
vectors there are checked by tests/test_protocol.py on CPython and on the real
MicroPython unix port.

Frame (all multi-byte fields little-endian)::

    0xA5 0x5A | LEN | SEQ | MSG_ID | payload (LEN bytes) | CRC16 lo | CRC16 hi

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)
over LEN, SEQ, MSG_ID and the payload.

Usage, host side (allocates freely)::

    payload = protocol.pack(protocol.MSG_SETPOINT, flags, yaw, pitch, roll)  # FIELDS order
    frame = protocol.encode(protocol.MSG_SETPOINT, seq, payload)
    parser = protocol.Parser()
    for b in data:
        if parser.feed(b) >= 0:
            fields = protocol.decode(parser.msg_id, parser.payload())

Firmware side (allocates nothing per byte): call ``feed()`` per byte, read the
payload with ``parser.buf`` at ``PAYLOAD_OFFSET`` and the ``get_i16``/``get_u16``
helpers, and encode replies with ``encode_into()`` into a preallocated buffer.
"""

import struct

try:
    import micropython
    from micropython import const
except ImportError:  # CPython: the compiler directives become no-ops
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]


PROTOCOL_VERSION = const(5)  # 2: TUNE and TUNE_STATUS; 3: TELEMETRY carries the device time t_us; 4: LIGHT;
# 5: VERSION carries imu_delay_us

SYNC0 = const(0xA5)
SYNC1 = const(0x5A)
HEADER_LEN = const(5)  # sync0, sync1, len, seq, msg_id
PAYLOAD_OFFSET = const(5)
CRC_LEN = const(2)
OVERHEAD = const(7)  # header + CRC
MAX_PAYLOAD = const(40)  # the length guard: a longer LEN byte is garbage
MAX_FRAME = const(47)

# --- message ids -----------------------------------------------------------
MSG_HEARTBEAT = const(0x01)  # both ways
MSG_VERSION_REQUEST = const(0x02)  # host -> device
MSG_VERSION = const(0x03)  # device -> host
MSG_SETPOINT = const(0x10)  # host -> device
MSG_MODE = const(0x20)  # host -> device
MSG_TELEMETRY = const(0x30)  # device -> host
MSG_CONFIG_GET = const(0x40)  # host -> device
MSG_CONFIG_SET = const(0x41)  # host -> device
MSG_CONFIG_VALUE = const(0x42)  # device -> host, answer to GET and SET
MSG_CONFIG_SAVE = const(0x43)  # host -> device: write config to flash
MSG_ACK = const(0x44)  # device -> host: status 0 = ack, else nack reason
MSG_FAULT = const(0x50)  # device -> host
MSG_TUNE = const(0x60)  # host -> device: start a relay auto-tune on one axis
MSG_TUNE_STATUS = const(0x61)  # device -> host: its progress and result
MSG_LIGHT = const(0x70)  # host -> device: the fill light's level (0 off, 1..3)

# Payload layouts. Units are in the field names: cdeg = 0.01 deg,
# cdps = 0.01 deg/s, permille = 1/1000 of full effort. int16 fields saturate.
FORMATS = {
    MSG_HEARTBEAT: "<BI",
    MSG_VERSION_REQUEST: "<B",
    MSG_VERSION: "<BBBBBHH",
    MSG_SETPOINT: "<Bhhh",
    MSG_MODE: "<B",
    MSG_TELEMETRY: "<BBHhhhhhhhhhhhhHI",
    MSG_CONFIG_GET: "<B",
    MSG_CONFIG_SET: "<Bf",
    MSG_CONFIG_VALUE: "<Bf",
    MSG_CONFIG_SAVE: "<B",
    MSG_ACK: "<BBB",
    MSG_FAULT: "<HBh",
    MSG_TUNE: "<BBHH",
    MSG_TUNE_STATUS: "<BBBBHffff",
    MSG_LIGHT: "<B",
}

FIELDS = {
    MSG_HEARTBEAT: ("role", "uptime_ms"),
    MSG_VERSION_REQUEST: ("protocol_version",),
    MSG_VERSION: ("protocol_version", "fw_major", "fw_minor", "fw_patch", "board_id", "capabilities", "imu_delay_us"),
    MSG_SETPOINT: ("flags", "yaw", "pitch", "roll"),
    MSG_MODE: ("mode",),
    MSG_TELEMETRY: (
        "mode", "state_flags", "fault_flags",
        "yaw_cdeg", "pitch_cdeg", "roll_cdeg",
        "yaw_rate_cdps", "pitch_rate_cdps", "roll_rate_cdps",
        "yaw_joint_cdeg", "pitch_joint_cdeg", "roll_joint_cdeg",
        "yaw_effort_permille", "pitch_effort_permille", "roll_effort_permille",
        "loop_time_us", "t_us",
    ),
    MSG_CONFIG_GET: ("key",),
    MSG_CONFIG_SET: ("key", "value"),
    MSG_CONFIG_VALUE: ("key", "value"),
    MSG_CONFIG_SAVE: ("reserved",),
    MSG_ACK: ("msg_id", "seq", "status"),
    MSG_FAULT: ("fault_flags", "code", "detail"),
    MSG_TUNE: ("axis", "rule", "relay_permille", "hyst_cdps"),
    MSG_TUNE_STATUS: ("axis", "state", "reason", "cycles", "pu_ms", "ku", "angle_kp", "rate_kp", "rate_ki"),
    MSG_LIGHT: ("level",),
}

# Every message has a fixed payload size; a frame whose LEN disagrees, or
# whose id is unknown, is rejected at the header, before waiting for its
# (possibly huge) body. A peer that adds messages must bump PROTOCOL_VERSION.
SIZES = {}
for _mid in FORMATS:
    SIZES[_mid] = struct.calcsize(FORMATS[_mid])

# --- heartbeat roles ---------------------------------------------------------
ROLE_HOST = const(0)
ROLE_DEVICE = const(1)

# --- setpoint flags ----------------------------------------------------------
# bit set: that axis' value is a rate in cdps (else an angle in cdeg).
SP_YAW_IS_RATE = const(0x01)
SP_PITCH_IS_RATE = const(0x02)
SP_ROLL_IS_RATE = const(0x04)
# bit set: that axis is in the earth frame (else the handle frame).
SP_YAW_IN_EARTH_FRAME = const(0x08)
SP_PITCH_IN_EARTH_FRAME = const(0x10)
SP_ROLL_IN_EARTH_FRAME = const(0x20)

# --- modes -------------------------------------------------------------------
MODE_OFF = const(0)  # motors off
MODE_LOCK = const(1)  # hold earth-frame attitude
MODE_PAN_FOLLOW = const(2)  # yaw follows the handle, pitch/roll locked
MODE_FOLLOW = const(3)  # yaw and pitch follow the handle, roll locked
MODE_TRACK = const(4)  # setpoints from the host
MODE_RECENTRE = const(5)  # return all joints to zero, then lock
MODE_NAMES = ("off", "lock", "pan_follow", "follow", "track", "recentre")

# --- telemetry state flags ---------------------------------------------------
STATE_CALIBRATED = const(0x01)
STATE_MOTORS_ON = const(0x02)
STATE_FAILSAFE = const(0x04)  # link lost: holding attitude
STATE_CONFIG_DEFAULTED = const(0x08)  # config file was corrupt at boot

# --- fault flags (bit masks; FAULT.code is the bit index) ---------------------
FAULT_IMU_READ = const(0x0001)
FAULT_IMU_IMPLAUSIBLE = const(0x0002)
FAULT_CALIBRATION_MOVED = const(0x0004)
FAULT_CONFIG_CORRUPT = const(0x0008)
FAULT_LINK_LOST = const(0x0010)
FAULT_JOINT_LIMIT = const(0x0020)
FAULT_LOOP_OVERRUN = const(0x0040)
FAULT_MOTOR_SATURATED = const(0x0080)
FAULT_NAMES = (
    "imu_read", "imu_implausible", "calibration_moved", "config_corrupt",
    "link_lost", "joint_limit", "loop_overrun", "motor_saturated",
)

# --- ACK status / NACK reason codes --------------------------------------------
ACK_OK = const(0)
NACK_UNKNOWN_KEY = const(1)
NACK_OUT_OF_RANGE = const(2)
NACK_BAD_LENGTH = const(3)
NACK_BAD_MODE = const(4)
NACK_STORAGE_ERROR = const(5)
NACK_UNKNOWN_MESSAGE = const(6)  # reserved: the parser already drops unknown ids
NACK_NOT_READY = const(7)  # e.g. motors requested before IMU calibration
NACK_MOTORS_ON = const(8)  # a setting that changes geometry or drive: switch the motors off (MODE off) first
NACK_NOT_FITTED = const(9)  # the board has no such part (e.g. no fill light on its pin)
NACK_NAMES = (
    "ok", "unknown_key", "out_of_range", "bad_length", "bad_mode",
    "storage_error", "unknown_message", "not_ready", "motors on", "not_fitted",
)

# --- capabilities (VERSION.capabilities) ---------------------------------------
CAP_BLDC = const(0x0001)
CAP_SERVO = const(0x0002)
CAP_CONFIG_STORE = const(0x0004)
CAP_LIGHT = const(0x0008)  # a fill light on a PWM pin (MSG_LIGHT)

# --- fill light (MSG_LIGHT) ------------------------------------------------------
LIGHT_OFF = const(0)
LIGHT_LEVELS = const(3)  # levels 1..3, duties from the config's light_level_<n>_permille

# CRC-16/CCITT-FALSE lookup table, built once at import.
_CRC_TABLE = [0] * 256
for _i in range(256):
    _c = _i << 8
    for _b in range(8):
        _c = ((_c << 1) ^ 0x1021) if (_c & 0x8000) else (_c << 1)
    _CRC_TABLE[_i] = _c & 0xFFFF


@micropython.native
def crc16(data, start=0, end=-1, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of data[start:end] without slicing (no allocation)."""
    if end < 0:
        end = len(data)
    table = _CRC_TABLE
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ data[i]) & 0xFF]
    return crc


def encode_into(buf, msg_id, seq, payload_len):
    """Finish a frame in ``buf`` whose payload is already at PAYLOAD_OFFSET.

    Returns the frame length. Allocates nothing; for firmware hot paths.
    """
    buf[0] = SYNC0
    buf[1] = SYNC1
    buf[2] = payload_len
    buf[3] = seq & 0xFF
    buf[4] = msg_id & 0xFF
    end = PAYLOAD_OFFSET + payload_len
    crc = crc16(buf, 2, end)
    buf[end] = crc & 0xFF
    buf[end + 1] = crc >> 8
    return end + CRC_LEN


def encode(msg_id, seq, payload):
    """Return one complete frame as bytes (allocates; for the host)."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError("payload too long: %d > %d bytes" % (n, MAX_PAYLOAD))
    buf = bytearray(n + OVERHEAD)
    buf[PAYLOAD_OFFSET:PAYLOAD_OFFSET + n] = payload
    encode_into(buf, msg_id, seq, n)
    return bytes(buf)


def pack(msg_id, *values):
    """Pack a message's fields (in FIELDS order) into its payload bytes."""
    return struct.pack(FORMATS[msg_id], *values)


def decode(msg_id, payload):
    """Unpack a payload into a tuple in FIELDS order; None if id/size unknown."""
    fmt = FORMATS.get(msg_id)
    if fmt is None or len(payload) != SIZES[msg_id]:
        return None
    return struct.unpack(fmt, payload)


def sat_i16(x):
    """Round and saturate a number to the int16 range (for cdeg/cdps fields)."""
    return clamp_i16(int(round(x)))


@micropython.native
def clamp_i16(v):
    """Saturate an int to the int16 range (no allocation: the firmware's telemetry uses it)."""
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


def get_u16(buf, i):
    return buf[i] | (buf[i + 1] << 8)


@micropython.native
def put_u16(buf, i, v):
    """Write the low 16 bits of v little-endian at buf[i] (an int16 as its two's complement)."""
    buf[i] = v & 0xFF
    buf[i + 1] = (v >> 8) & 0xFF


def get_i16(buf, i):
    v = buf[i] | (buf[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


class Parser:
    """Byte-at-a-time frame parser that resynchronises and never raises.

    ``feed(byte)`` returns the message id of a frame that just became complete
    and valid, else -1. The valid frame stays in ``buf`` (payload at
    PAYLOAD_OFFSET, length ``length``) until the next ``feed``/``flush`` call.

    After a bad CRC or a bad header the parser rescans the bytes it had
    buffered from the byte after the rejected sync, so an intact frame hidden
    inside a damaged one is still found. Rarely, a rescan finds more than one
    frame; ``flush()`` returns those without a new byte (call it until -1
    when the stream pauses). Counters: ``frames``, ``crc_errors``,
    ``header_errors``, ``dropped_bytes``.
    """

    def __init__(self):
        self.buf = bytearray(MAX_FRAME + 1)
        self._n = 0  # bytes buffered
        self._consumed = 0  # length of the frame returned last call
        self._need = 0  # total length of a candidate whose header passed, else 0
        self.msg_id = -1
        self.seq = 0
        self.length = 0
        self.frames = 0
        self.crc_errors = 0
        self.header_errors = 0
        self.dropped_bytes = 0

    def reset(self):
        self._n = 0
        self._consumed = 0
        self._need = 0

    @micropython.native
    def feed(self, byte):
        if self._consumed:
            self._discard(self._consumed)
            self._consumed = 0
        # _n < MAX_FRAME always holds here: a full candidate is decided at once
        n = self._n
        self.buf[n] = byte & 0xFF
        n += 1
        self._n = n
        if n < self._need:  # fast path: inside the body of a frame with a good header
            return -1
        return self._scan()

    def flush(self):
        """Return the next complete frame already buffered, or -1."""
        self._discard(self._consumed)
        self._consumed = 0
        return self._scan()

    def payload(self):
        """The last frame's payload as bytes (allocates; host convenience)."""
        return bytes(self.buf[PAYLOAD_OFFSET:PAYLOAD_OFFSET + self.length])

    @micropython.native
    def _discard(self, k):
        if k <= 0:
            return
        buf = self.buf
        n = self._n
        for i in range(k, n):
            buf[i - k] = buf[i]
        self._n = n - k

    @micropython.native
    def _scan(self):
        # Decide the candidate at buf[0:n]: reject it (drop to the next sync
        # byte and retry), accept it, or wait for more bytes.
        buf = self.buf
        while self._n > 0:
            n = self._n
            bad = False
            if buf[0] != SYNC0:
                bad = True
            elif n >= 2 and buf[1] != SYNC1:
                bad = True
            elif n >= 3 and buf[2] > MAX_PAYLOAD:
                bad = True
            elif n >= HEADER_LEN and SIZES.get(buf[4], -1) != buf[2]:
                bad = True  # unknown id, or a LEN that is not that message's size
            if bad:
                self.header_errors += 1
                self._drop_to_next_sync()
                continue
            if n < HEADER_LEN:
                return -1
            total = buf[2] + OVERHEAD
            if n < total:
                self._need = total
                return -1
            self._need = 0
            end = total - CRC_LEN
            if crc16(buf, 2, end) != (buf[end] | (buf[end + 1] << 8)):
                self.crc_errors += 1
                self._drop_to_next_sync()
                continue
            self.length = buf[2]
            self.seq = buf[3]
            self.msg_id = buf[4]
            self.frames += 1
            self._consumed = total
            return self.msg_id
        return -1

    def _drop_to_next_sync(self):
        self._need = 0
        buf = self.buf
        n = self._n
        k = 1
        while k < n and buf[k] != SYNC0:
            k += 1
        self.dropped_bytes += k
        self._discard(k)
