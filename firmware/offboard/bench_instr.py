"""Benchmark: machine instructions per control tick on the MicroPython unix port, counted by callgrind (not flashed).

A tick's time on a shared machine moves with the load; its instruction count
does not. ``count(ticks, foc)`` boots the gimbal on the test plant exactly as
bench_tick does (calibration, track mode, a rate SETPOINT), then runs
``ticks`` more ticks with only ``hal.now_us`` stepped (the plant's float maths
stays out of the count; the IMU sample and the rotors stay where they were).
Run under ``valgrind --tool=callgrind`` twice, with two tick counts, the
difference of the totals over the difference of the counts is what one
tick costs (start-up, imports and the exit cancel out):

    opensteady bench firmware --instructions [--foc] [--tree DIR]   # both runs (host/bench.py)
    # one run by hand (cwd: the tree that holds firmware/):
    MICROPYPATH=. valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/micropython -X heapsize=4M -c "from firmware.offboard import bench_instr; bench_instr.count(3000, True)"
"""

from .. import protocol
from ..app import Gimbal
from ..config import Config
from .bench_tick import foc_config, handle_wobble
from .plant import PlantHAL


def count(ticks, foc=False):
    """Boot into track mode on the plant, then run ``ticks`` ticks on a clock stepped without the plant."""
    hal = PlantHAL(handle_path=handle_wobble)
    hal.capture_tx = False
    if foc:
        hal.sensor_bits = 14
    g = Gimbal(hal, config=foc_config() if foc else Config())
    period = g.period_us
    for _ in range(1500):
        hal.step(period)
        g.tick(hal.now_us)
    P = protocol
    hal.send_to_firmware(P.encode(P.MSG_MODE, 0, P.pack(P.MSG_MODE, P.MODE_TRACK)))
    hal.send_to_firmware(P.encode(P.MSG_SETPOINT, 1, P.pack(
        P.MSG_SETPOINT, P.SP_YAW_IS_RATE | P.SP_YAW_IN_EARTH_FRAME | P.SP_PITCH_IN_EARTH_FRAME, 500, -300, 0)))
    for _ in range(100):
        hal.step(period)
        g.tick(hal.now_us)
    t = hal.now_us
    for _ in range(ticks):
        t += period
        hal.now_us = t
        g.tick(t)
    return g
