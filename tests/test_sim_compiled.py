"""The compiled firmware mode (sim/compiled_firmware.py): the transform, and bit-for-bit agreement.

The first test that needs the build compiles the firmware (about a minute of
CPU, cached in ~/.cache/opensteady or $OPENSTEADY_CACHE for later runs).
"""

import dataclasses
import random
import sys

import pytest

from opensteady.sim import compiled_firmware
from opensteady.sim.compiled_firmware import CompileError, transform_source

SOURCE = '''"""doc"""
from micropython import const
_A = const(12)
_B = const(_A * 2)
_REBOUND = const(3)
PUBLIC = const(5)


@micropython.viper
def f(x: int, buf, flag: bool) -> int:
    p = ptr32(buf)
    t = ptr16(buf)
    y = int(x) + p[_A] + t[_B] + PUBLIC
    return y + int(_REBOUND)


@micropython.native
def g(x):
    return int(x) + _A


def h(_REBOUND):
    return _REBOUND
'''


def test_transform_does_what_micropythons_compiler_does():
    out = transform_source(SOURCE)
    assert out.splitlines()[1] == "import cython"  # after the docstring
    assert "micropython.viper" not in out and "micropython.native" not in out
    # viper: machine-word arguments and casts, typed views of the arrays, consts inlined
    assert "@cython.infer_types(True)\ndef f(x: cython.long, buf, flag) -> cython.long:" in out
    assert "p: cython.int[:] = buf" in out and "t: cython.ushort[:] = buf" in out
    assert "y = cython.cast(cython.long, x) + p[12] + t[24] + 5" in out
    # a const name that is also rebound somewhere (an argument here) is not inlined
    assert "cython.cast(cython.long, _REBOUND)" in out
    # native and plain functions keep Python semantics: int() stays int()
    assert "def g(x):\n    return int(x) + 12" in out
    # the const lines stay for importers
    assert "_A = const(12)" in out and "PUBLIC = const(5)" in out


CLASSES = '''
class Plain:
    """doc"""

    def __init__(self):
        self.a = 0
        self.b, self.c = 1, 2

    def tick(self, other):
        self.a += 1
        other.joint = self.a


class WithClassLevel:
    a = 0

    def set(self):
        self.a = 1


class Sub(Plain):
    pass
'''


def test_classes_become_extension_types_with_every_assigned_attribute_declared():
    foreign = compiled_firmware.foreign_attrs([CLASSES])
    assert foreign == {"joint"}  # assigned on another object
    out = transform_source(CLASSES, foreign=foreign)
    assert "@cython.cclass\nclass Plain:\n    \"\"\"doc\"\"\"\n    a = cython.declare(object, visibility='public')" in out
    for name in ("b", "c", "joint"):
        assert "    %s = cython.declare(object, visibility='public')" % name in out
    # a class-level default shadowed per instance, or a subclass: left as Python classes
    assert "@cython.cclass\nclass WithClassLevel" not in out and "@cython.cclass\nclass Sub" not in out
    assert "cython.cclass" not in transform_source(CLASSES)  # foreign=None: no class changes


def test_transformed_firmware_still_runs_interpreted():
    # the transform keeps the module valid Python (a no-op `cython` shim when not compiled)
    src = transform_source(open(compiled_firmware.FIRMWARE_DIR / "control.py").read())
    compile(src, "control.py", "exec")


def test_missing_cython_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "Cython", None)
    with pytest.raises(CompileError, match="needs Cython"):
        compiled_firmware.build()


@pytest.fixture(scope="module")
def compiled():
    try:
        return compiled_firmware.load_package()
    except CompileError as exc:  # pragma: no cover - the dev install has Cython and gcc
        pytest.fail(str(exc))


def test_viper_helpers_agree_with_interpreted(compiled):
    import importlib

    rng = random.Random(0)
    for name, fn, args in (
        ("fixmath", "wrap_udeg", lambda: (rng.randint(-(2**30) + 180000000, 2**30 - 180000000),)),
        ("fixmath", "ticks_diff", lambda: (rng.randrange(2**30), rng.randrange(2**30))),
        ("fixmath", "atan2_udeg", lambda: (rng.randint(-(2**30), 2**30), rng.randint(-(2**30), 2**30))),
        ("fixmath", "atan2_udeg", lambda: (rng.randint(-(2**19), 2**19), rng.randint(-(2**19), 2**19))),
        ("foc", "rotor_elec_index", lambda: (rng.randrange(2**14), 14, rng.randint(1, 14), rng.choice((1, -1)),
                                             rng.randrange(1536))),
        ("foc", "wrap_index", lambda: (rng.randint(-3000, 3000),)),
        ("angle_sensor", "counts_to_udeg", lambda: (rng.randrange(2**12), 12)),
        ("angle_sensor", "parity16", lambda: (rng.randrange(2**16),)),
    ):
        py = getattr(importlib.import_module("opensteady.firmware." + name), fn)
        cy = getattr(getattr(compiled, name), fn)
        assert cy is not py
        for _ in range(2000):
            a = args()
            assert cy(*a) == py(*a), (fn, a)
    from opensteady.firmware import motor

    out_py = [0, 0, 0]
    out_cy = [0, 0, 0]
    for _ in range(2000):
        a = (rng.randint(-(2**28), 2**28), rng.randint(1, 21), rng.choice((1, -1)), rng.randint(-37836, 37836),
             rng.randint(0, 1))
        motor.bldc_duties(*a, out_py)
        compiled.motor.bldc_duties(*a, out_cy)
        assert out_cy == out_py, a


def _run(scenario, mode, seconds):
    from opensteady.sim.world import SimGimbal

    with SimGimbal(scenario, firmware=mode, seed=1) as g:
        sent = bytearray()
        while g.time_s < seconds:
            g.step_to(g.time_s + 0.1)
            sent += g.read()
        return g.traces, bytes(sent), g.hal.duties, g.firmware.gimbal.est.angle_udeg[:]


@pytest.mark.parametrize("name", ["stabilize-walking", "stabilize-walking-foc"])
def test_compiled_firmware_agrees_bit_for_bit(compiled, name):
    # the same physics, telemetry bytes and estimator state as the interpreted firmware, tick for tick
    from opensteady.sim.scenario import load_scenario

    sc = load_scenario(name)
    a = _run(sc, "inprocess", 4.0)
    b = _run(sc, "compiled", 4.0)
    assert type(b[0]) is type(a[0])
    assert len(a[1]) > 1000  # telemetry flowed (estimator angles, efforts, state)
    assert b[1] == a[1]
    assert b[0].camera_ypr_deg == a[0].camera_ypr_deg
    assert b[0].joint_deg == a[0].joint_deg
    assert b[2] == a[2] and b[3] == a[3]


def test_compiled_mode_in_the_cli_and_the_grid(compiled):
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.scenario import load_scenario

    sc = dataclasses.replace(load_scenario("stabilize-still"), seconds=2.5, warmup_s=2.0).validate()
    m = run_scenario(sc, firmware="compiled").metrics
    assert m["firmware"] == "compiled" and m["mode_reached"] and m["faults"] == []


def test_old_builds_are_pruned(tmp_path):
    import os

    for k in range(5):
        d = tmp_path / ("build%d" % k)
        d.mkdir()
        (d / "BUILT").write_text("x")
        os.utime(d / "BUILT", (1000 + k, 1000 + k))
    (tmp_path / "unfinished").mkdir()
    compiled_firmware._prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build2", "build3", "build4", "unfinished"]
