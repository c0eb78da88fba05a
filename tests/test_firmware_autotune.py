"""Relay auto-tuning core: limit cycle, ultimate gain and period, and the tuning rules."""

import math

import pytest

from opensteady.firmware import autotune as at
from tests.micropython import run_micropython_json

RELAY_CODE = """
import json
from opensteady.firmware import autotune as at

def integrator_with_delay(k_per_s, delay_ticks, relay, hyst, dt_us=1000):
    # angle (udeg) = k * integral of the effort (mdps), seen delay_ticks late
    t = at.RelayTuner()
    t.start(relay, hyst, cycles=4, max_us=5000000)
    angle = 0
    history = [0] * (delay_ticks + 1)
    ticks = 0
    while t.state == at.TUNE_RUNNING:
        u = t.step(0 - history[0], dt_us)
        angle += (u * k_per_s * dt_us) // 1000  # mdps * us / 1000 = udeg
        history = history[1:] + [angle]
        ticks += 1
    return [t.state, t.reason, t.pu_us, t.amp_udeg, ticks]

print(json.dumps([integrator_with_delay(1, 25, 20000, 0), integrator_with_delay(1, 40, 30000, 200),
                  integrator_with_delay(1, 25, 20000, 10 ** 7)]))
"""


def _relay_runs():
    ns = {}
    exec(RELAY_CODE.replace("print(json.dumps(", "RESULT = ((").replace("]))", "]))"), ns)
    return ns["RESULT"]


def test_relay_finds_the_ultimate_point_of_an_integrator_with_delay():
    (state, reason, pu_us, amp, ticks), second, too_weak = _relay_runs()
    assert state == at.TUNE_DONE and reason == at.TUNE_OK
    # G(s) = e^(-sL)/s: phase -180 deg at w = pi / (2L), so Pu = 4 L = 100 ms (the tick adds one)
    assert abs(pu_us - 4 * 26000) <= 2000
    t = at.RelayTuner()
    t.relay_mdps, t.hyst_udeg, t.amp_udeg = 20000, 0, amp
    ku_true = (math.pi / (2 * 0.026)) / 1.0  # |G(j w_u)| = 1 / w_u for k = 1, in mdps per mdeg
    # the describing function sees a triangle wave: it reads 8 / pi^2 of the true ultimate gain
    # (ku() is per unit of the error given to step(): here udeg)
    assert t.ku() * 1000 == pytest.approx(ku_true * 8 / math.pi ** 2, rel=0.1)
    assert second[0] == at.TUNE_DONE and abs(second[2] - 4 * 41000) <= 4000
    # a hysteresis far beyond the swing the relay can make: no steady cycle within max_us
    assert too_weak[0] == at.TUNE_FAILED and too_weak[1] in (at.TUNE_TIMEOUT, at.TUNE_TOO_SMALL)


def test_relay_runs_the_same_on_micropython():
    assert run_micropython_json(RELAY_CODE) == [list(r) for r in _relay_runs()]


def test_tuning_rules_map_to_the_cascade():
    ku, pu = 4.0, 0.02
    angle_kp, rate_kp, rate_ki = at.gains_from_ultimate(ku, pu)
    # Tyreus-Luyben PI on the rate loop; the angle loop at a quarter of the ultimate frequency
    assert rate_kp == pytest.approx(ku / 3.2)
    assert rate_ki == pytest.approx(rate_kp / (2.2 * pu))
    assert angle_kp == pytest.approx(2 * math.pi / pu / 4)
    # Ziegler-Nichols is the aggressive one
    zn = at.gains_from_ultimate(ku, pu, at.RULE_ZIEGLER_NICHOLS)
    assert zn[1] > rate_kp and zn[2] > rate_ki
    with pytest.raises(ValueError, match="positive"):
        at.gains_from_ultimate(0.0, pu)
    with pytest.raises(ValueError):
        at.RelayTuner().start(0, 10)


GROW_CODE = """
import json
from opensteady.firmware import autotune as at

def noisy_integrator(relay, relay_max, noise=600, delay_ticks=25, dt_us=1000):
    # the error seen is the plant's output plus a +-noise square wave at the tick rate
    t = at.RelayTuner()
    t.start(relay, 0, cycles=4, max_us=20000000, relay_max_mdps=relay_max)
    angle = 0
    history = [0] * (delay_ticks + 1)
    k = 0
    while t.state == at.TUNE_RUNNING:
        n = noise if k % 2 else -noise
        u = t.step(0 - history[0] + n, dt_us)
        angle += (u * dt_us) // 1000
        history = history[1:] + [angle]
        k += 1
    return [t.state, t.hyst_udeg, t.relay_mdps, t.amp_udeg, t.pu_us]

print(json.dumps([noisy_integrator(200, 6400), noisy_integrator(200, 200)]))
"""


def _grow_runs():
    ns = {}
    exec(GROW_CODE.replace("print(json.dumps(", "RESULT = ((").replace("]))", "]))"), ns)
    return ns["RESULT"]


def test_relay_widens_its_hysteresis_past_the_noise_and_grows_until_the_swing_clears_it():
    grown, capped = _grow_runs()
    # the noise switched the relay back within a tick: the hysteresis doubled (0, 1, 3, ... 1023) until it
    # was wider than the +-600 noise
    assert grown[1] == 1023 and capped[1] == 1023
    # then the relay doubled from 200 until the swing was at least six hystereses, and the cycle is the plant's
    assert grown[0] == at.TUNE_DONE and grown[2] > 200 and grown[3] >= 6 * 1023
    # the hysteresis (h / a <= 1/6) turns the relay's phase by asin(h / a) <= 9.6 deg: the period is at most
    # (pi / 2) / (pi / 2 - 0.167) = 1.12 times the ultimate one (4 L)
    h_over_a = grown[1] / grown[3]
    assert 4 * 26000 <= grown[4] <= 4 * 26000 * (math.pi / 2) / (math.pi / 2 - math.asin(h_over_a)) + 2000
    # a cap that leaves the swing small still ends, never above the cap
    assert capped[2] == 200 and capped[0] in (at.TUNE_DONE, at.TUNE_FAILED)


def test_relay_growth_runs_the_same_on_micropython():
    assert run_micropython_json(GROW_CODE) == [list(r) for r in _grow_runs()]


def test_the_cascade_rule():
    ku, pu = 8.0, 0.02
    angle_kp, rate_kp, rate_ki = at.gains_from_ultimate(ku, pu, at.RULE_CASCADE)
    assert rate_kp == pytest.approx(ku * at._CASCADE_KP)
    assert rate_ki == pytest.approx(rate_kp / (at._CASCADE_TI * pu))
    assert angle_kp == pytest.approx(at._CASCADE_ANGLE / pu)
    with pytest.raises(ValueError, match="unknown tuning rule"):
        at.gains_from_ultimate(ku, pu, 7)


SPRING_CODE = """
import json
import math
from opensteady.firmware import autotune as at

def spring(f_hz, zeta, delay_ticks, relay=2500, relay_max=0, min_swing=0, dt_us=1000):
    # the open-loop drive: the effort (mdps) integrates into the field angle, which pulls the camera
    # through a spring: theta'' = wn^2 (field - theta) - 2 zeta wn theta'; the relay sees -theta (udeg) late
    wn = 2 * math.pi * f_hz
    dt = dt_us / 1e6
    t = at.RelayTuner()
    t.start(relay, 50, cycles=4, max_us=20000000, relay_max_mdps=relay_max, settle=True, min_swing_udeg=min_swing)
    field = 0.0
    theta = 0.0
    omega = 0.0
    history = [0] * (delay_ticks + 1)
    while t.state == at.TUNE_RUNNING:
        u = t.step(0 - history[0], dt_us)
        field += u * dt * 1000.0  # mdps * s -> udeg
        omega += (wn * wn * (field - theta) - 2 * zeta * wn * omega) * dt
        theta += omega * dt
        history = history[1:] + [int(theta)]
    return [t.state, t.pu_us, t.amp_udeg, t.relay_mdps]

print(json.dumps([spring(2.5, 0.05, 3), spring(6.0, 0.15, 3), spring(4.0, 0.5, 5),
                  spring(6.0, 0.15, 3, relay=300, relay_max=4800, min_swing=500000)]))
"""


def _spring_runs():
    ns = {}
    exec(SPRING_CODE.replace("print(json.dumps(", "RESULT = ((").replace("]))", "]))"), ns)
    return ns["RESULT"]


def test_angle_relay_finds_the_open_loop_springs_resonance_and_damping():
    runs = _spring_runs()
    for (state, pu_us, amp, relay), (f_hz, zeta) in zip(runs, [(2.5, 0.05), (6.0, 0.15), (4.0, 0.5), (6.0, 0.15)]):
        assert state == at.TUNE_DONE
        t = at.RelayTuner()
        t.relay_mdps, t.amp_udeg = relay, amp
        wn = 2 * math.pi / (pu_us / 1e6)
        # the cycle sits at the resonance (the integrator's -90 deg plus the spring's -90 deg; the delay T
        # moves it down by about zeta tan(wn T): 6 % for zeta 0.5 and 6 ms) ...
        assert wn == pytest.approx(2 * math.pi * f_hz, rel=0.06)
        # ... where |angle / effort| = 1 / (2 zeta wn): the angle relay's Ku (1/s) gives zeta
        assert t.ku() * 1000 / (2 * wn) == pytest.approx(zeta, rel=0.06)
    # a relay too weak for a 0.5 deg swing doubled until the swing cleared it (the swing is linear in the
    # relay: at half this relay it would still have been under 0.5 deg), and the plant read the same
    grown = runs[3]
    assert 300 < grown[3] <= 4800 and grown[2] >= 500000 and grown[2] // 2 < 500000


def test_angle_relay_runs_the_same_on_micropython():
    assert run_micropython_json(SPRING_CODE) == [list(r) for r in _spring_runs()]


def test_the_spring_rule_places_the_rate_loops_damping():
    f_hz, zeta = 6.0, 0.05
    wn = 2 * math.pi * f_hz
    angle_kp, rate_kp, rate_ki, kd_ms = at.gains_spring(2 * zeta * wn, 1 / f_hz)
    kd = kd_ms / 1000
    # s^2 + (2 zeta + Kd wn) wn s + (1 + Kp) wn^2: damping 0.5
    assert (2 * zeta + kd * wn) / (2 * math.sqrt(1 + rate_kp)) == pytest.approx(at._SPRING_ZETA)
    assert rate_ki == pytest.approx(rate_kp * wn / at._SPRING_TI)
    assert angle_kp == pytest.approx(math.sqrt(1 + rate_kp) * wn / 4)
    # Kp: 4 on a slow spring; on a fast one, as high as keeps sqrt(1 + Kp) wn at the loop lag's limit
    assert at.gains_spring(2 * 0.05 * 6.0, 2 * math.pi / 6.0)[1] == at._SPRING_KP
    fast = 2 * math.pi * 8.0
    kp_fast = at.gains_spring(2 * 0.05 * fast, 0.125)[1]
    assert kp_fast < rate_kp < at._SPRING_KP
    assert math.sqrt(1 + kp_fast) * fast == pytest.approx((math.pi / 4) / at._LOOP_LAG_S)
    # a slow, barely damped spring asks for more than the config's 100 ms: capped there
    assert at.gains_spring(2 * 0.05 * 6.0, 2 * math.pi / 6.0)[3] == 100.0  # 1 rad/s
    # an already well damped one needs no derivative
    assert at.gains_spring(2 * 2.0 * wn, 1 / f_hz)[3] == 0.0
    with pytest.raises(ValueError, match="positive"):
        at.gains_spring(0.0, 0.2)
