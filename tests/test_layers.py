"""The layers stay visible: a contract, checked by parsing every module's imports.

- exporter never imports duckdb, rustworkx or the analyzer;
- analyzer never imports grpc, armonik or the exporter (a laptop needs none of them);
- fixtures (the simulated control plane) never imports the exporter or the analyzer;
- the root package's bundle format imports neither layer.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "exporter": {"duckdb", "rustworkx", "aksnap.analyzer", "analyzer"},
    "analyzer": {"grpc", "armonik", "ptars", "aksnap.exporter", "exporter", "aksnap.fixtures"},
    "fixtures": {"aksnap.exporter", "aksnap.analyzer", "duckdb", "rustworkx"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def crosses(mod: str, banned: set[str]) -> bool:
    return any(mod == b or mod.startswith(b + ".") for b in banned)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_never_imports_what_it_must_not(layer):
    """Given every .py file of a layer, when its imports are parsed, then none is forbidden."""
    offenders = []
    for py in sorted((ROOT / layer).rglob("*.py")):
        for mod in imported_modules(py):
            if crosses(mod, FORBIDDEN[layer]):
                offenders.append(f"{py.relative_to(ROOT)} imports {mod}")
    assert not offenders, "layer crossing:\n" + "\n".join(offenders)


def test_bundle_format_module_imports_no_layer():
    """The bundle format is shared by exporter and analyzer, so it depends on neither."""
    mods = imported_modules(ROOT / "core" / "bundle.py")
    assert not [m for m in mods if crosses(m, {"aksnap.exporter", "aksnap.analyzer", "grpc", "duckdb"})]


def test_the_contract_detects_a_crossing(tmp_path):
    """The checker itself can fail: a file importing duckdb is reported."""
    f = tmp_path / "x.py"
    f.write_text("import duckdb\nfrom aksnap.analyzer import graph\n")
    mods = imported_modules(f)
    assert crosses("duckdb", FORBIDDEN["exporter"]) and any(crosses(m, FORBIDDEN["exporter"]) for m in mods)
