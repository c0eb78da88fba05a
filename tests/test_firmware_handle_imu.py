"""The optional handle IMU: HAL contract, board driver, joint-rate feed-forward, closed loop, simulator.

The scenario functions here import nothing from pytest at module level, so the
real MicroPython VM runs them too and must agree with CPython to the bit.
"""

import math
from array import array

from opensteady.firmware.app import Gimbal
from opensteady.firmware.control import HandleFeedForward
from opensteady.firmware.offboard import plant
from opensteady.firmware.offboard.bench_tick import handle_wobble
from opensteady.firmware.offboard.plant import PlantHAL, lock_config


class HandlePlantHAL(PlantHAL):
    """firmware/offboard/plant.py with its second MPU-6050 on the handle (its three axes are decoupled there)."""

    def __init__(self, fitted=True, **kw):
        PlantHAL.__init__(self, handle_imu=fitted, **kw)


def ff_vectors():
    """HandleFeedForward on fixed inputs (calibration, then rates at several joint angles)."""
    h = HandleFeedForward()
    h.configure(1.0)
    raw = array("h", [0, 0, 8192, 30, -20, 10])
    for _ in range(99):
        h.calib_add(raw, True, 0, 100)  # imu.CAL_RUNNING
    h.calib_add(raw, True, 1, 100)  # imu.CAL_DONE
    out = {"ready": h.ready, "bias": list(h.bias_mdps)}
    cases = []
    for gx, gy, gz, yaw_deg, roll_deg in ((655, 0, 0, 0, 0), (0, 655, 0, 0, 0), (0, 0, 655, 0, 0),
                                          (655, -327, 131, 30, 0), (655, -327, 131, -60, 20),
                                          (32700, -32700, 32700, 170, 44), (-32700, 32700, -32700, -90, -75)):
        raw[3] = gx + 30
        raw[4] = gy - 20
        raw[5] = gz + 10
        cases.append(list(h.update(raw, yaw_deg * 1000000, roll_deg * 1000000)))
    out["rates"] = cases
    h.configure(0.5)
    raw[3], raw[4], raw[5] = 655 + 30, -20, 10
    out["half"] = list(h.update(raw, 0, 0))
    return out


def closed_loop(fitted, ticks=4000):
    """Lock mode on the plant with the hand wobbling; camera error RMS (deg) per axis after calibration."""
    hal = HandlePlantHAL(fitted=fitted, handle_path=handle_wobble)
    g = Gimbal(hal, lock_config())
    sq = [0.0, 0.0, 0.0]
    n = 0
    for k in range(ticks):
        hal.step(g.period_us)
        g.tick(hal.now_us)
        if k >= 1500:
            for i in range(3):
                e = math.degrees(hal.cam[i])
                sq[i] += e * e
            n += 1
    return {"ready": g.handle_ff.ready, "rms_deg": [math.sqrt(s / n) for s in sq]}


def heap_per_tick(ticks=1000):
    """Bytes allocated by Gimbal.tick with the handle IMU fitted (MicroPython: gc.mem_alloc)."""
    hal = HandlePlantHAL(handle_path=handle_wobble)
    hal.capture_tx = False  # the test world's own buffer would grow; the firmware's does not
    g = Gimbal(hal)
    for _ in range(2000):
        hal.step(g.period_us)
        g.tick(hal.now_us)
    total = plant.heap_per_tick(hal, g, ticks)
    return {"ready": g.handle_ff.ready, "bytes": total}


# --- tests (CPython side) ------------------------------------------------------------


def test_base_hal_reports_no_handle_imu():
    from opensteady.firmware.hal import HAL

    assert HAL().handle_imu_read(array("h", [0] * 6)) is False


def test_feed_forward_cancels_the_handle_rate_in_joint_axes():
    import pytest

    v = ff_vectors()
    assert v["ready"] and v["bias"] == [458, 305, -153]  # (30, 20, -10 counts) FRD, in mdps
    mdps = 2000 / 131  # per count
    for (gx, gy, gz, yaw_deg, roll_deg), got in zip(
            ((655, 0, 0, 0, 0), (0, 655, 0, 0, 0), (0, 0, 655, 0, 0), (655, -327, 131, 30, 0),
             (655, -327, 131, -60, 20)), v["rates"]):
        # float reference: solve handle rate + joint rates = 0 for the yaw -> roll -> pitch chain
        p, q, r = gx * mdps, -gy * mdps, -gz * mdps
        y, ro = math.radians(yaw_deg), math.radians(roll_deg)
        px = math.cos(y) * p + math.sin(y) * q
        qy = -math.sin(y) * p + math.cos(y) * q
        want = [-r + qy * math.tan(ro), -qy / math.cos(ro), -px]
        assert got == pytest.approx(want, abs=0.01 * max(abs(w) for w in want) + 20)
    assert v["rates"][0][0:2] == [0, 0] and v["rates"][0][2] == pytest.approx(-10000, abs=10)  # 10 deg/s roll
    extreme = v["rates"][5] + v["rates"][6]
    assert all(abs(x) <= 1048575 for x in extreme)  # clamped at the feed-forward limit
    assert v["half"][0:2] == [0, 0] and v["half"][2] == pytest.approx(-5000, abs=10)  # handle_ff 0.5


def test_feed_forward_core_agrees_on_micropython():
    from tests.micropython import run_micropython_json

    mp = run_micropython_json("import json; from tests.test_firmware_handle_imu import ff_vectors; "
                              "print(json.dumps(ff_vectors()))")
    assert mp == ff_vectors()


def test_feed_forward_stays_within_31_bits():

    from opensteady.firmware.offboard import bench_int31

    counter = bench_int31.Counter()
    with bench_int31.checked_modules(counter) as mods:
        h = mods["control"].HandleFeedForward()
        h.configure(2.0)
        h.ready = True
        raw = array("h", [0, 0, 8192, 0, 0, 0])
        c = mods["control"].AxisController()
        counter.active = True
        for gx, gy, gz in ((32767, -32768, 32767), (-32768, 32767, -32768), (1000, -500, 250)):
            raw[3], raw[4], raw[5] = gx, gy, gz
            for yaw in (-180, -90, 0, 45, 179):
                for roll in (-80, -45, 0, 30, 80):
                    h.update(raw, yaw * 1000000, roll * 1000000)
        for rate in (1048575, -1048575, 3000000):
            c.add_joint_rate(rate, 40000)
        counter.active = False
    assert counter.hits == {}


def test_handle_imu_feed_forward_steadies_the_camera_on_cpython_and_micropython():
    from tests.micropython import run_micropython_json

    with_ff = closed_loop(True)
    without = closed_loop(False)
    assert with_ff["ready"] and not without["ready"]
    for i in range(3):
        assert with_ff["rms_deg"][i] < 0.5 * without["rms_deg"][i], (i, with_ff, without)
    mp = run_micropython_json("import json; from tests.test_firmware_handle_imu import closed_loop; "
                              "print(json.dumps(closed_loop(True)))")
    assert mp == with_ff


def test_handle_imu_tick_allocates_nothing_on_micropython():
    from tests.micropython import run_micropython_json

    r = run_micropython_json("import json; from tests.test_firmware_handle_imu import heap_per_tick; "
                             "print(json.dumps(heap_per_tick()))")
    assert r["ready"] and r["bytes"] == 0


def test_handle_ff_config_key_is_validated():
    from opensteady.firmware import protocol
    from opensteady.firmware.config import KEY_IDS, KEYS, Config

    key = KEY_IDS["handle_ff"]
    assert KEYS[key][1] == 1.0  # on by default: used whenever the handle IMU answers
    cfg = Config()
    assert cfg.set(key, 2.5) == protocol.NACK_OUT_OF_RANGE and cfg.get("handle_ff") == 1.0
    assert cfg.set(key, 0.0) == protocol.ACK_OK
    cfg2, ok = Config.from_bytes(cfg.to_bytes())
    assert ok and cfg2.get("handle_ff") == 0.0


def test_handle_ff_zero_is_the_plain_firmware():
    from opensteady.firmware.config import KEY_IDS, Config

    cfg = Config()
    cfg.set(KEY_IDS["handle_ff"], 0.0)
    a = HandlePlantHAL(handle_path=handle_wobble)
    b = HandlePlantHAL(fitted=False, handle_path=handle_wobble)
    ga, gb = Gimbal(a, cfg), Gimbal(b)
    for _ in range(2500):
        a.step(ga.period_us)
        b.step(gb.period_us)
        ga.tick(a.now_us)
        gb.tick(b.now_us)
    assert a.cam == b.cam


def test_pwm_board_reads_the_handle_imu_and_probes_a_missing_one_rarely():
    from opensteady.firmware.boards.base import HANDLE_IMU_RETRY_TICKS, PwmBoard

    class FakeImu:
        def __init__(self, answers):
            self.answers = answers
            self.inits = 0

        def init(self):
            self.inits += 1
            return self.answers

        def read_into(self, raw):
            raw[5] = 77
            return True

    raw = array("h", [0] * 6)
    plain = PwmBoard(FakeImu(True), None, None, None, None, None)
    assert plain.handle_imu_read(raw) is False
    absent = FakeImu(False)
    board = PwmBoard(FakeImu(True), None, None, None, None, None, handle_imu=absent)
    for _ in range(2 * HANDLE_IMU_RETRY_TICKS):
        assert board.handle_imu_read(raw) is False
    assert absent.inits == 2  # not an I2C probe every tick
    present = FakeImu(True)
    board = PwmBoard(FakeImu(True), None, None, None, None, None, handle_imu=present)
    assert board.handle_imu_read(raw) is True and raw[5] == 77 and present.inits == 1


def test_sim_walking_jitter_with_and_without_the_handle_imu():
    import dataclasses

    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    sc = load_scenario("stabilize-walking", overrides={"seconds": 4.0})
    with_imu = run_scenario(sc).metrics
    without = run_scenario(dataclasses.replace(sc, imu=dataclasses.replace(sc.imu, handle_imu=False))).metrics
    assert with_imu["faults"] == [] and without["faults"] == []
    # the same walk (the gimbal's reaction on the soft hand differs a little)
    assert abs(with_imu["handle_motion_rms_deg"] - without["handle_motion_rms_deg"]) < 0.01
    assert with_imu["camera_jitter_rms_deg"] < 0.6 * without["camera_jitter_rms_deg"]


def _board_with_fake_bus(board, monkeypatch, **kw):
    import importlib
    import sys
    import types

    class Pin:
        OUT = 1

        def __init__(self, n, mode=None, value=None):
            self.n = n

        def value(self, v=None):
            return 0

    class I2C:
        def __init__(self, bus_id, sda=None, scl=None, freq=None):
            self.seen = []

        def readfrom_mem_into(self, addr, reg, buf):
            self.seen.append(addr)
            for i in range(len(buf)):
                buf[i] = 0x68 if reg + i == 0x75 else 0

        def writeto_mem(self, addr, reg, buf):
            pass

    m = types.ModuleType("machine")
    m.Pin, m.I2C, m.PWM = Pin, I2C, object
    m.UART = lambda *a, **k: None
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.delitem(sys.modules, "opensteady.firmware.boards." + board, raising=False)
    return importlib.import_module("opensteady.firmware.boards." + board).Board(link="uart", **kw)


def test_boards_read_the_handle_imu_at_0x69_on_the_same_bus(monkeypatch):
    for board in ("rp2", "esp32"):
        b = _board_with_fake_bus(board, monkeypatch)
        assert b.handle_imu.addr == 0x69 and b.handle_imu.i2c is b.imu.i2c
        assert b.handle_imu_read(array("h", [0] * 6)) is True
        assert 0x69 in b.imu.i2c.seen
        # no handle IMU wanted, or asked for at the camera IMU's own address: none
        assert _board_with_fake_bus(board, monkeypatch, handle_imu_addr=None).handle_imu is None
        assert _board_with_fake_bus(board, monkeypatch, imu_addr=0x69).handle_imu is None


FIELD_GUARD_CODE = """
import gc, json
from opensteady.firmware.control import AxisController

def run():
    c = AxisController()
    c.field_lead_udeg = 60000000 // 7  # 60 electrical degrees of a 7-pole-pair motor
    c.reset(0, 0)
    out = []
    # a rotor that follows its field: the joint rate the IMUs see equals the command's; nothing is clamped
    for k in range(200):
        c.joint_udeg += 30000
        c.hold_field(30000, 1000)  # 30 deg/s (30000 mdps) = 30000 udeg per 1 ms tick
    out.append([c.joint_udeg, c.joint_udeg - c.rotor_udeg])
    # the field runs away (400 deg/s) while the IMUs see the rotor stand still: held 60 electrical deg ahead
    gc.collect()
    a = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    for k in range(200):
        c.joint_udeg += 400000
        c.hold_field(0, 1000)
    b = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    out.append([c.joint_udeg - c.rotor_udeg, b - a])
    # no guard (servo axes, or no handle IMU): the command is left alone
    c.field_lead_udeg = 0
    j = c.joint_udeg
    c.hold_field(-5000000, 1000)
    out.append([c.joint_udeg - j])
    return out

print(json.dumps(run()))
"""


def _guard_runs():
    ns = {}
    exec(FIELD_GUARD_CODE.replace("print(json.dumps(run()))", "RESULT = run()"), ns)
    return ns["RESULT"]


def test_the_open_loop_field_never_runs_more_than_60_electrical_degrees_ahead_of_its_rotor():
    following, runaway, off = _guard_runs()
    assert following[0] == 200 * 30000 and abs(following[1]) < 1000  # untouched
    assert runaway[0] == 60000000 // 7  # clamped to the lead (the rotor estimate leans only slowly towards it)
    assert off == [0]
    from tests.micropython import run_micropython_json

    mp = run_micropython_json(FIELD_GUARD_CODE)
    assert mp[0] == following and mp[2] == off
    assert mp[1] == [runaway[0], 0]  # and nothing allocated on the unix port


def test_sim_running_open_loop_keeps_its_poles():
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    # running's jolts saturate the yaw rate loop: unguarded, its field whips round at the 400 deg/s rate
    # limit, the rotor slips poles and the camera walks to the joint limit (docs/benchmarks.md)
    m = run_scenario(load_scenario("stabilize-running", overrides={"seconds": 5.0})).metrics
    assert m["faults"] == []
    assert m["camera_jitter_rms_deg"] < 5.0
