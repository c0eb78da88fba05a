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
    backend = OpenSteadyBackend("loop://", handshake=False, clock=lambda: 0.0)
    mount = Mount(backend, telemetry_max_age_s=0.25)
    mount.open()
    port = backend.link._port
    t0_us = WRAP - 30_000  # the device counter wraps between the second and third frame
    port.write(b"".join(telemetry_frame(k, 1000 * k, (t0_us + 20_000 * k) % WRAP) for k in range(3)))
    # loop:// hands the bytes straight back (our own MODE request too, which the parser ignores)
    mount.poll(0.050)
    assert backend.telemetry_frames == 3 and len(mount.history._samples) == 3
    at = mount.telemetry_at(0.050 - 0.040 + 0.010, 0.050)  # 10 ms after the first frame was measured
    assert at["yaw_deg"] == pytest.approx(5.0)  # halfway between 0 and 10 deg
    assert mount.telemetry_at(0.0, 0.31) is None  # 260 ms after the last arrival: stale
    mount.close(0.31)
