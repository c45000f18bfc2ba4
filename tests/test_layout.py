"""The package's layout rules: entry points at the top, internals by concern, no private imports."""
import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
PKG = REPO / "tfwarm_export"

TOP_LEVEL = {"__init__", "api", "check", "config", "context", "errors", "report",  # the public surface
             "cli", "keras", "components", "beam", "fleet", "saving"}  # entry points users import or run


def test_top_level_holds_only_the_public_surface_and_entry_points():
    modules = {p.stem for p in PKG.glob("*.py")}
    assert modules == TOP_LEVEL, (f"new top-level module(s) {sorted(modules - TOP_LEVEL)}: internals go in "
                                  "the folder of their concern (see DEVELOPERS.md's code map)")
    folders = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert {"model", "analysis", "planning", "values", "serving", "traffic", "bench", "_cli", "specs", "_support"} <= folders


def _private_imports(path: pathlib.Path) -> list[str]:
    """``from tfwarm_export.x import _name`` and ``module._name`` on an imported tfwarm_export module."""
    tree = ast.parse(path.read_text())
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfwarm_export"):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name.startswith("tfwarm_export") and a.asname}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    offenders = {str(p.relative_to(REPO)): names for p in sorted(PKG.rglob("*.py"))
                 if (names := _private_imports(p))}
    assert not offenders, f"make these public where they live, or move them: {offenders}"


def test_the_private_import_check_sees_both_forms(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from tfwarm_export.serving import replay\nfrom tfwarm_export.saving import _x\n"
                     "replay._hidden()\n")
    assert _private_imports(probe) == ["tfwarm_export.saving._x", "replay._hidden"]
