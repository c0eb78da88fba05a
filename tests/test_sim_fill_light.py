"""The fill light in the simulator: the firmware's PWM duty lights the subject in the virtual camera, and in the
dim-room scenario real MediaPipe finds the face far more often with the light on than off."""

from dataclasses import replace

import numpy as np

from opensteady.firmware import protocol as P
from opensteady.host.simrig import run_scenario
from opensteady.sim.scenario import load_scenario
from opensteady.sim.world import SimGimbal


def _patch_mean(frame, u, v, half=20):
    u, v = int(round(u)), int(round(v))
    return float(frame[max(0, v - half):v + half, max(0, u - half):u + half].mean())


def test_light_from_the_micropython_firmware_brightens_the_subject_not_the_far_wall():
    sc = load_scenario("dim-room")
    with SimGimbal(sc, firmware="micropython", seed=1) as g:
        g.step_to(1.2)  # booted and calibrated
        (u, v), in_view = g.subject_face_px(0)
        assert in_view
        dark = g.render()
        g.write(P.encode(P.MSG_LIGHT, 5, P.pack(P.MSG_LIGHT, 3)))
        g.step_to(1.3)
        assert g.hal.light_duty_u16 == 65535  # level 3 = light_level_3_permille 1000, from the VM's firmware
        parser = P.Parser()
        acks = []
        for b in g.read():
            if parser.feed(b) == P.MSG_ACK:
                acks.append(P.decode(P.MSG_ACK, parser.payload()))
        assert (P.MSG_LIGHT, 5, P.ACK_OK) in acks
        lit = g.render()
    face_gain = _patch_mean(lit, u, v) / _patch_mean(dark, u, v)
    wall_gain = _patch_mean(lit, 20, 20) / _patch_mean(dark, 20, 20)  # the room's far wall, 5 m away
    # ambient 0.1 + fill 2.5 / 1.6^2 on the face (x10.8, some of it clipped); 0.1 + 2.5 / 25 on the wall (x2)
    assert face_gain > 5.0, face_gain
    assert 1.5 < wall_gain < 2.6, wall_gain


def test_dim_room_fill_light_raises_face_detection():
    sc = load_scenario("dim-room")
    off = run_scenario(sc, seed=0).metrics
    on = run_scenario(replace(sc, light=replace(sc.light, level=3)), seed=0).metrics
    assert off["light_duty"] == 0.0 and on["light_duty"] == 1.0  # the firmware's PWM, as the camera saw it
    assert off["frames_in_view"] > 100 and on["frames_in_view"] > 100
    # real MediaPipe on the rendered frames: the face in the dark is found now and then, with the light always
    assert off["face_detected_frac"] < 0.5, off
    assert on["face_detected_frac"] > 0.9, on
    assert on["tracking_rms_frac"] < 0.5 * off["tracking_rms_frac"], (on, off)
    assert on["faults"] == [] and on["mode_reached"]


def test_scenario_light_section_is_validated():
    import pytest

    from opensteady.sim.scenario import ScenarioError, parse_scenario

    with pytest.raises(ScenarioError, match="light.level"):
        parse_scenario({"name": "x", "light": {"level": 5}})
    with pytest.raises(ScenarioError, match="light.ambient"):
        parse_scenario({"name": "x", "light": {"ambient": -1.0}})
    with pytest.raises(ScenarioError, match="light.glow: unknown key"):
        parse_scenario({"name": "x", "light": {"glow": 1.0}})
    assert np.isclose(parse_scenario({"name": "x"}).light.gain(1.0, 2.0), 1.25)
