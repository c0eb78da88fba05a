"""Field-oriented commutation on the simulated gimbal: the firmware's pure cores against MuJoCo and the motor model.

The start-up calibrator (firmware/foc.py) drives the three simulated BLDC
motors through the same duty maths the firmware uses, reads the simulated
AS5048A/AS5600 (sim/angle_sensor.py: unknown magnet orientation, counting
direction, noise, quantisation), and must find each sensor's direction and
electrical zero; commutating on them must then give the motor model's full
torque.
"""

import math

import pytest

from opensteady.firmware import foc
from opensteady.firmware.motor import bldc_amplitude, phase_duties
from opensteady.sim.angle_sensor import AngleSensorModel, AngleSensorParams
from opensteady.sim.motor import BldcMotor
from opensteady.sim.plant import GimbalPlant


def _calibrate(params, amp_permille=800):
    plant = GimbalPlant()
    sensor = AngleSensorModel(params, seed=5)
    motors = [BldcMotor() for _ in range(3)]
    for m in motors:
        m.enabled = True
    pp = motors[0].params.pole_pairs
    cals = [foc.FocCalibrator(params.bits, pp) for _ in range(3)]
    for c in cals:
        c.start()
    amp = bldc_amplitude(amp_permille, False)
    d = [0, 0, 0]
    fields = [0, 0, 0]
    ticks = 0
    while any(c.phase < foc.CAL_DONE for c in cals) and ticks < 5000:
        angle, rate = plant.joint_state()
        torques = [0.0, 0.0, 0.0]
        for k in range(3):
            fields[k] = cals[k].step(sensor.read(k, angle[k], rate[k]), 1000)
            phase_duties(fields[k], amp, 0, d)
            torques[k] = motors[k].torque_nm(d[0], d[1], d[2], angle[k], rate[k])
        plant.step(torques)
        ticks += 1
    return plant, sensor, motors, cals, pp


@pytest.mark.parametrize("kind,direction", [("as5048a", 1), ("as5600", -1)])
def test_calibration_on_the_simulated_gimbal_finds_direction_and_zero(kind, direction):
    params = AngleSensorParams(kind=kind, direction=direction)
    plant, sensor, motors, cals, pp = _calibrate(params)
    for k, c in enumerate(cals):
        assert c.phase == foc.CAL_DONE, (k, c.reason)
        assert c.sensor_dir == direction
        # truth: field index 0 holds the rotor where pp * joint = 0 (mod a turn); the sensor's
        # electrical index there is pp * (magnet offset) in its own counting direction
        offset_turns = math.radians(params.mount_offset_deg + 113.0 * k) / (2 * math.pi)
        truth = (pp * offset_turns * 1536) % 1536
        err_deg = foc.wrap_index(c.elec_zero - int(round(truth))) * 360 / 1536
        assert abs(err_deg) < 6.0, (k, c.elec_zero, truth)  # electrical degrees: < 1 mechanical


def test_commutating_on_the_calibration_gives_full_torque_both_ways():
    params = AngleSensorParams(kind="as5048a", direction=-1)
    plant, sensor, motors, cals, pp = _calibrate(params)
    amp = bldc_amplitude(500, False)
    d = [0, 0, 0]
    angle, rate = plant.joint_state()
    for k in range(3):
        counts = sensor.read(k, angle[k], 0.0)
        e = foc.rotor_elec_index(counts, params.bits, pp, cals[k].sensor_dir, cals[k].elec_zero)
        best = max(abs(motors[k].torque_nm(*_duties(i, amp), angle[k], 0.0)) for i in range(0, 1536, 8))
        foc.foc_duties(e, amp, 0, d)
        up = motors[k].torque_nm(d[0], d[1], d[2], angle[k], 0.0)
        foc.foc_duties(e, -amp, 0, d)
        down = motors[k].torque_nm(d[0], d[1], d[2], angle[k], 0.0)
        # the field 90 electrical degrees ahead: (nearly) all of the current makes torque
        assert up > 0.95 * best and down < -0.95 * best, (k, up, down, best)  # cogging: +-0.0003 N*m


def _duties(index, amp):
    d = [0, 0, 0]
    phase_duties(index, amp, 0, d)
    return d


def test_firmware_calibrates_its_sensors_saves_them_and_commutates_on_them():
    from opensteady.firmware import config as fwconfig
    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    sc = load_scenario("stabilize-walking-foc")
    with SimGimbal(sc, seed=0) as g:
        fw = g.firmware.gimbal
        g.step_to(1.5)
        assert fw.calibrated and fw.foc.calibrating and not fw.motors_on  # gyro first, then the sensors
        g.step_to(6.0)
        assert not fw.foc.calibrating and fw.foc.active == [1, 1, 1] and fw.motors_on
        assert g.hal.config_saves == 1
        saved, ok = fwconfig.Config.from_bytes(g.hal.config_bytes)
        assert ok
        pp = sc.motor.pole_pairs
        for k in range(3):
            assert saved.axis(k, "sensor_dir") == sc.sensor.direction
            offset_turns = math.radians(sc.sensor.mount_offset_deg + 113.0 * k) / (2 * math.pi)
            truth = int(round(pp * offset_turns * 1536)) % 1536
            assert abs(foc.wrap_index(saved.axis(k, "foc_zero") - truth)) * 360 / 1536 < 6.0
            assert 0 <= saved.axis(k, "joint_zero_counts") < 16384
            # the measured joint angle agrees with the plant's (joint zero is where field 0 held it)
            assert abs(fw.axes[k].joint_udeg / 1e6 - math.degrees(g.plant.joint_rad(k))) < 1.0
        assert fw.foc.read_errors == 0


def test_stabilize_walking_foc_meets_the_jitter_goal():
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    m = run_scenario(load_scenario("stabilize-walking-foc"), seed=0).metrics
    assert m["faults"] == [] and m["mode_reached"]
    assert m["handle_motion_rms_deg"] > 2.0  # the hand really walks
    assert m["camera_jitter_rms_deg"] <= 0.05


def test_foc_firmware_agrees_inprocess_and_on_micropython():
    import dataclasses

    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    sc = load_scenario("stabilize-walking-foc")
    sc = dataclasses.replace(sc, seconds=7.5, warmup_s=6.0).validate()
    a = run_scenario(sc, firmware="inprocess", seed=3).metrics
    b = run_scenario(sc, firmware="micropython", seed=3).metrics
    assert b["mode_reached"] and b["faults"] == []
    for key in ("camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "telemetry_frames"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert a["final_camera_ypr_deg"] == b["final_camera_ypr_deg"]
