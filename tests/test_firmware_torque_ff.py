"""The torque feed-forward's learning core (firmware/torque_ff.py), on CPython and the real MicroPython VM.

The scenario functions import nothing from pytest at module level, so the VM
runs them too and must agree with CPython to the bit.
"""

from opensteady.firmware.fixmath import SIN_Q15
from opensteady.firmware.torque_ff import FF_MAX_Q15, TorqueFeedForward

# what the synthetic "payload" needs, in full torque per g of the handle's acceleration, per axis and
# component of the yaw arm's frame (x forward, y right, z down)
THETA = ((0.40, -0.25, 0.10), (-0.15, 0.05, 0.30), (0.05, 0.20, -0.10))
LIMIT_MDPS = 25600  # a multiple of 1024: the core's effort scaling is then exact
Q20_PER_UNIT = 4194304  # a full torque (Q15) per g (8192 counts), in the core's Q20 weights


def _waves(n, out):
    """Three walking-like accelerations (0.25-0.5 g at 1.3-3.3 Hz, 1 kHz ticks) from the sine table; +1 g on z."""
    out[0] = SIN_Q15[(n * 3) % 1536] >> 3
    out[1] = SIN_Q15[(n * 2 + 100) % 1536] >> 3
    out[2] = (SIN_Q15[(n * 5 + 300) % 1536] >> 4) - 8192


def learn(yaw_deg=0, ticks=30000, mu=0.01):
    """A perfect feedback loop: each tick it supplies what last tick's feed-forward missed; weights learned."""
    theta_q15 = [[int(t * 32768) for t in row] for row in THETA]
    arm = [0, 0, 0]  # the acceleration in the yaw arm's frame (what the torque depends on)
    accel = [0, 0, 0]  # what the handle's chip reads (the arm's frame turned back by the yaw joint)
    tff = TorqueFeedForward(accel)
    tff.configure(mu, 1000, [1, 1, 1], [LIMIT_MDPS] * 3)
    i = (yaw_deg * 1536) // 360
    sy = SIN_Q15[i % 1536]
    cy = SIN_Q15[(i + 384) % 1536]
    effort = [0, 0, 0]
    ff = [0, 0, 0]
    sq = [[0, 0], [0, 0], [0, 0]]  # over the last 5 s: sum of need^2, and of (need - ff)^2 (Q15 / 64)
    for n in range(ticks):
        _waves(n, arm)
        accel[0] = (cy * arm[0] - sy * arm[1]) >> 15
        accel[1] = (sy * arm[0] + cy * arm[1]) >> 15
        accel[2] = arm[2]
        for k in range(3):
            th = theta_q15[k]
            need = (th[0] * arm[0] + th[1] * arm[1] + th[2] * (arm[2] + 8192)) // 8192  # Q15; gravity is held
            effort[k] = ((need - ff[k]) * LIMIT_MDPS) // 32768  # the feedback's share, mdps
            if n >= ticks - 5000:
                sq[k][0] += (need >> 6) * (need >> 6)
                sq[k][1] += ((need - ff[k]) >> 6) * ((need - ff[k]) >> 6)
        tff.update(yaw_deg * 1000000, effort[0], effort[1], effort[2])
        for k in range(3):
            ff[k] = tff.ff_q15_at(k)
    return tff, sq


def learn_vectors():
    """Weights learned at yaw 0 and 30 deg; then the handle still: after 3 s, and 10 s later (no move)."""
    out = {}
    for yaw in (0, 30):
        tff, sq = learn(yaw)
        out["w%d" % yaw] = tff.weights()
        out["sq%d" % yaw] = sq
    # the handle put down: gravity and a few counts of noise, while the feedback twitches
    rng = 12345
    accel = tff.accel
    accel[2] = -8192
    before = None
    for n in range(13000):
        if n == 3000:  # the high-passed acceleration has decayed under the gate by now
            before = tff.weights()
        rng = (rng * 1103515245 + 12345) & 0x7FFFFFFF
        accel[0] = (rng >> 16) % 7 - 3
        accel[1] = (rng >> 8) % 7 - 3
        e = (rng >> 4) % 2001 - 1000
        tff.update(30000000, e, -e, e >> 1)
    out["still_before"] = before
    out["still_after"] = tff.weights()
    out["still_ff"] = [tff.ff_q15_at(k) for k in range(3)]
    return out


def extremes():
    """The core at its clamps: saturated inputs, every weight at its limit, any yaw."""
    accel = [0, 0, 0]
    tff = TorqueFeedForward(accel)
    tff.configure(0.05, 2000, [1, 1, 1], [2000000, 1000, 1000])
    outs = []
    for n in range(3000):
        v = 32767 if (n // 7) % 2 else -32768
        accel[0] = v
        accel[1] = -v
        accel[2] = v
        tff.update(((n * 37) % 360 - 180) * 1000000, 2000000 if n % 3 else -2000000, 1000, -1000)
        outs.append([tff.ff_q15_at(k) for k in range(3)])
    return {"w": tff.weights(), "ff_max": max(max(abs(x) for x in o) for o in outs)}


# --- tests (CPython side) ------------------------------------------------------------


def test_learns_the_payload_coefficients_from_synthetic_regressors():
    import pytest

    v = learn_vectors()
    for yaw in (0, 30):  # the same coefficients wherever the yaw joint is: the regressors are in the arm's frame
        for k in range(3):
            for i in range(3):
                want = THETA[k][i] * Q20_PER_UNIT
                got = v["w%d" % yaw][k][i]
                # within 0.03 of a full torque per g (7.5 % of the largest coefficient)
                assert got == pytest.approx(want, abs=0.03 * Q20_PER_UNIT), (yaw, k, i, got, want)
            # the feed-forward now supplies the torque: what is left to the feedback is under 8 % (RMS)
            need, left = v["sq%d" % yaw][k]
            assert left < 0.08 ** 2 * need, (yaw, k, v["sq%d" % yaw])


def test_still_handle_learns_nothing_and_feeds_nothing_forward():
    v = learn_vectors()
    assert v["still_after"] == v["still_before"]  # the excitation gate: no drift on a table
    assert all(abs(x) < 50 for x in v["still_ff"])  # under 0.2 % of the torque from a few counts of noise


def test_clamps_hold_at_the_extremes():
    v = extremes()
    assert v["ff_max"] <= FF_MAX_Q15
    assert all(abs(w) <= 4194303 for row in v["w"] for w in row)


def test_core_agrees_on_micropython():
    from tests.micropython import run_micropython_json

    code = ("import json; from tests.test_firmware_torque_ff import learn_vectors, extremes; "
            "print(json.dumps({'learn': learn_vectors(), 'extremes': extremes()}))")
    assert run_micropython_json(code, timeout_s=300) == {"learn": learn_vectors(), "extremes": extremes()}


def test_core_stays_within_31_bits():

    from opensteady.firmware.offboard import bench_int31

    counter = bench_int31.Counter()
    with bench_int31.checked_modules(counter) as mods:
        accel = [0, 0, 0]
        tff = mods["torque_ff"].TorqueFeedForward(accel)
        counter.active = True
        for hz, limits in ((2000, [2000000, 1000, 1000]), (100, [1000, 2000000, 25600])):
            tff.configure(0.05, hz, [1, 1, 1], limits)
            for n in range(2000):
                v = 32767 if (n // 5) % 2 else -32768
                accel[0], accel[1], accel[2] = v, -v, v
                tff.update(((n * 37) % 360 - 180) * 1000000, 2000000 if n % 3 else -2000000, 1000, -1000)
        counter.active = False
    assert counter.hits == {}


def test_configuration_is_checked_and_zero_is_off():
    import pytest

    from opensteady.firmware import protocol
    from opensteady.firmware.config import KEY_IDS, KEYS, LIVE_KEYS, Config

    key = KEY_IDS["torque_ff_mu"]
    assert key in LIVE_KEYS  # a gain: may change with the motors on
    cfg = Config()
    assert cfg.get("torque_ff_mu") == KEYS[key][1]
    assert cfg.set(key, 0.2) == protocol.NACK_OUT_OF_RANGE
    assert cfg.set(key, -0.001) == protocol.NACK_OUT_OF_RANGE
    assert cfg.set(key, 0.005) == protocol.ACK_OK
    tff = TorqueFeedForward([0, 0, 0])
    with pytest.raises(ValueError, match="torque_ff_mu"):
        tff.configure(0.5, 1000, [1, 1, 1], [25000] * 3)
    tff.configure(0.0, 1000, [1, 1, 1], [25000] * 3)
    assert not tff.enabled
    tff.configure(0.005, 1000, [0, 0, 0], [25000] * 3)
    assert not tff.enabled  # no axis on the closed-loop drive: nothing to feed
    tff.configure(0.005, 1000, [0, 1, 0], [25000] * 3)
    assert tff.enabled


def heap_per_tick(ticks=1000):
    """Bytes Gimbal.tick allocates with every axis closed-loop, the handle IMU fitted and the feed-forward on."""
    from opensteady.firmware.app import Gimbal
    from opensteady.firmware.config import KEY_IDS
    from opensteady.firmware.offboard import plant
    from opensteady.firmware.offboard.bench_tick import foc_config, handle_wobble
    from opensteady.firmware.offboard.plant import PlantHAL, lock_config

    hal = PlantHAL(handle_path=handle_wobble, handle_imu=True)
    hal.capture_tx = False
    hal.sensor_bits = 14
    cfg = lock_config(foc_config())
    cfg.set(KEY_IDS["torque_ff_mu"], 0.02)
    g = Gimbal(hal, cfg)
    for _ in range(3000):
        hal.step(g.period_us)
        g.tick(hal.now_us)
    total = plant.heap_per_tick(hal, g, ticks)
    w = g.torque_ff.weights()
    return {"enabled": g.torque_ff.enabled, "learned": any(x for row in w for x in row), "bytes": total,
            "foc": list(g.foc.active)}


def test_tick_with_the_feed_forward_allocates_nothing_on_micropython():
    from tests.micropython import run_micropython_json

    r = run_micropython_json("import json; from tests.test_firmware_torque_ff import heap_per_tick; "
                             "print(json.dumps(heap_per_tick()))", timeout_s=300)
    assert r["foc"] == [1, 1, 1] and r["enabled"] and r["learned"], r  # it ran, and it learned
    assert r["bytes"] == 0
