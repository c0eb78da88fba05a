"""The simulator's per-tick models compiled (sim/compiled_sim.py) against the same files run as Python.

Each compiled class gets the same random inputs as its Python self and must
give the same outputs to the bit (``==`` on floats, the same counts and
bytes); whole runs are compared in tests/test_sim_compiled.py. The first test
that needs the build compiles the models (about 40 s of CPU, cached).
"""

import dataclasses
import math
import random
from array import array

import numpy as np
import pytest

from opensteady.sim import angle_sensor, imu, link, lockstep, motor, plant
from opensteady.sim.compiled_firmware import CompileError


@pytest.fixture(scope="module")
def cs():
    from opensteady.sim import compiled_sim

    try:
        return compiled_sim.load_package()
    except CompileError as exc:  # pragma: no cover - the dev install has Cython and gcc
        pytest.fail(str(exc))


def _mod(cs, name):
    import importlib

    m = importlib.import_module(cs.__name__ + "." + name)
    assert m.__file__.endswith(".so"), m.__file__  # really the compiled module
    return m


def test_the_compiled_classes_are_extension_types(cs):
    # typed (C attributes, no instance dictionary) where the Python classes are plain ones
    for name, cls in (("imu", "ImuModel"), ("motor", "BldcMotor"), ("link", "SerialLink"),
                      ("angle_sensor", "AngleSensorModel"), ("plant", "GimbalPlant"), ("lockstep", "Lockstep")):
        compiled = getattr(_mod(cs, name), cls)
        assert compiled.__dictoffset__ == 0, cls
        assert getattr(globals()[name], cls).__dictoffset__ != 0, cls


def test_imu_model_agrees(cs):
    rng = random.Random(5)
    params = imu.ImuParams()
    py = imu.ImuModel(params, seed=3)
    cy = _mod(cs, "imu").ImuModel(params, seed=3)
    raw_py = array("h", [0] * 6)
    raw_cy = array("h", [0] * 6)
    t = 0.0
    saturated = 0
    for k in range(2600):  # across two blocks of precomputed errors
        t += rng.choice((0.001, 0.0005, 0.0021))  # none, one or more samples due
        gyro = [rng.gauss(0, 3.0) for _ in range(3)]
        accel = [rng.gauss(0, 40.0) for _ in range(3)]  # past full scale now and then: saturation
        if k % 2:
            py.update(t, gyro, accel)
            cy.update(t, gyro, accel)
        else:
            sens = gyro + [0.5] + accel
            py.update_at(t, sens, 0, 4)
            cy.update_at(t, np.array(sens), 0, 4)
        py.read_into(raw_py)
        cy.read_into(raw_cy)
        assert raw_cy == raw_py, k
        saturated += 32767 in raw_py or -32768 in raw_py
    assert cy.samples == py.samples > 2048
    assert cy.gyro_bias_dps == py.gyro_bias_dps and cy.delay_s == py.delay_s
    assert list(cy.counts) == list(py.counts) and saturated > 10


def test_bldc_motor_agrees(cs):
    rng = random.Random(7)
    for params in (motor.BldcParams(), motor.BldcParams(pole_pairs=11, power_limit_w=0.5, cogging_nm=0.002)):
        py = motor.BldcMotor(params)
        cy = _mod(cs, "motor").BldcMotor(params)
        for _ in range(5000):
            on = rng.random() < 0.8
            py.enabled = cy.enabled = on
            args = (rng.randrange(65536), rng.randrange(65536), rng.randrange(65536), rng.uniform(-7, 7),
                    rng.gauss(0, 20))
            assert cy.torque_nm(*args) == py.torque_nm(*args), args
            assert cy.current_a == py.current_a and cy.torque_nm_last == py.torque_nm_last


def test_angle_sensor_agrees(cs):
    rng = random.Random(9)
    for params in (angle_sensor.AngleSensorParams(kind="as5600"),
                   angle_sensor.AngleSensorParams(kind="as5048a", direction=-1, noise_counts=0.0),
                   angle_sensor.AngleSensorParams(kind="as5048a", noise_counts=2.0)):
        py = angle_sensor.AngleSensorModel(params, seed=4)
        cy = _mod(cs, "angle_sensor").AngleSensorModel(params, seed=4)
        for _ in range(3000):
            args = (rng.randrange(3), rng.uniform(-20, 20), rng.gauss(0, 30))
            assert cy.read(*args) == py.read(*args), args


def test_serial_link_agrees(cs):
    rng = random.Random(11)
    params = link.LinkParams(baud=115200, drop_rate=0.02, corrupt_rate=0.02)
    py = link.SerialLink(params, seed=6)
    cy = _mod(cs, "link").SerialLink(params, seed=6)
    t = 0.0
    for _ in range(2000):
        t += rng.uniform(0, 0.004)
        if rng.random() < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            py.write(data, t)
            cy.write(bytearray(data), t)
        assert cy.has_in_flight() == py.has_in_flight()
        assert cy.read(t) == py.read(t)
    assert (cy.bytes_sent, cy.bytes_dropped, cy.bytes_corrupted) == (py.bytes_sent, py.bytes_dropped,
                                                                      py.bytes_corrupted)
    assert py.bytes_dropped > 0 and py.bytes_corrupted > 0 and cy.backlog_s == py.backlog_s


def test_plant_agrees(cs):
    rng = np.random.default_rng(2)
    py = plant.GimbalPlant()
    cy = _mod(cs, "plant").GimbalPlant()
    rows = py.hand_mocap_block(rng.normal(0, 1, (500, 6)) * [0.01, 0.01, 0.01, 2, 2, 2])
    a_py, r_py, a_cy, r_cy = (array("d", [0.0] * 3) for _ in range(4))
    for k in range(500):
        py.set_hand_mocap(rows[k].tolist())
        cy.set_hand_mocap(rows[k])
        tau = rng.normal(0, 0.05, 3).tolist()
        if k % 2:
            py.step(tau)
            cy.step(tau)
        else:
            py.step3(*tau)
            cy.step3(*tau)
        py.joint_state_into(a_py, r_py)
        cy.joint_state_into(a_cy, r_cy)
        assert (a_cy, r_cy) == (a_py, r_py)
        assert list(cy.sensor_values()) == py.sensor_values() == cy.sensors()
    assert cy.camera_ypr_deg() == py.camera_ypr_deg() and cy.handle_ypr_deg() == py.handle_ypr_deg()
    assert cy.joint_state() == py.joint_state() and max(abs(v) for v in a_py) > 1e-3


def test_lockstep_constants_are_the_worlds():
    from opensteady.sim import world

    assert world.TRACE_EVERY_TICKS == lockstep.TRACE_EVERY_TICKS and world.POSE_BLOCK_TICKS == lockstep.POSE_BLOCK_TICKS


def test_the_interpreted_modes_use_the_python_models():
    from opensteady.sim.world import sim_models

    ls = sim_models("inprocess")
    assert ls.ImuModel is imu.ImuModel and ls.Lockstep is lockstep.Lockstep and ls.GimbalPlant is plant.GimbalPlant
    assert sim_models("micropython").BldcMotor is motor.BldcMotor


def test_a_lossy_link_run_agrees_bit_for_bit(cs):
    # byte loss and corruption draw from the links' own generators: the same bytes dropped in both
    from opensteady.sim.scenario import load_scenario
    from opensteady.sim.world import SimGimbal

    sc = load_scenario("stabilize-walking")
    sc = dataclasses.replace(sc, link=dataclasses.replace(sc.link, drop_rate=0.01, corrupt_rate=0.01)).validate()
    out = []
    for mode in ("inprocess", "compiled"):
        with SimGimbal(sc, firmware=mode, seed=2) as g:
            got = bytearray()
            for k in range(25):
                g.write(bytes(range(k, k + 30)))  # host -> firmware: garbage the parser must survive
                g.step_to(g.time_s + 0.1)
                got += g.read()
            out.append((bytes(got), g.traces.camera_ypr_deg, g.traces.effort, g.max_effort,
                        g.link_down.bytes_dropped, g.link_up.bytes_corrupted, g.hal.rx_overflow_bytes))
    assert out[1] == out[0]
    assert out[0][4] > 0 and out[0][5] > 0 and not any(math.isnan(v) for r in out[0][1] for v in r)
