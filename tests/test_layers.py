"""The floors stay visible: a contract, checked by parsing every import of every module, at module
level and inside functions (``__import__("...")`` and ``importlib.import_module("...")`` with a
literal name count too), relative imports resolved.

- **The format floor** (``core/``, the bare ``aksnap``: bundle, writer, pack, redact, errors,
  output) imports no other floor; the one exception is ``aksnap/__main__.py``, which runs the
  CLI (``python -m aksnap``) and so imports the composition floor.
- **The layers** import the format floor only, never each other: ``exporter``, ``analyzer``,
  ``fixtures`` and ``queries`` (the analyzer's SQL files, which the analyzer alone reads).
- **The composition floor** (``cli/``, ``aksnap.cli``: the CLI entry, demo, watch) may import
  anything; nothing imports it.
- The internal import graph has no cycle, and no module imports another's private name
  (``from m import _x``, or ``m._x`` through an imported module).
- Third-party limits: the exporter never imports duckdb or rustworkx; the analyzer never grpc,
  armonik or ptars (a laptop needs none of them); the simulated control plane neither duckdb
  nor rustworkx.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> folder, as pyproject.toml maps them (``aksnap.cli`` -> ``cli``).
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())[
    "tool"]["setuptools"]["package-dir"]
#: package -> floor name
FLOORS = {pkg: ("core" if pkg == "aksnap" else pkg.split(".")[1]) for pkg in PACKAGE_DIRS}
LAYERS = ("exporter", "analyzer", "fixtures", "queries")
#: the floors each floor may import (besides itself)
ALLOWED = {
    "core": set(),
    "exporter": {"core"},
    "analyzer": {"core", "queries"},
    "fixtures": {"core"},
    "queries": {"core"},
    "cli": {"core", *LAYERS},
}
#: (importer, imported) pairs allowed across the rule, each for a reason said in the docstring
EXCEPTIONS = {("aksnap.__main__", "aksnap.cli")}

FORBIDDEN_THIRD_PARTY = {
    "exporter": {"duckdb", "rustworkx"},
    "analyzer": {"grpc", "armonik", "ptars"},
    "fixtures": {"duckdb", "rustworkx"},
}


@dataclass(frozen=True)
class Import:
    importer: str   # the module that imports
    target: str     # the module imported from (absolute; may be outside the package)
    name: str | None  # the name taken from it (``from target import name``), else None
    line: int
    in_function: bool
    bound: str | None = None  # the local name a module import binds (``import a.b as m``: m)

    def where(self) -> str:
        return f"{self.importer}:{self.line}{' (in a function)' if self.in_function else ''}"


def package_modules(package_dirs: dict[str, str] = PACKAGE_DIRS,
                    root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    mods = {}
    for pkg, folder in package_dirs.items():
        for py in sorted((root / folder).glob("*.py")):
            mods[pkg if py.stem == "__init__" else f"{pkg}.{py.stem}"] = py
    return mods


def _literal_import(node: ast.AST) -> str | None:
    """``__import__("a.b")`` or ``importlib.import_module("a.b")``: the name, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    f = node.func
    called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    arg = node.args[0]
    if called in ("__import__", "import_module") and isinstance(arg, ast.Constant) \
            and isinstance(arg.value, str) and not arg.value.startswith("."):
        return arg.value
    return None


def imports_of(module: str, path: Path, mods: dict[str, Path]) -> list[Import]:
    """Every import in ``path`` (module ``module``), resolved to absolute module names; a
    ``from m import x`` where ``m.x`` is a module imports that module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    in_func = {id(n) for f in ast.walk(tree) if isinstance(f, functions)
               for n in ast.walk(f) if n is not f}
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        inside = id(node) in in_func
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, None, node.lineno, inside,
                             a.asname or a.name.partition(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for a in node.names:
                sub = f"{source}.{a.name}"
                if sub in mods:
                    found.append(Import(module, sub, None, node.lineno, inside, a.asname or a.name))
                else:
                    found.append(Import(module, source, a.name, node.lineno, inside))
        elif (name := _literal_import(node)) is not None:
            found.append(Import(module, name, None, node.lineno, inside))
    return found


def internal(target: str, mods: dict[str, Path]) -> str | None:
    """The package module ``target`` names (``aksnap.bundle.X`` -> ``aksnap.bundle``), or None
    for a module outside the package."""
    t = target
    while t not in mods and "." in t:
        t = t.rpartition(".")[0]
    return t if t in mods else None


def floor_of(module: str, floors: dict[str, str] = FLOORS) -> str:
    pkg = max((p for p in floors if module == p or module.startswith(p + ".")), key=len)
    return floors[pkg]


def import_graph(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[Import]]:
    """The internal import graph (module -> modules it imports) and every import."""
    every = [imp for m, p in mods.items() for imp in imports_of(m, p, mods)]
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for imp in every:
        t = internal(imp.target, mods)
        if t is not None and t != imp.importer:
            edges[imp.importer].add(t)
    return edges, every


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(mods: dict[str, Path], every: list[Import]) -> list[str]:
    """Private names one module takes from another: imported (``from m import _x``) or reached
    through an imported module (``import m; m._x``, ``from pkg import m as n; n._x``,
    ``aksnap.m._x``)."""
    bad = [f"{imp.where()} imports {imp.target}.{imp.name}" for imp in every
           if imp.name and _private(imp.name)
           and internal(imp.target, mods) not in (None, imp.importer)]
    for m, path in mods.items():
        # the names this module binds to modules: ``bw`` -> aksnap.bundle_writer,
        # ``aksnap`` (``import aksnap.x``) -> aksnap
        aliases = {i.bound: (i.target if i.bound != i.target.partition(".")[0] else i.bound)
                   for i in every if i.importer == m and i.bound}
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            chain, base = [], node.value
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                target = ".".join([aliases[base.id], *chain])
                if target in mods and target != m:
                    bad.append(f"{m}:{node.lineno} uses {target}.{node.attr}")
    return bad


def floor_crossings(mods: dict[str, Path], every: list[Import], floors: dict[str, str] = FLOORS,
                    allowed: dict[str, set[str]] = ALLOWED, exceptions=EXCEPTIONS) -> list[str]:
    bad = []
    for imp in every:
        t = internal(imp.target, mods)
        if t is None or (imp.importer, t) in exceptions:
            continue
        a, b = floor_of(imp.importer, floors), floor_of(t, floors)
        if a != b and b not in allowed[a]:
            bad.append(f"{imp.where()} imports {t} ({a} -> {b})")
    return bad


MODS = package_modules()
EDGES, EVERY = import_graph(MODS)


def test_every_folder_of_pyproject_is_read():
    """Given pyproject's package-dir, then every floor is known and every module is parsed
    (a new folder cannot slip past the contract)."""
    assert set(FLOORS.values()) == set(ALLOWED), FLOORS
    assert {"aksnap.bundle", "aksnap.errors", "aksnap.cli", "aksnap.cli.watch", "aksnap.cli.demo",
            "aksnap.exporter.api", "aksnap.analyzer.graph", "aksnap.fixtures.server",
            "aksnap.queries"} <= set(MODS)
    assert not (ROOT / "core" / "cli.py").exists(), "the CLI entry belongs to cli/"
    folders = {p.parent.name for p in ROOT.glob("*/*.py")} - {"tests", "bench"}
    assert folders <= set(PACKAGE_DIRS.values()), f"code outside the package: {folders}"


def test_floors_import_only_what_is_below_them():
    """Given every import (module and function level), when each is placed on its floor, then
    the format floor imports no other floor (aksnap.__main__ -> aksnap.cli aside), each layer
    only the format floor (the analyzer its SQL files too), and nothing imports the
    composition floor."""
    bad = floor_crossings(MODS, EVERY)
    assert not bad, "floor crossing:\n" + "\n".join(bad)
    assert [i for i in EVERY if i.importer == "aksnap.__main__" and internal(i.target, MODS)
            == "aksnap.cli"], "aksnap.__main__ no longer runs the CLI: drop it from EXCEPTIONS"


def test_the_import_graph_has_no_cycle():
    """Given the internal import graph, counting imports inside functions, then no module
    reaches itself."""
    found = cycles(EDGES)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_takes_another_modules_private_name():
    """Given every import and every ``module._name`` reached through one, then no private
    name (``_x``) is used outside its module: make it public (with a docstring) or move it."""
    bad = private_uses(MODS, EVERY)
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_THIRD_PARTY))
def test_layer_never_imports_what_it_must_not(layer):
    """Given every module of a layer, when its imports are parsed, then none is forbidden."""
    offenders = [f"{i.where()} imports {i.target}" for i in EVERY
                 if floor_of(i.importer) == layer
                 and any(i.target == b or i.target.startswith(b + ".")
                         for b in FORBIDDEN_THIRD_PARTY[layer])]
    assert not offenders, "layer crossing:\n" + "\n".join(offenders)


def test_the_contract_detects_a_crossing_a_cycle_and_a_private_name(tmp_path):
    """The checker itself can fail. Given a tiny package: a format-floor module importing the
    composition floor inside a function (the old ``from aksnap.cli import fail``), a layer
    importing another layer through ``__import__``, two modules importing each other (one of
    them relatively), a private name imported and another reached as ``module._x``, and a
    layer importing duckdb, then each is reported."""
    dirs = {"aksnap": "core", "aksnap.exporter": "exporter", "aksnap.analyzer": "analyzer",
            "aksnap.cli": "cli"}
    floors = {pkg: ("core" if pkg == "aksnap" else pkg.split(".")[1]) for pkg in dirs}
    for folder in dirs.values():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "core" / "pack.py").write_text(
        "from aksnap.bundle_writer import _rename2\n"
        "def cmd():\n    from aksnap.cli import fail\n    raise fail('x')\n")
    (tmp_path / "core" / "bundle_writer.py").write_text("from . import pack\n_rename2 = 1\n")
    (tmp_path / "exporter" / "api.py").write_text(
        "import duckdb\nfrom aksnap import bundle_writer as bw\n"
        "def f():\n    __import__('aksnap.analyzer.graph')\n    return bw._rename2\n")
    (tmp_path / "analyzer" / "graph.py").write_text("")
    (tmp_path / "cli" / "__init__.py").write_text("from aksnap import pack\n")
    mods = package_modules(dirs, tmp_path)
    edges, every = import_graph(mods)
    crossings = floor_crossings(mods, every, floors, {**ALLOWED, "queries": set()})
    assert "aksnap.pack:3 (in a function) imports aksnap.cli (core -> cli)" in crossings, crossings
    assert any(c.startswith("aksnap.exporter.api:4 (in a function)") and "(exporter -> analyzer)"
               in c for c in crossings), crossings
    assert cycles(edges) == [["aksnap.bundle_writer", "aksnap.cli", "aksnap.pack"]]
    priv = private_uses(mods, every)
    assert "aksnap.pack:1 imports aksnap.bundle_writer._rename2" in priv, priv
    assert "aksnap.exporter.api:5 uses aksnap.bundle_writer._rename2" in priv, priv
    assert any(i.target == "duckdb" and floor_of(i.importer, floors) == "exporter" for i in every)
