"""Test helpers to run code on the real MicroPython unix port (and on CPython to compare).

    out = run_micropython("from firmware import protocol; print(protocol.crc16(b'123456789'))")

Failures raise AssertionError with MicroPython's stderr, so pytest shows it.
"""

from host import micropython_unix as _mpy
from host.micropython_unix import ROOT  # noqa: F401  (re-exported for tests)


def micropython_binary():
    return _mpy.binary()


def run_micropython(code, timeout_s=120.0, path=(), cwd=None):
    try:
        return _mpy.run(code, timeout_s=timeout_s, path=path, cwd=cwd)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None


def run_micropython_json(code, **kw):
    try:
        return _mpy.run_json(code, **kw)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None


def run_cpython_json(code, timeout_s=120.0):
    try:
        return _mpy.run_cpython_json(code, timeout_s=timeout_s)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None
