"""Host side of the OpenSteady serial link: open, handshake, send, poll, reconnect.

Ports are opened with pyserial's ``serial_for_url``, so a device path
(``/dev/ttyACM0``, ``COM3``), ``loop://``, ``socket://host:port`` and
``spy:///dev/ttyACM0`` (hexdump of all traffic to stderr) all work.

    from opensteady.firmware import protocol as p
    from opensteady.host.link import Link

    with Link("/dev/ttyACM0") as link:          # opens and handshakes
        print(link.version)                     # {'fw_major': 0, ...}
        link.send(p.MSG_MODE, p.MODE_TRACK)
        link.send_setpoint(p.SP_YAW_IS_RATE | p.SP_PITCH_IS_RATE, 1500, -200, 0)
        for msg_id, fields in link.poll():      # never blocks
            ...
        for msg_id, fields, rx_s in link.poll_stamped():  # the same, with each frame's arrival time
            ...

``poll()`` and ``send()`` never raise and never block once the link has been
opened: when the device disappears they mark the link disconnected, and try
to reopen it every ``reconnect_interval_s``; the new handshake then advances
inside later ``poll()`` calls, and ``send()`` returns -1 until it is done.
``last_error`` tells why the link is down. Errors at ``open()`` are typed
(``LinkError`` and subclasses) and carry a message a user can act on.

Each frame's arrival is stamped (``poll_stamped``, on the time the caller
passes, else on ``clock``) when the bytes are read, less the time its bytes spent on the wire: a frame read at
``read_s`` whose first ``k`` bytes had come by then began arriving no later
than ``read_s - k * byte_time_s`` (bytes cannot cross a UART faster than
its line rate), and the earliest such bound over the reads that held it is
the stamp. So the stamp is the frame's first byte's arrival, late by at
most the gap between two polls, whatever the frame's length and the baud
rate. ``byte_time_s`` is a property of the transport: 10 bits / baud on a
real UART in front of the host, 0 where bytes come in packets (USB CDC, a
pty, ``loop://``), where the frame is stamped at the read that brought its
first byte. By default it is the port's own ``byte_time_s`` (the simulated
rig's UART declares it), else 0, which never stamps a frame early.

``port_factory`` replaces ``serial_for_url`` with any callable returning an
object with pyserial's ``read``/``write``/``in_waiting``/``close`` (the
simulated rig passes its UART this way). ``clock`` (``time.monotonic`` by
default) is the only time source: heartbeats, handshake deadlines and
reconnection intervals all run on it, so the simulator drives the link on
simulated time and tests step a fake clock.
"""

from __future__ import annotations

import binascii
import errno
import logging
import time
from collections import deque
from typing import Any, Callable

import serial

from opensteady.firmware import protocol as p

log = logging.getLogger(__name__)

DEFAULT_BAUD = 115200
HEARTBEAT_INTERVAL_S = 0.1  # the firmware's failsafe trips after 250 ms of silence
RX_TAIL_BYTES = 256  # raw bytes kept to tell what a device that stopped sending frames is saying instead


class LinkError(Exception):
    """Base class of all link errors; ``str()`` is a message for the user."""


class PortNotFound(LinkError):
    pass


class PortPermissionDenied(LinkError):
    pass


class PortBusy(LinkError):
    pass


class NoResponse(LinkError):
    """The port opened but nothing answered the version request."""


class WrongFirmware(LinkError):
    """Something answered, but not OpenSteady firmware."""


class ProtocolVersionMismatch(LinkError):
    pass


def open_port(url: str, baud: int = DEFAULT_BAUD) -> serial.SerialBase:
    """Open ``url`` non-blocking, translating OS errors into typed LinkErrors."""
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=0.5)
    except serial.SerialException as exc:
        code = exc.errno
        if code is None and isinstance(exc.__cause__, OSError):
            code = exc.__cause__.errno
        text = str(exc)
        if code == errno.ENOENT or "No such file" in text or "FileNotFoundError" in text:
            raise PortNotFound(
                "serial port %r does not exist. Is the board plugged in? "
                "List ports with `opensteady ping --list` (Linux: ls /dev/ttyACM* /dev/ttyUSB*)." % url
            ) from exc
        if code == errno.EACCES or "Permission denied" in text:
            raise PortPermissionDenied(
                "no permission to open %r. On Linux add yourself to the dialout group: "
                "`sudo usermod -aG dialout $USER`, then log out and back in." % url
            ) from exc
        if code == errno.EBUSY or "busy" in text.lower():
            raise PortBusy(
                "serial port %r is busy: close other programs using it (Thonny, a serial monitor, mpremote)." % url
            ) from exc
        raise LinkError("could not open serial port %r: %s" % (url, text)) from exc
    except ValueError as exc:  # malformed URL or bad baud rate
        raise LinkError("bad port %r: %s" % (url, exc)) from exc


def describe_foreign_bytes(data: bytes) -> str:
    """Guess what kind of device sent ``data`` (which held no OpenSteady frame)."""
    if b">>>" in data or b"MicroPython" in data or b"Traceback" in data or b"raw REPL" in data:
        return (
            "the board runs MicroPython but not the OpenSteady firmware (a REPL or a traceback answered). "
            "Flash it with `opensteady flash --port PORT`."
        )
    if _has_simplebgc_frame(data):
        return "this looks like a SimpleBGC controller: use `--gimbal simplebgc`."
    if _has_mavlink_frame(data):
        return "this looks like a MAVLink device: use `--gimbal mavlink`."
    return (
        "the device sent %d bytes that are not OpenSteady frames (wrong baud rate, or other firmware). "
        "First bytes: %s" % (len(data), data[:16].hex(" "))
    )


def frame_at(buf: bytes, i: int) -> int:
    """The Parser's verdict, when it holds no bytes, on the bytes ``buf[i:]``: the length of the whole, valid
    frame they begin with; 0 while they are the valid start of one (the parser would wait for more); -1 when
    the parser would reject them (a wrong sync byte, length or message id, or a bad CRC)."""
    m = len(buf) - i
    if buf[i] != p.SYNC0:
        return -1
    if m < 2:
        return 0
    if buf[i + 1] != p.SYNC1:
        return -1
    if m < 3:
        return 0
    length = buf[i + 2]
    if length > p.MAX_PAYLOAD:
        return -1
    if m < p.HEADER_LEN:
        return 0
    if p.SIZES.get(buf[i + 4], -1) != length:
        return -1
    total = length + p.OVERHEAD
    if m < total:
        return 0
    end = i + total - p.CRC_LEN
    # CRC-16/CCITT-FALSE (protocol.crc16) is crc_hqx from 0xFFFF
    if binascii.crc_hqx(buf[i + 2:end], 0xFFFF) != buf[end] | (buf[end + 1] << 8):
        return -1
    return total


def _has_simplebgc_frame(data: bytes) -> bool:
    # '$' CMD SIZE (CMD+SIZE)%256: a header checksum match is a strong hint.
    for i in range(len(data) - 3):
        if data[i] == 0x24 and (data[i + 1] + data[i + 2]) & 0xFF == data[i + 3]:
            return True
    return False


def _has_mavlink_frame(data: bytes) -> bool:
    # v2: 0xFD LEN INCOMPAT(0 or 1) COMPAT; v1: 0xFE LEN SEQ SYS COMP MSG.
    for i in range(len(data) - 3):
        if data[i] == 0xFD and data[i + 2] in (0, 1) and data[i + 3] == 0:
            return True
    return False


class Link:
    """One OpenSteady device on one serial port. See the module docstring."""

    def __init__(
        self,
        url: str,
        baud: int = DEFAULT_BAUD,
        handshake: bool = True,
        reconnect: bool = True,
        handshake_timeout_s: float = 1.5,
        reconnect_interval_s: float = 1.0,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        port_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        byte_time_s: float | None = None,
    ):
        if byte_time_s is not None and not byte_time_s >= 0:
            raise ValueError("byte_time_s = %r: must be >= 0 (10 / baud on a UART, 0 for USB CDC)" % (byte_time_s,))
        self.url = url
        self.byte_time_s = byte_time_s  # seconds per byte on the wire into the host; None: the port's own, else 0
        self.baud = baud
        self.handshake_enabled = handshake
        self.reconnect = reconnect
        self.handshake_timeout_s = handshake_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.version: dict[str, int] | None = None
        self.telemetry: dict[str, int] | None = None
        self.last_error: LinkError | None = None
        self.reconnects = 0
        self.heartbeats_sent = 0
        self.rx_tail = b""  # the last RX_TAIL_BYTES bytes received (see describe_foreign_bytes)
        self._port: serial.SerialBase | None = None
        self._parser = p.Parser()
        self._held = 0  # bytes the parser holds (fed, less frames returned and bytes it dropped)
        self._dropped = 0  # the parser's dropped_bytes when _held was last brought up to date
        self._pending = b""  # the start of a frame, waiting for its rest while the parser holds nothing
        self._seq = 0
        self._next_reconnect_s = 0.0
        self._last_tx_s = 0.0
        self._foreign = bytearray()  # bytes seen during a handshake, for diagnosis
        self._echo_only = True
        self._port_factory = port_factory
        self._clock = clock
        self._handshaking = False
        self._hs_deadline_s = 0.0
        self._hs_next_request_s = 0.0
        self._rx_bytes = 0  # bytes read since the port opened: where each frame sits in the stream
        self._rx_reads = deque()  # (stream index of the read's last byte, read time) of the recent reads
        self._byte_s = 0.0  # the byte time in use for this port

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> "Link":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True once the port is open and the handshake (if enabled) has passed."""
        return self._port is not None and not self._handshaking

    @property
    def crc_errors(self) -> int:
        """Frames the parser dropped for a bad CRC since the port was opened (a noisy line)."""
        return self._parser.crc_errors

    def open(self) -> None:
        """Open the port and handshake, blocking up to ``handshake_timeout_s``.

        Raises a LinkError subclass on failure. (Reconnections after a loss
        happen inside ``poll()``/``send()`` and never block.)
        """
        self._start()
        port = self._port
        assert port is not None
        port.timeout = 0.02  # per-read wait while handshaking; the overall limit is the deadline
        try:
            while self._handshaking:
                try:
                    chunk = port.read(max(1, port.in_waiting))
                except (OSError, serial.SerialException) as exc:
                    raise LinkError("lost %r during the handshake: %s" % (self.url, exc)) from exc
                self._note_read(chunk, self._clock())
                self._handshake_step(chunk)
        except LinkError:
            self.close()
            raise
        finally:
            port.timeout = 0

    def close(self) -> None:
        port, self._port = self._port, None
        self._handshaking = False
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):
                pass

    # -- sending -----------------------------------------------------------------
    def send(self, msg_id: int, *fields: Any) -> int:
        """Send one message; returns its sequence number, or -1 if the link is down."""
        return self.send_raw(p.encode(msg_id, self._seq, p.pack(msg_id, *fields)))

    def send_setpoint(self, flags: int, yaw: int, pitch: int, roll: int) -> int:
        """Setpoint in protocol units (0.01 deg or 0.01 deg/s per the flags)."""
        return self.send(p.MSG_SETPOINT, flags, p.sat_i16(yaw), p.sat_i16(pitch), p.sat_i16(roll))

    def send_raw(self, frame: bytes) -> int:
        if self._port is None and not self._try_reconnect():
            return -1
        if self._handshaking:  # nothing but version requests until the device answered
            return -1
        seq = self._seq
        try:
            assert self._port is not None
            self._port.write(frame)
        except (OSError, serial.SerialException) as exc:
            self._lost(exc)
            return -1
        self._seq = (self._seq + 1) & 0xFF
        self._last_tx_s = self._clock()
        return seq

    # -- receiving ---------------------------------------------------------------
    def poll(self) -> list[tuple[int, dict[str, Any]]]:
        """Read what has arrived (never blocks); returns decoded messages in order.

        Also keeps the device's failsafe fed with heartbeats when nothing else
        was sent for ``heartbeat_interval_s``, and reconnects a lost port.
        """
        return [(msg_id, fields) for msg_id, fields, _ in self.poll_stamped()]

    def poll_stamped(self, now_s: float | None = None) -> list[tuple[int, dict[str, Any], float]]:
        """``poll()`` with each message's arrival: (msg_id, fields, rx_s); see the module docstring. The bytes
        read now are stamped ``now_s`` (the caller's clock reading for this poll), by default ``clock()``."""
        if self._port is None:
            self._try_reconnect()
            if self._port is None:
                return []
        try:
            assert self._port is not None
            waiting = self._port.in_waiting
            data = self._port.read(waiting) if waiting else b""
        except (OSError, serial.SerialException) as exc:
            self._lost(exc)
            return []
        if data:
            self._note_read(data, self._clock() if now_s is None else now_s)
        if self._handshaking:  # a reconnection in progress: never block for it
            try:
                out = self._handshake_step(data)
            except LinkError as exc:
                self.last_error = exc
                log.debug("reconnect to %s failed: %s", self.url, exc)
                self.close()
                return []
            if not self._handshaking:
                self._reconnected()
            return out
        out = self._decode(data) if data else []  # most polls find nothing new: no parsing then
        now = self._clock()
        if now - self._last_tx_s >= self.heartbeat_interval_s:
            if self.send(p.MSG_HEARTBEAT, p.ROLE_HOST, int(now * 1000) & 0xFFFFFFFF) >= 0:
                self.heartbeats_sent += 1
        return out

    def _note_read(self, data: bytes, read_s: float) -> None:
        """Remember when the bytes just read came (the frames in them are stamped from it)."""
        if not data:
            return
        self._rx_bytes += len(data)
        reads = self._rx_reads
        reads.append((self._rx_bytes - 1, read_s))
        while len(reads) > 1 and reads[1][0] < self._rx_bytes - 2 * p.MAX_FRAME:
            reads.popleft()  # no frame still being parsed reaches back that far

    def _arrival_s(self, first: int, last: int) -> float:
        """When stream bytes ``first..last`` (one frame) began arriving; see the module docstring."""
        best = None
        for end, read_s in self._rx_reads:
            if end < first:
                continue
            t = read_s - (min(end, last) - first + 1) * self._byte_s
            if best is None or t < best:
                best = t
            if end >= last:
                break
        return self._clock() if best is None else best

    def _decode(self, data: bytes) -> list[tuple[int, dict[str, Any], float]]:
        """The messages that the bytes just read (``data``, already counted by _note_read) complete.

        The firmware's byte-at-a-time Parser decides every frame, with one shortcut: while it holds no
        bytes, a frame that is whole and valid is taken straight from the bytes (what the parser would
        return at its last byte), and the start of one that passes the parser's header checks waits here
        (``_pending``) for the rest, as the parser would wait. Anything else (a bad byte, header or CRC, and
        whatever follows until the parser is empty again) goes to the parser byte by byte, so resynchronising,
        rescans and its counters are the parser's own (tests/test_link.py checks the two against each other
        on corrupted streams).
        """
        if data:  # the last bytes heard, frames or not: what a silent device last said (a REPL prompt?)
            self.rx_tail = (self.rx_tail + data)[-RX_TAIL_BYTES:]
        out: list[tuple[int, dict[str, Any], float]] = []
        buf = self._pending + data if self._pending else data
        if not buf:
            return out
        self._pending = b""
        start = self._rx_bytes - len(buf)  # stream index of buf[0]
        parser = self._parser
        i = 0
        n = len(buf)
        while i < n:
            if not self._held:  # the parser holds nothing: the shortcut
                total = frame_at(buf, i)
                if total > 0:
                    parser.frames += 1
                    self._emit(out, buf[i + 4], buf[i + p.PAYLOAD_OFFSET:i + total - p.CRC_LEN], start + i,
                               start + i + total - 1)
                    i += total
                    continue
                if total == 0:
                    self._pending = bytes(buf[i:])
                    break
            msg_id = parser.feed(buf[i])
            self._held += 1
            pos = start + i
            while msg_id >= 0:
                self._held -= parser.length + p.OVERHEAD  # discarded by the flush() that follows
                # the frame ends at the byte just fed (one that flush() finds ended earlier: taking it as
                # ending here only makes its stamp later, never early)
                self._emit(out, msg_id, parser.payload(), pos - p.OVERHEAD - parser.length + 1, pos)
                msg_id = parser.flush()
            self._held -= parser.dropped_bytes - self._dropped  # bytes it skipped to resynchronise
            self._dropped = parser.dropped_bytes
            i += 1
        return out

    def _emit(self, out: list, msg_id: int, payload: bytes, first: int, last: int) -> None:
        """Append message ``msg_id`` (stream bytes ``first..last``) to ``out``, stamped; a payload that does not
        decode is dropped."""
        fields = p.decode(msg_id, payload)
        if fields is not None:
            named = dict(zip(p.FIELDS[msg_id], fields))
            if msg_id == p.MSG_TELEMETRY:
                self.telemetry = named
            out.append((msg_id, named, self._arrival_s(first, last)))

    # -- handshake and reconnection ------------------------------------------------
    def _start(self) -> None:
        """Open the port and send the first VERSION_REQUEST (does not wait)."""
        self.close()
        self._port = self._port_factory() if self._port_factory else open_port(self.url, self.baud)
        self._parser.reset()
        self._held = 0
        self._dropped = self._parser.dropped_bytes
        self._pending = b""
        self._rx_bytes = 0
        self._rx_reads.clear()
        own = getattr(self._port, "byte_time_s", None)
        self._byte_s = self.byte_time_s if self.byte_time_s is not None else float(own or 0.0)
        self._last_tx_s = self._clock()
        if not self.handshake_enabled:
            return
        try:
            self._port.reset_input_buffer()
        except (OSError, serial.SerialException, AttributeError):
            pass
        self._handshaking = True
        self._foreign = bytearray()
        self._parser.frames = 0
        self._echo_only = True
        self._hs_deadline_s = self._clock() + self.handshake_timeout_s
        self._hs_next_request_s = 0.0
        self._handshake_step(b"")

    def _handshake_step(self, chunk: bytes) -> list[tuple[int, dict[str, Any], float]]:
        """Advance the handshake with newly read bytes; raises a LinkError when it fails."""
        assert self._port is not None
        now = self._clock()
        if now >= self._hs_next_request_s:  # ask again: the first request may hit a booting board
            self._port.write(p.encode(p.MSG_VERSION_REQUEST, self._seq, p.pack(p.MSG_VERSION_REQUEST, p.PROTOCOL_VERSION)))
            self._seq = (self._seq + 1) & 0xFF
            self._hs_next_request_s = now + 0.25
        if chunk:
            self._foreign.extend(chunk)
            del self._foreign[:-256]
        messages = self._decode(chunk)
        for msg_id, fields, _ in messages:
            if msg_id != p.MSG_VERSION_REQUEST:
                self._echo_only = False
            if msg_id != p.MSG_VERSION:
                continue
            if fields["protocol_version"] != p.PROTOCOL_VERSION:
                raise ProtocolVersionMismatch(
                    "the firmware on %r speaks protocol v%d but this host speaks v%d: "
                    "update both to the same OpenSteady release (`opensteady flash`)."
                    % (self.url, fields["protocol_version"], p.PROTOCOL_VERSION)
                )
            self.version = fields
            self._handshaking = False
            log.info("link open on %s (%s)", self.url, fields)
            return messages
        if now < self._hs_deadline_s:
            return messages
        if self._parser.frames and self._echo_only:
            raise WrongFirmware(
                "the port %r echoes our own bytes back (a loopback, or a terminal echoing input); "
                "no OpenSteady firmware answered." % self.url
            )
        if self._parser.frames:
            raise WrongFirmware(
                "the device on %r sends OpenSteady frames but did not answer the version request: "
                "its firmware is too old or busy; reflash it with `opensteady flash`." % self.url
            )
        if self._foreign:
            raise WrongFirmware("no OpenSteady firmware answered on %r: %s" % (self.url, describe_foreign_bytes(bytes(self._foreign))))
        raise NoResponse(
            "nothing answered on %r within %.1f s. Check the baud rate (%d), that the board runs the "
            "OpenSteady firmware, and that it is powered." % (self.url, self.handshake_timeout_s, self.baud)
        )

    def _lost(self, exc: Exception) -> None:
        log.warning("link to %s lost: %s", self.url, exc)
        self.close()
        self.telemetry = None
        if not self.reconnect:
            self.last_error = LinkError("link to %r lost: %s" % (self.url, exc))
        self._next_reconnect_s = self._clock() + self.reconnect_interval_s

    def _try_reconnect(self) -> bool:
        """Start reopening the port if it is time; True only when the link is usable."""
        now = self._clock()
        if not self.reconnect or now < self._next_reconnect_s:
            return False
        self._next_reconnect_s = now + self.reconnect_interval_s
        try:
            self._start()
        except LinkError as exc:
            self.last_error = exc
            log.debug("reconnect to %s failed: %s", self.url, exc)
            return False
        if self._handshaking:
            return False
        self._reconnected()
        return True

    def _reconnected(self) -> None:
        self.reconnects += 1
        self.last_error = None
        log.info("link to %s re-established", self.url)
