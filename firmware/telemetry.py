"""Everything the device sends: TELEMETRY and HEARTBEAT when due, and ACK, VERSION, CONFIG_VALUE and FAULT frames.

Each frame is built in place in one preallocated buffer and written
through one preallocated memoryview per frame length, so sending allocates
nothing. TELEMETRY goes out every ``telemetry_period_us`` and HEARTBEAT every
``heartbeat_period_us`` (0: never); a schedule that fell behind restarts
from now instead of bursting to catch up.

    tel = Telemetry(hal, est, axes)          # the estimator and controllers it reports
    tel.configure(20000, 200000)             # us: TELEMETRY at 50 Hz, HEARTBEAT at 5 Hz
    tel.start(now_us)                        # first tick: both are due at once
    due = tel.due(now_us)                    # DUE_TELEMETRY | DUE_HEARTBEAT
    tel.send_telemetry(mode, state_flags, fault_flags, motors_on, loop_time_us, now_us)
    tel.send_ack(msg_id, seq, status)

Pure apart from ``hal.serial_write``; time comes in as ``now_us``.
"""

from .control import OFF, S_JOINT
from .fixmath import TICKS_MASK, ticks_diff
from .protocol import (
    CAP_BLDC,
    CAP_CONFIG_STORE,
    CAP_SERVO,
    FAULT_IMU_IMPLAUSIBLE,
    FAULT_IMU_READ,
    MAX_FRAME,
    MSG_ACK,
    MSG_CONFIG_VALUE,
    MSG_FAULT,
    MSG_HEARTBEAT,
    MSG_TELEMETRY,
    MSG_TUNE_STATUS,
    MSG_VERSION,
    PAYLOAD_OFFSET,
    PROTOCOL_VERSION,
    ROLE_DEVICE,
    SIZES,
    clamp_i16,
    encode_into,
    pack,
    put_u16,
)

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

FW_VERSION = (0, 1, 0)
CAPABILITIES = CAP_BLDC | CAP_SERVO | CAP_CONFIG_STORE
DUE_TELEMETRY = const(1)
DUE_HEARTBEAT = const(2)
_TEL_LEN = SIZES[MSG_TELEMETRY]
_HB_LEN = SIZES[MSG_HEARTBEAT]


def _fault_bit(flag):
    i = 0
    while flag > 1:
        flag >>= 1
        i += 1
    return i


class Telemetry:
    def __init__(self, hal, est, axes):
        self.hal = hal
        self.est = est
        self.axes = axes
        self.tx = bytearray(MAX_FRAME)
        # one view per frame length, so sending a frame slices nothing
        mv = memoryview(self.tx)
        self._views = [mv[:n] for n in range(MAX_FRAME + 1)]
        self.seq = 0
        self.telemetry_period_us = 0
        self.heartbeat_period_us = 0
        self._next_tel_us = 0
        self._next_hb_us = 0

    def configure(self, telemetry_period_us, heartbeat_period_us):
        self.telemetry_period_us = telemetry_period_us
        self.heartbeat_period_us = heartbeat_period_us

    def start(self, now_us):
        self._next_tel_us = now_us
        self._next_hb_us = now_us

    @micropython.native
    def due(self, now_us):
        """Which periodic frames are due at ``now_us`` (DUE_* bits); their schedules move on."""
        due = 0
        if self.telemetry_period_us and ticks_diff(now_us, self._next_tel_us) >= 0:
            self._next_tel_us = self._next_due(self._next_tel_us, self.telemetry_period_us, now_us)
            due = DUE_TELEMETRY
        if self.heartbeat_period_us and ticks_diff(now_us, self._next_hb_us) >= 0:
            self._next_hb_us = self._next_due(self._next_hb_us, self.heartbeat_period_us, now_us)
            due |= DUE_HEARTBEAT
        return due

    @staticmethod
    def _next_due(due, period, now_us):
        due += period
        if ticks_diff(now_us, due) >= period:  # fell behind: do not burst to catch up
            due = now_us + period
        return due & TICKS_MASK  # ticks_diff is exact against wrapped or unwrapped clocks

    @micropython.native
    def _send(self, msg_id, payload_len):
        n = encode_into(self.tx, msg_id, self.seq, payload_len)
        self.seq = (self.seq + 1) & 0xFF
        self.hal.serial_write(self._views[n])

    @micropython.native
    def send_telemetry(self, mode, state_flags, fault_flags, motors_on, loop_time_us, now_us):
        """``now_us``: the tick's time, sent as ``t_us`` (the device clock, wrapping at 2**30 like ticks_us) so
        the host can tell when this attitude was measured, whatever the link delayed or dropped."""
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = mode
        b[o + 1] = state_flags
        put_u16(b, o + 2, fault_flags)
        ang = self.est.angle_udeg
        rate = self.est.rate_mdps
        for i in range(3):
            put_u16(b, o + 4 + 2 * i, clamp_i16(ang[i] // 10000))
            put_u16(b, o + 10 + 2 * i, clamp_i16(rate[i] // 10))
            c = self.axes[i]
            put_u16(b, o + 16 + 2 * i, clamp_i16((c.packed[S_JOINT] - OFF) // 10000))
            put_u16(b, o + 22 + 2 * i, clamp_i16(c.effort_permille() if motors_on else 0))
        put_u16(b, o + 28, loop_time_us if loop_time_us < 65535 else 65535)
        t = now_us & TICKS_MASK  # a small int on every port (ticks_us wraps at 2**30): no allocation
        put_u16(b, o + 30, t & 0xFFFF)
        put_u16(b, o + 32, t >> 16)
        self._send(MSG_TELEMETRY, _TEL_LEN)

    def send_heartbeat(self, uptime_ms_lo, uptime_ms_hi):
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = ROLE_DEVICE
        put_u16(b, o + 1, uptime_ms_lo)
        put_u16(b, o + 3, uptime_ms_hi)
        self._send(MSG_HEARTBEAT, _HB_LEN)

    def send_ack(self, msg_id, seq, status):
        # "<BBB" written in place: no payload object (an ACK may answer a MODE inside a tick)
        b = self.tx
        o = PAYLOAD_OFFSET
        b[o] = msg_id & 0xFF
        b[o + 1] = seq & 0xFF
        b[o + 2] = status
        self._send(MSG_ACK, 3)

    def _send_payload(self, msg_id, payload):
        o = PAYLOAD_OFFSET
        self.tx[o:o + len(payload)] = payload
        self._send(msg_id, len(payload))

    def send_version(self, board_id, extra_capabilities=0, imu_delay_us=0):
        """VERSION; ``extra_capabilities`` adds what this board has fitted (CAP_LIGHT); ``imu_delay_us``: how far
        the reported attitude lags TELEMETRY's ``t_us`` (HAL.imu_delay_us, the IMU's filter delay)."""
        major, minor, patch = FW_VERSION
        self._send_payload(MSG_VERSION, pack(MSG_VERSION, PROTOCOL_VERSION, major, minor, patch, board_id,
                                             CAPABILITIES | extra_capabilities, imu_delay_us))

    def send_tune_status(self, axis, state, reason, cycles, pu_us, ku, gains):
        """Auto-tune progress or result (not a control-tick path: only while a tune runs, a few times)."""
        self._send_payload(MSG_TUNE_STATUS, pack(MSG_TUNE_STATUS, axis, state, reason, cycles & 0xFF,
                                                 min(65535, pu_us // 1000), ku, gains[0], gains[1], gains[2]))

    def send_config_value(self, key, value):
        self._send_payload(MSG_CONFIG_VALUE, pack(MSG_CONFIG_VALUE, key, value))

    def send_faults(self, faults, imu_detail):
        """One FAULT frame per flag raised since the last call, lowest bit first (``imu_detail``: IMU faults)."""
        pending = faults.pending
        while pending:
            low = pending & -pending
            pending &= ~low
            detail = 0
            if low == FAULT_IMU_READ or low == FAULT_IMU_IMPLAUSIBLE:
                detail = imu_detail
            # "<HBh" written in place, like send_ack
            b = self.tx
            o = PAYLOAD_OFFSET
            put_u16(b, o, faults.flags)
            b[o + 2] = _fault_bit(low)
            put_u16(b, o + 3, clamp_i16(detail))
            self._send(MSG_FAULT, 5)
        faults.pending = 0
