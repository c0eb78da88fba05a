"""Telemetry freshness and time alignment (host/attitude_history.py, Mount.telemetry_at).

The device's clock, the link delays and the host's polls are simulated with a
seeded RNG; samples go through the real OpenSteady protocol over loop:// where
a link is involved. No wall clock anywhere.
"""

import random

import pytest

from opensteady.firmware import protocol as p
from opensteady.host.attitude_history import AttitudeHistory, DeviceClock
from opensteady.host.mount import Mount
from opensteady.host.mount.opensteady import OpenSteadyBackend

WRAP = 2**30


def yaw_at(t_s):
    return 30.0 * t_s  # a pan at 30 deg/s


def test_device_clock_finds_the_offset_from_the_fastest_sample_across_a_wrap():
    rng = random.Random(1)
    clock = DeviceClock(WRAP)
    boot_s = 1000.0  # host time when the device's counter read 0 (its own epoch is unknown to the host)
    start_us = WRAP - 2_000_000  # the counter wraps 2 s into the run
    errors = []
    for k in range(500):  # 10 s at 50 Hz
        device_us = start_us + 20_000 * k
        measured_s = boot_s + device_us * 1e-6
        delay_s = 0.0036 + rng.expovariate(1 / 0.004)  # wire time plus a random queueing delay
        device_s = clock.observe(device_us % WRAP, measured_s + delay_s)
        errors.append(device_s + clock.offset_s - measured_s)
    # after the first second the fastest sample seen pins the offset to within the 3.6 ms wire time + 0.2 ms
    assert max(errors[50:]) == pytest.approx(0.0036, abs=2e-4)
    assert all(e >= 0.0036 - 1e-9 for e in errors)
    assert clock.resets == 0


def test_device_clock_resets_when_the_device_reboots():
    clock = DeviceClock(WRAP)
    for k in range(10):
        clock.observe(5_000_000 + 20_000 * k, 100.0 + 0.02 * k + 0.004)
    device_s = clock.observe(3_000, 100.5)  # rebooted: its counter restarted near 0
    assert clock.resets == 1 and device_s + clock.offset_s == pytest.approx(100.5)


def test_interpolates_at_the_frame_capture_time_not_the_newest_sample():
    history = AttitudeHistory(max_age_s=0.25)
    for k in range(10):  # measured every 20 ms, arriving 5 ms later
        t = 0.02 * k
        history.add({"yaw_deg": yaw_at(t), "pitch_deg": 1.0, "mode": "track"}, t + 0.005, int(t * 1e6), WRAP)
    frame_s = 0.131  # between samples 6 and 7
    got = history.at(frame_s, now_s=0.19)
    assert got["attitude_span_s"] == pytest.approx(0.02)  # from samples 20 ms apart
    # host time = device time + the fastest sample's delay (5 ms here: the part of the delay no one-way
    # measurement can see), so the frame gets the attitude measured 5 ms before it
    assert got["yaw_deg"] == pytest.approx(yaw_at(frame_s - 0.005), abs=1e-6)
    assert got["pitch_deg"] == 1.0 and got["mode"] == "track"
    assert history.at(None, now_s=0.19)["yaw_deg"] == pytest.approx(yaw_at(0.18))  # no capture time: the newest
    # after the newest sample: extrapolated at its rate for up to max_extrapolate_s (100 ms); beyond that the
    # camera may have turned any way, so the attitude is unknown (not the old one)
    assert history.at(0.20, now_s=0.2)["yaw_deg"] == pytest.approx(yaw_at(0.195))
    assert history.at(0.284, now_s=0.2)["yaw_deg"] == pytest.approx(yaw_at(0.279))
    assert history.at(0.29, now_s=0.2) is None


def test_angles_interpolate_the_short_way_across_180():
    history = AttitudeHistory()
    history.add({"yaw_deg": 179.0}, 0.0)
    history.add({"yaw_deg": -179.0}, 0.02)
    assert (history.at(0.01, 0.02)["yaw_deg"] + 180.0) % 360.0 == pytest.approx(0.0, abs=1e-9)


def test_stale_telemetry_is_none_and_fresh_again_on_the_next_sample():
    history = AttitudeHistory(max_age_s=0.25)
    assert history.at(0.0, 0.0) is None  # nothing yet
    history.add({"yaw_deg": 5.0}, 1.0)
    assert history.at(1.0, 1.25)["yaw_deg"] == 5.0
    assert history.at(1.0, 1.26) is None and history.latest(1.26) is None
    history.add({"yaw_deg": 6.0}, 2.0)
    assert history.at(2.0, 2.0)["yaw_deg"] == 6.0
    with pytest.raises(ValueError, match="max_age_s"):
        AttitudeHistory(max_age_s=0)


def telemetry_frame(seq, yaw_cdeg, t_us):
    fields = dict.fromkeys(p.FIELDS[p.MSG_TELEMETRY], 0)
    fields.update(mode=p.MODE_TRACK, state_flags=p.STATE_CALIBRATED | p.STATE_MOTORS_ON, yaw_cdeg=yaw_cdeg,
                  t_us=t_us)
    return p.encode(p.MSG_TELEMETRY, seq, p.pack(p.MSG_TELEMETRY, *(fields[k] for k in p.FIELDS[p.MSG_TELEMETRY])))


def test_mount_keeps_every_sample_of_a_poll_and_lines_them_up_by_device_time():
    """Three frames arrive in one poll (a late poll): all three go into the history, each at its own
    device time, so a frame captured between the first two gets the attitude of that moment."""
    now = [0.0]
    backend = OpenSteadyBackend("loop://", handshake=False, clock=lambda: now[0])
    mount = Mount(backend, telemetry_max_age_s=0.25)
    mount.open()
    port = backend.link._port
    t0_us = WRAP - 30_000  # the device counter wraps between the second and third frame
    port.write(b"".join(telemetry_frame(k, 1000 * k, (t0_us + 20_000 * k) % WRAP) for k in range(3)))
    # loop:// hands the bytes straight back (our own MODE request too, which the parser ignores)
    now[0] = 0.050
    mount.poll(0.050)
    assert backend.telemetry_frames == 3 and len(mount.history._samples) == 3
    at = mount.telemetry_at(0.050 - 0.040 + 0.010, 0.050)  # 10 ms after the first frame was measured
    assert at["yaw_deg"] == pytest.approx(5.0)  # halfway between 0 and 10 deg
    assert mount.telemetry_at(0.0, 0.31) is None  # 260 ms after the last arrival: stale
    mount.close(0.31)


class UartPort:
    """A device's UART into the host on a simulated clock: the simulator's line model (sim.link: 10 bits a byte at
    the baud rate, plus the USB bridge's fixed latency) behind pyserial's read/in_waiting, declaring its byte time
    as the simulated rig's port does."""

    def __init__(self, clock, params):
        from opensteady.sim.link import SerialLink

        self.clock = clock
        self.line = SerialLink(params)
        self.byte_time_s = 10.0 / params.baud
        self._rx = bytearray()

    @property
    def in_waiting(self):
        self._rx += self.line.read(self.clock())
        return len(self._rx)

    def read(self, size=1):
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data):
        return len(data)  # the host's own frames (MODE, heartbeats): the device side is not modelled here

    def close(self):
        pass


@pytest.mark.parametrize("declare_byte_time", [True, False])
def test_the_device_clock_converges_on_the_link_latency_not_the_wire_time_or_the_poll(declare_byte_time):
    """Telemetry (41-byte frames, 3.6 ms on the wire at 115200 baud) over a UART with 1 ms of latency, polled every
    2 ms at a phase that drifts against the device's 20 ms schedule. Each frame is stamped when its first byte
    came, so host = device + offset maps a sample to within 0.3 ms of when it was sent plus the 1 ms latency no
    one-way measurement can see. Stamped when the whole frame had been read, the offset came out 4.6-6.6 ms: the
    wire time and the poll gap, which put every frame's attitude 5 ms early."""
    from opensteady.host.link import Link
    from opensteady.sim.link import LinkParams

    t = [0.0]
    params = LinkParams(baud=115200, latency_s=0.001)
    port = UartPort(lambda: t[0], params)
    link = Link("uart://sim", handshake=False, port_factory=lambda: port, clock=lambda: t[0],
                byte_time_s=None if declare_byte_time else 0.0)
    backend = OpenSteadyBackend(link.url, link=link)
    mount = Mount(backend)
    mount.open()
    boot_s = 3.0  # host time when the device's counter read 0
    sent = []  # (host time the frame was written, device us)
    next_send_s = boot_s
    while t[0] < boot_s + 2.0:
        while next_send_s <= t[0]:
            device_us = int(round((next_send_s - boot_s) * 1e6))
            port.line.write(telemetry_frame(len(sent) & 0xFF, 0, device_us % WRAP), next_send_s)
            sent.append((next_send_s, device_us))
            next_send_s += 0.020
        mount.poll(t[0])
        t[0] += 0.0021  # a poll every 2.1 ms: its phase against the 20 ms telemetry drifts
    assert backend.telemetry_frames >= 95
    offset_s = mount.history.clock.offset_s - boot_s  # host - device, less the true clock offset
    byte_s = 10.0 / params.baud if declare_byte_time else 0.0
    # the fastest frame: read 2.1 ms at most after its first byte came (less the bytes counted on the wire)
    assert params.latency_s + byte_s - 1e-9 <= offset_s + byte_s <= params.latency_s + 10.0 / params.baud + 3e-4
    wire_s = (p.OVERHEAD + p.SIZES[p.MSG_TELEMETRY]) * 10.0 / params.baud
    assert wire_s > 0.0035  # what the old stamp (the poll that completed the frame) could never get below
    mount.close(t[0])


def test_frames_split_over_reads_are_stamped_from_the_earliest_bound():
    """A frame whose first 10 bytes were read at 5.000 s and the rest at 5.010 s began arriving by 5.000 s less
    those 10 bytes' wire time, not at 5.010 s when it was complete; without a byte time, at 5.000 s."""
    from opensteady.host.link import Link

    frame = telemetry_frame(1, 0, 1000)
    for byte_s, expected in ((10.0 / 115200, 5.0 - 10 * 10.0 / 115200), (0.0, 5.0)):
        t = [4.0]
        link = Link("loop://", handshake=False, clock=lambda t=t: t[0], byte_time_s=byte_s, heartbeat_interval_s=60.0)
        link.open()
        port = link._port
        t[0] = 5.0
        port.write(frame[:10])
        assert link.poll_stamped() == []
        t[0] = 5.010
        port.write(frame[10:])
        (msg_id, fields, rx_s), = link.poll_stamped()
        assert msg_id == p.MSG_TELEMETRY and fields["t_us"] == 1000
        assert rx_s == pytest.approx(expected, abs=1e-9)
        link.close()
    with pytest.raises(ValueError, match="byte_time_s"):
        Link("loop://", byte_time_s=-1.0)


def test_an_attitude_is_placed_its_imu_delay_before_the_frame_was_sent():
    """The device sends each frame at t_us but its attitude is the IMU filter's delay older (VERSION's imu_delay_us):
    the clock mapping still comes from t_us (so the offset is unchanged), and the sample sits delay_s earlier."""
    plain, delayed = AttitudeHistory(), AttitudeHistory()
    for k in range(10):
        t = 0.02 * k
        for history, delay_s in ((plain, 0.0), (delayed, 0.0048)):
            history.add({"yaw_deg": yaw_at(t)}, t + 0.002, int(t * 1e6), WRAP, delay_s)
    assert plain.clock.offset_s == delayed.clock.offset_s == pytest.approx(0.002)
    # the pan's yaw at host time h: plain takes the attitude as of h - 2 ms, delayed as of h - 2 ms + 4.8 ms
    assert plain.at(0.100, 0.19)["yaw_deg"] == pytest.approx(yaw_at(0.098))
    assert delayed.at(0.100, 0.19)["yaw_deg"] == pytest.approx(yaw_at(0.098 + 0.0048))


def test_the_opensteady_driver_takes_the_imu_delay_from_the_firmwares_version():
    """A board on a pty answers the handshake with imu_delay_us 4800 (an MPU-6050 at DLPF_CFG 3)."""
    from tests.test_link import DeviceClock, PtyDevice

    assert OpenSteadyBackend("loop://", handshake=False).attitude_delay_s == 0.0  # no VERSION yet
    dev = PtyDevice(threaded=False, imu_delay_us=4800)
    try:
        backend = OpenSteadyBackend(dev.slave_name, clock=DeviceClock(dev))
        backend.open()
        assert backend.attitude_delay_s == pytest.approx(0.0048)
        backend.close()
    finally:
        dev.close()
