"""Auto-tuning end to end: MSG_TUNE to the simulated firmware, the relay experiment, saved gains, a step response."""

import dataclasses
import math

import pytest

from opensteady.firmware import autotune
from opensteady.firmware import config as fwconfig
from opensteady.firmware import protocol as P
from opensteady.firmware.autotune import TUNE_DONE
from opensteady.host import tune
from opensteady.sim.scenario import load_scenario


def _session(name="stabilize-still-foc", firmware="inprocess"):
    sc = dataclasses.replace(load_scenario(name), seconds=60.0).validate()
    dev = tune.SimDevice(sc, firmware=firmware)
    return dev, tune.Session(dev)


@pytest.mark.parametrize("firmware", ["inprocess", "micropython", "compiled"])
def test_relay_tune_sets_checked_gains_and_saves_them(firmware):
    dev, s = _session(firmware=firmware)
    try:
        # motors off (before MODE): refused, and nothing else happens
        s.pump(0.2)
        assert s.request(P.MSG_TUNE, 1, 0, 100, 50) == P.NACK_NOT_READY
        tune._wait_ready(s, 20.0)  # after the sensors' calibration
        progress = []
        st = tune.tune_axis(s, 1, 0, 100, 0.5, progress.append)
        assert st["state"] == TUNE_DONE and st["reason"] == 0
        assert len(progress) >= 4  # a status per relay cycle while it ran
        assert 0.005 < st["pu_ms"] / 1000 < 1.0 and st["ku"] > 0  # the rate loop: tens of ms
        saved, ok = fwconfig.Config.from_bytes(dev.rig.gimbal.hal.config_bytes)
        assert ok and dev.rig.gimbal.hal.config_saves >= 1
        for name in ("angle_kp", "rate_kp", "rate_ki"):
            assert saved.axis(1, name) == pytest.approx(st[name], rel=1e-6)
        ts, ys, m = tune.step_response(s, 1)
        assert len(ts) > 40 and m["overshoot"] < 0.6 and abs(m["final_error_deg"]) < 0.2
    finally:
        dev.close()


@pytest.mark.parametrize("firmware", ["inprocess", "micropython", "compiled"])
def test_open_loop_axes_are_tuned_on_their_springs_resonance(firmware):
    dev, s = _session("stabilize-still", firmware=firmware)
    try:
        tune._wait_ready(s, 20.0)
        s.pump(1.0)
        st = tune.tune_axis(s, 0, 0, 100, 0.05, lambda msg: None)
        assert st["state"] == TUNE_DONE and st["reason"] == 0
        # the angle relay cycles at the field spring's resonance (2-7 Hz), not at the rate loop's tens of ms
        pu = st["pu_ms"] / 1000
        assert 1 / 7 < pu < 1 / 2
        wn = 2 * math.pi / pu
        zeta = st["ku"] / (2 * wn)
        assert 0.01 < zeta < 0.3  # back-EMF damping of the yaw axis: barely damped
        saved, ok = fwconfig.Config.from_bytes(dev.rig.gimbal.hal.config_bytes)
        assert ok
        gains = autotune.gains_spring(st["ku"], pu)
        for name, value in zip(("angle_kp", "rate_kp", "rate_ki", "rate_kd_ms"), gains):
            assert saved.axis(0, name) == pytest.approx(value, rel=5e-3)  # pu_ms: whole ms
        assert s.config_get("yaw_rate_kd_ms") == saved.axis(0, "rate_kd_ms")
        ts, ys, m = tune.step_response(s, 0)
        assert m["overshoot"] < 0.2 and abs(m["final_error_deg"]) < 0.3
    finally:
        dev.close()


def test_tune_command_on_the_closed_loop_gimbal(capsys):
    from opensteady.host.cli import main

    assert main(["tune", "--sim", "--axis", "pitch", "--json"]) == 0
    import json

    (r,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["state"] == "done" and r["axis"] == "pitch"
    assert r["overshoot"] < 0.6 and abs(r["final_error_deg"]) < 0.2


def test_step_metrics():
    ts = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    ys = [0.0, 2.0, 4.8, 5.5, 5.1, 5.0]
    m = tune.step_metrics(ts, ys, 5.0)
    assert m["overshoot"] == pytest.approx(0.1) and m["rise_s"] == pytest.approx(0.2 - 0.1)
