"""Benchmark: machine instructions per control tick on the MicroPython unix port, counted by callgrind (not flashed).

A tick's time on a shared machine moves with the load; its instruction count
does not. ``count(ticks, foc)`` boots the gimbal on the test plant exactly as
bench_tick does (calibration, track mode, a rate SETPOINT), then runs
``ticks`` more ticks with only ``hal.now_us`` stepped (the plant's float maths
stays out of the count; the IMU sample and the rotors stay where they were).
Run under ``valgrind --tool=callgrind`` twice, with two tick counts, the
difference of the totals over the difference of the counts is what one
tick costs (start-up, imports and the exit cancel out):

    .venv/bin/python -m opensteady.firmware.offboard.bench_instr [--foc]   # both runs, prints per tick
    # one run by hand (cwd: the tree that holds firmware/):
    MICROPYPATH=. valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/micropython -X heapsize=4M -c "from firmware.offboard import bench_instr; bench_instr.count(3000, True)"

On CPython ``main()`` drives the two valgrind runs on the unix port
(``--tree DIR`` measures another checkout's firmware); on MicroPython it
runs ``count``.
"""

import sys

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


def _callgrind_total(tree, ticks, foc):
    """Instructions (callgrind's Ir) of one unix-port process that runs ``count(ticks, foc)`` in ``tree``."""
    import os
    import subprocess
    import tempfile

    from opensteady.sim.micropython_vm import binary

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        code = "from firmware.offboard import bench_instr; bench_instr.count(%d, %s)" % (ticks, foc)
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary(), "-X", "heapsize=4M", "-c",
             code],
            cwd=tree, env=dict(os.environ, MICROPYPATH=tree), check=True, capture_output=True)
        with open(out) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def per_tick(tree, foc=False, lo=1000, hi=3000):
    """Instructions one tick costs: the difference of two callgrind runs, ``hi`` and ``lo`` ticks."""
    return (_callgrind_total(tree, hi, foc) - _callgrind_total(tree, lo, foc)) / (hi - lo)


def main():
    import argparse
    import json
    import os

    parser = argparse.ArgumentParser(description="instructions per firmware tick on the unix port (callgrind)")
    parser.add_argument("--foc", action="store_true", help="every axis on the closed-loop drive")
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        help="the folder that holds firmware/ (default: this checkout)")
    args = parser.parse_args()
    n = per_tick(os.path.abspath(args.tree), args.foc)
    print(json.dumps({"drive": "foc" if args.foc else "open_loop", "instructions_per_tick": round(n)}))


if __name__ == "__main__" and sys.implementation.name != "micropython":
    main()
