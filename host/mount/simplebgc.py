"""SimpleBGC (BaseCam) Serial API v2 driver: CMD_CONTROL out, CMD_REALTIME_DATA_4 in.

Frame (v2)::

    '$' | CMD_ID | SIZE | (CMD_ID + SIZE) mod 256 | payload (SIZE bytes) | CRC16 lo | CRC16 hi

The CRC16 covers CMD_ID, SIZE, the header checksum and the payload:
polynomial 0x8005, initial value 0, the data bits fed least significant bit
first into a register that shifts out its most significant bit (BaseCam's
own algorithm; the same one Microchip's CryptoAuthentication parts use).
Both CRC bytes are checked: BaseCam's C library accepts a frame with one bad
CRC byte, this parser does not.

Units: angles 0.02197265625 deg per unit (2^14 per turn), speeds
0.1220740379 deg/s per unit. SimpleBGC's pitch is positive *down*; this
driver flips it so callers keep the OpenSteady convention (pitch up positive).

    frame = control_frame(cmd)                  # bytes for CMD_CONTROL
    parser = Parser()
    for cmd_id, payload in parser.feed(data): ...
"""

import logging
import struct

from opensteady.host.mount.backend import SerialBackend

log = logging.getLogger(__name__)

START = 0x24  # '$': protocol v2 (v1 uses '>')
CMD_REALTIME_DATA_4 = 25
CMD_CONTROL = 67
CMD_MOTORS_ON = 77
CMD_MOTORS_OFF = 109

MODE_NO_CONTROL = 0  # hand control back to the board (it holds its attitude)
MODE_SPEED = 1
MODE_ANGLE = 2
MODE_SPEED_ANGLE = 3
MODE_ANGLE_REL_FRAME = 5  # angle relative to the handle (frame)

ANGLE_DEG_PER_UNIT = 360.0 / 16384  # 0.02197265625
SPEED_DPS_PER_UNIT = 0.1220740379

REALTIME_DATA_4_MIN_SIZE = 63  # everything up to MOTOR_POWER; the full message is 124 bytes
_IMU_ANGLE_OFFSET = 32  # after ACC/GYRO x3, error counters, RC inputs and external FC angles
_ROTOR_ANGLE_OFFSET = 63  # REALTIME_DATA_4 only


def crc16(data, crc=0):
    """BaseCam's CRC16 of ``data`` (see the module docstring)."""
    for byte in data:
        for bit in range(8):
            data_bit = (byte >> bit) & 1
            crc_bit = crc >> 15
            crc = (crc << 1) & 0xFFFF
            if data_bit != crc_bit:
                crc ^= 0x8005
    return crc


def frame(cmd_id, payload=b""):
    """One complete v2 frame."""
    if not 0 <= cmd_id <= 255:
        raise ValueError("SimpleBGC command id %r out of range 0..255" % (cmd_id,))
    if len(payload) > 255:
        raise ValueError("SimpleBGC payload too long: %d > 255 bytes" % len(payload))
    header = bytes((cmd_id, len(payload), (cmd_id + len(payload)) & 0xFF))
    crc = crc16(header + payload)
    return bytes((START,)) + header + payload + struct.pack("<H", crc)


def _i16(value):
    return max(-32768, min(32767, int(round(value))))


def speed_units(dps):
    return _i16(dps / SPEED_DPS_PER_UNIT)


def angle_units(deg):
    return _i16(deg / ANGLE_DEG_PER_UNIT)


def control_payload(modes, speeds, angles):
    """Extended CMD_CONTROL payload: per-axis modes then (speed, angle) per axis, axes roll, pitch, yaw."""
    out = struct.pack("<BBB", *modes)
    for speed, angle in zip(speeds, angles):
        out += struct.pack("<hh", speed, angle)
    return out


def control_frame(cmd):
    """CMD_CONTROL for a SetpointCommand: rates in speed mode, angles in angle mode, roll held by angle."""
    if cmd.yaw_deg is None:
        yaw = (MODE_SPEED, speed_units(cmd.yaw_rate_dps), 0)
    else:
        yaw = (MODE_ANGLE_REL_FRAME, 0, angle_units(cmd.yaw_deg))  # straight ahead of the handle
    if cmd.pitch_deg is None:
        pitch = (MODE_SPEED, speed_units(-cmd.pitch_rate_dps), 0)
    else:
        pitch = (MODE_ANGLE, 0, angle_units(-cmd.pitch_deg))
    roll = (MODE_ANGLE, 0, angle_units(cmd.roll_deg))
    axes = (roll, pitch, yaw)
    return frame(CMD_CONTROL, control_payload([a[0] for a in axes], [a[1] for a in axes], [a[2] for a in axes]))


def no_control_frame():
    """CMD_CONTROL with MODE_NO_CONTROL on every axis: the board stops and holds."""
    return frame(CMD_CONTROL, control_payload((MODE_NO_CONTROL,) * 3, (0, 0, 0), (0, 0, 0)))


def parse_realtime_data(payload):
    """CMD_REALTIME_DATA_3/4 payload -> telemetry dict (OpenSteady signs). Raises ValueError if too short."""
    if len(payload) < REALTIME_DATA_4_MIN_SIZE:
        raise ValueError("REALTIME_DATA payload is %d bytes, need at least %d" % (len(payload), REALTIME_DATA_4_MIN_SIZE))
    imu = struct.unpack_from("<hhh", payload, _IMU_ANGLE_OFFSET)
    target = struct.unpack_from("<hhh", payload, _IMU_ANGLE_OFFSET + 12)
    out = {
        "roll_deg": imu[0] * ANGLE_DEG_PER_UNIT,
        "pitch_deg": -imu[1] * ANGLE_DEG_PER_UNIT,
        "yaw_deg": imu[2] * ANGLE_DEG_PER_UNIT,
        "target_roll_deg": target[0] * ANGLE_DEG_PER_UNIT,
        "target_pitch_deg": -target[1] * ANGLE_DEG_PER_UNIT,
        "target_yaw_deg": target[2] * ANGLE_DEG_PER_UNIT,
        "cycle_time_us": struct.unpack_from("<H", payload, 50)[0],
        "motor_power": list(payload[60:63]),
    }
    if len(payload) >= _ROTOR_ANGLE_OFFSET + 6:
        rotor = struct.unpack_from("<hhh", payload, _ROTOR_ANGLE_OFFSET)
        out["roll_joint_deg"] = rotor[0] * ANGLE_DEG_PER_UNIT
        out["pitch_joint_deg"] = -rotor[1] * ANGLE_DEG_PER_UNIT
        out["yaw_joint_deg"] = rotor[2] * ANGLE_DEG_PER_UNIT
    return out


class Parser:
    """Byte-stream parser for v2 frames; resynchronises on bad headers and CRCs.

    ``feed(data)`` returns the list of (cmd_id, payload) of frames completed.
    Counters: ``frames``, ``header_errors``, ``crc_errors``.
    """

    def __init__(self):
        self.buf = bytearray()
        self.frames = 0
        self.header_errors = 0
        self.crc_errors = 0

    def reset(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf.extend(data)
        out = []
        buf = self.buf
        while buf:
            if buf[0] != START:
                nxt = buf.find(START)
                del buf[: nxt if nxt >= 0 else len(buf)]
                continue
            if len(buf) < 4:
                break
            cmd_id, size, header_sum = buf[1], buf[2], buf[3]
            if (cmd_id + size) & 0xFF != header_sum:
                self.header_errors += 1
                del buf[0]
                continue
            total = 4 + size + 2
            if len(buf) < total:
                break
            got = buf[total - 2] | (buf[total - 1] << 8)
            if crc16(buf[1:total - 2]) != got:  # both bytes must match
                self.crc_errors += 1
                del buf[0]
                continue
            out.append((cmd_id, bytes(buf[4:total - 2])))
            self.frames += 1
            del buf[:total]
        return out


class SimpleBGCBackend(SerialBackend):
    """SimpleBGC 32-bit controller over its serial API v2."""

    name = "simplebgc"

    def __init__(self, url, baud=115200, telemetry_interval_s=0.05, motors_on_at_open=True, reconnect_interval_s=1.0,
                 alive_s=1.0):
        super().__init__(url, baud, reconnect_interval_s, alive_s)
        self.telemetry_interval_s = telemetry_interval_s
        self.motors_on_at_open = motors_on_at_open
        self.parser = Parser()
        self.telemetry = None
        self._next_request_s = None

    def on_open(self):
        self.parser.reset()
        if self.motors_on_at_open:
            self.port.write(frame(CMD_MOTORS_ON))

    def send_setpoint(self, cmd, t_s):
        return self.write(control_frame(cmd), t_s)

    def poll(self, t_s):
        if self._next_request_s is None or t_s >= self._next_request_s:
            self.write(frame(CMD_REALTIME_DATA_4), t_s)  # the board answers each request once
            self._next_request_s = t_s + self.telemetry_interval_s
        for cmd_id, payload in self.parser.feed(self.read(t_s)):
            self.heard(t_s)
            if cmd_id == CMD_REALTIME_DATA_4:
                try:
                    telemetry = parse_realtime_data(payload)
                except ValueError as exc:
                    self.reject("REALTIME_DATA_4", str(exc))
                    continue
                self.accept_telemetry(telemetry, "REALTIME_DATA_4")
        return self.telemetry

    def make_safe(self, t_s, motors_off=False):
        self.write(no_control_frame(), t_s)
        if motors_off:
            self.write(frame(CMD_MOTORS_OFF), t_s)
