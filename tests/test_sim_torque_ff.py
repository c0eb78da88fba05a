"""The torque feed-forward (firmware/torque_ff.py) in the MuJoCo simulator, lockstep: in-process, compiled, on the VM."""

import dataclasses

import numpy as np
import pytest

from opensteady.host.simrig import run_scenario
from opensteady.sim import metrics as M
from opensteady.sim.scenario import load_scenario

MU = 0.005


def _walking(mu, seconds=None):
    sc = load_scenario("stabilize-walking-foc")
    sc = dataclasses.replace(sc, firmware=tuple(sc.firmware) + (("torque_ff_mu", mu),))
    if seconds is not None:
        sc = dataclasses.replace(sc, seconds=seconds)
    return sc.validate()


def _per_axis_jitter(result, warmup_s):
    s = result.series
    after = s["t_s"] >= warmup_s
    t = s["t_s"][after]
    err = M.wrap_deg(s["camera_ypr_deg"][after] - s["commanded_ypr_deg"][after])
    hp = M.highpass(err, (len(t) - 1) / (t[-1] - t[0]))
    return np.sqrt((hp * hp).mean(axis=0))


def test_feed_forward_steadies_the_yaw_axis_while_walking():
    off_sc, on_sc = _walking(0.0), _walking(MU)
    off = run_scenario(off_sc, seed=0)
    on = run_scenario(on_sc, seed=0)
    assert off.metrics["faults"] == [] and on.metrics["faults"] == []
    yaw_off = _per_axis_jitter(off, off_sc.warmup_s)[0]
    yaw_on = _per_axis_jitter(on, on_sc.warmup_s)[0]
    # yaw is the axis the handle's sway and tilt load through the yaw arm's unbalance
    assert yaw_on < 0.92 * yaw_off, (yaw_on, yaw_off)
    assert on.metrics["camera_jitter_rms_deg"] < off.metrics["camera_jitter_rms_deg"]


def test_feed_forward_agrees_inprocess_compiled_and_on_micropython():
    sc = _walking(MU, seconds=9.0)
    a = run_scenario(sc, firmware="inprocess", seed=1).metrics
    for mode in ("micropython", "compiled"):
        b = run_scenario(sc, firmware=mode, seed=1).metrics
        assert b["mode_reached"] and b["faults"] == []
        for key in ("camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "telemetry_frames"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), (mode, key)
        assert a["final_camera_ypr_deg"] == b["final_camera_ypr_deg"], mode
    # and the feed-forward was at work in those 9 s: without it the run differs
    off = run_scenario(_walking(0.0, seconds=9.0), seed=1).metrics
    assert off["camera_jitter_rms_deg"] != a["camera_jitter_rms_deg"]
