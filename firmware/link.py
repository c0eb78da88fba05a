"""The host link on the device side: read the serial port without blocking, parse frames, carry out commands.

Each tick ``poll(now_us)`` reads at most 64 bytes (115200 baud brings about
12 per ms), feeds them to protocol.Parser and acts on every valid frame:

- SETPOINT: goes to the modes, and feeds the link watchdog;
- HEARTBEAT from a host: feeds the link watchdog;
- VERSION_REQUEST: answered with VERSION;
- TUNE: starts a relay auto-tune of one axis' rate loop through ``app.start_tune`` (ACK/NACK);
- LIGHT: sets the fill light's level through ``app.light`` (firmware/light.py; ACK/NACK);
- MODE, CONFIG_GET, CONFIG_SET, CONFIG_SAVE: carried out through the
  application (a CONFIG_SET of a key that changes geometry or drive is
  refused with NACK motors_on while the motors are powered: only the keys in
  config.LIVE_TUNABLE change in motion) (``app.set_mode(mode)`` returns the ACK status,
  ``app.configure(cfg)`` applies a validated config, ``app.cfg`` is the
  config in force) and answered with ACK/NACK or CONFIG_VALUE.

A frame that cannot be carried out is answered with NACK bad_length: bytes
from outside never stop the loop. The parser drops ids this protocol version
does not define, and the device's own messages echoed back need no answer.

Boards whose link is the REPL console set ``escape_to_repl``: three Ctrl-C
(0x03) in a row while the failsafe is on (no host talking) raise
KeyboardInterrupt, which hands the console back.

    link = Link(hal, app, modes, watchdog, tel)
    link.poll(now_us)      # each tick
"""

import struct

from .config import KEYS, LIVE_KEYS
from .protocol import (
    ACK_OK,
    CAP_LIGHT,
    MSG_CONFIG_GET,
    MSG_CONFIG_SAVE,
    MSG_CONFIG_SET,
    MSG_HEARTBEAT,
    MSG_LIGHT,
    MSG_MODE,
    MSG_SETPOINT,
    MSG_TUNE,
    MSG_VERSION_REQUEST,
    NACK_BAD_LENGTH,
    NACK_MOTORS_ON,
    NACK_STORAGE_ERROR,
    NACK_UNKNOWN_KEY,
    PAYLOAD_OFFSET,
    ROLE_HOST,
    Parser,
    get_i16,
)

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

_RX_CHUNK = const(64)  # bytes read from the link per tick at most
_CTRL_C = const(3)


class Link:
    def __init__(self, hal, app, modes, watchdog, tel):
        self.hal = hal
        self.app = app
        self.modes = modes
        self.watchdog = watchdog
        self.tel = tel
        self.rx = bytearray(_RX_CHUNK)
        self.parser = Parser()
        self.escape_to_repl = False
        self._ctrl_c = 0

    @micropython.native
    def poll(self, now_us):
        n = self.hal.serial_read_into(self.rx)
        if n <= 0:
            return
        if n > _RX_CHUNK:
            n = _RX_CHUNK
        p = self.parser
        rx = self.rx
        for k in range(n):
            b = rx[k]
            if b == _CTRL_C and self.escape_to_repl and self.watchdog.active:
                # Ctrl-C three times while no host is talking: hand the console back
                self._ctrl_c += 1
                if self._ctrl_c >= 3:
                    raise KeyboardInterrupt
            else:
                self._ctrl_c = 0
            mid = p.feed(b)
            while mid >= 0:
                self._handle(mid, now_us)
                mid = p.flush()

    def _handle(self, mid, now_us):
        p = self.parser
        buf = p.buf
        o = PAYLOAD_OFFSET
        tel = self.tel
        try:
            if mid == MSG_SETPOINT:
                self.modes.setpoint(buf[o], get_i16(buf, o + 1), get_i16(buf, o + 3), get_i16(buf, o + 5))
                self.watchdog.alive(now_us)
            elif mid == MSG_HEARTBEAT:
                if buf[o] == ROLE_HOST:
                    self.watchdog.alive(now_us)
            elif mid == MSG_VERSION_REQUEST:
                tel.send_version(getattr(self.hal, "board_id", 0), CAP_LIGHT if self.app.light.fitted else 0,
                                 getattr(self.hal, "imu_delay_us", 0))
            elif mid == MSG_MODE:
                tel.send_ack(mid, p.seq, self.app.set_mode(buf[o]))
            elif mid == MSG_CONFIG_GET:
                key = buf[o]
                if key in KEYS:
                    tel.send_config_value(key, self.app.cfg.values[key])
                else:
                    tel.send_ack(mid, p.seq, NACK_UNKNOWN_KEY)
            elif mid == MSG_CONFIG_SET:
                self._config_set(buf[o], struct.unpack_from("<f", buf, o + 1)[0], p.seq)
            elif mid == MSG_CONFIG_SAVE:
                self._config_save(p.seq)
            elif mid == MSG_LIGHT:
                tel.send_ack(mid, p.seq, self.app.light.set_level(buf[o]))
            elif mid == MSG_TUNE:
                tel.send_ack(mid, p.seq, self.app.start_tune(buf[o], buf[o + 1], buf[o + 2] | (buf[o + 3] << 8),
                                                             buf[o + 4] | (buf[o + 5] << 8)))
        except Exception:  # noqa: BLE001 - bytes from outside must never stop the loop
            tel.send_ack(mid, p.seq, NACK_BAD_LENGTH)

    def _config_set(self, key, value, seq):
        if self.app.drive.on and key in KEYS and key not in LIVE_KEYS:
            # geometry or drive must not change under a moving camera (a jump of the field slips poles)
            self.tel.send_ack(MSG_CONFIG_SET, seq, NACK_MOTORS_ON)
            return
        trial = self.app.cfg.copy()
        status = trial.set(key, value)
        if status != ACK_OK:
            self.tel.send_ack(MSG_CONFIG_SET, seq, status)
            return
        self.app.configure(trial)
        self.tel.send_config_value(key, trial.values[key])

    def _config_save(self, seq):
        try:
            ok = self.hal.config_save(self.app.cfg.to_bytes())
        except Exception:  # noqa: BLE001 - report, do not crash
            ok = False
        self.tel.send_ack(MSG_CONFIG_SAVE, seq, ACK_OK if ok else NACK_STORAGE_ERROR)
