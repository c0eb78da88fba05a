"""Board module for co-simulation: the firmware's HAL served over stdin/stdout.

Runs inside the real MicroPython unix port (and on CPython, for tests). The
simulator (``sim/firmware_runner.py``) owns time and the plant; once per
control tick it sends this module the IMU counts and the serial bytes that
have arrived, this module runs exactly one ``Gimbal.tick(now_us)`` on them,
and answers with the motor outputs and the serial bytes the firmware sent.
The wire-protocol bytes inside are the firmware's own, parsed by its own
``protocol.Parser``. No ``machine``, no clocks: lockstep on simulated time.

    micropython -X heapsize=4M -c "from firmware.offboard import simpipe; simpipe.main()"

Lockstep frames (little-endian; every frame starts with SYNC = F5 1A and a
type byte, so console text the firmware prints can be told apart)::

    sim -> board  'I' u16 imu_delay_us, u16 config_len, config bytes
                                                        build the Gimbal (len 0xFFFF: no config file;
                                                        imu_delay_us: HAL.imu_delay_us of the IMU model)
    board -> sim  'i' u32 period_us
    sim -> board  'T' u32 now_us_lo, u32 now_us_hi, u8 imu_ok, 6 x i16 imu counts,
                      u8 handle_imu_ok, 6 x i16 handle imu counts (ok 0: not fitted),
                      3 x i16 rotor-angle sensor counts (-1: none or a failed read),
                      u16 rx_len, rx bytes              run one tick
    board -> sim  'R' u8 motors_on, 9 x u16 duties (yaw a b c, pitch a b c, roll a b c),
                      3 x u16 servo_us, u16 fill light duty, u16 tx_len, tx bytes, u16 saved_config_len, bytes
                      (saved_config_len 0xFFFF: no config_save this tick)
    sim -> board  'Q'                                   exit
"""

import struct
import sys
from array import array

from .. import hal as _hal

SYNC = b"\xf5\x1a"
NO_CONFIG = 0xFFFF
TX_BUFFER_BYTES = 2048
RX_BUFFER_BYTES = 1024
_TICK_HEAD = "<IIB6hB6h3hH"
_TICK_HEAD_LEN = struct.calcsize(_TICK_HEAD)
_REPLY_HEAD = "<B9H3HHH"


class SimPipeBoard(_hal.HAL):
    """The HAL, backed by buffers the lockstep frames fill and drain."""

    board_id = _hal.BOARD_SIM

    def __init__(self, config, imu_delay_us=0):
        self.imu_delay_us = imu_delay_us
        self.imu_raw = array("h", [0] * 6)
        self.imu_ok = False
        self.handle_raw = array("h", [0] * 6)
        self.handle_ok = False
        self.angle = array("h", [-1, -1, -1])
        self.motors_on = 0
        self.duties = array("H", [32768] * 9)
        self.servo_us = array("H", [0] * 3)
        self.light_duty = 0
        self.rx = bytearray(RX_BUFFER_BYTES)
        self.rx_len = 0
        self.rx_pos = 0
        self.tx = bytearray(TX_BUFFER_BYTES)
        self.tx_len = 0
        self.config = config
        self.saved = None
        self.now_us = 0

    def imu_read(self, raw):
        return self.imu_ok and _copy_counts(self.imu_raw, raw)

    def handle_imu_read(self, raw):
        return self.handle_ok and _copy_counts(self.handle_raw, raw)

    def angle_read(self, axis):
        return self.angle[axis]

    def angle_read_axes(self, mask, counts):
        a = self.angle
        for i in range(3):
            if (mask >> i) & 1:
                counts[i] = a[i]

    def motors_enable(self, on):
        self.motors_on = 1 if on else 0

    def bldc_write(self, axis, duty_a_u16, duty_b_u16, duty_c_u16):
        d = self.duties
        k = 3 * axis
        d[k] = duty_a_u16
        d[k + 1] = duty_b_u16
        d[k + 2] = duty_c_u16

    def bldc_write_axes(self, mask, duties):
        d = self.duties
        for k in range(9):
            if (mask >> (k // 3)) & 1:
                d[k] = duties[k]

    def servo_write(self, axis, pulse_us):
        self.servo_us[axis] = pulse_us

    def light_write(self, pin, freq_hz, duty_u16):
        self.light_duty = duty_u16  # the simulated gimbal has a fill light (sim/camera.py lights the subject)
        return True

    def serial_read_into(self, buf):
        n = self.rx_len - self.rx_pos
        if n > len(buf):
            n = len(buf)
        p = self.rx_pos
        for i in range(n):
            buf[i] = self.rx[p + i]
        self.rx_pos = p + n
        return n

    def serial_write(self, data):
        n = len(data)
        room = TX_BUFFER_BYTES - self.tx_len
        if n > room:
            n = room  # a full UART TX buffer drops what does not fit
        t = self.tx_len
        for i in range(n):
            self.tx[t + i] = data[i]
        self.tx_len = t + n

    def config_load(self):
        return self.config

    def config_save(self, data):
        self.config = bytes(data)
        self.saved = self.config
        return True

    def ticks_us(self):
        return self.now_us

    def sleep_us(self, us):
        pass


def _copy_counts(src, raw):
    for i in range(6):
        raw[i] = src[i]
    return True


def _read_exact(stream, n):
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def _read_type(stream):
    # skip anything before SYNC (there should be nothing; be tolerant)
    while True:
        if _read_exact(stream, 1) != SYNC[0:1]:
            continue
        if _read_exact(stream, 1) == SYNC[1:2]:
            return _read_exact(stream, 1)


def serve(stream_in, stream_out, make_gimbal):
    """Answer lockstep frames until 'Q' or end of input. ``make_gimbal(board)`` builds the firmware."""
    board = None
    gimbal = None
    while True:
        try:
            kind = _read_type(stream_in)
        except EOFError:
            return
        if kind == b"I":
            delay_us, n = struct.unpack("<HH", _read_exact(stream_in, 4))
            config = None if n == NO_CONFIG else _read_exact(stream_in, n)
            board = SimPipeBoard(config, delay_us)
            gimbal = make_gimbal(board)
            stream_out.write(SYNC + b"i" + struct.pack("<I", gimbal.period_us))
        elif kind == b"T":
            head = struct.unpack(_TICK_HEAD, _read_exact(stream_in, _TICK_HEAD_LEN))
            board.now_us = head[0] | (head[1] << 32)
            board.imu_ok = head[2] != 0
            board.handle_ok = head[9] != 0
            for i in range(6):
                board.imu_raw[i] = head[3 + i]
                board.handle_raw[i] = head[10 + i]
            for i in range(3):
                board.angle[i] = head[16 + i]
            n = head[19]
            data = _read_exact(stream_in, n) if n else b""
            board.rx[0:n] = data
            board.rx_len = n
            board.rx_pos = 0
            gimbal.tick(board.now_us)
            saved = board.saved
            board.saved = None
            d = board.duties
            s = board.servo_us
            stream_out.write(SYNC + b"R" + struct.pack(
                _REPLY_HEAD, board.motors_on, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8],
                s[0], s[1], s[2], board.light_duty, board.tx_len))
            if board.tx_len:
                stream_out.write(bytes(board.tx[0:board.tx_len]))
            board.tx_len = 0
            if saved is None:
                stream_out.write(struct.pack("<H", NO_CONFIG))
            else:
                stream_out.write(struct.pack("<H", len(saved)) + saved)
        elif kind == b"Q":
            return
        if hasattr(stream_out, "flush"):
            stream_out.flush()


def main():
    from ..app import Gimbal

    serve(sys.stdin.buffer, sys.stdout.buffer, Gimbal)
