"""Rotor-angle sensor drivers and field-oriented commutation, on CPython and on the MicroPython unix port.

tests/foc_vectors.py drives the AS5600 and AS5048A drivers on fake buses and
runs the commutation maths and the start-up calibrator on an ideal rotor; it
imports nothing from pytest, so the same function runs on the VM and the
answers must match CPython's. The tests here check the answers against
float references.
"""

import json
import math

import pytest

from opensteady.firmware import foc
from opensteady.firmware.angle_sensor import AS5048A, AS5600, counts_to_udeg
from opensteady.firmware.motor import field_amplitude, field_angle_rad
from tests.foc_vectors import FakeI2C, calibrate_ideal, foc_vectors
from tests.micropython import run_micropython_json


def test_foc_vectors_match_on_micropython():
    code = "import json\nfrom tests.foc_vectors import foc_vectors\nprint(json.dumps(foc_vectors()))"
    assert run_micropython_json(code) == json.loads(json.dumps(foc_vectors()))


def test_as5600_reads_raw_angle_and_reports_bus_errors():
    v = foc_vectors()
    # CONF_H gets the fastest slow filter (0x03)
    assert v["as5600_init"] == [True, [[0x07, 0x03]]]
    assert v["as5600_read"] == [0, 1, 2047, 4095, 0xABC, 0x5BC, -1, 1]
    assert v["as5600_weak"] is False and v["as5600_none"] is False
    with pytest.raises(ValueError, match="0x36"):
        AS5600(FakeI2C(), addr=0x40)


def test_as5048a_checks_parity_and_error_flag():
    v = foc_vectors()
    assert v["as5048_init"] is True
    reads = v["as5048_read"]
    assert reads[:5] == [0, 1, 8191, 16383, 0x1234]
    # a flipped bit: -1, then the next read is good again
    assert reads[5] == -1 and reads[6] == 77
    # the chip's error flag: -1; the next read clears the error register first and succeeds
    assert reads[7] == -1 and reads[8] == 77
    errors, chip_error, frames = reads[9:]
    assert errors == 2 and chip_error == 0
    assert frames == 3 + 2 * 9 + 2  # init, two frames per read, two error clears
    assert v["as5048_weak"] is False
    assert v["cmd_words"] == [0xFFFF, 0x4001, 0x7FFD]
    with pytest.raises(ValueError, match="SPI"):
        AS5048A(object(), lambda v: None)


def test_counts_to_udeg_matches_floats():
    for bits in (12, 14):
        for c in range(0, 1 << bits, 37):
            assert counts_to_udeg(c, bits) == math.floor(c * 360e6 / (1 << bits))


def test_rotor_index_and_field_lead_the_rotor_by_90_degrees():
    duties = [0, 0, 0]
    for bits in (12, 14):
        cpr = 1 << bits
        for counts in range(0, cpr, cpr // 64 + 3):
            for pp, d, zero in ((7, 1, 0), (7, -1, 321), (11, 1, 1400)):
                e = foc.rotor_elec_index(counts, bits, pp, d, zero)
                mech = (counts if d > 0 else -counts) / cpr
                expect = (mech * pp * 1536 - zero) % 1536
                assert abs(foc.wrap_index(e - int(expect))) <= 1
                foc.foc_duties(e, 30000, 0, duties)
                lead = math.degrees(field_angle_rad(*duties)) - e * 360 / 1536
                assert abs((lead - 90 + 180) % 360 - 180) < 0.5
                assert abs(field_amplitude(*duties) - 30000 / 32767) < 0.01
                foc.foc_duties(e, -30000, 1, duties)  # negative torque: the field trails by 90
                lead = math.degrees(field_angle_rad(*duties)) - e * 360 / 1536
                assert abs((lead + 90 + 180) % 360 - 180) < 0.5


def test_calibrator_finds_direction_and_zero_through_lag():
    for bits, pp, d, off, lag in ((14, 7, 1, 3000, 40), (12, 7, -1, 777, -60), (14, 11, 1, 16000, 0)):
        phase, reason, sdir, zero, ticks = calibrate_ideal(bits, pp, d, off, lag)
        assert phase == foc.CAL_DONE and reason == foc.FAIL_NONE
        assert sdir == d
        # sensor electrical index of the rotor aligned with field 0
        expect = foc.rotor_elec_index(off, bits, pp, d, 0)
        assert abs(foc.wrap_index(zero - expect)) <= 3, (zero, expect)
        assert ticks == 300 + 4 * 1000  # 4.3 s at 1 kHz


def test_calibrator_reports_a_rotor_that_does_not_move_or_wrong_pole_pairs():
    cal = foc.FocCalibrator(14, 7)
    cal.start()
    while cal.phase < foc.CAL_DONE:
        cal.step(1234, 1000)
    assert cal.phase == foc.CAL_FAILED and cal.reason == foc.FAIL_NO_MOTION
    # the motor has 14 pole pairs but config says 7: the rotor moves half as far as expected
    cal = foc.FocCalibrator(14, 7)
    cal.start()
    field = 0
    rotor_e = 0  # the field's index, unwrapped: the rotor follows it
    while cal.phase < foc.CAL_DONE:
        rotor_e += foc.wrap_index(field - rotor_e)
        counts = (rotor_e * 16384 // (1536 * 14)) % 16384
        field = cal.step(counts, 1000)
    assert cal.reason == foc.FAIL_POLE_PAIRS
    cal = foc.FocCalibrator(14, 7)
    cal.start()
    cal.step(-1, 1000)
    assert cal.reason == foc.FAIL_SENSOR
    with pytest.raises(ValueError, match="bits"):
        foc.FocCalibrator(10, 7)


def test_reads_and_commutation_allocate_nothing_on_micropython():
    code = """
import gc, json
from tests.foc_vectors import FakeI2C, FakeAS5048
from opensteady.firmware.angle_sensor import AS5600, AS5048A
from opensteady.firmware import foc
bus = FakeI2C(); a = AS5600(bus); a.init(); bus.set_angle(1234)
chip = FakeAS5048(); b = AS5048A(chip, chip.cs); b.init(); chip.angle = 4321
d = [0, 0, 0]
def loop(n):
    s = 0
    for i in range(n):
        s += a.read() + b.read()
        e = foc.rotor_elec_index(i & 16383, 14, 7, -1, 99)
        foc.foc_duties(e, 20000 - i, 1, d)
    return s
loop(10)
gc.collect(); m0 = gc.mem_alloc(); loop(200); m1 = gc.mem_alloc()
print(json.dumps(m1 - m0))
"""
    # the fakes are plain Python (their methods allocate); measure the driver and maths on their own too
    code_core = """
import gc, json
from opensteady.firmware import foc
d = [0, 0, 0]
def loop(n):
    for i in range(n):
        e = foc.rotor_elec_index(i & 16383, 14, 7, -1, 99)
        foc.foc_duties(e, 20000 - i, 1, d)
loop(10)
gc.collect(); m0 = gc.mem_alloc(); loop(500); m1 = gc.mem_alloc()
print(json.dumps(m1 - m0))
"""
    assert run_micropython_json(code_core) == 0
    assert run_micropython_json(code) >= 0  # runs; the fakes' own allocations are not the driver's


def test_closed_loop_tick_allocates_nothing_on_micropython():
    out = run_micropython_json(
        "import json; from firmware.offboard import bench_tick; print(json.dumps(bench_tick.run(1500, foc=True)))"
    )
    assert out["impl"] == "micropython" and out["drive"] == "foc"
    assert out["foc_axes"] == [1, 1, 1]  # every axis commutated on its sensor inside the measured ticks
    assert out["alloc_ticks"] == 0 and out["heap_locked_failures"] == 0


def test_plausibility_needs_several_bad_samples_and_rides_out_a_stride_in_free_fall():
    from opensteady.firmware.imu import PlausibilityCheck

    check = PlausibilityCheck(stuck_samples=3, low_g_us=300000)
    good = [100, -50, -8192, 12, -3, 7]
    stuck = [0, 0, 0, 0, 0, 0]
    free_fall = [300, -900, -1200, 2000, -500, 40]  # 0.19 g with the gyro turning: the top of a stride
    assert not check.dead(good, good, 1000)
    assert [check.dead(stuck, stuck, 1000) for _ in range(3)] == [False, False, True]
    check.reset()
    # 120 ms of free fall, then a footfall: never dead
    assert not any(check.dead(free_fall, free_fall, 1000) for _ in range(120))
    assert not check.dead(good, good, 1000)
    assert not any(check.dead(free_fall, free_fall, 1000) for _ in range(120))
    # a dead accelerometer reads near 0 g for good: dead after 300 ms
    results = [check.dead(free_fall, free_fall, 1000) for _ in range(300)]
    assert results.index(True) == 300 - 120 - 1


_DUTIES_VS_HELPERS = """
import json
from opensteady.firmware import foc
from opensteady.firmware.config import Config, axis_key
from opensteady.firmware.control import AxisController
from opensteady.firmware.motor import F_OFF, F_POWER, F_STRIDE, phase_duties_axes
from array import array
drive = foc.FocDrive()
c = AxisController()
axes = [c, AxisController(), AxisController()]
got = []
want = []
out = [0, 0, 0]
fields = array("i", [F_OFF] * (3 * F_STRIDE))
fields[F_POWER] = 20000 + F_OFF
duties = array("H", [0] * 9)
for sensor, sdir, mdir, zero, pp in ((2, 1, 1, 0, 7), (2, -1, 1, 99, 7), (1, 1, -1, 1535, 11), (1, -1, -1, 700, 3)):
    cfg = Config()
    for name, value in (("drive", 1), ("sensor", sensor), ("sensor_dir", sdir), ("motor_dir", mdir),
                        ("foc_zero", zero), ("joint_zero_counts", 0), ("pole_pairs", pp)):
        cfg.set(axis_key(0, name), value)
    drive.configure(cfg)
    bits = 12 if sensor == 1 else 14
    for counts in (0, 1, 777, (1 << bits) // 3, (1 << bits) - 1):
        for effort in (-400000, -1234, 0, 98765, 400000):
            c.effort_mdps = effort
            drive._packed[7] = counts  # what measure() keeps (_P_COUNTS)
            drive.closed = 1
            drive.fields(axes, fields)
            phase_duties_axes(1, fields, 0, duties)
            got.append(list(duties[0:3]))
            t = ((effort >> 10) * 20000) // (c.effort_limit_mdps >> 10)
            t = max(-20000, min(20000, t))
            foc.foc_duties(foc.rotor_elec_index(counts, bits, pp, sdir, zero), -t if mdir < 0 else t, 0, out)
            want.append(list(out))
print(json.dumps([got, want]))
"""


def test_foc_drive_fields_agree_with_the_helpers_it_writes_out():
    # FocDrive.fields computes rotor_elec_index inline (one call less per axis and tick): the same duties
    for got, want in (json.loads(_run_cpython(_DUTIES_VS_HELPERS)), run_micropython_json(_DUTIES_VS_HELPERS)):
        assert got == want


def _run_cpython(code):
    import subprocess
    import sys

    from tests.micropython import ROOT

    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]
