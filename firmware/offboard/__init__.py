"""Firmware-side code that runs on the MicroPython VM (or CPython) but is never flashed.

- ``plant.py``: a float test plant behind the HAL interface, for the firmware tests;
- ``simpipe.py``: the simulator's lockstep pipe board (one tick per message on stdin/stdout);
- ``bench_tick.py``, ``bench_int31.py``, ``bench_wasm.mjs``: tick cost, allocation and
  small-int range benchmarks.

``opensteady flash`` copies only the modules listed in ``host/flash.py``; nothing here.
"""
