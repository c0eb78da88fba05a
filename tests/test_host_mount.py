"""Gimbal output drivers over real pyserial transports (pty pairs), checked byte by byte.

SimpleBGC frames are compared with vectors worked out from the Serial API v2
spec; MAVLink messages are decoded by a separate pymavlink parser; OpenSteady
frames by firmware.protocol's parser. Time is simulated (``t_s`` arguments).
"""

import math
import os
import select
import struct
from contextlib import contextmanager

import pytest

from opensteady.firmware import protocol as p
from opensteady.host.framing import SetpointCommand
from opensteady.host.mount import Mount, create_backend
from opensteady.host.mount import simplebgc as sbgc
from opensteady.host.mount.mavlink import MavlinkBackend, euler_from_quaternion, quaternion_from_euler
from opensteady.host.mount.opensteady import OpenSteadyBackend


@contextmanager
def pty_pair():
    """(master_fd, slave_path): the driver opens the path, the test plays the device on master_fd."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


HANG_S = 60.0  # only a hung driver waits this long: every wait below ends on I/O


def read_master(fd, n_min):
    """Read at least n_min bytes from the device side (waits on I/O, never on a timer for logic)."""
    out = b""
    while len(out) < n_min:
        ready, _, _ = select.select([fd], [], [], HANG_S)
        if not ready:
            break
        out += os.read(fd, 4096)
    return out


def poll_until(poll, ready, port, t0=0.0, tries=50):
    """Call poll(t) on a simulated clock (10 ms steps) until ready(result); returns the last result.

    Before each poll it waits (on I/O) until the device's bytes have reached
    the host's end of the pty, ``port``: the kernel carries pty bytes on a
    worker thread, so they may arrive a moment after the device wrote them.
    """
    result = None
    for i in range(tries):
        if not select.select([port], [], [], HANG_S)[0]:
            break
        result = poll(t0 + 0.01 * i)
        if ready(result):
            break
    return result


SYNC = b"<sync>"  # not a frame of any protocol here: the device side only ever sees it in drain()


def drain(fd, port):
    """Everything the host has written so far, and nothing later.

    A marker is written through the host's own port after whatever the driver
    wrote; bytes keep their order, so reading up to the marker returns exactly
    the driver's bytes (an empty result proves it sent nothing) without
    waiting on a timer.
    """
    port.write(SYNC)
    port.flush()
    out = b""
    while not out.endswith(SYNC):
        ready, _, _ = select.select([fd], [], [], HANG_S)
        assert ready, "the sync marker never arrived"
        out += os.read(fd, 4096)
    return out[:-len(SYNC)]


# --- SimpleBGC -------------------------------------------------------------------

def test_simplebgc_crc_matches_the_published_vector_of_the_same_algorithm():
    # BaseCam's CRC16 (poly 0x8005, init 0, data bits LSB first) is the algorithm of
    # Microchip's CryptoAuthentication app note, whose Info command 07 30 00 00 00
    # carries the CRC bytes 03 5D.
    assert struct.pack("<H", sbgc.crc16(bytes([0x07, 0x30, 0x00, 0x00, 0x00]))) == bytes([0x03, 0x5D])
    assert sbgc.crc16(b"") == 0


def test_simplebgc_units():
    assert sbgc.angle_units(45.0) == 2048  # 2^14 units per turn
    assert sbgc.angle_units(-90.0) == -4096
    assert sbgc.speed_units(5.0) == 41  # 0.1220740379 deg/s per unit
    assert sbgc.speed_units(12.20740379) == 100


def test_simplebgc_control_payloads_match_the_vendor_examples():
    # BaseCam's "SBGC32 API cmd examples": rotate yaw 45 deg right in angle mode ...
    assert sbgc.control_payload((0, 0, 2), (0, 0, 0), (0, 0, 2048)) == bytes.fromhex("000002 0000 0000 0000 0000 0000 0008")
    # ... and pitch 90 deg up at 5 deg/s (SimpleBGC pitch is positive down).
    assert sbgc.control_payload((0, 2, 0), (0, 41, 0), (0, -4096, 0)) == bytes.fromhex("000200 0000 0000 2900 00f0 0000 0000")


def test_simplebgc_control_frame_for_a_rate_setpoint():
    cmd = SetpointCommand(yaw_rate_dps=12.20740379, pitch_rate_dps=5.0, roll_deg=0.0)
    expected = bytes.fromhex(
        "24"            # '$' start of a v2 frame
        "43 0f 52"      # CMD_CONTROL (67), 15 payload bytes, header checksum 0x43 + 0x0f
        "02 01 01"      # modes: roll ANGLE, pitch SPEED, yaw SPEED
        "0000 0000"     # roll: speed 0 (board default), angle 0 = horizon
        "d7ff 0000"     # pitch: -41 units = 5 deg/s up (SimpleBGC pitch is positive down)
        "6400 0000"     # yaw: 100 units = 12.207 deg/s right
        "5f 8d"         # CRC16 over 43 .. 00, low byte first
    )
    assert sbgc.control_frame(cmd) == expected


def test_simplebgc_recentre_and_portrait_frame_fields():
    cmd = SetpointCommand(yaw_deg=0.0, pitch_deg=10.0, roll_deg=90.0)
    payload = sbgc.Parser().feed(sbgc.control_frame(cmd))[0][1]
    modes = payload[:3]
    (roll_speed, roll_angle, pitch_speed, pitch_angle, yaw_speed, yaw_angle) = struct.unpack("<6h", payload[3:])
    assert tuple(modes) == (sbgc.MODE_ANGLE, sbgc.MODE_ANGLE, sbgc.MODE_ANGLE_REL_FRAME)
    assert roll_angle == 4096 and pitch_angle == -455 and yaw_angle == 0


def test_simplebgc_short_frames_by_hand():
    assert sbgc.frame(sbgc.CMD_MOTORS_ON) == bytes.fromhex("24 4d 00 4d 440a")
    assert sbgc.frame(sbgc.CMD_MOTORS_OFF) == bytes.fromhex("24 6d 00 6d 0c0a")
    assert sbgc.frame(sbgc.CMD_REALTIME_DATA_4) == bytes.fromhex("24 19 00 19 b008")


def realtime_payload(imu_units, target_units=(0, 0, 0), rotor_units=(0, 0, 0)):
    payload = bytearray(124)
    struct.pack_into("<3h", payload, 32, *imu_units)  # IMU_ANGLE roll, pitch, yaw
    struct.pack_into("<3h", payload, 44, *target_units)  # TARGET_ANGLE
    struct.pack_into("<H", payload, 50, 1250)  # CYCLE_TIME
    payload[60:63] = bytes((10, 20, 30))  # MOTOR_POWER
    struct.pack_into("<3h", payload, 63, *rotor_units)  # ROTOR_ANGLE (REALTIME_DATA_4)
    return bytes(payload)


def test_simplebgc_realtime_data_parse_units_and_signs():
    t = sbgc.parse_realtime_data(realtime_payload((100, -200, 4096), rotor_units=(0, 0, -2048)))
    assert t["roll_deg"] == pytest.approx(100 * 0.02197265625)
    assert t["pitch_deg"] == pytest.approx(200 * 0.02197265625)  # flipped: OpenSteady pitch is up-positive
    assert t["yaw_deg"] == pytest.approx(90.0)
    assert t["yaw_joint_deg"] == pytest.approx(-45.0)
    assert t["cycle_time_us"] == 1250 and t["motor_power"] == [10, 20, 30]
    with pytest.raises(ValueError, match="at least 63"):
        sbgc.parse_realtime_data(b"\x00" * 40)


def test_simplebgc_parser_rejects_one_bad_crc_byte_and_resyncs():
    good = sbgc.frame(sbgc.CMD_REALTIME_DATA_4, realtime_payload((1, 2, 3)))
    for index in (len(good) - 2, len(good) - 1):  # either CRC byte alone
        bad = bytearray(good)
        bad[index] ^= 0x01
        parser = sbgc.Parser()
        assert parser.feed(bytes(bad)) == []
        assert parser.crc_errors == 1
    parser = sbgc.Parser()
    stream = b"\x00\x24\x99garbage" + bytes(bad) + good[:10]
    assert parser.feed(stream) == []
    frames = parser.feed(good[10:])
    assert frames == [(sbgc.CMD_REALTIME_DATA_4, good[4:-2])]
    assert parser.header_errors >= 1


def test_simplebgc_backend_over_a_pty():
    with pty_pair() as (dev, path):
        backend = sbgc.SimpleBGCBackend(path, telemetry_interval_s=0.1)
        mount = Mount(backend, stall_s=0.5)
        mount.open()
        assert read_master(dev, 6) == sbgc.frame(sbgc.CMD_MOTORS_ON)
        cmd = SetpointCommand(yaw_rate_dps=12.20740379, pitch_rate_dps=5.0)
        assert mount.send(cmd, 0.0) == 21
        assert read_master(dev, 21) == sbgc.control_frame(cmd)
        # telemetry request goes out at poll; the device answers with REALTIME_DATA_4
        mount.poll(0.0)
        assert read_master(dev, 6) == sbgc.frame(sbgc.CMD_REALTIME_DATA_4)
        os.write(dev, sbgc.frame(sbgc.CMD_REALTIME_DATA_4, realtime_payload((0, -455, 2048))))
        telemetry = poll_until(mount.poll, bool, backend.port)
        assert telemetry["yaw_deg"] == pytest.approx(45.0) and telemetry["pitch_deg"] == pytest.approx(10.0, abs=0.01)
        drain(dev, backend.port)
        # stall watchdog: no setpoint for stall_s -> one stop command, not repeated
        assert not mount.check_stall(0.4)
        assert mount.check_stall(0.6)
        assert not mount.check_stall(0.7)
        stop = sbgc.Parser().feed(read_master(dev, 21))
        speeds = struct.unpack("<6h", stop[0][1][3:])
        assert stop[0][0] == sbgc.CMD_CONTROL and speeds[2] == 0 and speeds[4] == 0
        mount.close(1.0, motors_off=True)
        tail = read_master(dev, 27)
        assert tail == sbgc.no_control_frame() + sbgc.frame(sbgc.CMD_MOTORS_OFF)
        assert not backend.connected


def test_serial_backend_survives_a_vanished_port_and_reconnects(tmp_path):
    link = tmp_path / "ttyGIMBAL"
    with pty_pair() as (dev1, path1):
        os.symlink(path1, link)
        backend = sbgc.SimpleBGCBackend(str(link), motors_on_at_open=False, reconnect_interval_s=1.0)
        backend.open()
        cmd = SetpointCommand(yaw_rate_dps=10.0)
        assert backend.send_setpoint(cmd, 0.0) > 0
        assert read_master(dev1, 21) == sbgc.control_frame(cmd)
        os.close(dev1)  # unplugged: the next write fails with EIO
        os.unlink(link)
        sent = [backend.send_setpoint(cmd, 0.1 * i) for i in range(1, 5)]
        assert 0 in sent and not backend.connected
        assert backend.poll(0.5) is None
        with pty_pair() as (dev2, path2):
            os.symlink(path2, link)  # plugged back in
            assert backend.send_setpoint(cmd, 0.6) == 0  # before the retry time
            n = 0
            t = 0.6
            while n == 0 and t < 5.0:
                t += 0.25
                n = backend.send_setpoint(cmd, t)
            assert n == 21 and backend.port_open and backend.reconnects == 1
            assert read_master(dev2, 21) == sbgc.control_frame(cmd)
            backend.close()


# --- MAVLink ---------------------------------------------------------------------

def independent_mavlink():
    from pymavlink.dialects.v20 import common

    return common, common.MAVLink(None, srcSystem=1, srcComponent=154)


def test_mavlink_setpitchyaw_decoded_by_pymavlink():
    m, decoder = independent_mavlink()
    with pty_pair() as (dev, path):
        backend = MavlinkBackend(path)
        backend.open()
        backend.send_setpoint(SetpointCommand(yaw_rate_dps=30.0, pitch_rate_dps=-10.0), 0.0)
        msgs = decoder.parse_buffer(read_master(dev, 20)) or []
        assert len(msgs) == 1
        msg = msgs[0]
        assert msg.get_msgId() == 287 and msg.get_type() == "GIMBAL_MANAGER_SET_PITCHYAW"
        assert msg.get_srcComponent() == m.MAV_COMP_ID_ONBOARD_COMPUTER
        assert (msg.target_system, msg.target_component) == (1, 154)
        assert math.isnan(msg.pitch) and math.isnan(msg.yaw)
        assert msg.yaw_rate == pytest.approx(math.radians(30.0))
        assert msg.pitch_rate == pytest.approx(math.radians(-10.0))
        assert msg.flags & 16 and msg.flags & 64 and not msg.flags & 32  # YAW_LOCK, YAW_IN_EARTH_FRAME

        backend.send_setpoint(SetpointCommand(yaw_deg=0.0, pitch_deg=0.0), 0.1)
        msg = decoder.parse_buffer(read_master(dev, 20))[0]
        assert msg.yaw == 0.0 and msg.pitch == 0.0 and math.isnan(msg.yaw_rate)
        assert msg.flags & 32 and not msg.flags & 64  # recentre relative to the vehicle
        backend.close()


def test_mavlink_heartbeat_and_attitude_status():
    from pymavlink.quaternion import Quaternion

    m, device = independent_mavlink()
    with pty_pair() as (dev, path):
        backend = MavlinkBackend(path)
        backend.open()
        backend.poll(0.0)
        hb = device.parse_buffer(read_master(dev, 12))[0]
        assert hb.get_type() == "HEARTBEAT" and hb.type == m.MAV_TYPE_ONBOARD_CONTROLLER
        backend.poll(0.5)
        assert drain(dev, backend.port) == b""  # no second heartbeat within 1 s
        # the gimbal reports roll 2, pitch -20 (down), yaw 35 (right)
        q = Quaternion([math.radians(2.0), math.radians(-20.0), math.radians(35.0)]).q
        frame = device.gimbal_device_attitude_status_encode(
            0, 0, 1234, 0, [float(v) for v in q], 0.0, 0.1, -0.2, 0).pack(device)
        frame += device.heartbeat_encode(m.MAV_TYPE_GIMBAL, m.MAV_AUTOPILOT_INVALID, 0, 0, 0).pack(device)
        os.write(dev, frame)
        telemetry = poll_until(backend.poll, lambda t: t and backend.gimbal_heartbeat_s is not None, backend.port, t0=0.6)
        assert telemetry["roll_deg"] == pytest.approx(2.0, abs=1e-4)
        assert telemetry["pitch_deg"] == pytest.approx(-20.0, abs=1e-4)
        assert telemetry["yaw_deg"] == pytest.approx(35.0, abs=1e-4)
        assert telemetry["yaw_rate_dps"] == pytest.approx(math.degrees(-0.2), abs=1e-4)
        assert backend.gimbal_heartbeat_s is not None
        backend.close()


def test_mavlink_set_attitude_variant_carries_rates_and_a_recentre_quaternion():
    _, decoder = independent_mavlink()
    with pty_pair() as (dev, path):
        backend = MavlinkBackend(path, message="attitude")
        backend.open()
        backend.send_setpoint(SetpointCommand(yaw_rate_dps=20.0, pitch_rate_dps=5.0), 0.0)
        msg = decoder.parse_buffer(read_master(dev, 20))[0]
        assert msg.get_msgId() == 282 and all(math.isnan(v) for v in msg.q)
        assert msg.angular_velocity_z == pytest.approx(math.radians(20.0))
        assert msg.angular_velocity_y == pytest.approx(math.radians(5.0))
        backend.send_setpoint(SetpointCommand(yaw_deg=0.0, pitch_deg=0.0, roll_deg=90.0), 0.1)
        msg = decoder.parse_buffer(read_master(dev, 20))[0]
        roll, pitch, yaw = euler_from_quaternion(msg.q)
        assert math.degrees(roll) == pytest.approx(90.0, abs=1e-3) and abs(pitch) < 1e-6 and abs(yaw) < 1e-6
        backend.close()


def test_quaternion_round_trip():
    for rpy in [(0.1, -0.4, 2.0), (-1.0, 0.3, -2.5), (0.0, 0.0, 0.0)]:
        assert euler_from_quaternion(quaternion_from_euler(*rpy)) == pytest.approx(rpy)


def test_mavlink_rejects_an_unknown_message_kind():
    with pytest.raises(ValueError, match="pitchyaw"):
        MavlinkBackend("loop://", message="quaternion")


# --- OpenSteady ------------------------------------------------------------------

def decode_opensteady(data):
    parser = p.Parser()
    out = []
    for b in data:
        mid = parser.feed(b)
        while mid >= 0:
            out.append((mid, p.decode(mid, parser.payload())))
            mid = parser.flush()
    return out


def STILL():
    """The link's clock in these tests: time stands still, so no heartbeat interleaves (they are tested in test_link)."""
    return 0.0


def test_opensteady_backend_sends_mode_and_setpoints_and_reads_telemetry():
    with pty_pair() as (dev, path):
        backend = OpenSteadyBackend(path, handshake=False, clock=STILL)
        mount = Mount(backend)
        mount.open()
        cmd = SetpointCommand(yaw_rate_dps=15.0, pitch_rate_dps=-2.5)
        assert mount.send(cmd, 0.0) == 14
        got = decode_opensteady(read_master(dev, 8 + 14))
        assert got[0] == (p.MSG_MODE, (p.MODE_TRACK,))
        assert got[1] == (p.MSG_SETPOINT, cmd.to_protocol())
        fields = [4, 3, 0, 1234, -567, 12, 100, -200, 0, 1500, -400, 0, 250, -120, 5, 180, 0]
        os.write(dev, p.encode(p.MSG_TELEMETRY, 6, p.pack(p.MSG_TELEMETRY, *fields)))
        telemetry = poll_until(mount.poll, bool, backend.link._port)
        assert telemetry["yaw_deg"] == 12.34 and telemetry["pitch_deg"] == -5.67 and telemetry["roll_deg"] == 0.12
        assert telemetry["mode"] == "track" and telemetry["yaw_joint_deg"] == 15.0
        drain(dev, backend.link._port)
        mount.close(1.0)
        tail = decode_opensteady(read_master(dev, 14 + 8))
        assert tail[0][0] == p.MSG_SETPOINT and tail[0][1][1:] == (0, 0, 0)
        assert tail[0][1][0] & p.SP_YAW_IS_RATE and tail[0][1][0] & p.SP_ROLL_IS_RATE
        assert tail[1] == (p.MSG_MODE, (p.MODE_LOCK,))
        assert not backend.connected


def test_opensteady_backend_over_loop_url():
    backend = OpenSteadyBackend("loop://", handshake=False, clock=STILL)
    backend.open()
    cmd = SetpointCommand(yaw_rate_dps=-3.0, roll_deg=90.0)
    backend.send_setpoint(cmd, 0.0)
    port = backend.link._port
    echoed = decode_opensteady(port.read(port.in_waiting))
    assert echoed[-1] == (p.MSG_SETPOINT, cmd.to_protocol())
    backend.close()


# --- factory ---------------------------------------------------------------------

def test_create_backend_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown gimbal 'dji'"):
        create_backend("dji", "/dev/null")
    with pytest.raises(ValueError, match="needs --port"):
        create_backend("simplebgc", None)
    assert create_backend("none").name == "none"


def test_opensteady_backend_asks_for_track_mode_until_the_firmware_reports_it():
    with pty_pair() as (dev, path):
        backend = OpenSteadyBackend(path, handshake=False, mode_retry_s=0.5, clock=STILL)
        backend.open()
        assert decode_opensteady(read_master(dev, 8)) == [(p.MSG_MODE, (p.MODE_TRACK,))]
        lock = [p.MODE_LOCK, 3, 0] + [0] * 12 + [100, 0]  # calibrated, motors on, but in lock mode (NACKed before)

        def device_says(fields):
            os.write(dev, p.encode(p.MSG_TELEMETRY, 1, p.pack(p.MSG_TELEMETRY, *fields)))
            return poll_until(backend.poll, lambda t: t is not None and t["mode"] == p.MODE_NAMES[fields[0]],
                              backend.link._port)

        assert device_says(lock)["mode"] == "lock"
        assert decode_opensteady(read_master(dev, 8)) == [(p.MSG_MODE, (p.MODE_TRACK,))]
        backend.poll(0.3)  # within mode_retry_s: no second request
        assert drain(dev, backend.link._port) == b""
        backend.poll(0.6)
        assert decode_opensteady(read_master(dev, 8)) == [(p.MSG_MODE, (p.MODE_TRACK,))]
        device_says([p.MODE_TRACK] + lock[1:])
        backend.poll(5.0)
        assert drain(dev, backend.link._port) == b""  # in track mode: no more requests
        backend.close()
