"""host.link over real pyserial transports: pty pairs, loop:// and missing ports."""

import errno
import os
import pty
import select
import threading
import tty

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensteady.firmware import protocol as p
from opensteady.host import link as link_mod
from opensteady.host.link import (
    Link,
    NoResponse,
    PortNotFound,
    PortPermissionDenied,
    ProtocolVersionMismatch,
    WrongFirmware,
)


class PtyDevice:
    """A device on the master side of a pty, speaking the OpenSteady protocol.

    ``answer`` decides what it does with a VERSION_REQUEST: "version" replies
    with protocol ``protocol_version``; raw bytes are written as they are;
    None stays silent. It serves requests on its own thread, or, with
    ``threaded=False``, only when :meth:`serve` is called (see DeviceClock).
    """

    def __init__(self, answer="version", protocol_version=p.PROTOCOL_VERSION, threaded=True, imu_delay_us=0):
        self.imu_delay_us = imu_delay_us  # what its VERSION reports
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        # Keep our own slave fd open: with no slave open, reads on the master fail (EIO).
        self.slave_name = os.ttyname(self._slave)
        self.answer = answer
        self.protocol_version = protocol_version
        self.received = []
        self.parser = p.Parser()
        self._stop = threading.Event()
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready and self._handle_input() is None:
                return

    def serve(self):
        """Answer whatever the host has sent so far, without waiting for more.

        Returns once any reply is readable on the host's side of the pty, so a
        read by the host after this call finds it (bounded by a long I/O cap).
        """
        if not select.select([self.master], [], [], 0)[0]:
            return
        if self._handle_input():
            select.select([self._slave], [], [], 2.0)

    def pending_for_host(self):
        """True while bytes wait on the host's side of the pty."""
        return bool(select.select([self._slave], [], [], 0)[0])

    def _handle_input(self):
        """Read what arrived and reply; True if a reply was written, None when the pty is gone."""
        try:
            data = os.read(self.master, 256)
        except OSError:
            return None
        replied = False
        for b in data:
            m = self.parser.feed(b)
            if m < 0:
                continue
            fields = p.decode(m, self.parser.payload())
            self.received.append((m, fields))
            if m == p.MSG_VERSION_REQUEST and self.answer is not None:
                reply = self.answer
                if reply == "version":
                    reply = p.encode(p.MSG_VERSION, 0, p.pack(p.MSG_VERSION, self.protocol_version, 0, 1, 0, 1, 3,
                                                          self.imu_delay_us))
                os.write(self.master, reply)
                replied = True
        return replied

    def wait_for(self, predicate, polls=400):
        """Wait (bounded by a poll count) until predicate(received) holds."""
        for _ in range(polls):
            if self._thread is None:
                self.serve()
            if predicate(self.received):
                return
            select.select([], [], [], 0.005)
        raise AssertionError("device never got it; received %r" % self.received)

    def send(self, msg_id, *fields):
        os.write(self.master, p.encode(msg_id, 0, p.pack(msg_id, *fields)))

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        os.close(self.master)
        os.close(self._slave)


class DeviceClock:
    """The link's clock in handshake tests: simulated seconds that pass only while the line is idle.

    Each reading first lets the (unthreaded) device answer what it has
    received; time advances by ``step_s`` only when no byte waits for the
    host. So a device's answer always arrives "before" any deadline that is
    more than a few steps away, and a silent device reaches the deadline
    after a fixed number of readings: the outcome never depends on how fast
    the machine is.
    """

    def __init__(self, device=None, step_s=0.05):
        self.device = device
        self.step_s = step_s
        self.t_s = 0.0
        self.readings = 0

    def __call__(self):
        self.readings += 1
        if self.device is not None:
            self.device.serve()
            if self.device.pending_for_host():
                return self.t_s
        self.t_s += self.step_s
        return self.t_s


def patient_clock():
    """For a device on its own thread: 1 ms of link time per reading, so a 1.5 s handshake
    deadline lies 1500 readings (each a read that may wait 20 ms) away; it is never what
    decides whether an answering device is heard."""
    return DeviceClock(step_s=0.001)


@pytest.fixture
def device():
    dev = PtyDevice()
    yield dev
    dev.close()


def wait_for(predicate, link, polls=400):
    """Poll the link until predicate() holds; bounded by a poll count, not a clock."""
    got = []
    for _ in range(polls):
        got += link.poll()
        if predicate(got):
            return got
        select.select([], [], [], 0.005)
    raise AssertionError("condition not met; received %r" % got)


def test_handshake_setpoint_and_telemetry_over_a_pty(device):
    with Link(device.slave_name, clock=patient_clock()) as link:
        assert link.version["protocol_version"] == p.PROTOCOL_VERSION
        assert link.version["capabilities"] == 3
        link.send_setpoint(p.SP_YAW_IS_RATE, 1500, -250.4, 1e9)
        device.send(p.MSG_TELEMETRY, *([4, 3, 0, 1234] + [0] * 11 + [180, 2**30 - 5]))
        wait_for(lambda got: any(m == p.MSG_TELEMETRY for m, _ in got), link)
        assert link.telemetry["yaw_cdeg"] == 1234 and link.telemetry["loop_time_us"] == 180
        assert link.telemetry["t_us"] == 2**30 - 5
        device.wait_for(lambda r: any(m == p.MSG_SETPOINT for m, _ in r))
    setpoints = [f for m, f in device.received if m == p.MSG_SETPOINT]
    assert setpoints == [(p.SP_YAW_IS_RATE, 1500, -250, 32767)]


def test_spy_url_hexdumps_traffic(device, capsys):
    with Link("spy://%s" % device.slave_name, clock=patient_clock()) as link:
        link.send(p.MSG_MODE, p.MODE_TRACK)
    err = capsys.readouterr().err
    assert "TX" in err and "A5 5A 01" in err  # the MODE frame, hexdumped


def test_missing_port_names_the_port_and_the_fix():
    with pytest.raises(PortNotFound, match="/dev/ttyOPENSTEADY0.*plugged in"):
        Link("/dev/ttyOPENSTEADY0").open()


def test_permission_denied_explains_the_dialout_group(monkeypatch):
    def denied(*a, **k):
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyACM0: [Errno 13] Permission denied")

    monkeypatch.setattr(link_mod.serial, "serial_for_url", denied)
    with pytest.raises(PortPermissionDenied, match="dialout"):
        Link("/dev/ttyACM0").open()


def test_silent_board_is_no_response():
    dev = PtyDevice(answer=None, threaded=False)
    clock = DeviceClock(dev)
    try:
        with pytest.raises(NoResponse, match="nothing answered"):
            Link(dev.slave_name, handshake_timeout_s=0.3, clock=clock).open()
        # the version request was repeated every 0.25 s of the link's clock until the 0.3 s deadline
        dev.wait_for(lambda r: len(r) >= 2)
        assert [m for m, _ in dev.received] == [p.MSG_VERSION_REQUEST] * 2
        # the deadline was set at the second reading (0.1 s): the link gave up at the first reading past 0.4 s
        assert clock.t_s == pytest.approx(0.45)
    finally:
        dev.close()


@pytest.mark.parametrize(
    "answer,hint",
    [
        (b"MicroPython v1.29.0 on 2026-08-29; Raspberry Pi Pico with RP2040\r\n>>> ", "opensteady flash"),
        (b"$\x19\x02\x1b\x01\x02\x03\x04", "simplebgc"),
        (b"\x00\x17\x42garbage at the wrong baud rate", "wrong baud rate"),
    ],
)
def test_other_firmware_is_diagnosed(answer, hint):
    dev = PtyDevice(answer=answer, threaded=False)
    try:
        with pytest.raises(WrongFirmware, match=hint):
            Link(dev.slave_name, handshake_timeout_s=0.4, clock=DeviceClock(dev)).open()
    finally:
        dev.close()


def test_mavlink_device_is_diagnosed():
    from pymavlink.dialects.v20 import common as mavlink

    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=154)
    heartbeat = mav.heartbeat_encode(26, 0, 0, 0, 0).pack(mav)
    dev = PtyDevice(answer=heartbeat, threaded=False)
    try:
        with pytest.raises(WrongFirmware, match="mavlink"):
            Link(dev.slave_name, handshake_timeout_s=0.4, clock=DeviceClock(dev)).open()
    finally:
        dev.close()


def test_loopback_is_not_mistaken_for_a_device():
    # loop:// hands our own bytes back at once, so the echo is there before the clock moves on
    with pytest.raises(WrongFirmware, match="echoes"):
        Link("loop://", handshake_timeout_s=0.3, clock=DeviceClock()).open()


@pytest.mark.parametrize("theirs", [p.PROTOCOL_VERSION - 1, p.PROTOCOL_VERSION + 1], ids=["older", "newer"])
def test_protocol_version_mismatch(theirs):
    """A board on another protocol version (e.g. v2, whose TELEMETRY has no device time) is refused by name."""
    dev = PtyDevice(protocol_version=theirs, threaded=False)
    try:
        with pytest.raises(ProtocolVersionMismatch, match="speaks protocol v%d but this host speaks v%d.*opensteady flash"
                           % (theirs, p.PROTOCOL_VERSION)):
            Link(dev.slave_name, clock=DeviceClock(dev)).open()
    finally:
        dev.close()


def test_reconnects_when_the_device_disappears_and_comes_back(tmp_path):
    path = tmp_path / "ttyGIMBAL"
    first = PtyDevice()
    path.symlink_to(first.slave_name)
    link = Link(str(path), reconnect_interval_s=0.0, clock=patient_clock())
    link.open()
    assert link.connected
    # unplug: the device node vanishes
    first.close()
    path.unlink()
    for _ in range(5):
        assert link.poll() == []
        link.send(p.MSG_MODE, p.MODE_TRACK)  # never raises while unplugged
    assert not link.connected
    assert isinstance(link.last_error, PortNotFound)
    # plug back in: a new device node under the same name
    second = PtyDevice()
    path.symlink_to(second.slave_name)
    try:
        wait_for(lambda got: link.connected, link)
        assert link.reconnects == 1 and link.last_error is None
        link.send(p.MSG_MODE, p.MODE_TRACK)
        second.send(p.MSG_HEARTBEAT, p.ROLE_DEVICE, 5)
        wait_for(lambda got: any(m == p.MSG_HEARTBEAT for m, _ in got), link)
        second.wait_for(lambda r: (p.MSG_MODE, (p.MODE_TRACK,)) in r)
    finally:
        link.close()
        second.close()


def test_reconnecting_to_a_silent_device_never_blocks_the_caller(tmp_path):
    path = tmp_path / "ttyGIMBAL"
    first = PtyDevice()
    path.symlink_to(first.slave_name)
    clock = DeviceClock(step_s=0.0)  # time stands still: no deadline can pass during the polls
    link = Link(str(path), reconnect_interval_s=0.0, handshake_timeout_s=1.0, clock=clock)
    link.open()
    first.close()
    path.unlink()
    link.poll()
    silent = PtyDevice(answer=None)
    path.symlink_to(silent.slave_name)
    try:
        for _ in range(20):
            assert link.poll() == []
            assert link.send(p.MSG_MODE, p.MODE_TRACK) == -1  # nothing but version requests yet
        # twenty polls returned while the handshake deadline was still ahead: none of them waited for it
        assert not link.connected and clock.t_s < link._hs_deadline_s
        silent.wait_for(lambda r: any(m == p.MSG_VERSION_REQUEST for m, _ in r))
    finally:
        link.close()
        silent.close()


def test_link_over_a_port_object_from_a_factory():
    dev = PtyDevice()
    try:
        link = Link("pty", port_factory=lambda: serial.Serial(dev.slave_name, timeout=0), clock=patient_clock())
        link.open()
        assert link.connected and link.version["fw_minor"] == 1
        link.close()
    finally:
        dev.close()


def test_heartbeat_is_sent_when_the_host_is_otherwise_quiet(device):
    with Link(device.slave_name, heartbeat_interval_s=0.0, clock=patient_clock()) as link:
        link.poll()
        device.wait_for(lambda r: any(m == p.MSG_HEARTBEAT and f[0] == p.ROLE_HOST for m, f in r))


class CountingPort:
    """A real pyserial ``loop://`` port that records every read (what a poll asked the transport for)."""

    def __init__(self):
        self.port = serial.serial_for_url("loop://", timeout=0)
        self.reads = []

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def read(self, size=1):
        self.reads.append(size)
        return self.port.read(size)

    def write(self, data):
        return self.port.write(data)

    def close(self):
        self.port.close()


def test_a_poll_that_finds_no_bytes_reads_and_parses_nothing_but_still_sends_the_heartbeat():
    """Most polls (about nine in ten in a simulated run, 2 ms apart) find no new byte: they return at once, with
    no read, no stamp and nothing fed to the parser; the heartbeat still goes out when it is due."""
    now = [0.0]
    port = CountingPort()
    link = Link("loop://", handshake=False, port_factory=lambda: port, clock=lambda: now[0], heartbeat_interval_s=0.1)
    link.open()
    now[0] = 0.05
    assert link.poll_stamped() == [] and port.reads == [] and link.rx_tail == b"" and not link._rx_reads
    assert link.heartbeats_sent == 0 and port.in_waiting == 0
    now[0] = 0.1
    assert link.poll_stamped() == [] and port.reads == []  # the heartbeat is due: written, nothing read
    assert link.heartbeats_sent == 1 and port.in_waiting > 0
    # loop:// hands the heartbeat back: the next poll reads it, stamps it at the poll's time and decodes it
    now[0] = 0.12
    (msg_id, fields, rx_s), = link.poll_stamped()
    assert msg_id == p.MSG_HEARTBEAT and fields["role"] == p.ROLE_HOST and fields["uptime_ms"] == 100 and rx_s == 0.12
    assert port.reads == [p.OVERHEAD + p.SIZES[p.MSG_HEARTBEAT]] and len(link.rx_tail) == port.reads[0]
    link.close()


def _decode_byte_by_byte(link, data):
    """The reference: every byte through the firmware's Parser (what Link._decode did before its shortcut)."""
    out = []
    parser = link._parser
    pos = link._rx_bytes - len(data)
    for b in data:
        msg_id = parser.feed(b)
        while msg_id >= 0:
            fields = p.decode(msg_id, parser.payload())
            if fields is not None:
                out.append((msg_id, dict(zip(p.FIELDS[msg_id], fields)),
                            link._arrival_s(pos - p.OVERHEAD - parser.length + 1, pos)))
            msg_id = parser.flush()
        pos += 1
    return out


def _frame(msg_id, seq):
    size = p.SIZES[msg_id]
    return p.encode(msg_id, seq, bytes((seq * 7 + k) & 0xFF for k in range(size)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decoding_takes_whole_frames_as_the_parser_would(data):
    """Link._decode's shortcut (whole frames taken at once while the parser is empty, a frame's start kept until
    its rest comes) gives the same messages, stamps and parser counters as feeding every byte to the parser, on
    streams of frames with garbage, cut and corrupted frames, read in chunks of any size."""
    ids = sorted(p.SIZES)
    stream = bytearray()
    for seq in range(data.draw(st.integers(1, 12))):
        frame = bytearray(_frame(data.draw(st.sampled_from(ids)), seq))
        damage = data.draw(st.sampled_from(["none", "none", "none", "flip", "cut", "garbage", "sync"]))
        if damage == "flip":
            k = data.draw(st.integers(0, len(frame) - 1))
            frame[k] ^= 1 << data.draw(st.integers(0, 7))
        elif damage == "cut":
            frame = frame[:data.draw(st.integers(1, len(frame) - 1))]
        elif damage == "garbage":
            stream += data.draw(st.binary(min_size=1, max_size=8))
        elif damage == "sync":  # a false start: sync bytes and a plausible header, then a real frame
            stream += bytes([p.SYNC0, p.SYNC1, p.SIZES[p.MSG_HEARTBEAT]])
        stream += frame
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=12))))
    chunks = [bytes(stream[a:b]) for a, b in zip([0] + cuts, cuts + [len(stream)])]
    mine = Link("x", handshake=False, clock=lambda: -1.0, byte_time_s=1e-4)
    ref = Link("x", handshake=False, clock=lambda: -1.0, byte_time_s=1e-4)
    got, want = [], []
    for k, chunk in enumerate(chunks):
        for link in (mine, ref):
            link._note_read(chunk, 0.01 * k)
        got += mine._decode(chunk)
        want += _decode_byte_by_byte(ref, chunk)
        assert got == want
    counters = ("frames", "crc_errors", "header_errors", "dropped_bytes")
    assert [getattr(mine._parser, c) for c in counters] == [getattr(ref._parser, c) for c in counters]


def test_frame_at_checks_the_crc_as_the_protocol_does():
    frame = bytearray(_frame(p.MSG_TELEMETRY, 9))
    assert link_mod.frame_at(bytes(frame), 0) == len(frame)
    assert link_mod.frame_at(bytes(frame[:-1]), 0) == 0
    end = len(frame) - p.CRC_LEN
    assert p.crc16(frame, 2, end) == frame[end] | (frame[end + 1] << 8)
    frame[end] ^= 0x10
    assert link_mod.frame_at(bytes(frame), 0) == -1
