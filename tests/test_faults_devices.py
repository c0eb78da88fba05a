"""Fault suite, device side: no value a gimbal sends can crash the host.

Hostile but well-formed messages (valid CRCs, built by pymavlink, by the SimpleBGC
frame builder and by the firmware's own protocol encoder) go through real pty pairs
into each driver; the drivers refuse them at the boundary, count them and keep the
last good telemetry. Then the real `opensteady track` app runs against a MAVLink
gimbal that sends only NaN/inf attitudes and must finish normally.
"""

import json
import math
import os
import select
import subprocess
import sys
import threading

import numpy as np
import pytest

from opensteady.firmware import protocol as p
from opensteady.host.mount import Mount
from opensteady.host.mount import simplebgc as sbgc
from opensteady.host.mount.backend import MountBackend, telemetry_problem
from opensteady.host.mount.mavlink import MavlinkBackend
from opensteady.host.mount.opensteady import OpenSteadyBackend
from opensteady.host.track import Stats, _status_line
from opensteady.host.track_bench import write_astronaut_video
from tests.micropython import micropython_binary
from tests.test_host_mount import HANG_S, independent_mavlink, poll_until, pty_pair, realtime_payload

INF = float("inf")
NAN = float("nan")


def attitude_status(device, q, rates=(0.0, 0.0, 0.0)):
    return device.gimbal_device_attitude_status_encode(0, 0, 1000, 0, [float(v) for v in q], *rates, 0).pack(device)


@pytest.mark.parametrize("q,rates,reason", [
    ((NAN, 0, 0, 0), (0, 0, 0), "not finite"),
    ((1, INF, 0, 0), (0, 0, 0), "not finite"),
    ((0, 0, 0, 0), (0, 0, 0), "norm 0"),
    ((3, 0, 0, 0), (0, 0, 0), "norm 3"),
    ((1, 0, 0, 0), (0, 0, INF), "yaw_rate_dps = inf"),
    ((1, 0, 0, 0), (0, 0, 1e30), "beyond"),
])
def test_mavlink_refuses_bad_attitudes_and_keeps_the_last_good_one(q, rates, reason):
    m, device = independent_mavlink()
    with pty_pair() as (dev, path):
        mount = Mount(MavlinkBackend(path))
        mount.open()
        os.write(dev, attitude_status(device, (1, 0, 0, 0)))
        good = poll_until(mount.poll, bool, mount.backend.port)
        assert good["yaw_deg"] == 0.0
        os.write(dev, attitude_status(device, q, rates) * 3)
        poll_until(mount.poll, lambda t: mount.rejected == 3, mount.backend.port, t0=1.0)
        assert mount.rejected == 3
        assert mount.telemetry == good  # unchanged
        assert reason in mount.device_problem and "mavlink" in mount.device_problem
        mount.close(2.0)


def test_mavlink_nan_rates_mean_unknown_and_the_attitude_is_kept():
    m, device = independent_mavlink()
    with pty_pair() as (dev, path):
        backend = MavlinkBackend(path)
        backend.open()
        half = math.sqrt(0.5)
        os.write(dev, attitude_status(device, (half, 0, 0, half), (NAN, NAN, NAN)))  # yaw 90, rates unknown
        telemetry = poll_until(backend.poll, bool, backend.port)
        assert telemetry["yaw_deg"] == pytest.approx(90.0, abs=1e-3)
        assert "yaw_rate_dps" not in telemetry and backend.rejected == 0
        backend.close()


def test_simplebgc_refuses_an_impossible_pitch_and_a_short_payload():
    with pty_pair() as (dev, path):
        backend = sbgc.SimpleBGCBackend(path, motors_on_at_open=False)
        backend.open()
        os.write(dev, sbgc.frame(sbgc.CMD_REALTIME_DATA_4, realtime_payload((0, -455, 2048))))
        good = poll_until(backend.poll, bool, backend.port)
        os.write(dev, sbgc.frame(sbgc.CMD_REALTIME_DATA_4, realtime_payload((0, 30000, 0))))  # pitch 659 deg
        os.write(dev, sbgc.frame(sbgc.CMD_REALTIME_DATA_4, b"\x01\x02"))
        poll_until(backend.poll, lambda t: backend.rejected == 2, backend.port, t0=1.0)
        assert backend.rejected == 2 and backend.telemetry == good
        assert "too short" in backend.last_rejection or "need at least" in backend.last_rejection
        backend.close()


def test_opensteady_refuses_an_unknown_mode_and_an_impossible_attitude():
    with pty_pair() as (dev, path):
        backend = OpenSteadyBackend(path, handshake=False)
        backend.open()
        fields = [4, 3, 0, 1234, -567, 12, 100, -200, 0, 1500, -400, 0, 250, -120, 5, 180, 0]
        os.write(dev, p.encode(p.MSG_TELEMETRY, 1, p.pack(p.MSG_TELEMETRY, *fields)))
        good = poll_until(backend.poll, bool, backend.link._port)
        bad_mode = [99] + fields[1:]
        bad_pitch = fields[:4] + [30000] + fields[5:]  # 300 deg of pitch
        os.write(dev, p.encode(p.MSG_TELEMETRY, 2, p.pack(p.MSG_TELEMETRY, *bad_mode)))
        os.write(dev, p.encode(p.MSG_TELEMETRY, 3, p.pack(p.MSG_TELEMETRY, *bad_pitch)))
        poll_until(backend.poll, lambda t: backend.rejected == 2, backend.link._port, t0=1.0)
        assert backend.rejected == 2 and backend.telemetry == good
        assert "pitch_deg = 300" in backend.last_rejection
        backend.close()


def test_a_driver_that_chokes_never_crashes_the_app():
    class Choking(OpenSteadyBackend):
        def poll(self, t_s):
            raise struct_error

    struct_error = ValueError("unpack requires a buffer of 32 bytes")
    backend = Choking("loop://", handshake=False)
    mount = Mount(backend)
    mount.open()
    assert mount.poll(0.0) is None and mount.rejected == 1
    assert "ValueError" in mount.device_problem
    mount.close(0.1)


@pytest.mark.parametrize("value,ok", [(1.0, True), (-719.0, True), (NAN, False), (-INF, False), ("1", False),
                                      (True, False), (721.0, False), (3, True), (721, False), (None, False),
                                      (1 + 0j, False), (np.float64(1.0), True), (np.int16(5), True),
                                      (np.float32("nan"), False), (np.bool_(True), False)])
def test_telemetry_problem_checks_every_angle_and_rate(value, ok):
    """Plain floats and ints take a fast path; numpy numbers, bools and non-numbers the general check."""
    assert (telemetry_problem({"yaw_deg": value, "mode": "track"}) is None) == ok


def test_take_samples_hands_over_each_accepted_sample_once():
    backend = MountBackend()
    assert backend.take_samples() == ()  # nothing came: an empty tuple, no list made per poll
    assert backend.accept_telemetry({"yaw_deg": 1.0}, arrival_s=0.5) and backend.accept_telemetry({"yaw_deg": 2.0})
    assert not backend.accept_telemetry({"yaw_deg": NAN})
    assert backend.take_samples() == [({"yaw_deg": 1.0}, 0.5), ({"yaw_deg": 2.0}, None)]
    assert backend.take_samples() == ()


def test_track_keeps_running_against_a_mavlink_gimbal_that_sends_nan(tmp_path):
    """The reported crash: `opensteady track --gimbal mavlink` died 0.31 s after the first NaN attitude."""
    m, device = independent_mavlink()
    video = write_astronaut_video(tmp_path / "astronaut.avi", 40)
    bad = [attitude_status(device, (NAN, NAN, NAN, NAN)), attitude_status(device, (1, 0, 0, 0), (INF, -INF, NAN)),
           attitude_status(device, (INF, 0, 0, 0))]
    stop = threading.Event()
    with pty_pair() as (dev, path):
        def gimbal():
            i = 0
            while not stop.is_set():  # answer everything the host sends with a hostile attitude
                if select.select([dev], [], [], 0.02)[0]:
                    try:
                        os.read(dev, 4096)
                    except OSError:
                        return
                os.write(dev, bad[i % len(bad)])
                i += 1

        thread = threading.Thread(target=gimbal, daemon=True)
        thread.start()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "opensteady.host.cli", "track", "--video", str(video), "--no-pace", "--headless",
                 "--json", "--no-log", "--gimbal", "mavlink", "--port", path], capture_output=True, text=True,
                timeout=300, cwd=str(tmp_path))
        finally:
            stop.set()
            thread.join(5)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["exit"] == "end_of_stream" and summary["frames"] == 40
    assert summary["gimbal_rejected"] > 0 and "not finite" in summary["gimbal_problem"]
    assert "the mavlink gimbal sent bad attitude status" in result.stderr


# --- liveness: a silent device is never reported as connected ---------------------------

def test_simplebgc_on_a_silent_port_is_not_connected_until_it_talks_and_not_after_it_stops():
    with pty_pair() as (dev, path):
        mount = Mount(sbgc.SimpleBGCBackend(path, motors_on_at_open=False, alive_s=1.0))
        mount.open()
        for k in range(30):  # 3 s of a port that opens but never answers
            mount.poll(0.1 * k)
        assert not mount.connected and mount.device_problem == "the simplebgc gimbal has sent no valid frame since the port opened"
        os.write(dev, sbgc.frame(sbgc.CMD_REALTIME_DATA_4, realtime_payload((0, 0, 0))))
        poll_until(mount.poll, bool, mount.backend.port, t0=3.0)
        assert mount.connected and mount.device_problem is None
        t = 3.5
        while mount.connected and t < 10.0:  # falls silent: no longer connected after alive_s
            mount.poll(t)
            t += 0.1
        assert 4.0 < t <= 5.0
        assert "the simplebgc gimbal has sent no valid frame for 1." in mount.device_problem
        mount.close(t)


def test_mavlink_on_a_silent_port_is_not_connected_and_garbage_does_not_count():
    m, device = independent_mavlink()
    with pty_pair() as (dev, path):
        backend = MavlinkBackend(path, alive_s=1.0)
        backend.open()
        os.write(dev, b"\xfd\x09garbage that is not MAVLink" * 4)
        for k in range(20):
            backend.poll(0.1 * k)
        assert not backend.connected
        os.write(dev, device.heartbeat_encode(m.MAV_TYPE_GIMBAL, m.MAV_AUTOPILOT_INVALID, 0, 0, 0).pack(device))
        poll_until(backend.poll, lambda t: backend.connected, backend.port, t0=2.0)
        assert backend.connected
        backend.poll(3.5)
        assert not backend.connected
        backend.close()


def telemetry_frame(seq=1, **values):
    """One valid MSG_TELEMETRY frame (mode track, calibrated, motors on; other fields 0 unless given)."""
    fields = dict.fromkeys(p.FIELDS[p.MSG_TELEMETRY], 0)
    fields.update(mode=p.MODE_TRACK, state_flags=p.STATE_CALIBRATED | p.STATE_MOTORS_ON, yaw_cdeg=1234)
    fields.update(values)
    return p.encode(p.MSG_TELEMETRY, seq, p.pack(p.MSG_TELEMETRY, *(fields[k] for k in p.FIELDS[p.MSG_TELEMETRY])))


def micropython_repl_bytes(raw):
    """What the real MicroPython VM says on its console: its banner and ``>>> `` prompt, or (``raw``) its
    answer to Ctrl-A, the raw REPL that mpremote uses (a board left there by an interrupted deploy)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([micropython_binary()], stdin=slave, stdout=slave, stderr=slave, close_fds=True)

    def read_until(out, end):
        while not out.endswith(end) and select.select([master], [], [], HANG_S)[0]:
            out += os.read(master, 4096)
        return out

    try:
        banner = read_until(b"", b">>> ")
        if not raw:
            return banner
        os.write(master, b"\x01")  # Ctrl-A: enter the raw REPL
        return read_until(b"", b"exit\r\n>")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("raw", [False, True], ids=["repl", "raw_repl"])
def test_opensteady_board_that_falls_back_to_the_repl_is_unhealthy_and_recovers_by_itself(raw):
    console = micropython_repl_bytes(raw)
    assert (b"raw REPL" in console) if raw else (console.startswith(b"MicroPython") and console.endswith(b">>> "))
    with pty_pair() as (dev, path):
        mount = Mount(OpenSteadyBackend(path, handshake=False, alive_s=1.0, clock=lambda: 0.0))
        mount.open()
        port = mount.backend.link._port
        mount.poll(0.0)
        assert not mount.connected and "no valid frame since the port opened" in mount.device_problem
        os.write(dev, telemetry_frame())
        poll_until(mount.poll, lambda _: mount.connected, port)
        assert mount.connected and mount.device_problem is None
        heard = mount.backend._heard_s
        os.write(dev, console)  # the board reset into MicroPython: text, no frames
        poll_until(mount.poll, lambda _: mount.backend.link.rx_tail.endswith(console[-8:]), port, t0=heard + 0.01)
        for k in range(5, 50):  # simulated time in 0.1 s steps; nothing more arrives
            t = heard + 0.1 * k
            mount.poll(t)
            if not mount.connected:
                break
        assert t == pytest.approx(heard + 1.1)  # unhealthy on the first poll more than alive_s after the last frame
        problem = mount.device_problem
        assert "no valid frame for 1." in problem and "MicroPython" in problem and "opensteady flash" in problem
        status = _status_line(Stats(), mount, None, t, 0.0)  # what `track --json` prints once a second
        assert status["gimbal_connected"] is False and status["gimbal_problem"] == problem
        assert status["telemetry_age_s"] == pytest.approx(t - heard, abs=0.02)
        os.write(dev, telemetry_frame(seq=2))  # flashed or reset, talking again
        poll_until(mount.poll, lambda _: mount.connected, port, t0=t)
        assert mount.connected and mount.device_problem is None
        status = _status_line(Stats(), mount, None, t + 0.5, 0.0)
        assert status["gimbal_connected"] and status["gimbal_problem"] is None and status["telemetry_age_s"] < 0.6
        mount.close(t + 1)
