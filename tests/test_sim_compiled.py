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
from .other import Est, helper, CONST


def _word(k):
    def get(self):
        return self.packed[k]

    return property(get)


class Plain:
    """doc"""

    def __init__(self):
        self.a = 0
        self.b, self.c = 1, 2
        self.est = Est()
        self.mixed = Est()
        self.inner = Inner()

    def reconfigure(self):
        self.mixed = None

    @micropython.native
    def tick(self, other):
        self.a += 1
        other.joint = self.a
        return self.est.update(helper(self.a))

    @micropython.viper
    def step(self, x: int, buf, k: int = 0) -> int:
        return x + k

    @micropython.native
    def with_closure(self):
        return [self.a for _ in range(2)]

    def plain(self):
        return 1


class WithClassLevel:
    a = 0

    def set(self):
        self.a = 1


class WithProperty:
    word = _word(3)

    def __init__(self):
        self.packed = [0, 0, 0, 0]
        self.word = 5

    @property
    def p(self):
        return 1


class Sub(Plain):
    pass


class Inner:
    pass


@micropython.viper
def f(x: int, y) -> int:
    return x


@micropython.native
def g(x, y=0):
    return x + y


def h(x):
    return x
'''


OTHER = '''
class Est:
    def __init__(self):
        self.x = 0

    @micropython.native
    def update(self, v):
        return v


@micropython.native
def helper(v):
    return v


CONST = 3
'''


def test_classes_become_extension_types_with_every_assigned_attribute_declared():
    foreign = compiled_firmware.foreign_attrs([CLASSES, OTHER])
    assert foreign == {"joint"}  # assigned on another object
    out, info = compiled_firmware.transform_module(CLASSES, foreign=foreign)
    assert "@cython.cclass\nclass Plain:" in out and "@cython.cclass\nclass Inner:" in out
    # a class-level property (@property, or made by a function that returns property(...)) is no instance
    # slot: storing it calls the setter in an extension type too
    assert "@cython.cclass\nclass WithProperty:" in out
    # a class-level default shadowed per instance, or a subclass: left as Python classes
    assert "@cython.cclass\nclass WithClassLevel" not in out and "@cython.cclass\nclass Sub" not in out
    assert sorted(info.classes) == ["Inner", "Plain", "WithProperty"]
    assert "cython.cclass" not in transform_source(CLASSES)  # foreign=None: no class changes
    files = compiled_firmware.firmware_files({"other.py": OTHER, "mod.py": CLASSES}, (), ())
    pxd = files["mod.pxd"]
    lines = pxd.splitlines()
    # what the module imports from a module that declares it is cimported: a C call, a C type
    assert lines[:2] == ["from .other cimport Est", "from .other cimport helper"]
    assert files["other.pxd"].splitlines()[:2] == ["cdef class Est", "cpdef object helper(object v)"]
    assert "cdef class Plain" in lines and "cdef class Inner" in lines  # forward declarations
    plain = pxd[pxd.index("cdef class Plain:"):pxd.index("cdef class WithProperty:")]
    for name in ("a", "b", "c", "joint"):
        assert "    cdef public object %s\n" % name in plain
    # only ever X(...), X a firmware class (here or cimported): declared as X; stored otherwise too: object
    assert "    cdef public Est est\n" in plain and "    cdef public Inner inner\n" in plain
    assert "    cdef public object mixed\n" in plain
    # viper and native methods become cpdef methods (viper's int arguments C longs); a closure inside, or a
    # method no emitter compiles, stays a Python method
    assert "    cpdef object tick(self, object other)\n" in plain
    assert "    cpdef long step(self, long x, object buf, long k=*) except? -1\n" in plain
    assert "with_closure" not in plain and "plain" not in plain
    assert "cpdef long f(long x, object y) except? -1" in lines
    assert "cpdef object g(object x, object y=*)" in lines
    assert not any(" h(" in line for line in lines)
    prop = pxd[pxd.index("cdef class WithProperty:"):]
    assert "cdef public object packed" in prop and " word" not in prop and " p\n" not in prop
    assert compiled_firmware.exports(info) == {"f": "function", "g": "function", "Plain": "class",
                                               "WithProperty": "class", "Inner": "class"}
    # the property factory: only its own returns count, not those of the functions inside it
    import ast
    assert compiled_firmware.property_factories(ast.parse(CLASSES)) == {"_word"}


PARTS = '''
from array import array


class Part:
    def __init__(self):
        self.packed = array("i", [0] * 4)

    @micropython.viper
    def step(self, x: int) -> int:
        p = ptr32(self.packed)
        return p[0] + x
'''

USER = '''
from .parts import Part


class Reader:
    def __init__(self, parts, app, n):
        self.parts = parts
        self.app = app
        self.n = n

    @micropython.viper
    def joint(self, i: int) -> int:
        return ptr32(self.parts[i].packed)[0]

    @micropython.viper
    def total(self, parts, app, k: int) -> int:
        return ptr32(parts[k].packed)[0] + int(app.n)


class App:
    def __init__(self, n):
        self.parts = [Part(), Part()]
        self.mixed = [Part(), None]
        self.reader = Reader(self.parts, self, n)

    @micropython.native
    def tick(self):
        parts = self.parts
        total = 0
        for i in range(2):
            c = parts[i]
            total += c.step(i)
        self.parts[0].step(1)
        self.mixed[0].step(1)
        reader = self.reader
        return total + reader.joint(0) + reader.total(parts, self, 1) + self.reader.total(self.parts, self, 0)
'''


def test_list_items_and_constructor_arguments_are_typed_from_the_package():
    files = compiled_firmware.firmware_files({"parts.py": PARTS, "user.py": USER}, (), ())
    py = files["user.py"]
    # a list every store of which is [Part(), ...]: its items are read as Part, checked (TypeError otherwise)
    assert "c = cython.cast(Part, parts[i], typecheck=True)" in py
    assert "cython.cast(Part, self.parts[0], typecheck=True).step(1)" in py
    assert "self.mixed[0].step(1)" in py  # [Part(), None]: not one class
    # a constructor argument: every Reader(...) in the package passes App's self.parts, so Reader's parts is
    # a list of Part too, and viper's cast of an item's array reads Part's view of it
    assert "return cython.cast(Part, self.parts[i], typecheck=True)._cyview_packed[0]" in py
    pxd = files["user.pxd"]
    assert "    cdef public Reader reader\n" in pxd
    # `self` passed in: App, declared in this module; a parameter passed nothing typed: object
    assert "    cdef public App app\n" in pxd and "    cdef public object n\n" in pxd
    assert files["parts.pxd"].count("cdef int[:] _cyview_packed") == 1
    # a method's parameters: every call of it (on an object of known class) passes the same type
    assert "    cpdef long total(self, object parts, App app, long k) except? -1\n" in pxd
    assert "return cython.cast(Part, parts[k], typecheck=True)._cyview_packed[0] + cython.cast(cython.long, app.n)" \
        in py
    # a method name also called on an object of unknown type anywhere: its parameters stay untyped
    untyped = USER.replace("        reader = self.reader\n", "        reader = self.reader\n        n.total(1, 2, 3)\n")
    pxd = compiled_firmware.firmware_files({"parts.py": PARTS, "user.py": untyped}, (), ())["user.pxd"]
    assert "    cpdef long total(self, object parts, object app, long k) except? -1\n" in pxd


def test_a_cast_of_an_untyped_objects_array_reads_a_kept_view_when_its_class_keeps_one():
    user = USER + (
        "\n\n@micropython.viper\ndef first(items, k: int) -> int:\n"
        "    p = ptr32(items[k].packed)\n    return p[0]\n")
    py = compiled_firmware.firmware_files({"parts.py": PARTS, "user.py": user}, (), ())["user.py"]
    # items is a parameter nothing types: Part's view when the object is exactly a Part, else a view of
    # its array as before (the same array, so the same values; anything without one raises as before)
    assert ("    _cy_p = items[k]\n    p: cython.int[:]\n    if type(_cy_p) is Part:\n"
            "        p = cython.cast(Part, _cy_p)._cyview_packed\n    else:\n        p = _cy_p.packed\n") in py


def test_a_type_that_would_need_a_cimport_cycle_stays_an_object():
    # child.py cannot cimport Host from host.py, which imports child.py (Link gets the Gimbal the same way)
    host = "from .child import Child\n\n\nclass Host:\n    def __init__(self):\n        self.child = Child(self)\n"
    child = "class Child:\n    def __init__(self, host):\n        self.host = host\n"
    files = compiled_firmware.firmware_files({"host.py": host, "child.py": child}, (), ())
    assert "    cdef public object host\n" in files["child.pxd"] and "cimport" not in files["child.pxd"]
    assert "    cdef public Child child\n" in files["host.pxd"]


VIEWS = '''
from array import array

_TAB = array("H", [1, 2, 3])
_REBOUND = array("H", [1])


def reset():
    global _REBOUND
    _REBOUND = array("H", [2])


class Ctl:
    def __init__(self):
        self.packed = array("i", [0] * 4)
        self.words = array("i", [0] * 4)
        self.mixed = array("i", [0] * 4)
        self.shared = array("i", [0] * 4)
        self.short = array("h", [0] * 4)

    def renew(self, other):
        if other:
            self.packed = array("i", [1] * 4)
        self.mixed = other
        other.shared = self.words

    @micropython.viper
    def step(self, k: int) -> int:
        p = ptr32(self.packed)
        m = ptr32(self.mixed)
        s = ptr32(self.shared)
        h = ptr16(self.short)
        return p[k] + int(ptr16(_TAB)[k]) + int(ptr16(_REBOUND)[0]) + m[0] + s[0] + h[0]

    @micropython.native
    def native(self):
        return self.words[0]


@micropython.viper
def lookup(k: int) -> int:
    t = ptr16(_TAB)
    return int(t[k])
'''


def test_arrays_that_viper_casts_get_a_typed_view_kept_beside_them():
    foreign = compiled_firmware.foreign_attrs([VIEWS])
    out, info = compiled_firmware.transform_module(VIEWS, foreign=foreign)
    # set after every store of the array (each is array("i", ...)), read where viper casts it
    assert "self.packed = array('i', [0] * 4)\n        self._cyview_packed = self.packed" in out
    assert "self.packed = array('i', [1] * 4)\n            self._cyview_packed = self.packed" in out
    assert "p: cython.int[:] = self._cyview_packed" in out
    # a module global bound once to array(...): one view, set after it
    assert "_TAB = array('H', [1, 2, 3])\n_cyview__TAB = _TAB" in out
    assert "t: cython.ushort[:] = _cyview__TAB" in out and "cython.cast(cython.long, _cyview__TAB[k])" in out
    # not an array on every store, stored on another object, the wrong typecode for the cast, rebound
    # global: cast as before (a view made on each call); never cast: no view
    assert "m: cython.int[:] = self.mixed" in out and "s: cython.int[:] = self.shared" in out
    assert "h: cython.ushort[:] = self.short" in out and "_cyview__REBOUND" not in out
    assert "_cyview_words" not in out
    assert info.views == {"Ctl": {"packed": "i"}, None: {"_TAB": "H"}}
    pxd = compiled_firmware.pxd_source(info, {})
    # the array read-only from Python: nothing can replace it behind the view's back
    assert "    cdef readonly object packed\n" in pxd and "    cdef int[:] _cyview_packed\n" in pxd
    assert "cdef unsigned short[:] _cyview__TAB\n" in pxd
    assert "    cdef public object mixed\n" in pxd and "    cdef public object words\n" in pxd


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


def test_typed_attributes_raise_on_what_they_cannot_hold(compiled):
    # what the transform typed from the source is checked at run time: a violation raises, never differs
    from array import array

    from opensteady.sim.hal import SimHal
    from opensteady.sim.imu import ImuModel

    g = compiled.app.Gimbal(SimHal(ImuModel()))
    assert type(g.est).__name__ == "AttitudeEstimator" and type(g.axes[0]).__name__ == "AxisController"
    with pytest.raises(TypeError):
        g.est = object()  # declared AttitudeEstimator: every store of it is AttitudeEstimator()
    with pytest.raises(AttributeError):
        g.axes[0].packed = array("i", [0] * 22)  # a viewed array: read-only from Python
    # a property over the viewed array writes what the view reads: as interpreted
    from opensteady.firmware.control import AxisController

    cy = compiled.control.AxisController()
    py = AxisController()
    for c in (cy, py):
        c.joint_udeg = 1234
        c.step(5000000, 0, 0, 0, 1000)
        c.i_q4 = 77
        c.step(5000000, 0, 0, 0, 1000)
    assert list(cy.packed) == list(py.packed) and py.joint_udeg != 1234


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
