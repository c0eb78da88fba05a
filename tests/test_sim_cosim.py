"""Lockstep co-simulation: real firmware on the MuJoCo plant, in-process and in the real MicroPython VM.

Short headless runs of the stabilisation scenarios, with assertions on the
metrics, plus determinism per seed and a lossy serial link.
"""

import dataclasses
import io
import struct

import pytest

from opensteady.firmware.offboard import simpipe
from opensteady.host.simrig import run_scenario
from opensteady.sim.link import LinkParams
from opensteady.sim.scenario import load_scenario
from opensteady.sim.world import SimGimbal

# Both modes run the same integer firmware on the same inputs, so their
# metrics agree exactly; the documented tolerance (docs/sim.md) is 1e-6.
AGREEMENT_TOL = 1e-6
COMPARED = ("camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "telemetry_frames")


def _short(name, seconds, **changes):
    sc = load_scenario(name, overrides={"seconds": seconds, "warmup_s": min(2.0, seconds / 2)})
    return dataclasses.replace(sc, **changes).validate() if changes else sc


def test_stabilize_still_boots_calibrates_and_holds_level():
    m = run_scenario(_short("stabilize-still", 3.0)).metrics
    assert m["mode_reached"]
    assert m["faults"] == []
    assert m["telemetry_frames"] >= 100  # 50 Hz telemetry parsed by the host side
    assert m["camera_jitter_rms_deg"] < 0.05
    assert m["handle_motion_rms_deg"] < 0.01
    assert max(abs(a) for a in m["final_camera_ypr_deg"][1:]) < 2.0  # within the accelerometer bias of level


def test_stabilize_walking_reduces_handle_motion():
    m = run_scenario(_short("stabilize-walking", 4.0)).metrics
    assert m["faults"] == []
    assert m["handle_motion_rms_deg"] > 1.0  # the hand really walks
    assert m["camera_jitter_rms_deg"] < 0.8 * m["handle_motion_rms_deg"]
    assert 0.0 < m["max_motor_effort"] < 1.5


def test_inprocess_and_micropython_firmware_agree():
    sc = _short("stabilize-walking", 2.5)
    a = run_scenario(sc, firmware="inprocess", seed=4).metrics
    b = run_scenario(sc, firmware="micropython", seed=4).metrics
    assert b["firmware"] == "micropython" and b["mode_reached"]
    for key in COMPARED:
        assert a[key] == pytest.approx(b[key], abs=AGREEMENT_TOL), key
    assert a["final_camera_ypr_deg"] == b["final_camera_ypr_deg"]


def test_runs_are_deterministic_per_seed():
    sc = _short("stabilize-walking", 2.5)
    a = run_scenario(sc, seed=11).metrics
    b = run_scenario(sc, seed=11).metrics
    c = run_scenario(sc, seed=12).metrics
    for key in COMPARED + ("final_camera_ypr_deg",):
        assert a[key] == b[key], key
    assert a["handle_motion_rms_deg"] != c["handle_motion_rms_deg"]


def test_lossy_link_is_survived_and_counted():
    sc = _short("stabilize-still", 3.0, link=LinkParams(baud=115200, drop_rate=0.003, corrupt_rate=0.003))
    m = run_scenario(sc, seed=2).metrics
    assert m["link_bytes_dropped"] > 0 and m["link_bytes_corrupted"] > 0
    assert m["host_crc_errors"] > 0  # the host's parser saw damaged telemetry and rejected it
    assert m["mode_reached"]  # MODE is retried until telemetry reports it
    assert m["telemetry_frames"] > 50
    assert "link_lost" not in m["faults"]  # heartbeats every 100 ms outlast a few damaged frames
    assert m["camera_jitter_rms_deg"] < 0.05


def test_world_serves_the_host_bytes_both_ways():
    from opensteady.firmware import protocol

    with SimGimbal(_short("stabilize-still", 2.0)) as g:
        g.step_to(1.2)
        g.write(protocol.encode(protocol.MSG_VERSION_REQUEST, 1, protocol.pack(protocol.MSG_VERSION_REQUEST, 1)))
        g.step_to(1.3)
        p = protocol.Parser()
        seen = set()
        for b in g.read():
            mid = p.feed(b)
            if mid >= 0:
                seen.add(mid)
                if mid == protocol.MSG_VERSION:
                    version = protocol.decode(mid, p.payload())
        assert protocol.MSG_VERSION in seen and protocol.MSG_TELEMETRY in seen
        assert version[4] == 3  # board id: BOARD_SIM


def test_simpipe_lockstep_framing_on_cpython():
    """The board module's frame format, checked without a process (MicroPython runs it above)."""

    class Echo:
        period_us = 1000

        def __init__(self, board):
            self.board = board

        def tick(self, now_us):
            buf = bytearray(16)
            n = self.board.serial_read_into(buf)
            self.board.serial_write(bytes(buf[:n]))
            raw = [0] * 6
            self.board.imu_read(raw)
            self.board.bldc_write(1, raw[0], now_us & 0xFFFF, 7)
            self.board.light_write(-1, 20000, 4242)

    head = struct.pack(simpipe._TICK_HEAD, 5000, 0, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, 3)
    stream_in = io.BytesIO(simpipe.SYNC + b"I" + struct.pack("<HH", 3300, simpipe.NO_CONFIG)
                           + simpipe.SYNC + b"T" + head + b"abc" + simpipe.SYNC + b"Q")
    stream_out = io.BytesIO()
    simpipe.serve(stream_in, stream_out, Echo)
    out = stream_out.getvalue()
    assert out.startswith(simpipe.SYNC + b"i" + struct.pack("<I", 1000))
    reply = out[7:]
    assert reply[:3] == simpipe.SYNC + b"R"
    fields = struct.unpack(simpipe._REPLY_HEAD, reply[3:3 + struct.calcsize(simpipe._REPLY_HEAD)])
    assert fields[4:7] == (11, 5000, 7)  # pitch duties: imu ax, now_us, 7
    assert fields[13] == 4242  # the fill light's duty
    assert fields[14] == 3
    assert reply.endswith(b"abc" + struct.pack("<H", simpipe.NO_CONFIG))


@pytest.mark.parametrize("name", __import__("opensteady.sim.scenario", fromlist=["scenario_names"]).scenario_names())
def test_every_scenario_runs_on_the_micropython_firmware(name):
    sc = load_scenario(name)
    sc = load_scenario(name, overrides={"seconds": sc.warmup_s + 0.6})
    m = run_scenario(sc, firmware="micropython").metrics
    assert m["firmware"] == "micropython"
    assert m["mode_reached"] and m["telemetry_frames"] > 50
    # running's flight phases read near 0 g: the plausibility check rides them out
    assert m["faults"] == []
    if sc.uses_vision:
        assert m["frames"] >= 15  # tracking ran for the last 0.6 s at 30 fps


def test_servo_driven_pitch_axis_is_simulated_by_the_servo_model():
    sc = _short("stabilize-walking", 4.0, firmware=(("pitch_driver", 1),))
    r = run_scenario(sc)
    m = r.metrics
    assert m["faults"] == []
    assert 0.05 < m["max_motor_effort"] <= 1.0  # servo torque over its stall torque
    pitch = r.series["camera_ypr_deg"][:, 1]
    handle_pitch = r.series["handle_ypr_deg"][:, 1]
    assert pitch[-250:].std() < handle_pitch[-250:].std()  # the servo still steadies the pitch
