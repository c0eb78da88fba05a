"""VISCA over IP (UDP 52381): PTZ controllers drive the gimbal like a PTZ camera.

OBS PTZ Controls, vMix, Bitfocus Companion and PTZ keyboards speak Sony's
VISCA over IP. Each datagram is an 8-byte header (payload type, payload
length, sequence number, all big-endian) and a VISCA message ``8x ... FF``;
replies echo the sequence number. Commands go to host.control.Controls, the
same queue the browser panel uses.

Supported (x = camera address 1..7, p = nibble):

============================================ ===========================================
``8x 01 00 01 FF``                           IF_Clear
``8x 01 04 00 02|03 FF``                     power on | standby (standby pauses tracking)
``8x 01 06 01 VV WW 0Y 0Z FF``               pan/tilt drive: VV pan speed 01..18, WW tilt
                                             speed 01..18 (00 on a stopped axis); Y 1 left
                                             2 right 3 stop; Z 1 up 2 down 3 stop (03 03 = stop)
``8x 01 06 02 VV WW 0p0p0p0p 0t0t0t0t FF``   absolute position, signed 16 bit, 0.1 deg units
``8x 01 06 03 VV WW 0p0p0p0p 0t0t0t0t FF``   relative position, same units
``8x 01 06 04 FF`` / ``8x 01 06 05 FF``      home / reset (both: straight ahead)
``8x 01 0A 11 54 02|03 FF``                  tracking on | off (OpenSteady; see below)
``8x 09 04 00 FF``                           power inquiry: ``90 50 02|03 FF``
``8x 09 06 12 FF``                           position inquiry: ``90 50 0p0p0p0p 0t0t0t0t FF``
``8x 09 0A 11 54 FF``                        tracking inquiry: ``90 50 02|03 FF``
============================================ ===========================================

Tracking on/off uses ``01 0A 11 54``, which Sony's VISCA command set leaves
unused; PTZOptics cameras use the same bytes for their auto-tracking switch,
so controllers with a PTZOptics profile (Companion) get a working button.
Speeds: step 1 is 2.5 deg/s, step 24 (0x18) is 60 deg/s. Positions come from
telemetry: pan is the yaw joint's angle from the handle (+ right), as a PTZ
camera's pan is from its base; tilt is the earth-level pitch (+ up).

A malformed datagram gets a VISCA error reply (``90 60 01 FF`` length,
``90 60 02 FF`` syntax, ``90 61 41 FF`` not executable); nothing a client
sends can stop the server. VISCA has no authentication, so it binds to
127.0.0.1 unless told otherwise.
"""

import logging
import socket
import struct
import threading

from opensteady.host.control import ControlError

log = logging.getLogger(__name__)

DEFAULT_PORT = 52381
TYPE_COMMAND, TYPE_INQUIRY, TYPE_REPLY, TYPE_SETTING = 0x0100, 0x0110, 0x0111, 0x0120
TYPE_CONTROL, TYPE_CONTROL_REPLY = 0x0200, 0x0201
MAX_SPEED = 0x18
DPS_PER_SPEED_STEP = 2.5
UNITS_PER_DEG = 10.0

ACK = b"\x90\x41\xff"
COMPLETION = b"\x90\x51\xff"
ERR_LENGTH = b"\x90\x60\x01\xff"
ERR_SYNTAX = b"\x90\x60\x02\xff"
ERR_NOT_EXECUTABLE = b"\x90\x61\x41\xff"


def _nibbles16(data):
    """Signed 16-bit value from four bytes 0p 0p 0p 0p; None when a byte has its high nibble set."""
    if len(data) != 4 or any(b & 0xF0 for b in data):
        return None
    value = (data[0] << 12) | (data[1] << 8) | (data[2] << 4) | data[3]
    return value - 0x10000 if value & 0x8000 else value


def _to_nibbles16(value):
    value = int(max(-0x8000, min(0x7FFF, round(value)))) & 0xFFFF
    return bytes(((value >> 12) & 0xF, (value >> 8) & 0xF, (value >> 4) & 0xF, value & 0xF))


def _speed_dps(byte):
    if not 1 <= byte <= MAX_SPEED:
        return None
    return byte * DPS_PER_SPEED_STEP


class ViscaHandler:
    """Pure message handling: ``handle(datagram) -> [reply datagrams]``; no sockets."""

    def __init__(self, controls):
        self.controls = controls
        self.tracking = True

    def handle(self, data):
        if len(data) < 8:
            return [self._packet(TYPE_REPLY, 0, ERR_LENGTH)]
        ptype, length, seq = struct.unpack(">HHI", data[:8])
        payload = data[8:]
        if ptype == TYPE_CONTROL:
            # RESET (01) zeroes the sequence number; anything else is an error in the control channel
            return [self._packet(TYPE_CONTROL_REPLY, seq, b"\x01" if payload == b"\x01" else b"\x0f\x02")]
        if length != len(payload) or not 3 <= length <= 16:
            return [self._packet(TYPE_REPLY, seq, ERR_LENGTH)]
        if payload[-1] != 0xFF or not 0x81 <= payload[0] <= 0x88 or 0xFF in payload[:-1]:
            return [self._packet(TYPE_REPLY, seq, ERR_SYNTAX)]
        body = payload[1:-1]
        if ptype in (TYPE_COMMAND, TYPE_SETTING) and body[:1] == b"\x01":
            return [self._packet(TYPE_REPLY, seq, r) for r in self._command(body[1:])]
        if ptype in (TYPE_INQUIRY, TYPE_COMMAND) and body[:1] == b"\x09":
            return [self._packet(TYPE_REPLY, seq, self._inquiry(body[1:]))]
        return [self._packet(TYPE_REPLY, seq, ERR_SYNTAX)]

    @staticmethod
    def _packet(ptype, seq, payload):
        return struct.pack(">HHI", ptype, len(payload), seq) + payload

    def _submit(self, action, params=None):
        try:
            self.controls.submit(action, params or {})
        except ControlError as exc:
            log.info("VISCA command refused: %s", exc)
            return [ERR_NOT_EXECUTABLE]
        return [ACK, COMPLETION]

    def _command(self, c):
        if c == b"\x00\x01":  # IF_Clear
            return [ACK, COMPLETION]
        if len(c) == 3 and c[:2] == b"\x04\x00" and c[2] in (2, 3):
            return self._submit("power", {"on": c[2] == 2})
        if len(c) == 6 and c[:2] == b"\x06\x01":
            return self._drive(c[2], c[3], c[4], c[5])
        if len(c) == 12 and c[:2] in (b"\x06\x02", b"\x06\x03"):
            pan, tilt = _nibbles16(c[4:8]), _nibbles16(c[8:12])
            speed = _speed_dps(c[2])
            if pan is None or tilt is None or speed is None or _speed_dps(c[3]) is None:
                return [ERR_SYNTAX]
            yaw, pitch = pan / UNITS_PER_DEG, tilt / UNITS_PER_DEG
            if c[1] == 3:
                att = self.controls.attitude or (0.0, 0.0)
                yaw, pitch = att[0] + yaw, att[1] + pitch
            return self._submit("position", {"yaw_deg": max(-180.0, min(180.0, yaw)),
                                             "pitch_deg": max(-90.0, min(90.0, pitch)), "speed_dps": speed})
        if c in (b"\x06\x04", b"\x06\x05"):
            return self._submit("home")
        if len(c) == 4 and c[:3] == b"\x0a\x11\x54" and c[3] in (2, 3):
            self.tracking = c[3] == 2
            return self._submit("tracking", {"on": self.tracking})
        return [ERR_SYNTAX]

    def _drive(self, vv, ww, y, z):
        # Controllers send speed 00 for an axis that stops (03); accept it there only.
        pan_dps = 0.0 if vv == 0 and y == 3 else _speed_dps(vv)
        tilt_dps = 0.0 if ww == 0 and z == 3 else _speed_dps(ww)
        if pan_dps is None or tilt_dps is None or y not in (1, 2, 3) or z not in (1, 2, 3):
            return [ERR_SYNTAX]
        yaw_rate = {1: -pan_dps, 2: pan_dps, 3: 0.0}[y]
        pitch_rate = {1: tilt_dps, 2: -tilt_dps, 3: 0.0}[z]
        if yaw_rate == 0 and pitch_rate == 0:
            return self._submit("stop")
        return self._submit("drive", {"yaw_rate_dps": yaw_rate, "pitch_rate_dps": pitch_rate})

    def _inquiry(self, q):
        if q == b"\x04\x00":
            return bytes((0x90, 0x50, 2 if self.controls.power else 3, 0xFF))
        if q == b"\x06\x12":
            att = self.controls.attitude
            if att is None:
                return ERR_NOT_EXECUTABLE  # no telemetry from the gimbal yet
            return b"\x90\x50" + _to_nibbles16(att[0] * UNITS_PER_DEG) + _to_nibbles16(att[1] * UNITS_PER_DEG) + b"\xff"
        if q == b"\x0a\x11\x54":
            return bytes((0x90, 0x50, 2 if self.tracking else 3, 0xFF))
        return ERR_SYNTAX


class ViscaServer:
    """The UDP socket and its thread around a :class:`ViscaHandler`."""

    def __init__(self, controls, host="127.0.0.1", port=DEFAULT_PORT):
        self.handler = ViscaHandler(controls)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        # Controllers on the same computer often bind 52381 themselves (for inquiry replies);
        # with SO_REUSEADDR on both sides they can share it.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise OSError("cannot open the VISCA port %s:%d: %s (use --visca-port, or --no-visca)"
                          % (host, port, exc.strerror or exc)) from exc
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="visca", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.received += 1
            try:
                replies = self.handler.handle(data)
            except Exception:  # never let one datagram take the port down
                log.exception("VISCA: could not handle %s", data.hex())
                replies = [ViscaHandler._packet(TYPE_REPLY, 0, ERR_SYNTAX)]
            for reply in replies:
                try:
                    self.sock.sendto(reply, addr)
                except OSError as exc:
                    log.info("VISCA: reply to %s failed: %s", addr, exc)

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.sock.close()
