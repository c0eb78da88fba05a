"""Benchmark: where the microseconds of one control tick go, stage by stage (not flashed).

    MICROPYPATH=. micropython -X heapsize=4M -c "from firmware.offboard import bench_stages; bench_stages.main()"
    ... bench_stages.main(foc=True)      # every axis on the closed-loop drive
    ... bench_stages.main(foc=True, torque_ff=True)   # and the handle IMU with the torque feed-forward on

Brings the gimbal of bench_tick.run (track mode, the handle wobbling) to
steady state, then times each part that ``Gimbal.tick`` calls on its own:
``calls`` calls in a loop, best of ``runs`` loops, ns per call (the loop's
own overhead, timed on an empty loop, is subtracted). The parts run on the
gimbal's real state, so the estimator and controllers see real numbers.
The first row is the whole tick for comparison (``bench_tick.run``'s plain
tick median, 2000 ticks, in us rounded to 1000 ns); the second the median
of a tick run right after another one, with no plant step between them
(caches warm, as in a board's loop with nothing else running). The sum of the stages
falls short of it by what ``tick``/``_control`` spend on their own
(attribute loads, branches, the calls themselves) and by the cache misses
that the plant's step between ticks causes. The last line is JSON.
"""

import json
import sys

from .. import protocol
from ..app import Gimbal
from ..config import KEY_IDS
from ..imu import to_body
from .bench_tick import _diff, _now_us, foc_config, handle_wobble, run
from .plant import PlantHAL


def _gimbal(foc, torque_ff=False):
    hal = PlantHAL(handle_path=handle_wobble, handle_imu=torque_ff)
    hal.capture_tx = False
    if foc:
        hal.sensor_bits = 14
    cfg = foc_config() if foc else None
    if torque_ff:
        cfg.set(KEY_IDS["torque_ff_mu"], 0.005)
    g = Gimbal(hal, config=cfg)
    for _ in range(1500):
        hal.step(g.period_us)
        g.tick(hal.now_us)
    hal.send_to_firmware(protocol.encode(protocol.MSG_MODE, 0, protocol.pack(protocol.MSG_MODE, protocol.MODE_TRACK)))
    hal.send_to_firmware(protocol.encode(protocol.MSG_SETPOINT, 1, protocol.pack(
        protocol.MSG_SETPOINT, protocol.SP_YAW_IS_RATE | protocol.SP_YAW_IN_EARTH_FRAME | protocol.SP_PITCH_IN_EARTH_FRAME,
        500, -300, 0)))
    for _ in range(100):
        hal.step(g.period_us)
        g.tick(hal.now_us)
    return g, hal


def _best_ns(fn, calls, runs):
    best = None
    for _ in range(runs):
        t0 = _now_us()
        fn(calls)
        t = _diff(_now_us(), t0)
        if best is None or t < best:
            best = t
    return best * 1000 // calls


def stages(foc=False, calls=2000, runs=5, torque_ff=False):
    """ns per call of each part of the tick (loop overhead subtracted), and the whole tick's median.

    ``torque_ff`` (with ``foc``): the handle IMU fitted and the torque feed-forward on; two more rows.
    """
    # on a fresh gimbal, the plant stepping between ticks
    whole = run(2000, foc=foc, torque_ff_mu=0.005 if torque_ff else 0.0)["tick_us_median"] * 1000
    g, hal = _gimbal(foc, torque_ff)
    warm = []  # a second tick right after each one (same IMU sample, time moved on): caches warm
    for _ in range(1000):
        hal.step(g.period_us)
        g.tick(hal.now_us)
        hal.now_us += g.period_us
        t0 = _now_us()
        g.tick(hal.now_us)
        warm.append(_diff(_now_us(), t0))
    warm.sort()
    raw = g.raw
    body = g.body
    est = g.est
    axes = g.axes
    modes = g.modes
    fd = g.foc
    dt = g.period_us
    off = g.accel_off
    now = [hal.now_us]

    def empty(n):
        for _ in range(n):
            pass

    def imu_read(n):
        for _ in range(n):
            hal.imu_read(raw)

    def body_frame(n):
        for _ in range(n):
            to_body(raw, body, g.imu_mount, off[0], off[1], off[2], g.accel_scale_q12)

    def plausibility(n):
        for _ in range(n):
            g.plausibility.dead(raw, body, dt)

    def handle_imu(n):
        for _ in range(n):
            hal.handle_imu_read(g.handle_raw)

    def estimator(n):
        for _ in range(n):
            est.update(body, dt)

    def mode_logic(n):
        for _ in range(n):
            modes.update(dt, False)

    def foc_measure(n):
        for _ in range(n):
            fd.measure(hal, axes)

    def controllers(n):
        ang = est.angle_udeg
        rate = est.rate_mdps
        tgt = modes.target_udeg
        ff = modes.ff_mdps
        for _ in range(n):
            for i in range(3):
                axes[i].step(tgt[i], ff[i], ang[i], rate[i], dt)

    def drive_out(n):
        for _ in range(n):
            g.drive.write(axes, fd)

    def joint_limit(n):
        for _ in range(n):
            g.faults.joint_limit(False, dt)

    def watchdog(n):
        t = now[0]
        for _ in range(n):
            g.watchdog.check(t)

    def link_poll(n):
        t = now[0]
        for _ in range(n):
            g.link.poll(t)

    def tel_due(n):
        t = now[0]
        tel = g.tel
        for _ in range(n):
            tel.due(t)

    def handle_rates(n):
        h = g.handle_ff
        yaw = axes[0].joint_udeg
        roll = axes[2].joint_udeg
        for _ in range(n):
            h.update(g.handle_raw, yaw, roll)

    def torque_ff_update(n):
        t = g.torque_ff
        yaw = axes[0].joint_udeg
        e0 = axes[0].effort_mdps
        e1 = axes[1].effort_mdps
        e2 = axes[2].effort_mdps
        for _ in range(n):
            t.update(yaw, e0, e1, e2)

    parts = (
        ("imu_read (HAL)", imu_read), ("to_body", body_frame), ("plausibility", plausibility),
        ("handle_imu_read (HAL)", handle_imu), ("estimator", estimator), ("modes.update", mode_logic),
        ("foc.measure (3 axes)", foc_measure), ("controllers x3", controllers), ("drive.write", drive_out),
        ("faults.joint_limit", joint_limit), ("watchdog.check", watchdog), ("link.poll (no bytes)", link_poll),
        ("tel.due", tel_due),
    )
    if torque_ff:
        parts += (("handle_ff.update", handle_rates), ("torque_ff.update", torque_ff_update))
    base = _best_ns(empty, calls, runs)
    out = [("whole tick (median)", whole), ("whole tick, warm (median)", warm[500] * 1000)]
    total = 0
    for name, fn in parts:
        ns = _best_ns(fn, calls, runs) - base
        total += ns
        out.append((name, ns))
    out.append(("sum of stages", total))
    return out


def main(foc=False, calls=2000, runs=5, torque_ff=False):
    rows = stages(foc, calls, runs, torque_ff)
    print("%s, %s drive%s: ns per call, best of %d x %d" % (
        sys.implementation.name, "foc" if foc else "open_loop", ", torque feed-forward" if torque_ff else "", runs,
        calls))
    for name, ns in rows:
        print("  %-24s %7d" % (name, ns))
    print(json.dumps(dict(rows)))


if __name__ == "__main__":
    main()
