"""Test helpers to run code on the real MicroPython unix port (and on CPython to compare).

    out = run_micropython("from opensteady.firmware import protocol; print(protocol.crc16(b'123456789'))")

The same code string runs on both interpreters: on the VM, ``opensteady`` is a
small folder whose ``firmware`` entry links to the firmware package (the
checkout's, or a folder of .mpy files given with ``path``), so the firmware's
relative imports resolve exactly as in CPython. Failures raise AssertionError
with MicroPython's stderr, so pytest shows it.
"""

import tempfile
from pathlib import Path

from opensteady.sim import micropython_vm as _mpy

# the checkout (tests run from one): docs/ and tests/ live here
ROOT = Path(__file__).resolve().parents[1]
_SHIMS = {}


def _namespace_for(firmware_parent):
    """A folder with opensteady/__init__.py and opensteady/firmware -> firmware_parent/firmware."""
    key = str(firmware_parent)
    if key not in _SHIMS:
        d = Path(tempfile.mkdtemp(prefix="opensteady-vm-"))
        (d / "opensteady").mkdir()
        (d / "opensteady" / "__init__.py").write_text("")
        (d / "opensteady" / "firmware").symlink_to(Path(firmware_parent) / "firmware")
        _SHIMS[key] = d
    return _SHIMS[key]


def _vm_path(path):
    parents = [Path(p) for p in path if (Path(p) / "firmware").is_dir()]
    return (_namespace_for(parents[0] if parents else _mpy.VM_PATH), ROOT)


def micropython_binary():
    return _mpy.binary()


def run_micropython(code, timeout_s=120.0, path=(), cwd=None):
    try:
        return _mpy.run(code, timeout_s=timeout_s, path=_vm_path(path), cwd=cwd or ROOT)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None


def run_micropython_json(code, timeout_s=120.0, path=(), cwd=None):
    try:
        return _mpy.run_json(code, timeout_s=timeout_s, path=_vm_path(path), cwd=cwd or ROOT)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None


def run_cpython_json(code, timeout_s=120.0):
    try:
        return _mpy.run_cpython_json(code, timeout_s=timeout_s)
    except _mpy.MicroPythonError as exc:
        raise AssertionError(str(exc)) from None
