"""Benchmark: the cost and the heap allocation of one control tick (not flashed).

    opensteady bench firmware [ticks]                              # the MicroPython unix port
    .venv/bin/python -m opensteady.firmware.offboard.bench_tick [ticks]  # CPython, for comparison
    ... bench_tick [ticks] --foc          # every axis on the closed-loop drive (sensor read + FOC)
    ... bench_tick [ticks] --foc --handle-imu   # and a second IMU on the handle (its rate feed-forward)
    ... bench_tick [ticks] --foc --torque-ff    # and the torque feed-forward on (torque_ff_mu 0.005)

The gimbal runs in track mode against the plant in firmware/offboard/plant.py with
the handle moving on all three axes; the host streams a SETPOINT every 20
ticks (50 Hz) and the firmware sends telemetry at 50 Hz, so link parsing and
telemetry encoding are inside the measured ticks. Only ``Gimbal.tick`` is
timed; the plant's step runs between ticks.

Reported: median, 90th percentile and worst tick in us, split into plain
ticks and telemetry ticks; heap bytes allocated per tick from
``gc.mem_alloc()``, counted in a second pass of as many ticks (the call
walks the heap's whole allocation table and leaves the caches cold, which
added about 7 us to the median when both were done in one pass; that
pass's plain-tick median is reported as ``tick_us_median_mem_alloc_each_tick``),
a ``micropython.heap_lock()`` run that would raise on any allocation; and
the time of a ``gc.collect()`` at a fixed point after a tick. The last line
is the same as JSON.
"""

import gc
import math
import sys
import time

from .. import protocol
from ..app import Gimbal
from ..config import KEY_IDS, Config, axis_key
from .plant import PlantHAL

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    import micropython

    _now_us = time.ticks_us  # type: ignore[attr-defined]
    _diff = time.ticks_diff  # type: ignore[attr-defined]
else:

    def _now_us():
        return time.perf_counter_ns() // 1000

    def _diff(a, b):
        return a - b


def handle_wobble(t, out):
    # still for the boot calibration, then the hand wobbles on all three axes
    t -= 1.2
    if t < 0:
        return
    out[0] = math.radians(10) * math.sin(2 * math.pi * 0.5 * t)
    out[1] = math.radians(5) * math.sin(2 * math.pi * 1.0 * t)
    out[2] = math.radians(5) * math.sin(2 * math.pi * 0.7 * t)


def _pct(sorted_vals, q):
    if not sorted_vals:
        return 0
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def _trimmed_mean(sorted_vals):
    lo = len(sorted_vals) // 10
    mid = sorted_vals[lo:len(sorted_vals) - lo]
    return round(sum(mid) / len(mid), 2) if mid else 0


def foc_config():
    """Every axis on the closed-loop drive with an ideal AS5048A whose calibration is already stored."""
    cfg = Config()
    for axis in range(3):
        for name, value in (("drive", 1), ("sensor", 2), ("sensor_dir", 1), ("foc_zero", 0),
                            ("joint_zero_counts", 0)):
            cfg.set(axis_key(axis, name), value)
    return cfg


def run(ticks=20000, foc=False, handle_imu=False, torque_ff_mu=0.0):
    hal = PlantHAL(handle_path=handle_wobble, handle_imu=handle_imu or torque_ff_mu > 0)
    hal.capture_tx = False
    if foc:
        hal.sensor_bits = 14
    cfg = foc_config() if foc else Config()
    if torque_ff_mu:
        cfg.set(KEY_IDS["torque_ff_mu"], torque_ff_mu)
    g = Gimbal(hal, config=cfg)
    period = g.period_us
    # calibrate (1 s) and settle, then switch to track mode as a host would
    for _ in range(1500):
        hal.step(period)
        g.tick(hal.now_us)
    hal.send_to_firmware(protocol.encode(protocol.MSG_MODE, 0, protocol.pack(protocol.MSG_MODE, protocol.MODE_TRACK)))
    setpoint = protocol.encode(protocol.MSG_SETPOINT, 1, protocol.pack(
        protocol.MSG_SETPOINT, protocol.SP_YAW_IS_RATE | protocol.SP_YAW_IN_EARTH_FRAME | protocol.SP_PITCH_IN_EARTH_FRAME,
        500, -300, 0))
    for _ in range(100):
        hal.step(period)
        g.tick(hal.now_us)
    plain = []  # no byte in, no frame out
    tel = []  # telemetry (or heartbeat) sent
    rx = []  # a SETPOINT frame parsed
    tx_before = hal.tx_bytes
    for k in range(ticks):
        hal.step(period)
        got = k % 20 == 10  # out of phase with the 50 Hz telemetry
        if got:
            hal.send_to_firmware(setpoint)
        sent = hal.tx_bytes
        t0 = _now_us()
        g.tick(hal.now_us)
        dt = _diff(_now_us(), t0)
        if got:
            rx.append(dt)
        elif hal.tx_bytes != sent:
            tel.append(dt)
        else:
            plain.append(dt)
    plain.sort()
    tel.sort()
    rx.sort()
    tx_bytes = hal.tx_bytes - tx_before
    # the heap, in a pass of its own: gc.mem_alloc() walks the whole allocation table (64 KB for a
    # 4 MB heap), which leaves the caches cold for the tick right after it. Those ticks are timed
    # too, for comparison with figures taken that way (before 2026-11-29: one pass did both)
    alloc_ticks = 0
    alloc_bytes = 0
    instrumented = []
    for k in range(ticks):
        hal.step(period)
        if k % 20 == 10:
            hal.send_to_firmware(setpoint)
        sent = hal.tx_bytes
        m0 = gc.mem_alloc() if MICROPYTHON else 0
        t0 = _now_us()
        g.tick(hal.now_us)
        t1 = _now_us()
        m1 = gc.mem_alloc() if MICROPYTHON else 0
        if m1 != m0:
            alloc_ticks += 1
            alloc_bytes += m1 - m0
        if k % 20 != 10 and hal.tx_bytes == sent:
            instrumented.append(_diff(t1, t0))
    instrumented.sort()
    locked_failures = 0
    if MICROPYTHON:
        # any allocation inside tick() raises MemoryError while the heap is locked
        for k in range(2000):
            hal.step(period)
            if k % 20 == 0:
                hal.send_to_firmware(setpoint)
            micropython.heap_lock()
            try:
                g.tick(hal.now_us)
            except MemoryError:
                locked_failures += 1
            finally:
                micropython.heap_unlock()
    gc_us = []
    for _ in range(200):
        t0 = _now_us()
        gc.collect()
        gc_us.append(_diff(_now_us(), t0))
    gc_us.sort()
    everything = plain + tel + rx
    everything.sort()
    return {
        "impl": sys.implementation.name,
        "drive": "foc" if foc else "open_loop",
        "foc_axes": list(g.foc.active),
        "handle_imu": hal.handle_imu_fitted,
        "torque_ff_mu": torque_ff_mu if g.torque_ff.enabled else 0.0,
        "ticks": ticks,
        "tick_us_p10": _pct(plain, 0.1),
        "tick_us_median": _pct(plain, 0.5),
        # the mean of the middle 80 %: below the 1 us resolution of one tick's time (comparisons of a few 100 ns)
        "tick_us_trimmed_mean": _trimmed_mean(plain),
        "tick_us_p90": _pct(plain, 0.9),
        "tick_us_max": plain[-1] if plain else 0,
        "telemetry_tick_us_median": _pct(tel, 0.5),
        "telemetry_ticks": len(tel),
        "setpoint_tick_us_median": _pct(rx, 0.5),
        "setpoint_ticks": len(rx),
        "all_ticks_us_median": _pct(everything, 0.5),
        "tick_us_median_mem_alloc_each_tick": _pct(instrumented, 0.5),
        "alloc_ticks": alloc_ticks,
        "alloc_bytes_per_tick": alloc_bytes / ticks,
        "heap_locked_failures": locked_failures,
        "gc_collect_us_median": _pct(gc_us, 0.5),
        "gc_collect_us_max": gc_us[-1],
        "worst_tick_plus_gc_us": (everything[-1] if everything else 0) + gc_us[-1],
        "tx_bytes": tx_bytes,
        "camera_error_deg": [round(math.degrees(c), 3) for c in hal.cam],
    }


def tour(ticks_per_mode=300, variant=0, before=None, after=None):
    """Every mode and output path in turn, for allocation and 31-bit audits.

    Boots (100 ms calibration), then lock, pan-follow, follow, track with
    earth-frame rate / earth angle / handle-frame angle setpoints, track with
    handle-frame rates, recentre, and a link loss in track mode (failsafe),
    ``ticks_per_mode`` ticks each, with the handle wobbling, telemetry at
    200 Hz and heartbeats at 10 Hz. variant 0: roll on a servo; variant 1:
    SVPWM, 500 Hz loop, negative motor direction on pitch. ``before()`` and
    ``after()`` run around each tick after calibration. Returns that tick count.
    """
    from ..config import KEY_IDS, Config, axis_key

    cfg = Config()
    for name, value in (("calib_ms", 100), ("telemetry_hz", 200), ("heartbeat_ms", 100)):
        cfg.set(KEY_IDS[name], value)
    if variant == 0:
        cfg.set(axis_key(2, "driver"), 1)
    else:
        cfg.set(KEY_IDS["commutation"], 1)
        cfg.set(KEY_IDS["loop_hz"], 500)
        cfg.set(axis_key(1, "motor_dir"), -1)
        cfg.set(axis_key(0, "rate_kd_ms"), 1.0)
    hal = PlantHAL(handle_path=handle_wobble)
    hal.capture_tx = False
    g = Gimbal(hal, cfg)
    P = protocol
    period = g.period_us
    for _ in range(150000 // period):
        hal.step(period)
        g.tick(hal.now_us)
    earth = P.SP_YAW_IN_EARTH_FRAME | P.SP_PITCH_IN_EARTH_FRAME
    plan = (
        (P.MODE_LOCK, None),
        (P.MODE_PAN_FOLLOW, None),
        (P.MODE_FOLLOW, None),
        (P.MODE_TRACK, (P.SP_YAW_IS_RATE | earth, 2500, -1000, 300)),
        (P.MODE_TRACK, (P.SP_YAW_IS_RATE | P.SP_PITCH_IS_RATE | P.SP_ROLL_IS_RATE, -3000, 800, -500)),
        (P.MODE_RECENTRE, None),
        (P.MODE_TRACK, (earth, 1500, 500, 0)),
    )
    n = 0
    for step, (mode, sp) in enumerate(plan):
        hal.send_to_firmware(P.encode(P.MSG_MODE, step, P.pack(P.MSG_MODE, mode)))
        frame = P.encode(P.MSG_SETPOINT, step, P.pack(P.MSG_SETPOINT, *sp)) if sp else None
        for k in range(ticks_per_mode):
            hal.step(period)
            # the last plan step sends one setpoint only: the link-loss failsafe trips
            if frame is not None and k % 10 == 0 and (step < len(plan) - 1 or k == 0):
                hal.send_to_firmware(frame)
            if before is not None:
                before()
            g.tick(hal.now_us)
            if after is not None:
                after()
            n += 1
    return n


def main(ticks=None, foc=None, handle_imu=None, torque_ff=None):
    argv = getattr(sys, "argv", [])[1:]
    args = [a for a in argv if not a.startswith("--")]
    if ticks is None:
        ticks = int(args[0]) if args else 20000
    if foc is None:
        foc = "--foc" in argv
    if handle_imu is None:
        handle_imu = "--handle-imu" in argv
    if torque_ff is None:
        torque_ff = "--torque-ff" in argv
    r = run(ticks, foc=foc, handle_imu=handle_imu, torque_ff_mu=0.005 if torque_ff else 0.0)
    print("%s, %s drive: %d ticks, plain tick median %d us (p10 %d, p90 %d, max %d); telemetry tick median %d us (%d ticks); "
          "setpoint tick median %d us (%d ticks)" % (
              r["impl"], r["drive"], ticks, r["tick_us_median"], r["tick_us_p10"], r["tick_us_p90"], r["tick_us_max"],
              r["telemetry_tick_us_median"], r["telemetry_ticks"], r["setpoint_tick_us_median"], r["setpoint_ticks"]))
    print("plain tick, mean of the middle 80 %%: %.2f us" % r["tick_us_trimmed_mean"])
    print("same, gc.mem_alloc() around each tick (the second pass): plain tick median %d us" % (
        r["tick_us_median_mem_alloc_each_tick"],))
    print("heap: %d of %d ticks allocated, %.2f bytes/tick; heap_lock failures %d" % (
        r["alloc_ticks"], ticks, r["alloc_bytes_per_tick"], r["heap_locked_failures"]))
    print("gc.collect() after a tick: median %d us, max %d us; worst tick + gc %d us" % (
        r["gc_collect_us_median"], r["gc_collect_us_max"], r["worst_tick_plus_gc_us"]))
    import json

    print(json.dumps(r))


if __name__ == "__main__":
    main()
