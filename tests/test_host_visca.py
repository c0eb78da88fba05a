"""VISCA over IP: an independent client (PyPI visca-over-ip) drives the simulated gimbal; bad bytes get error replies."""

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensteady.host.control import Controls
from opensteady.host.visca import (
    ERR_LENGTH,
    ERR_NOT_EXECUTABLE,
    ERR_SYNTAX,
    TYPE_COMMAND,
    TYPE_REPLY,
    ViscaHandler,
    _nibbles16,
    _to_nibbles16,
)
from tests.served_sim import ServedSim

# The visca-over-ip client binds its inquiry socket to the camera's port on all
# addresses, so the server listens on another loopback address (127.0.0.2) and
# both share the port with SO_REUSEADDR, as a controller and OpenSteady on one computer would.
VISCA_HOST = "127.0.0.2"


def packet(payload, seq=7, ptype=TYPE_COMMAND, length=None):
    return struct.pack(">HHI", ptype, len(payload) if length is None else length, seq) + payload


def replies(handler, data):
    out = handler.handle(data)
    for r in out:
        ptype, length, _seq = struct.unpack(">HHI", r[:8])
        assert length == len(r) - 8 and ptype in (TYPE_REPLY, 0x0201)
    return [r[8:] for r in out]


def test_position_nibbles_round_trip():
    for value in (-32768, -1234, -1, 0, 1, 999, 32767):
        assert _nibbles16(_to_nibbles16(value)) == value
    assert _nibbles16(b"\x10\x00\x00\x00") is None


@pytest.mark.parametrize("data, expected", [
    (b"\x01\x00", ERR_LENGTH),  # shorter than the header
    (packet(b"\x81\x01\x06\x04\xff", length=9), ERR_LENGTH),  # length field disagrees
    (packet(b"\x81\x01\x06\x04"), ERR_SYNTAX),  # no FF terminator
    (packet(b"\x41\x01\x06\x04\xff"), ERR_SYNTAX),  # not a command byte 8x
    (packet(b"\x81\x01\x06\x01\x00\x05\x02\x03\xff"), ERR_SYNTAX),  # pan speed 0
    (packet(b"\x81\x01\x06\x01\x05\x05\x07\x03\xff"), ERR_SYNTAX),  # no such direction
    (packet(b"\x81\x01\x06\x02\x05\x05\x10\x00\x00\x00\x00\x00\x00\x00\xff"), ERR_SYNTAX),  # bad nibble
    (packet(b"\x81\x01\x7f\x7f\xff"), ERR_SYNTAX),  # unknown command
    (packet(b"\x81\x09\x7f\xff"), ERR_SYNTAX),  # unknown inquiry
    (packet(b"\x81\x09\x06\x12\xff"), ERR_NOT_EXECUTABLE),  # position before any telemetry
])
def test_malformed_packets_get_error_replies(data, expected):
    assert replies(ViscaHandler(Controls()), data) == [expected]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_get_a_reply_never_an_exception(data):
    out = replies(ViscaHandler(Controls()), data)
    assert out  # every datagram is answered


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=14))
def test_any_well_framed_payload_gets_a_reply(body):
    out = replies(ViscaHandler(Controls()), packet(b"\x81" + body.replace(b"\xff", b"\xfe") + b"\xff"))
    assert out and all(r[0] == 0x90 for r in out)


@pytest.fixture(scope="module")
def sim():
    served = ServedSim("track-crossing", web=False, visca=True, visca_host=VISCA_HOST)
    served.step(45)  # the firmware has booted and levelled; telemetry flows
    yield served
    served.close()


@pytest.fixture(scope="module")
def camera(sim):
    from visca_over_ip import Camera

    cam = Camera(VISCA_HOST, port=sim.services.visca.port)
    yield cam
    cam.close_connection()


def test_drive_position_home_and_tracking_from_an_independent_client(sim, camera):
    from visca_over_ip.exceptions import ViscaException

    # Power inquiry.
    assert camera._send_command("04 00", query=True)[-1] == 0x02

    # Drive right at speed 8 (20 deg/s) for two simulated seconds: the camera turns right.
    yaw0 = sim.telemetry["yaw_deg"]
    camera.pantilt(8, 0)  # visca-over-ip sends direction 02 (right) for a positive pan speed
    sim.step(60)
    assert sim.controls.status()["mode"] == "manual"
    yaw1 = sim.telemetry["yaw_deg"]
    assert 25.0 < yaw1 - yaw0 < 45.0, (yaw0, yaw1)

    # The position inquiry reports the telemetry in 0.1 deg units.
    pan, tilt = camera.get_pantilt_position()
    assert pan == pytest.approx(sim.telemetry["yaw_joint_deg"] * 10, abs=2)
    assert tilt == pytest.approx(sim.controls.attitude[1] * 10, abs=2)

    # Stop: tracking carries on from the new framing instead of pulling back.
    camera.pantilt(0, 0)
    sim.step(2)
    assert sim.controls.status()["mode"] != "manual" and not sim.last.paused

    # Absolute position: 20 deg left, 5 deg up, at top speed; tracking pauses.
    camera.pantilt(24, 24, -200, 50)
    sim.step(60)
    assert sim.telemetry["yaw_joint_deg"] == pytest.approx(-20.0, abs=2.0)
    assert sim.telemetry["pitch_deg"] == pytest.approx(5.0, abs=2.0)
    assert sim.last.paused

    # Home: straight ahead.
    camera.pantilt_home()
    sim.step(60)
    assert sim.telemetry["yaw_joint_deg"] == pytest.approx(0.0, abs=2.0)
    assert sim.telemetry["pitch_deg"] == pytest.approx(0.0, abs=2.0)

    # Tracking on (01 0A 11 54 02) and its inquiry; then off again.
    camera._send_command("0A 11 54 02")
    sim.step(1)
    assert not sim.last.paused
    assert camera._send_command("0A 11 54", query=True)[-1] == 0x02
    camera._send_command("0A 11 54 03")
    sim.step(1)
    assert sim.last.paused and sim.controls.status()["mode"] == "paused"

    # A command we do not implement is refused the VISCA way.
    with pytest.raises(ViscaException):
        camera.zoom(3)


def test_server_survives_garbage_on_the_wire(sim):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10.0)
    try:
        target = (VISCA_HOST, sim.services.visca.port)
        for junk in (b"", b"\xff" * 3, b"\x01\x00\x00\x05\x00\x00\x00\x01\x81\x01\xff", bytes(range(256))):
            sock.sendto(junk, target)
            reply = sock.recv(64)
            assert reply[8] == 0x90 and reply[9] >> 4 == 6  # a VISCA error reply
        sock.sendto(packet(b"\x81\x09\x04\x00\xff", seq=99), target)
        reply = sock.recv(64)
        assert struct.unpack(">I", reply[4:8])[0] == 99 and reply[8:] == b"\x90\x50\x02\xff"
    finally:
        sock.close()
