"""The simulator's per-tick models and lockstep loop compiled by Cython, for ``--firmware compiled``.

The same files as the interpreted simulator (sim/lockstep.py and the modules
it imports relatively: imu, motor, angle_sensor, link, plant, hal), compiled
in Cython's pure-Python mode: each ``.py`` stays the one source and runs as
plain Python in the interpreted modes; the ``.pxd`` beside it, used only
here, makes its classes extension types with C ``double``/``long``
attributes and locals, and typed memoryviews straight onto MuJoCo's
``qpos``/``qvel``/``sensordata``/``qfrc_applied``/mocap arrays, so a tick
converts nothing to lists. ``cython.cimports.libc.math`` gives C's ``sin``,
``cos``, ``sqrt``, ``floor`` compiled and Python's ``math`` ones interpreted:
the same libm, so the same doubles. The build uses ``-ffp-contract=off`` (no
fused multiply-adds, which would round differently), and the random
streams stay Python's and numpy's own generators, drawn in the same order:
a compiled run is bit for bit the interpreted one (tests/test_sim_compiled.py).

The ``compiled`` firmware mode uses these models (``sim.world.sim_models``);
the interpreted modes keep the Python ones, so they need no C compiler and the
tests compare the two. Built once per source (about 40 s of CPU) by the
compiled firmware's cached build (``compiled_firmware.build_package``), cached
under ``~/.cache/opensteady/compiled-sim/``.

    from opensteady.sim.compiled_sim import load_package
    package = load_package()               # its .lockstep.Lockstep, .plant.GimbalPlant, .imu.ImuModel, ...
"""

import hashlib
import sys
import sysconfig
from pathlib import Path

from opensteady.sim import compiled_firmware
from opensteady.sim.world import MODELS

SIM_DIR = Path(__file__).resolve().parent
MODULES = MODELS  # compiled together: they import each other relatively
BUILD_VERSION = "1"  # bump when how this builds changes: it is part of the cache key
# no debug info, and no fused multiply-add: a*b+c rounded once would differ from Python's two roundings
CFLAGS = "-g0 -ffp-contract=off"


def _files():
    out = {"__init__.py": '"""The simulator\'s per-tick models, compiled (sim/compiled_sim.py)."""\n'}
    for name in MODULES:
        out[name + ".py"] = (SIM_DIR / (name + ".py")).read_text()
        pxd = SIM_DIR / (name + ".pxd")
        if pxd.exists():
            out[name + ".pxd"] = pxd.read_text()
    return out


def _key(files, cython_version):
    h = hashlib.sha256()
    for part in (BUILD_VERSION, CFLAGS, compiled_firmware._BUILD_SCRIPT, cython_version, sys.version,
                 sysconfig.get_platform()):
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def build(cache_root=None):
    """Build (or find in the cache) the compiled simulator models; returns the package's directory."""
    version = compiled_firmware.cython_version_or_error(
        "firmware mode 'compiled' needs Cython for the simulator's models too: pip install -e '.[dev]' (or "
        "pip install cython), or use --firmware inprocess")
    files = _files()
    return compiled_firmware.build_package(
        "compiled-sim", "opensteady_sim_" + _key(files, version), lambda: files, [n + ".py" for n in MODULES], cache_root,
        "building the compiled simulator failed (it needs a C compiler such as gcc and the Python headers; or "
        "use --firmware inprocess)", cflags=CFLAGS)


def load_package(cache_root=None):
    """The compiled models' package, imported once per process (``.lockstep`` has every class the world uses)."""
    return compiled_firmware.import_package(build(cache_root), "lockstep")


def main(argv=None):
    """``python -m opensteady.sim.compiled_sim``: build it now and print where it is."""
    try:
        print(build())
    except compiled_firmware.CompileError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
