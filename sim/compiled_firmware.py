"""The firmware compiled for CPython with Cython, as MicroPython's emitters compile it for a board.

The third co-simulation mode (``opensteady sim --firmware compiled``): the
same flashed modules (the firmware package's top level), compiled to C extension
modules, run in this process on the :class:`sim.hal.SimHal`. On a board
``@micropython.viper`` compiles a function to machine code on machine-word
integers and ``@micropython.native`` to machine code on Python objects;
interpreted CPython runs both as bytecode, which is why the tick costs about
40 us there against 13 us on the unix port (and 88 us on the unix port with
the decorators removed: docs/benchmarks.md). This module does for CPython
what MicroPython's compiler does, and nothing else:

- a module's ``_NAME = const(value)`` names are inlined where they are read,
  as MicroPython's compiler does;
- in a viper function, ``int``-annotated arguments and returns become C
  ``long``, ``int(x)`` becomes the machine-word cast (``cython.cast``) and
  ``p = ptr32(buf)`` / ``ptr16(buf)`` a typed view of the array
  (``cython.int[:]``, ``cython.ushort[:]``: the firmware's ``array('i')``
  and ``array('H')``, whose ptr32 values are >= 0); the function's other
  integer locals are typed from those (``cython.infer_types``), as viper
  types them. Every value there stays within +-2**30 (``bench_int31``
  checks it), inside a 64-bit ``long`` and inside the 32-bit ``int`` of
  the arrays' items (a 32-bit board's machine word); gcc's ``-fwrapv`` and
  arithmetic right shifts match Python's for such values, and ``//``, ``%``
  keep Python's floor semantics (Cython's default ``cdivision=False``);
- native functions and the rest compile with Python object semantics;
- the firmware's classes become extension types whose attributes are
  slots holding Python objects, as a board's native code reaches an
  object's attributes without a dictionary lookup on each (interpreted
  CPython caches them per bytecode; compiled code would not). Every
  attribute the firmware assigns is declared, so nothing it does can tell
  the difference; only new attributes set from outside fail.

So the results are bit for bit those of the interpreted firmware and of the
MicroPython VM (tests/test_sim_compiled.py compares whole scenario runs).

The build needs Cython (the ``sim`` extra) and a C compiler with the Python
headers; it runs once per firmware source (about a minute of CPU) and is
cached under ``$OPENSTEADY_CACHE`` or ``~/.cache/opensteady``, keyed by a
hash of the sources, this transform, Cython's and Python's versions.

    from opensteady.sim.compiled_firmware import load_package
    app = load_package().app          # the compiled firmware.app module
    g = app.Gimbal(hal)
"""

import ast
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from opensteady.sim.micropython_vm import FIRMWARE_DIR

TRANSFORM_VERSION = "3"  # bump when the transform below changes: it is part of the cache key
NOT_COMPILED = ("__init__.py", "mpcompat.py")  # the package file and the CPython shim stay Python
PYTHON_CLASSES = ("hal.py",)  # the HAL interface boards subclass stays a Python class
BUILD_OUTPUT_TAIL_LINES = 15  # how much of a failed build's output goes into the error message
KEEP_BUILDS = 3  # older builds (of earlier firmware sources) are removed after a new one
# no debug info: the extension modules shrink from 19 MB to 3.5 MB, and the tick is as fast
_CFLAGS = "-g0"
_PTR_VIEWS = {"ptr32": "int", "ptr16": "ushort"}  # viper pointer cast -> the C type of the array's items


class CompileError(RuntimeError):
    """The compiled firmware cannot be built here; ``str()`` says why and what to install."""


def _module_names():
    # the package's top level: what a board runs (host/flash.py's CORE_MODULES but boards/) plus the
    # CPython shim; main.py is a board's entry point (it picks a board module), not the simulator's
    return sorted(p.name for p in FIRMWARE_DIR.glob("*.py") if p.name != "main.py")


def _is_mp_decorator(dec, kind):
    return isinstance(dec, ast.Attribute) and dec.attr == kind and isinstance(dec.value, ast.Name) \
        and dec.value.id == "micropython"


def _cython_attr(name):
    return ast.Attribute(value=ast.Name(id="cython", ctx=ast.Load()), attr=name, ctx=ast.Load())


def _module_consts(tree):
    """{name: value} of the module-level ``NAME = const(expr)`` assignments that are never rebound."""
    consts = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "const" and len(node.value.args) == 1):
            expr = ast.Expression(node.value.args[0])
            try:
                value = eval(compile(expr, "<const>", "eval"), {"__builtins__": {}}, dict(consts))  # noqa: S307
            except Exception:  # noqa: BLE001 - not a constant expression: leave the name alone
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                consts[node.targets[0].id] = value
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound[node.id] = bound.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            bound[node.arg] = bound.get(node.arg, 0) + 1
    return {k: v for k, v in consts.items() if bound.get(k, 0) == 1}  # assigned once: the const line


class _Transform(ast.NodeTransformer):
    def __init__(self, consts):
        self.consts = consts
        self.viper = 0
        self.changed = False

    def visit_FunctionDef(self, node):
        viper = any(_is_mp_decorator(d, "viper") for d in node.decorator_list)
        node.decorator_list = [d for d in node.decorator_list
                               if not (_is_mp_decorator(d, "viper") or _is_mp_decorator(d, "native"))]
        if viper:
            self.changed = True
            for a in node.args.args:
                a.annotation = _cython_attr("long") if _is_int(a.annotation) else None
            node.returns = _cython_attr("long") if _is_int(node.returns) else None
            node.decorator_list.append(ast.Call(func=_cython_attr("infer_types"), args=[ast.Constant(True)],
                                                keywords=[]))
        self.viper += viper
        self.generic_visit(node)
        self.viper -= viper
        return node

    def visit_Assign(self, node):
        # the const lines themselves stay (other modules may import the names)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and node.targets[0].id in self.consts:
            return node
        v = node.value
        if (self.viper and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in _PTR_VIEWS
                and len(v.args) == 1):
            view = ast.Subscript(value=_cython_attr(_PTR_VIEWS[v.func.id]), slice=ast.Slice(), ctx=ast.Load())
            return ast.copy_location(ast.AnnAssign(target=node.targets[0], annotation=view,
                                                   value=self.visit(v.args[0]), simple=1), node)
        return self.generic_visit(node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.consts:
            return ast.copy_location(ast.Constant(self.consts[node.id]), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if self.viper and isinstance(node.func, ast.Name) and len(node.args) == 1 and not node.keywords:
            if node.func.id == "int":
                return ast.copy_location(ast.Call(func=_cython_attr("cast"), args=[_cython_attr("long"), node.args[0]],
                                                  keywords=[]), node)
            if node.func.id in ("ptr16", "ptr32"):
                return node.args[0]
        return node


def _is_int(annotation):
    return isinstance(annotation, ast.Name) and annotation.id == "int"


def _stored_attrs(tree, on_self):
    """Names of the attributes assigned in ``tree``: on ``self`` (on_self) or on any other object."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                    is_self = isinstance(n.value, ast.Name) and n.value.id == "self"
                    if is_self == on_self:
                        names.add(n.attr)
    return names


def foreign_attrs(sources):
    """Attribute names the firmware assigns on objects other than ``self`` (``ctl.joint_udeg = j``)."""
    names = set()
    for src in sources:
        names |= _stored_attrs(ast.parse(src), on_self=False)
    return names


def _to_extension_type(cls, foreign):
    """Make a plain class a Cython extension type: its attributes become slots (still Python objects).

    Declared: every attribute its methods assign on ``self`` and every name
    the firmware assigns on other objects. A class with a base, a decorator,
    or a class-level name that is also an instance attribute stays as it is.
    """
    if cls.bases or cls.keywords or cls.decorator_list:
        return False
    own = _stored_attrs(cls, on_self=True)
    class_level = set()
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            class_level.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            class_level |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            class_level.add(stmt.target.id)
    if own & class_level:
        return False
    declare = [ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())],
                          value=ast.Call(func=_cython_attr("declare"), args=[ast.Name(id="object", ctx=ast.Load())],
                                         keywords=[ast.keyword(arg="visibility", value=ast.Constant("public"))]))
               for name in sorted((own | foreign) - class_level)]
    body = cls.body
    at = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else 0
    cls.body = body[:at] + declare + body[at:]
    cls.decorator_list = [_cython_attr("cclass")]
    return True


def transform_source(source, filename="<firmware>", foreign=None):
    """A firmware module's source, rewritten for Cython as the module docstring says.

    ``foreign``: attribute names assigned on other objects across the package
    (:func:`foreign_attrs`); None leaves the classes as Python classes.
    """
    tree = ast.parse(source, filename)
    t = _Transform(_module_consts(tree))
    tree = t.visit(tree)
    if foreign is not None:
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and _to_extension_type(node, foreign):
                t.changed = True
    if t.changed:
        # after the docstring: `import cython` (pure-Python mode; a no-op shim when not compiled)
        at = 1 if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
            else 0
        tree.body.insert(at, ast.Import(names=[ast.alias(name="cython")]))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _sources():
    out = {}
    for name in _module_names():
        out[name] = (FIRMWARE_DIR / name).read_text()
    return out


def _cache_root():
    root = os.environ.get("OPENSTEADY_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "opensteady"


def _key(sources, cython_version):
    h = hashlib.sha256()
    for part in (TRANSFORM_VERSION, cython_version, sys.version, sysconfig.get_platform()):
        h.update(part.encode() + b"\0")
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return h.hexdigest()[:16]


_BUILD_SCRIPT = r"""
import sys
from Cython.Build import cythonize
from setuptools import setup
mods = sys.argv[1:]
setup(ext_modules=cythonize(mods, language_level=3, quiet=True),
      script_args=["-q", "build_ext", "--inplace", "-j", "2", "--build-temp", "build"])
"""


def build(cache_root=None):
    """Build (or find in the cache) the compiled firmware; returns the package's directory."""
    try:
        import Cython
    except ImportError:
        raise CompileError("firmware mode 'compiled' needs Cython: pip install -e '.[dev]' (or pip install "
                           "cython), or use --firmware inprocess") from None
    sources = _sources()
    key = _key(sources, Cython.__version__)
    package = "opensteady_fw_" + key
    root = Path(cache_root) if cache_root else _cache_root()
    final = root / "compiled-firmware" / key
    if (final / "BUILT").exists():
        return final / package
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=key + ".", dir=final.parent))
    try:
        pkg = tmp / package
        pkg.mkdir()
        compiled = []
        foreign = foreign_attrs(src for name, src in sources.items() if name not in NOT_COMPILED)
        for name, src in sources.items():
            if name not in NOT_COMPILED:
                src = transform_source(src, str(FIRMWARE_DIR / name), None if name in PYTHON_CLASSES else foreign)
                compiled.append(package + "/" + name)
            (pkg / name).write_text(src)
        env = dict(os.environ)
        env["CFLAGS"] = (env.get("CFLAGS", "") + " " + _CFLAGS).strip()
        proc = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT] + compiled, cwd=tmp, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-BUILD_OUTPUT_TAIL_LINES:])
            raise CompileError("building the compiled firmware failed (it needs a C compiler such as gcc and "
                               "the Python headers; or use --firmware inprocess):\n" + tail)
        shutil.rmtree(tmp / "build", ignore_errors=True)
        for c in pkg.glob("*.c"):
            c.unlink()
        (tmp / "BUILT").write_text(key + "\n")
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same build first: use its copy
            if not (final / "BUILT").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(final.parent)
    return final / package


def _prune(builds_dir):
    """Keep the KEEP_BUILDS newest finished builds (each firmware edit makes a new one)."""
    done = sorted((p for p in builds_dir.iterdir() if (p / "BUILT").exists()),
                  key=lambda p: (p / "BUILT").stat().st_mtime, reverse=True)
    for old in done[KEEP_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


_loaded = {}


def load_package(cache_root=None):
    """The compiled firmware package, imported once per process (its ``.app`` is the firmware's app)."""
    pkg_dir = build(cache_root)
    name = pkg_dir.name
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(name, pkg_dir / "__init__.py",
                                                      submodule_search_locations=[str(pkg_dir)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        importlib.import_module(name + ".app")
        _loaded[name] = module
    return _loaded[name]


def main(argv=None):
    """``python -m opensteady.sim.compiled_firmware``: build it now and print where it is."""
    try:
        print(build())
    except CompileError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
