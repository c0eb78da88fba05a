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
  the difference; only new attributes set from outside fail;
- the functions and methods the emitters compile (viper, native) become
  ``cpdef`` functions, declared with their viper signature in a generated
  ``.pxd`` per module, and what a module imports from another is cimported:
  a call between them is a C call (machine-word arguments stay machine
  words), as a board's emitted code calls emitted code. An attribute whose
  every store is ``self.x = X(...)`` (X a firmware class) is declared as
  X, so ``self.est.update(...)`` goes through X's method table; storing
  anything else there raises TypeError (and a typed attribute not yet set
  raises AttributeError: ``nonecheck``);
- what the package's source proves about an attribute is used the same
  way (:class:`_PackageTypes`): a list every store of which is
  ``[X(...), ...]`` has its items read as X through a checked cast
  (``cython.cast(X, axes[i], typecheck=True)``: anything else there raises
  TypeError), a constructor's parameter stored on ``self`` takes the type
  every construction in the package passes, and a method's parameter the
  type every call of it passes (unless the method's name is also called on
  an object of unknown type);
- an array that viper casts (``ptr32(self.packed)``, ``ptr16(_SIN_U16)``)
  and that is provably always an ``array`` of the cast's item type keeps a
  typed view beside it, set where the array is stored (read through a
  typed object too: ``ptr32(axes[i].packed)``), so a call builds no view
  (on a board the cast is a pointer load); the array becomes read-only
  from Python so nothing can replace it behind the view. ``p =
  ptr32(obj.packed)`` on an object of unknown type reads the view when
  ``type(obj)`` is exactly a class that keeps one, else makes one of
  ``obj.packed`` as before.

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
import copy
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

TRANSFORM_VERSION = "6"  # bump when the transform below changes: it is part of the cache key
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
        if viper or any(_is_mp_decorator(d, "native") for d in node.decorator_list):
            node.emitter = "viper" if viper else "native"  # read by _c_callable
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


_VIEW_TYPECODES = {"ptr32": ("i", "int"), "ptr16": ("H", "unsigned short")}  # array typecode, .pxd item type
_VIEW_ITEM = {"i": "int", "H": "unsigned short"}
VIEW_PREFIX = "_cyview_"  # the typed view kept beside an array attribute or global (see _bind_views)


def _array_typecode(value):
    """'i' for ``array("i", ...)``, else None."""
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "array"
            and value.args and isinstance(value.args[0], ast.Constant) and isinstance(value.args[0].value, str)):
        return value.args[0].value
    return None


def _self_attr(node):
    return node.attr if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                         and node.value.id == "self") else None


def _array_attrs(cls):
    """{attr: typecode} of the attributes every store of which in ``cls`` is ``self.attr = array("<tc>", ...)``."""
    out = {}
    for attr in _stored_attrs(cls, on_self=True):
        codes = {_array_typecode(v) for _, v, _ in _stores(cls, attr)}
        if len(codes) == 1 and None not in codes:
            out[attr] = codes.pop()
    return out


class _ViewUses(ast.NodeTransformer):
    """In viper functions: ``ptr32(self.x)`` -> ``ptr32(self._cyview_x)`` (or a global's), where x has a view."""

    def __init__(self, attrs, globals_):
        self.attrs = attrs  # {attr: typecode} (self.attr)
        self.globals = globals_  # {name: typecode} (module globals)
        self.used = {}  # (kind, name) -> typecode, kind "attr" or "global"
        self.viper = 0

    def visit_FunctionDef(self, node):
        viper = any(_is_mp_decorator(d, "viper") for d in node.decorator_list)
        self.viper += viper
        self.generic_visit(node)
        self.viper -= viper
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if not (self.viper and isinstance(node.func, ast.Name) and node.func.id in _VIEW_TYPECODES
                and len(node.args) == 1):
            return node
        tc = _VIEW_TYPECODES[node.func.id][0]
        arg = node.args[0]
        name = _self_attr(arg)
        if name is not None and self.attrs.get(name) == tc:
            self.used[("attr", name)] = tc
            node.args = [ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()), attr=VIEW_PREFIX + name,
                                       ctx=ast.Load())]
        elif isinstance(arg, ast.Name) and self.globals.get(arg.id) == tc:
            self.used[("global", arg.id)] = tc
            node.args = [ast.Name(id=VIEW_PREFIX + arg.id, ctx=ast.Load())]
        return node


def _refresh_after(body, is_store, make):
    """Insert ``make(stmt)`` after every statement in ``body`` (recursively) for which ``is_store(stmt)``."""
    out = []
    for stmt in body:
        for field in ("body", "orelse", "finalbody"):
            if isinstance(getattr(stmt, field, None), list) and not isinstance(stmt, (ast.ClassDef,)):
                setattr(stmt, field, _refresh_after(getattr(stmt, field), is_store, make))
        for h in getattr(stmt, "handlers", []) or []:
            h.body = _refresh_after(h.body, is_store, make)
        out.append(stmt)
        if is_store(stmt):
            out.append(make(stmt))
    return out


def _bind_views(tree, foreign, factories):
    """Typed views kept beside the arrays viper code casts with ptr32/ptr16, so a tick builds none.

    On a board ``ptr32(self.packed)`` is a pointer load; here a typed view
    of an array costs a buffer request, a format check and an object. An
    attribute of an extension type every store of which (in its class;
    the firmware stores it on no other object) is ``self.x = array("i", ...)``
    gets a view ``self._cyview_x``, set right after each of those stores;
    ``ptr32(self.x)`` reads it instead (ptr16: ``array("H", ...)``). A
    module global bound once to ``array(...)`` gets one the same way. The
    attribute is read-only from Python (``cdef readonly``) so nothing else
    can replace the array behind the view's back. Returns {class name or
    None: {name: typecode}}, the views to declare.
    """
    views = {}
    globals_ = {}
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound[node.id] = bound.get(node.id, 0) + 1
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and bound.get(node.targets[0].id) == 1 and _array_typecode(node.value)):
            globals_[node.targets[0].id] = _array_typecode(node.value)
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and _extension_type_ok(cls, factories):
            attrs = {k: v for k, v in _array_attrs(cls).items() if k not in foreign}
            uses = _ViewUses(attrs, globals_)
            uses.visit(cls)
            mine = {name: tc for (kind, name), tc in uses.used.items() if kind == "attr"}
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef):
                    fn.body = _refresh_after(
                        fn.body,
                        lambda st, mine=mine: (isinstance(st, ast.Assign) and len(st.targets) == 1
                                               and _self_attr(st.targets[0]) in mine),
                        lambda st: ast.Assign(targets=[ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()),
                                                                     attr=VIEW_PREFIX + st.targets[0].attr,
                                                                     ctx=ast.Store())],
                                              value=ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()),
                                                                  attr=st.targets[0].attr, ctx=ast.Load())))
            if mine:
                views[cls.name] = mine
            for (kind, name), tc in uses.used.items():
                if kind == "global":
                    views.setdefault(None, {})[name] = tc
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            uses = _ViewUses({}, globals_)
            uses.visit(fn)
            for (_, name), tc in uses.used.items():
                views.setdefault(None, {})[name] = tc
    if views.get(None):
        tree.body = _refresh_after(
            tree.body,
            lambda st: (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
                        and st.targets[0].id in views[None]),
            lambda st: ast.Assign(targets=[ast.Name(id=VIEW_PREFIX + st.targets[0].id, ctx=ast.Store())],
                                  value=ast.Name(id=st.targets[0].id, ctx=ast.Load())))
    return views


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


class _ModuleInfo:
    """What a module's .pxd declares: its C-callable functions, its extension types, and what it cimports."""

    def __init__(self):
        self.functions = []  # module-level FunctionDefs that become cpdef functions
        self.classes = {}  # name -> {"attrs": {attr: class name or None}, "methods": [FunctionDef]}
        self.imports = []  # (module, name, asname) of the package's relative `from .module import name`
        self.views = {}  # {class name or None (module globals): {name: array typecode}} (_bind_views)
        self.cimports = set()  # (module, class) cimported beyond what the module imports (_PackageTypes.usable)


# what keeps a function a Python function: cpdef functions take no closures, generators or * arguments
_NOT_IN_CPDEF = (ast.Lambda, ast.GeneratorExp, ast.Yield, ast.YieldFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                 ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp)


def _c_callable(fn):
    """A function MicroPython's emitters compile (viper, native) that Cython can make a cpdef function."""
    a = fn.args
    if getattr(fn, "emitter", None) is None or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        return False
    if any(not (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and isinstance(d.func.value, ast.Name)
                and d.func.value.id == "cython") for d in fn.decorator_list):
        return False
    return not any(isinstance(n, _NOT_IN_CPDEF) for stmt in fn.body for n in ast.walk(stmt))


def property_factories(tree):
    """Names of the module-level functions whose every ``return`` returns ``property(...)``."""
    def returns(node):  # its own, not those of the functions defined inside it
        for n in ast.iter_child_nodes(node):
            if isinstance(n, ast.Return):
                yield n
            elif not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                yield from returns(n)

    out = set()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            rets = list(returns(fn))
            if rets and all(isinstance(r.value, ast.Call) and isinstance(r.value.func, ast.Name)
                            and r.value.func.id == "property" for r in rets):
                out.add(fn.name)
    return out


def _class_properties(cls, factories):
    """Class-level names that are properties: ``@property`` methods, or ``name = factory(...)``."""
    out = set()
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and any(isinstance(d, ast.Name) and d.id == "property"
                                                     for d in stmt.decorator_list):
            out.add(stmt.name)
        elif (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
              and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in factories):
            out |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    return out


def _class_level(cls):
    names = set()
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
    return names


def _extension_type_ok(cls, factories):
    if cls.bases or cls.keywords or cls.decorator_list and not all(
            isinstance(d, ast.Attribute) and d.attr == "cclass" for d in cls.decorator_list):
        return False
    return not (_stored_attrs(cls, on_self=True) & _class_level(cls)) - _class_properties(cls, factories)


def _to_extension_type(cls, foreign, factories=()):
    """Make a plain class a Cython extension type; its attributes and C methods, for the module's .pxd.

    Declared: every attribute its methods assign on ``self`` and every name
    the firmware assigns on other objects; an attribute that only ever
    receives ``X(...)`` (X a class of the firmware) may be declared as X
    (see pxd_source). A class with a base, a decorator, or a class-level
    name that is also an instance attribute stays as it is (None), unless
    that name is a property (``@property``, or made by one of the module's
    ``factories``: then storing it calls the setter, in either kind of class).
    """
    if not _extension_type_ok(cls, factories):
        return None
    attrs = dict.fromkeys(sorted((_stored_attrs(cls, on_self=True) | foreign) - _class_level(cls)))
    methods = [f for f in cls.body if isinstance(f, ast.FunctionDef) and _c_callable(f)
               and f.args.args and f.args.args[0].arg == "self"]
    cls.decorator_list = [_cython_attr("cclass")]
    return {"attrs": attrs, "methods": methods}


def _stores(cls, attr):
    """(statement, value, method) of every store of ``self.<attr>`` in ``cls``; value None if not ``self.attr = v``."""
    out = []
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                for n in ast.walk(t):
                    if _self_attr(n) == attr and isinstance(n.ctx, ast.Store):
                        simple = isinstance(node, ast.Assign) and len(node.targets) == 1 and t is n
                        out.append((node, node.value if simple else None, fn))
    return out


class _PackageTypes:
    """What the whole package's source proves about its attributes: a firmware class, or a list of one.

    ``self.x = X(...)`` on every store: x holds an X. ``self.x = [X(...),
    X(...)]`` on every store: a list of X (its items are checked where read:
    ``cython.cast(X, self.x[i], typecheck=True)`` raises TypeError on
    anything else). ``self.x = param`` in ``__init__``, where every
    ``K(...)`` in the package passes ``self.y`` of a typed y (or ``self``):
    y's type. An attribute the firmware stores on other objects is not
    typed. Views (_bind_views) are known across classes, so
    ``ptr32(self.axes[i].packed)`` reads AxisController's view of packed.
    """

    def __init__(self, trees, foreign):
        self.trees = trees  # {module: tree} (parsed copies; views are bound in them to learn which exist)
        self.classes = {}  # (module, name) -> ClassDef
        self.imports = {}  # module -> {local name: (module, name)}
        self.graph = {}  # module -> modules it imports from the package
        self.views = {}  # (module, class) -> {attr: typecode}
        for mod, tree in trees.items():
            factories = property_factories(tree)
            names = {}
            self.graph[mod] = set()
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and _extension_type_ok(node, factories):
                    self.classes[(mod, node.name)] = node
                elif isinstance(node, ast.ImportFrom) and node.level == 1:
                    if node.module:
                        self.graph[mod].add(node.module)
                        names.update({a.asname or a.name: (node.module, a.name) for a in node.names})
                    else:
                        self.graph[mod] |= {a.name for a in node.names}
            self.imports[mod] = names
            for cls, v in _bind_views(tree, foreign, factories).items():
                if cls is not None:
                    self.views[(mod, cls)] = v
        owners = {}
        for key, v in self.views.items():
            for attr, tc in v.items():
                owners.setdefault((attr, tc), []).append(key)
        # (attr, typecode) -> the classes with such a view: the fast paths of ptr32(obj.attr) on an untyped obj
        self.view_owners = {k: sorted(v) for k, v in owners.items()}
        self.types = {key: {} for key in self.classes}  # (module, class) -> {attr: ("class" | "list", key)}
        params = {}
        for (mod, name), cls in self.classes.items():
            for attr in sorted(_stored_attrs(cls, on_self=True) - foreign):
                t, p = self._direct(mod, cls, attr)
                if t:
                    self.types[(mod, name)][attr] = t
                elif p:
                    params[((mod, name), attr)] = p
        for _ in range(3):  # a parameter's type may come from another parameter's
            for (key, attr), p in params.items():
                t = self._from_constructions(key, p)
                if t:
                    self.types[key][attr] = t
        # a method's parameter: typed when every call of it in the package (on a typed object) passes one type
        self.params = {}  # (class key, method) -> {parameter: type}
        for _ in range(2):  # the second time with the first's parameter types (a typed parameter's calls)
            self._method_params()
        self.collecting = False

    def _method_params(self):
        self.collecting = True
        self.calls = {}  # (class key, method) -> [tuple of argument types, or None for a call we cannot read]
        self.untyped_calls = set()  # method names called somewhere on an object of unknown type
        for mod, tree in self.trees.items():
            for node in tree.body:
                if (mod, getattr(node, "name", None)) in self.classes:
                    _TypedUses(self, mod, (mod, node.name), set()).visit(copy.deepcopy(node))
                else:  # module-level code, functions, Python classes: every method call there is untyped
                    self.untyped_calls |= {n.func.attr for n in ast.walk(node)
                                           if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        self.params = {}
        for (key, meth), sites in self.calls.items():
            fn = next((f for f in self.classes[key].body if isinstance(f, ast.FunctionDef) and f.name == meth), None)
            if (fn is None or None in sites or meth in self.untyped_calls or fn.args.vararg or fn.args.kwonlyargs
                    or fn.args.defaults):
                continue
            names = [a.arg for a in fn.args.args[1:]]
            rebound = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
            for j, pname in enumerate(names):
                kinds = {site[j] if j < len(site) else None for site in sites}
                if len(kinds) == 1 and None not in kinds and pname not in rebound:
                    self.params.setdefault((key, meth), {})[pname] = kinds.pop()

    def resolve(self, mod, name):
        key = (mod, name) if (mod, name) in self.classes else self.imports.get(mod, {}).get(name)
        return key if key in self.classes else None

    def _direct(self, mod, cls, attr):
        """(type, None), or (None, parameter name) for ``self.attr = param`` in __init__, or (None, None)."""
        kinds = set()
        for _, v, fn in _stores(cls, attr):
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and self.resolve(mod, v.func.id):
                kinds.add(("class", self.resolve(mod, v.func.id)))
            elif (isinstance(v, ast.List) and v.elts and all(isinstance(e, ast.Call) and isinstance(e.func, ast.Name)
                                                             for e in v.elts)
                  and len({self.resolve(mod, e.func.id) for e in v.elts}) == 1 and self.resolve(mod, v.elts[0].func.id)):
                kinds.add(("list", self.resolve(mod, v.elts[0].func.id)))
            elif (isinstance(v, ast.Name) and fn.name == "__init__"
                  and v.id in [a.arg for a in fn.args.args[1:]]):
                kinds.add(("param", v.id))
            else:
                return None, None
        if len(kinds) != 1:
            return None, None
        kind = kinds.pop()
        return (None, kind[1]) if kind[0] == "param" else (kind, None)

    def _from_constructions(self, key, param):
        init = next((f for f in self.classes[key].body if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                    None)
        names = [a.arg for a in init.args.args[1:]]
        index = names.index(param)
        found = set()
        for (mod, name), cls in self.classes.items():
            for node in ast.walk(cls):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and self.resolve(mod, node.func.id) == key):
                    continue
                arg = node.args[index] if index < len(node.args) else next(
                    (k.value for k in node.keywords if k.arg == param), None)
                if isinstance(arg, ast.Name) and arg.id == "self":
                    found.add(("class", (mod, name)))
                elif _self_attr(arg) is not None:
                    found.add(self.types[(mod, name)].get(arg.attr))
                else:
                    found.add(None)
        # a class constructed nowhere in the package (by its users only) keeps its attribute untyped
        return found.pop() if len(found) == 1 else None

    def reaches(self, a, b):
        """Module a imports b, directly or through others (a cimport b -> a would be a cycle)."""
        seen, todo = set(), [a]
        while todo:
            m = todo.pop()
            if m == b:
                return True
            if m not in seen:
                seen.add(m)
                todo += self.graph.get(m, ())
        return False

    def usable(self, mod, key, cimports):
        """The name class ``key`` has in module ``mod`` (cimported if need be), or None (an import cycle)."""
        if key[0] == mod:
            return key[1]
        for local, target in self.imports.get(mod, {}).items():
            if target == key:
                return local
        bound = {n.id for n in ast.walk(self.trees[mod]) if isinstance(n, ast.Name)}
        if key[1] in bound or self.reaches(key[0], mod):
            return None
        cimports.add(key)
        return key[1]


class _TypedUses(ast.NodeTransformer):
    """Inside one class's methods: list items read as their class (a checked cast), views across classes."""

    def __init__(self, types, mod, key, cimports):
        self.types = types
        self.mod = mod
        self.key = key
        self.cimports = cimports
        self.env = None
        self.viper = False

    def visit_FunctionDef(self, node):
        if self.env is not None:
            return node  # a nested function: its names are its own
        counts = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                counts[n.id] = counts.get(n.id, 0) + 1
        for a in node.args.args:
            counts[a.arg] = counts.get(a.arg, 0) + 2  # parameters are no aliases
        self.once = {k for k, v in counts.items() if v == 1}
        self.env = {"self": ("class", self.key)} if self.key else {}  # key None: a module-level function
        self.env.update(self.types.params.get((self.key, node.name), {}))
        self.viper = any(_is_mp_decorator(d, "viper") for d in node.decorator_list)
        self.generic_visit(node)
        self.env = None
        return node

    def visit_Assign(self, node):
        if self.env is None:
            return node
        node.value = self.visit(node.value)
        t = node.targets[0] if len(node.targets) == 1 else None
        if isinstance(t, ast.Name) and t.id in self.once and getattr(node.value, "ctype", None):
            self.env[t.id] = node.value.ctype
        v = node.value
        if (self.viper and isinstance(t, ast.Name) and isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
                and v.func.id in _VIEW_TYPECODES and len(v.args) == 1 and isinstance(v.args[0], ast.Attribute)
                and not getattr(v.args[0].value, "ctype", None)):
            return self._view_fast_path(node, t.id, v.func.id, v.args[0])
        return node

    def _view_fast_path(self, node, name, cast, arg):
        """``p = ptr32(obj.x)``, obj of unknown type: if obj's type is exactly a class that keeps a view of x,
        that view, else a view made of obj.x as before (the same array either way)."""
        owners = [self.types.usable(self.mod, k, self.cimports)
                  for k in self.types.view_owners.get((arg.attr, _VIEW_TYPECODES[cast][0]), ())]
        if not owners or None in owners:
            return node
        tmp = "_cy_" + name

        def load(n):
            return ast.Name(id=n, ctx=ast.Load())

        def assign(value):
            return [ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)]

        chain = assign(ast.Attribute(value=load(tmp), attr=arg.attr, ctx=ast.Load()))
        for cname in reversed(owners):
            is_owner = ast.Compare(left=ast.Call(func=load("type"), args=[load(tmp)], keywords=[]), ops=[ast.Is()],
                                   comparators=[load(cname)])
            fast = ast.Attribute(value=ast.Call(func=_cython_attr("cast"), args=[load(cname), load(tmp)],
                                                keywords=[]), attr=VIEW_PREFIX + arg.attr, ctx=ast.Load())
            chain = [ast.If(test=is_owner, body=assign(fast), orelse=chain)]
        view = ast.Subscript(value=_cython_attr(_PTR_VIEWS[cast]), slice=ast.Slice(), ctx=ast.Load())
        out = [ast.Assign(targets=[ast.Name(id=tmp, ctx=ast.Store())], value=arg.value),
               ast.AnnAssign(target=ast.Name(id=name, ctx=ast.Store()), annotation=view, simple=1)] + chain
        return [ast.copy_location(n, node) for n in out]

    def visit_Name(self, node):
        if self.env is not None and isinstance(node.ctx, ast.Load) and node.id in self.env:
            node.ctype = self.env[node.id]
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        t = getattr(node.value, "ctype", None)
        if isinstance(node.ctx, ast.Load) and t and t[0] == "class":
            node.ctype = self.types.types.get(t[1], {}).get(node.attr)
        return node

    def visit_Subscript(self, node):
        self.generic_visit(node)
        t = getattr(node.value, "ctype", None)
        if isinstance(node.ctx, ast.Load) and t and t[0] == "list":
            name = self.types.usable(self.mod, t[1], self.cimports)
            if name:
                cast = ast.Call(func=_cython_attr("cast"), args=[ast.Name(id=name, ctx=ast.Load()), node],
                                keywords=[ast.keyword(arg="typecheck", value=ast.Constant(True))])
                cast.ctype = ("class", t[1])
                return ast.copy_location(cast, node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        t = getattr(f.value, "ctype", None) if isinstance(f, ast.Attribute) else None
        if isinstance(f, ast.Attribute) and self.types.collecting:  # the calls, for _method_params
            if t and t[0] == "class":
                site = None if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) else tuple(
                    getattr(a, "ctype", None) for a in node.args)
                self.types.calls.setdefault((t[1], f.attr), []).append(site)
            else:
                self.types.untyped_calls.add(f.attr)  # on an object of unknown type: any class's method
        if not (self.viper and isinstance(node.func, ast.Name) and node.func.id in _VIEW_TYPECODES
                and len(node.args) == 1 and isinstance(node.args[0], ast.Attribute)):
            return node
        arg = node.args[0]
        t = getattr(arg.value, "ctype", None)
        if t and t[0] == "class" and self.types.views.get(t[1], {}).get(arg.attr) == _VIEW_TYPECODES[node.func.id][0] \
                and self.types.usable(self.mod, t[1], self.cimports):
            node.args = [ast.Attribute(value=arg.value, attr=VIEW_PREFIX + arg.attr, ctx=ast.Load())]
        return node


def transform_module(source, filename="<firmware>", foreign=None, types=None, module=None):
    """A firmware module's source rewritten for Cython (module docstring), and what its .pxd declares.

    ``foreign``: attribute names assigned on other objects across the package
    (:func:`foreign_attrs`); None leaves the classes as Python classes and
    declares nothing (no .pxd). ``types``: the package's :class:`_PackageTypes`
    (``module``: this module's name in it); None: this module alone.
    """
    tree = ast.parse(source, filename)
    info = _ModuleInfo()
    if foreign is not None:
        if types is None:
            module = module or "_module"
            types = _PackageTypes({module: ast.parse(source, filename)}, foreign)
        info.views = _bind_views(tree, foreign, property_factories(tree))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and (module, node.name) in types.classes:
                _TypedUses(types, module, (module, node.name), info.cimports).visit(node)
            elif isinstance(node, ast.FunctionDef):
                _TypedUses(types, module, None, info.cimports).visit(node)
    t = _Transform(_module_consts(tree))
    tree = t.visit(tree)
    if foreign is not None:
        factories = property_factories(tree)
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                cls = _to_extension_type(node, foreign, factories)
                if cls is not None:
                    for attr, kind in types.types.get((module, node.name), {}).items():
                        if kind[0] == "class":  # declared as that class (in this module's name for it)
                            cls["attrs"][attr] = types.usable(module, kind[1], info.cimports)
                    for fn in cls["methods"]:  # a parameter every call passes one firmware class: declared so
                        fn.ctypes = {p: types.usable(module, kind[1], info.cimports) for p, kind in
                                     types.params.get(((module, node.name), fn.name), {}).items()
                                     if kind[0] == "class"}
                    info.classes[node.name] = cls
                    t.changed = True
            elif isinstance(node, ast.FunctionDef) and _c_callable(node):
                info.functions.append(node)
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                info.imports += [(node.module, a.name, a.asname) for a in node.names]
    if t.changed:
        # after the docstring: `import cython` (pure-Python mode; a no-op shim when not compiled)
        at = 1 if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
            else 0
        tree.body.insert(at, ast.Import(names=[ast.alias(name="cython")]))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", info


def transform_source(source, filename="<firmware>", foreign=None):
    """A firmware module's source, rewritten for Cython as the module docstring says (:func:`transform_module`)."""
    return transform_module(source, filename, foreign)[0]


def _is_cython_long(annotation):
    return isinstance(annotation, ast.Attribute) and annotation.attr == "long"


def _cpdef(fn):
    """The .pxd line of a C-callable function: viper's machine-word arguments and return as C long."""
    a = fn.args
    first_default = len(a.args) - len(a.defaults)
    params = []
    for k, arg in enumerate(a.args):
        if arg.arg == "self" and k == 0:
            params.append("self")
            continue
        ctype = "long" if _is_cython_long(arg.annotation) else getattr(fn, "ctypes", {}).get(arg.arg) or "object"
        params.append(ctype + " " + arg.arg + ("=*" if k >= first_default else ""))
    ret = "long" if _is_cython_long(fn.returns) else "object"
    # a C long return propagates a Python exception (a ZeroDivisionError, an OverflowError) as -1 + the error
    return "cpdef %s %s(%s)%s" % (ret, fn.name, ", ".join(params), " except? -1" if ret == "long" else "")


def exports(info):
    """{name: "class" | "function"}: what other modules of the package may cimport from this one."""
    out = {f.name: "function" for f in info.functions}
    out.update({name: "class" for name in info.classes})
    return out


def pxd_source(info, package_exports):
    """The .pxd of a transformed module: its extension types' attributes and C methods, its cpdef functions.

    ``package_exports``: {module: exports(info)} for the whole package. What
    a module imports from another that the other declares is cimported, so
    calling it is a C call. An attribute is declared as a firmware class X
    when every store of it in its class is ``X(...)`` (and the firmware
    sets it on no other object): then ``self.est.update(...)`` is a C call
    through X's method table; anything else stored there raises TypeError.
    """
    lines = []
    known = dict.fromkeys(info.classes, "class")  # class names usable as attribute types here
    for module, name, asname in info.imports:
        kind = package_exports.get(module, {}).get(name)
        if kind:
            lines.append("from .%s cimport %s%s" % (module, name, " as " + asname if asname else ""))
            if kind == "class":
                known[asname or name] = "class"
    for module, name in sorted(info.cimports):
        if package_exports.get(module, {}).get(name) == "class":
            lines.append("from .%s cimport %s" % (module, name))
            known[name] = "class"
    lines += ["cdef class %s" % name for name in info.classes]  # forward declarations: any order below
    lines += ["cdef %s[:] %s%s" % (_VIEW_ITEM[tc], VIEW_PREFIX, name) for name, tc in info.views.get(None, {}).items()]
    lines += [_cpdef(f) for f in info.functions]
    for name, cls in info.classes.items():
        lines.append("cdef class %s:" % name)
        views = info.views.get(name, {})
        body = []
        for attr, kind in cls["attrs"].items():
            if attr in views:
                body.append("    cdef readonly object %s" % attr)
            elif attr[len(VIEW_PREFIX):] in views and attr.startswith(VIEW_PREFIX):
                body.append("    cdef %s[:] %s" % (_VIEW_ITEM[views[attr[len(VIEW_PREFIX):]]], attr))
            else:
                body.append("    cdef public %s %s" % (kind if kind in known else "object", attr))
        body += ["    " + _cpdef(f) for f in cls["methods"]]
        lines += body or ["    pass"]
    return "\n".join(lines) + "\n" if lines else None


def firmware_files(sources, not_compiled=NOT_COMPILED, python_classes=PYTHON_CLASSES):
    """{file name: text} of the compiled package: each module transformed, and its generated .pxd.

    ``sources``: {file name: text} of the package (the firmware's: :func:`_sources`).
    """
    foreign = foreign_attrs(src for name, src in sources.items() if name not in not_compiled)
    typed = {name: src for name, src in sources.items() if name not in not_compiled + python_classes}
    types = _PackageTypes({name[:-3]: ast.parse(src, name) for name, src in typed.items()}, foreign)
    out = {}
    infos = {}
    for name, src in sources.items():
        if name not in not_compiled:
            src, infos[name[:-3]] = transform_module(src, str(FIRMWARE_DIR / name),
                                                     foreign if name in typed else None, types, name[:-3])
        out[name] = src
    package_exports = {m: exports(info) for m, info in infos.items()}
    for m, info in infos.items():
        pxd = pxd_source(info, package_exports)
        if pxd:
            out[m + ".pxd"] = pxd
    return out


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
    # this file too: an edited transform never picks up a build of the old one
    for part in (TRANSFORM_VERSION, Path(__file__).read_text(), cython_version, sys.version,
                 sysconfig.get_platform()):
        h.update(part.encode() + b"\0")
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return h.hexdigest()[:16]


_BUILD_SCRIPT = r"""
import sys
from Cython.Build import cythonize
from setuptools import setup
mods = sys.argv[1:]
# nonecheck: a typed attribute not yet set (None) raises AttributeError, as it does interpreted, instead of crashing
setup(ext_modules=cythonize(mods, language_level=3, quiet=True, compiler_directives={"nonecheck": True}),
      script_args=["-q", "build_ext", "--inplace", "-j", "2", "--build-temp", "build"])
"""


def build(cache_root=None):
    """Build (or find in the cache) the compiled firmware; returns the package's directory."""
    cython_version = cython_version_or_error("firmware mode 'compiled' needs Cython: pip install -e '.[dev]' (or "
                                             "pip install cython), or use --firmware inprocess")
    sources = _sources()
    return build_package("compiled-firmware", "opensteady_fw_" + _key(sources, cython_version),
                         lambda: firmware_files(sources), [name for name in sources if name not in NOT_COMPILED],
                         cache_root, "building the compiled firmware failed (it needs a C compiler such as gcc and "
                         "the Python headers; or use --firmware inprocess)")


def cython_version_or_error(message):
    """Cython's version, or CompileError(message) when it is not installed."""
    try:
        import Cython
    except ImportError:
        raise CompileError(message) from None
    return Cython.__version__


def build_package(kind, package, files, compiled, cache_root=None, failed="building the extension modules failed",
                  cflags=_CFLAGS):
    """Build (or find in the cache) a package of Cython extension modules; returns the package's directory.

    The one cached build behind the compiled firmware and the compiled simulator (sim/compiled_sim.py).
    ``package``: its import name, ending in the key of everything that goes into it (the cache key);
    ``files()``: {file name: text} to write into it (called only to build); ``compiled``: which of those
    Cython compiles (a ``.pxd`` among the files types the ``.py`` of its name); ``failed``: the error's
    first line. Builds live in ``<cache>/<kind>/<key>``; the KEEP_BUILDS newest are kept.
    """
    key = package.rsplit("_", 1)[-1]
    root = Path(cache_root) if cache_root else _cache_root()
    final = root / kind / key
    if (final / "BUILT").exists():
        return final / package
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=key + ".", dir=final.parent))
    try:
        pkg = tmp / package
        pkg.mkdir()
        for name, text in files().items():
            (pkg / name).write_text(text)
        env = dict(os.environ)
        env["CFLAGS"] = (env.get("CFLAGS", "") + " " + cflags).strip()
        proc = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT] + [package + "/" + n for n in compiled], cwd=tmp,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-BUILD_OUTPUT_TAIL_LINES:])
            raise CompileError(failed + ":\n" + tail)
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
    return import_package(build(cache_root), "app")


def import_package(pkg_dir, first):
    """Import a built package (from :func:`build_package`) once per process, and its module ``first``."""
    name = pkg_dir.name
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(name, pkg_dir / "__init__.py",
                                                      submodule_search_locations=[str(pkg_dir)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        importlib.import_module(name + "." + first)
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
