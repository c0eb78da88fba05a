"""Audit: how many integer results per tick would not fit a 32-bit board's small ints (CPython only).

    .venv/bin/python -m opensteady.firmware.offboard.bench_int31 [ticks]

MicroPython stores an int inline ("small int") only within +-2**30 on 32-bit
ports (RP2040, ESP32); anything larger becomes a heap object (an mpz: two
16-byte GC blocks). The unix port is 64-bit, so its 0 bytes per tick do not
show this. This script recompiles the firmware modules with every binary
operation, augmented assignment and unary minus wrapped in a check, runs the
same closed loop as firmware/offboard/bench_tick.py, and counts per tick how many
results fall outside +-2**30, and where. Estimated board allocation = count
x 32 bytes. ``tour()`` does the same over every mode and output path
(firmware/bench_tick.tour); tests/test_firmware_build.py asserts both are 0.

This checks values only: a constant that is itself beyond +-2**30, or folded
through such a value by the compiler, is boxed too and every operation with
it allocates; firmware/offboard/bench_wasm.mjs measures the heap on a real 32-bit VM.
"""

import ast
import contextlib
import sys
import types

LIMIT = 1 << 30
# instrumented in import order: a module's firmware imports come before it
MODULES = ("fixmath", "protocol", "config", "imu", "estimator", "control", "motor", "angle_sensor", "torque_ff", "foc",
           "failsafe", "modes", "drive", "telemetry", "link", "app")


class _Wrap(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        return ast.copy_location(ast.Call(ast.Name("int31_check_", ast.Load()), [node, ast.Constant(node.lineno)], []),
                                 node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.USub):
            return ast.copy_location(
                ast.Call(ast.Name("int31_check_", ast.Load()), [node, ast.Constant(node.lineno)], []), node)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body
        value = ast.BinOp(load, node.op, node.value)
        call = ast.Call(ast.Name("int31_check_", ast.Load()), [value, ast.Constant(node.lineno)], [])
        return ast.copy_location(ast.Assign([node.target], call), node)


class Counter:
    def __init__(self):
        self.active = False
        self.hits = {}

    def __call__(self, value, line):
        if self.active and type(value) is int and not -LIMIT <= value < LIMIT:
            self.hits[line] = self.hits.get(line, 0) + 1
        return value


def instrument(counter):
    """Replace firmware modules in sys.modules with checked builds; return them."""
    import importlib

    pkg_name = __package__.rsplit(".", 1)[0]  # "opensteady.firmware" (or "firmware" from a checkout)
    firmware = importlib.import_module(pkg_name)

    mods = {}
    for name in MODULES:
        full = pkg_name + "." + name
        path = "%s/%s.py" % (firmware.__path__[0], name)
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        tree = ast.fix_missing_locations(_Wrap().visit(tree))
        mod = types.ModuleType(full)
        mod.__file__ = path
        mod.__dict__["int31_check_"] = lambda v, line, _m=name: counter(v, (_m, line))
        sys.modules[full] = mod
        setattr(firmware, name, mod)
        exec(compile(tree, path, "exec"), mod.__dict__)
        mods[name] = mod
    return mods


@contextlib.contextmanager
def checked_modules(counter):
    """``with checked_modules(counter) as mods:`` the firmware instrumented, put back as it was on exit."""
    pkg_name = __package__.rsplit(".", 1)[0]
    firmware = sys.modules[pkg_name]
    saved = {k: v for k, v in sys.modules.items() if k.startswith(pkg_name + ".")}
    try:
        yield instrument(counter)
    finally:
        sys.modules.update(saved)
        for k, v in saved.items():
            if k.count(".") == pkg_name.count(".") + 1:
                setattr(firmware, k.rsplit(".", 1)[1], v)


def _instrumented():
    """A Counter, with the firmware instrumented and the VM-side modules reloaded on top of it."""
    counter = Counter()
    instrument(counter)
    sys.modules.pop(__package__ + ".plant", None)
    sys.modules.pop(__package__ + ".bench_tick", None)
    return counter


def run(ticks=2000):
    counter = _instrumented()
    from .. import protocol
    from ..app import Gimbal
    from .bench_tick import handle_wobble
    from .plant import PlantHAL

    hal = PlantHAL(handle_path=handle_wobble)
    hal.capture_tx = False
    g = Gimbal(hal)
    for _ in range(1500):
        hal.step(g.period_us)
        g.tick(hal.now_us)
    hal.send_to_firmware(protocol.encode(protocol.MSG_MODE, 0, protocol.pack(protocol.MSG_MODE, protocol.MODE_TRACK)))
    sp = protocol.encode(protocol.MSG_SETPOINT, 1, protocol.pack(
        protocol.MSG_SETPOINT, protocol.SP_YAW_IS_RATE | protocol.SP_YAW_IN_EARTH_FRAME, 500, -300, 0))
    for k in range(ticks):
        hal.step(g.period_us)
        if k % 20 == 0:
            hal.send_to_firmware(sp)
        counter.active = True
        g.tick(hal.now_us)
        counter.active = False
    total = sum(counter.hits.values())
    return {
        "ticks": ticks,
        "boxed_per_tick": total / ticks,
        "est_bytes_per_tick_32bit": 32 * total / ticks,
        "by_module": _by_module(counter.hits, ticks),
        "worst_lines": sorted(((n / ticks, "%s.py:%d" % k) for k, n in counter.hits.items()), reverse=True)[:20],
    }


def tour(ticks_per_mode=300):
    """Results beyond +-2**30 over bench_tick.tour (both variants): {"ticks", "hits", "worst_lines"}."""
    counter = _instrumented()
    from . import bench_tick

    def on():
        counter.active = True

    def off():
        counter.active = False

    n = 0
    for variant in (0, 1):
        n += bench_tick.tour(ticks_per_mode, variant, on, off)
    return {
        "ticks": n,
        "hits": sum(counter.hits.values()),
        "worst_lines": sorted(((k, "%s.py:%d" % w) for w, k in counter.hits.items()), reverse=True)[:20],
    }


def _by_module(hits, ticks):
    out = {}
    for (mod, _line), n in hits.items():
        out[mod] = out.get(mod, 0) + n / ticks
    return out


def main():
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    r = run(ticks)
    print("results outside +-2**30 per tick: %.1f (about %.0f bytes/tick on a 32-bit port)" % (
        r["boxed_per_tick"], r["est_bytes_per_tick_32bit"]))
    for mod, n in sorted(r["by_module"].items(), key=lambda kv: -kv[1]):
        print("  %-10s %6.1f" % (mod, n))
    for n, where in r["worst_lines"]:
        print("  %6.2f  %s" % (n, where))
    t = tour()
    print("every mode (bench_tick.tour, 2 variants, %d ticks): %d results outside +-2**30" % (t["ticks"], t["hits"]))
    for n, where in t["worst_lines"]:
        print("  %6d  %s" % (n, where))


if __name__ == "__main__":
    main()
