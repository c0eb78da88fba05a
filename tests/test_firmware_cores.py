"""Firmware cores on CPython and on the real MicroPython VM, with identical results.

``core_vectors()`` runs every pure core (integer maths, IMU driver and
calibration, estimator, controller, motor maths, config) on fixed inputs and
returns plain ints and strings. It is importable on MicroPython (no pytest
at module level), so the test runs it there through tests/micropython.py
and compares with the CPython answer, key by key. The other tests check the
CPython answers against independent float references.
"""

import math

from opensteady.firmware import config as fwconfig
from opensteady.firmware import protocol
from opensteady.firmware.control import AxisController, step_axes
from opensteady.firmware.estimator import AttitudeEstimator
from opensteady.firmware.fixmath import atan2_udeg, isqrt, ticks_diff, wrap_udeg
from opensteady.firmware.imu import (
    CAL_DONE,
    CAL_MOVED,
    CAL_RUNNING,
    MPU6050,
    GyroCalibrator,
    accel_offset_scale,
    to_body,
)
from opensteady.firmware.motor import (
    bldc_amplitude,
    bldc_duties,
    field_amplitude,
    field_angle_rad,
    servo_pulse_us,
)


class FakeI2C:
    """A register file standing in for the bus: the driver only needs two methods."""

    def __init__(self, who=0x68):
        self.regs = bytearray(128)
        self.regs[0x75] = who
        self.fail = False
        self.writes = []

    def readfrom_mem_into(self, addr, reg, buf):
        if self.fail:
            raise OSError(5)
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        if self.fail:
            raise OSError(5)
        self.writes.append((addr, reg, buf[0]))
        self.regs[reg] = buf[0]


def _lcg(seed):
    return (seed * 1103515245 + 12345) & 0x7FFFFFFF


def core_vectors():
    out = {}
    # integer trig and helpers
    pts = [(1, 1), (0, 5), (-3, 0), (7, -2), (-1000000, -999), (123456789, 987654321), (0, 0), (-5, 1)]
    out["atan2"] = [atan2_udeg(y, x) for y, x in pts]
    out["isqrt"] = [isqrt(n) for n in (0, 1, 2, 15, 16, 17, 10 ** 12 + 7, (1 << 56) - 1)]
    out["isqrt_warm"] = [isqrt(10 ** 12 + 7, g) for g in (1, 999999, 1000001, 5000000)]
    out["ticks_diff"] = [ticks_diff(5, (1 << 30) - 5), ticks_diff((1 << 30) - 5, 5), ticks_diff(10 ** 12 + 7, 10 ** 12)]
    out["wrap"] = [wrap_udeg(a) for a in (179999999, 180000000, -180000001, 540000000)]
    # MPU-6050 driver on a fake bus
    bus = FakeI2C()
    imu = MPU6050(bus)
    out["imu_init"] = imu.init()
    out["imu_writes"] = [[a, r, v] for a, r, v in bus.writes]
    burst = [0x12, 0x34, 0xFE, 0xDC, 0x20, 0x00, 0x0A, 0x0B, 0x00, 0x83, 0xFF, 0x7D, 0x80, 0x00]
    for i, b in enumerate(burst):
        bus.regs[0x3B + i] = b
    raw = [0] * 6
    out["imu_read"] = [imu.read_into(raw), list(raw)]
    bus.fail = True
    out["imu_read_fail"] = imu.read_into(raw)
    out["imu_wrong_chip"] = MPU6050(FakeI2C(who=0x70)).init()
    body = [0] * 6
    to_body([100, -200, 8000, 30, -40, 50], body, 0, 10, -20, 30, 4096 + 41)
    out["to_body0"] = list(body)
    to_body([100, -200, 8000, 30, -40, 50], body, 1, 0, 0, 0, 4096)
    out["to_body1"] = list(body)
    # calibration: still, then moved
    cal = GyroCalibrator(50, 60)
    seed = 7
    statuses = []
    for _ in range(50):
        seed = _lcg(seed)
        statuses.append(cal.add([10, -20, -8192, 100 + seed % 9, -50 + seed % 5, 7]))
    out["cal"] = [statuses.count(CAL_RUNNING), statuses[-1] == CAL_DONE, list(cal.bias_mdps), list(cal.accel_mean)]
    cal2 = GyroCalibrator(50, 60)
    s2 = [cal2.add([0, 0, -8192, 0, 0, 0]) for _ in range(10)] + [cal2.add([0, 0, -8192, 200, 0, 0])]
    out["cal_moved"] = s2[-1] == CAL_MOVED
    # estimator: a scripted sequence of rotations with a tilted, noisy accelerometer
    est = AttitudeEstimator()
    est.reset([1400, -700, -8000], [5, -3, 2])
    seed = 3
    trace = []
    for k in range(600):
        seed = _lcg(seed)
        n = seed % 7 - 3
        gz = 655 if k < 200 else (-300 if k < 400 else 0)
        est.update([1400 + n, -700 - n, -8000 + n, 12 + n, -33, gz], 1000)
        if k % 100 == 99:
            trace.append(list(est.angle_udeg) + list(est.rate_mdps))
    out["estimator"] = trace
    out["estimator_bias"] = list(est.i_corr)
    # controller: step response with a moving measurement
    c = AxisController()
    c.configure(20.0, 0.5, 30.0, 2.0, 1.0, 200.0, 400.0, 20000.0, -30.0, 30.0)
    c.reset(0, 0)
    ang = 0
    rate = 0
    ctrace = []
    for k in range(300):
        c.step(10000000, 5000 if k > 150 else 0, ang, rate, 1000)
        rate = (c.effort_mdps * 9) // 10
        ang += rate  # mdps * 1 ms = udeg
        if k % 30 == 29:
            ctrace.append([c.joint_udeg, c.effort_mdps, c.i_q4, c.at_limit, c.rate_sp_mdps])
    out["controller"] = ctrace
    # the tick's step_axes: three axes in one call (one left out by the mask now and then) against step()
    # on a twin of each, one at a time
    axes = [AxisController() for _ in range(3)]
    twins = [AxisController() for _ in range(3)]
    for j in range(3):
        for a in (axes[j], twins[j]):
            a.configure(8.0 + 6 * j, 0.6, 5.0 + 10 * j, 1.5 * j, 1.0, 200.0, 400.0, 20000.0, -20.0 + j, 20.0 - j)
            a.reset(1000000 * j, 0)
    strace = []
    for k in range(240):
        seed = _lcg(seed)
        tgt = [15000000 - 40000000 * j + (seed % 1000) * 1000 for j in range(3)]
        ffs = [(seed % 7 - 3) * 30000, 0, 9000 * j if k > 100 else 0]
        angs = [(seed >> 3) % 2000000 - 1000000, -500000, 250000 * j]
        rates = [(seed >> 5) % 40000 - 20000, 3000, -7000]
        mask = 7 if k % 5 else (7 ^ (1 << (k // 5 % 3)))
        dt = 1000 if k != 77 else 0
        got = step_axes(axes, mask, tgt, ffs, angs, rates, dt)
        want = 0
        for j in range(3):
            if (mask >> j) & 1 and twins[j].step(tgt[j], ffs[j], angs[j], rates[j], dt):
                want |= 1 << j
        strace.append([got, want] + [list(axes[j].packed) == list(twins[j].packed) for j in range(3)])
    out["step_axes"] = strace
    # motor maths
    duties = [0, 0, 0]
    mt = []
    for j in (0, 1234567, -7654321, 90000000):
        for sv in (False, True):
            bldc_duties(j, 7, -1, bldc_amplitude(400, sv), sv, duties)
            mt.append(list(duties))
    out["bldc"] = mt
    out["servo"] = [servo_pulse_us(j, d, 2560) for j in (0, 45000000, -200000000) for d in (1, -1)]
    # config: the file round trip and every nack reason
    cfg = fwconfig.Config()
    k = fwconfig.KEY_IDS
    out["cfg_set"] = [
        cfg.set(k["pitch_rate_kp"], 0.75),
        cfg.set(200, 1.0),
        cfg.set(k["loop_hz"], 5000),
        cfg.set(k["loop_hz"], 500.5),
        cfg.set(k["yaw_motor_dir"], 0),
        cfg.set(k["roll_joint_min_deg"], 60.0),
    ]
    data = cfg.to_bytes()
    back, ok = fwconfig.Config.from_bytes(data)
    out["cfg_roundtrip"] = [ok, back.values == cfg.values, len(data)]
    bad = bytearray(data)
    bad[20] ^= 0x40
    out["cfg_corrupt"] = [fwconfig.Config.from_bytes(bytes(bad))[1], fwconfig.Config.from_bytes(b"junk")[1],
                          fwconfig.Config.from_bytes(data[:-3])[1], fwconfig.Config.from_bytes(None)[1]]
    return out


def test_core_vectors_identical_on_micropython():
    from tests.micropython import run_micropython_json

    mp = run_micropython_json("import json; from tests.test_firmware_cores import core_vectors; "
                              "print(json.dumps(core_vectors()))")
    cp = core_vectors()
    # JSON turns tuples into lists and True into true: compare through the same encoding
    import json

    cp = json.loads(json.dumps(cp))
    assert sorted(mp) == sorted(cp)
    for key in cp:
        assert mp[key] == cp[key], key


def test_atan2_and_isqrt_match_float_references():
    v = core_vectors()
    pts = [(1, 1), (0, 5), (-3, 0), (7, -2), (-1000000, -999), (123456789, 987654321), (0, 0), (-5, 1)]
    for (y, x), got in zip(pts, v["atan2"]):
        ref = math.degrees(math.atan2(y, x)) * 1e6
        assert abs(got - ref) < 200, (y, x, got, ref)  # 0.0002 deg
    assert v["isqrt"] == [math.isqrt(n) for n in (0, 1, 2, 15, 16, 17, 10 ** 12 + 7, (1 << 56) - 1)]
    assert v["isqrt_warm"] == [math.isqrt(10 ** 12 + 7)] * 4
    assert v["ticks_diff"] == [10, -10, 7]
    assert v["wrap"] == [179999999, -180000000, 179999999, -180000000]


def test_mpu6050_driver_configures_and_decodes_big_endian_words():
    v = core_vectors()
    assert v["imu_init"] is True
    # wake on the gyro PLL, 1 kHz, DLPF 3, +-500 deg/s, +-4 g
    assert v["imu_writes"] == [[0x68, 0x6B, 0x01], [0x68, 0x19, 0], [0x68, 0x1A, 3], [0x68, 0x1B, 0x08],
                               [0x68, 0x1C, 0x08]]
    ok, raw = v["imu_read"]
    assert ok is True
    assert raw == [0x1234, 0xFEDC - 0x10000, 0x2000, 0x0083, 0xFF7D - 0x10000, -32768]  # temperature skipped
    assert v["imu_read_fail"] is False
    assert v["imu_wrong_chip"] is False


def test_mpu6050_rejects_bad_arguments_before_touching_the_bus():
    import pytest

    bus = FakeI2C()
    with pytest.raises(ValueError, match="addr"):
        MPU6050(bus, addr=0x50)
    with pytest.raises(ValueError, match="dlpf"):
        MPU6050(bus, dlpf=9)
    assert bus.writes == []


def test_mount_remap_and_accel_calibration():
    v = core_vectors()
    scale = (4096 + 41) / 4096
    ax = int((100 - 10) * scale)
    assert v["to_body0"][0] == ax
    # chip forward-left-up -> camera forward-right-down: y and z flip, gyro too
    assert v["to_body0"][3:] == [30, 40, -50]
    assert v["to_body1"] == [100, -200, 8000, 30, -40, 50]
    poses = [(8300, 20, 30), (-8100, 20, 30), (0, 8250, -40), (0, -8150, -40), (10, 0, 8290), (10, 0, -8090)]
    ox, oy, oz, s = accel_offset_scale(poses)
    assert (ox, oy, oz) == (100, 50, 100)
    assert abs(s - 8192 / ((8200 + 8200 + 8190) / 3)) < 1e-9


def test_gyro_calibration_mean_and_refusal_when_moving():
    v = core_vectors()
    running, done, bias_mdps, accel = v["cal"]
    assert done and running == 49
    assert accel == [10, -20, -8192]
    # chip counts averaged then converted at 65.5 counts per deg/s
    assert abs(bias_mdps[0] - 104 * 1000 / 65.5) < 80
    assert v["cal_moved"] is True


def test_estimator_integrates_yaw_and_learns_tilt():
    v = core_vectors()
    last = v["estimator"][-1]
    pitch_udeg, roll_udeg = last[1], last[2]
    # specific force (1400, -700, -8000) FRD: nose up by asin(1400/|a|), right side down
    a = math.sqrt(1400 ** 2 + 700 ** 2 + 8000 ** 2)
    pitch = math.asin(1400 / a)
    roll = math.atan2(700, 8000)
    assert abs(pitch_udeg / 1e6 - math.degrees(pitch)) < 0.3
    assert abs(roll_udeg / 1e6 - math.degrees(roll)) < 0.3
    # yaw integrates the vertical rate: level, 10 deg/s for 0.5 s, then
    # pitched 20 deg up (consistent accelerometer) turning about the vertical
    est = AttitudeEstimator()
    est.reset([0, 0, -8192], [0, 0, 0])
    for _ in range(500):
        est.update([0, 0, -8192, 0, 0, 655], 1000)
    assert abs(est.angle_udeg[0] - 5000000) < 2000
    th = math.radians(20)
    f = [int(round(8192 * math.sin(th))), 0, int(round(-8192 * math.cos(th)))]
    est.reset(f, [0, 0, 0])
    # earth-vertical rate of 10 deg/s seen in the pitched body frame: (-sin th, 0, cos th) * 655
    gyro = [int(round(-655 * math.sin(th))), 0, int(round(655 * math.cos(th)))]
    for _ in range(500):
        est.update(f + gyro, 1000)
    assert abs(est.angle_udeg[0] - 5000000) < 20000
    assert abs(est.angle_udeg[1] - 20000000) < 20000


def test_controller_trace_respects_limits():
    v = core_vectors()
    for joint_udeg, effort_mdps, i_q4, _at_limit, _rate_sp in v["controller"]:
        assert -30e6 <= joint_udeg <= 30e6
        assert abs(effort_mdps) <= 400000
        assert abs(i_q4) <= 400000 * 16  # integral in mdps * 16


def test_step_axes_is_step_on_each_axis_in_its_mask():
    trace = core_vectors()["step_axes"]
    assert all(got == want and same == [True, True, True] for got, want, *same in trace)
    assert any(got for got, *_ in trace)  # the joint limits were reached: at_limit bits came back


def test_bldc_duties_make_the_field_the_joint_asks_for():
    v = core_vectors()
    joints = (0, 1234567, -7654321, 90000000)
    for idx, duties in enumerate(v["bldc"]):
        j = joints[idx // 2]
        svpwm = idx % 2 == 1
        want = math.radians((-j * 7 / 1e6 + 180) % 360 - 180)
        got = field_angle_rad(*duties)
        assert abs(math.atan2(math.sin(got - want), math.cos(got - want))) < math.radians(0.5)
        amp = field_amplitude(*duties)
        assert abs(amp - (0.4 * (2 / math.sqrt(3) if svpwm else 1.0))) < 0.01
        assert all(0 <= d <= 65535 for d in duties)
    assert v["servo"] == [1500, 1500, 1950, 1050, 500, 2500]


def test_config_nacks_and_file_integrity():
    v = core_vectors()
    assert v["cfg_set"] == [protocol.ACK_OK, protocol.NACK_UNKNOWN_KEY, protocol.NACK_OUT_OF_RANGE,
                            protocol.NACK_OUT_OF_RANGE, protocol.NACK_OUT_OF_RANGE, protocol.NACK_OUT_OF_RANGE]
    assert v["cfg_roundtrip"][:2] == [True, True]
    assert v["cfg_corrupt"] == [False, False, False, True]


def test_config_key_table_is_consistent():
    names = [spec[0] for spec in fwconfig.KEYS.values()]
    assert len(set(names)) == len(names)
    for key, (name, default, lo, hi, _kind) in fwconfig.KEYS.items():
        assert 0 < key < 256
        assert lo <= default <= hi, name
        assert fwconfig.check_value(key, default) == protocol.ACK_OK, name
    assert fwconfig.axis_key(1, "rate_kp") == fwconfig.KEY_IDS["pitch_rate_kp"]


def test_estimator_pulls_toward_gravity_and_learns_gyro_bias():
    th = math.radians(10)
    f = [int(round(8192 * math.sin(th))), 0, int(round(-8192 * math.cos(th)))]
    est = AttitudeEstimator()
    est.set_gains(1.0, 0.0, 0.15)  # proportional only: a clean first-order pull
    est.reset([0, 0, -8192], [0, 0, 0])  # starts level, the accelerometer says 10 deg up
    for _ in range(6000):
        est.update(f + [0, 0, 0], 1000)
    assert abs(est.angle_udeg[1] - 10000000) < 50000  # 1/s: e^-6 of the error left
    # an uncalibrated roll-gyro bias of 0.5 deg/s: the integral term learns it
    est.set_gains(1.0, 0.05, 0.15)
    est.reset([0, 0, -8192], [0, 0, 0])
    for _ in range(60000):
        est.update([0, 0, -8192, 33, 0, 0], 1000)  # 33 counts = 0.504 deg/s
    assert abs(est.i_corr[0] / 1000 + 503) < 25  # mdps, opposing the bias
    assert abs(est.angle_udeg[2]) < 100000
    # a 1.5 g shake is outside the gate: no correction from it
    est.update([0, 0, -12288, 0, 0, 0], 1000)
    assert not est.accel_used


def test_constant_copies_match_their_sources():
    # native and viper code see an imported name as a global lookup on every use, so the tick's modules keep
    # const() copies of the few they test each tick (the packed controller layout among them)
    from opensteady.firmware import app, control, drive, failsafe, foc, modes, motor, protocol, telemetry

    assert (drive._S_JOINT, drive._OFF) == (control.S_JOINT, control.OFF)
    assert (drive._F_INDEX, drive._F_AMP, drive._F_STRIDE, drive._F_OFF) == (
        motor.F_INDEX, motor.F_AMP, motor.F_STRIDE, motor.F_OFF)
    assert (foc._F_INDEX, foc._F_AMP, foc._F_POWER, foc._F_STRIDE, foc._F_OFF) == (
        motor.F_INDEX, motor.F_AMP, motor.F_POWER, motor.F_STRIDE, motor.F_OFF)
    assert (foc._G_EFFORT_LIMIT, foc._S_JOINT, foc._S_FRAC, foc._S_EFFORT, foc._OFF) == (
        control._G_EFFORT_LIMIT, control.S_JOINT, control.S_FRAC, control.S_EFFORT, control.OFF)
    assert (modes._S_JOINT, modes._OFF) == (control.S_JOINT, control.OFF)
    assert (modes._LOCK, modes._PAN_FOLLOW, modes._FOLLOW, modes._TRACK, modes._RECENTRE) == (
        protocol.MODE_LOCK, protocol.MODE_PAN_FOLLOW, protocol.MODE_FOLLOW, protocol.MODE_TRACK, protocol.MODE_RECENTRE)
    assert (app._IMU_FAULTS, app._DUE_TELEMETRY, app._DUE_HEARTBEAT) == (
        failsafe.IMU_FAULTS, telemetry.DUE_TELEMETRY, telemetry.DUE_HEARTBEAT)
    assert failsafe._JOINT_LIMIT == protocol.FAULT_JOINT_LIMIT


def test_controller_words_stay_within_the_offset_range():
    # the packed state is stored + 2**29 so ptr32's unsigned loads (64-bit ports) read it back right:
    # a hard-driven axis against its limits keeps every word in [0, 2**30)
    c = AxisController()
    c.configure(20.0, 2.0, 50.0, 3.0, 1.0, 2000.0, 2000.0, 200000.0, -170.0, 170.0)
    c.reset(169000000, 0)
    for k in range(3000):
        c.step(-170000000 if k < 1500 else 170000000, 1048575 if k % 7 else -1048575, 0, 4000000 if k % 2 else -4000000,
               40000)
        assert all(0 <= w < (1 << 30) for w in c.packed), list(c.packed)
