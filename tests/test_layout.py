"""The package's layout rules: entry points at the top, internals by concern, layers that only point down,
no import cycles, no private imports, no function over 80 lines."""
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


# --------------------------------------------------------------------------- imports


def imports_of(path: pathlib.Path, package: str = "tfwarm_export") -> list[tuple[int, str]]:
    """``(line, module)`` for every ``package`` module ``path`` imports, at module level or inside
    functions (``from package import x`` names ``package.x``, a module or a name of ``__init__``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name == package or a.name.startswith(package + ".")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == package or node.module.startswith(package + ".")):
            if node.module == package:
                out += [(node.lineno, f"{package}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def _modules(pkg: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module under ``pkg``."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg.parent).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    return out


def test_no_import_cycles_between_modules():
    modules = _modules(PKG)
    graph = {m: {i for _, i in imports_of(p) if i in modules and i != m and i != "tfwarm_export"}
             for m, p in modules.items() if m != "tfwarm_export"}
    assert "tfwarm_export.cli" not in graph["tfwarm_export.bench.command"]

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return trail + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [c for m in graph if (c := cycle_from(m))]
    assert not cycles, cycles[0]


# --------------------------------------------------------------------------- layers

LAYERS: tuple[tuple[str, ...], ...] = (
    # Entry points: what users run or import. bench is the ``tfwarm bench`` command and runs api's
    # plan and build, so it stands above api, beside the other commands.
    ("__init__", "cli", "keras", "components", "saving", "fleet", "bench"),
    # The public operations (report: what they return) and the edge that resolves the configuration
    # once (context, issue 25): everything below takes what it resolved.
    ("api", "check", "beam", "report", "context"),
    ("_cli",),       # argparse plumbing shared by tfwarm and tfwarm bench: argv -> WarmupConfig
    ("planning",),   # signature -> records; requests are built from records, after planning
    ("config",),     # WarmupConfig: the options as data, read by _cli, the planner and the edge
    ("serving",),    # TF Serving's rules: batching, server config, replay, the warmup file
    ("traffic",),    # datasets and request logs -> samples; never reaches up into serving
    ("values",),     # values for an input: synthetic tensors, tf.Examples, encoded strings
    ("model",),      # what the SavedModel declares (signatures read with analysis' tensor facts)
    ("analysis",),   # facts about the graph, over one GraphIndex
    ("specs", "_support", "errors"),  # leaves: shared types, runtime support; import nothing internal
)
"""Every folder and top-level module of tfwarm_export, top to bottom. A unit may import its own
layer and the layers below; the last layer (the leaves) imports nothing internal at all."""


def unit_of(module: str) -> str:
    """The layer unit of a dotted module: its folder, or its top-level module."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def upward_imports(pkg: pathlib.Path, layers=LAYERS) -> list[str]:
    """``file:line: a imports b`` for every import (module level or in a function) of ``pkg`` that runs
    back up ``layers``, that leaves a leaf, or that involves a unit ``layers`` does not place."""
    rank = {u: i for i, layer in enumerate(layers) for u in layer}
    leaves = set(layers[-1])
    found = []
    for module, path in _modules(pkg).items():
        src = unit_of(module)
        where = path.relative_to(pkg.parent)
        if src not in rank:
            found.append(f"{where}: {src} has no place in LAYERS")
            continue
        for line, target in imports_of(path, pkg.name):
            dst = unit_of(target)
            if dst == src:
                continue
            if dst not in rank:
                found.append(f"{where}:{line}: imports {target}, whose {dst} has no place in LAYERS")
            elif src in leaves or rank[dst] < rank[src]:
                found.append(f"{where}:{line}: {src} imports {target} ({dst} is not below {src})")
    return found


def test_layers_only_point_down():
    units = {p.stem for p in PKG.glob("*.py")} | {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    placed = {u for layer in LAYERS for u in layer}
    assert units <= placed, f"place {sorted(units - placed)} in LAYERS (tests/test_layout.py) and DEVELOPERS.md"
    upward = upward_imports(PKG)
    assert not upward, ("imports that run back up the layers (move the shared name down, into specs/ "
                        "if several layers need it):\n" + "\n".join(upward))


def test_the_layer_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "tfwarm_export"
    for folder, text in {"planning": "from tfwarm_export.specs.kinds import PREDICT\n",
                         "values": "def f():\n    from tfwarm_export.planning import plan\n",
                         "specs": "import tfwarm_export.errors\n"}.items():
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
        (pkg / folder / "mod.py").write_text(text)
    (pkg / "__init__.py").write_text("from tfwarm_export import api\n")
    (pkg / "api.py").write_text("from tfwarm_export.values import mod\n")
    (pkg / "errors.py").write_text("")
    assert sorted(upward_imports(pkg)) == [
        "tfwarm_export/specs/mod.py:1: specs imports tfwarm_export.errors (errors is not below specs)",
        "tfwarm_export/values/mod.py:2: values imports tfwarm_export.planning (planning is not below values)"]
    (pkg / "stray.py").write_text("")
    assert "tfwarm_export/stray.py: stray has no place in LAYERS" in upward_imports(pkg)


# --------------------------------------------------------------------------- function length

MAX_FUNCTION_LINES = 80

def long_functions(pkg: pathlib.Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``file:function`` -> lines (``def`` to last line, nested functions and methods included) over ``limit``."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out[f"{path.relative_to(pkg).as_posix()}:{node.name}"] = n
    return out


def test_no_function_is_longer_than_80_lines():
    long = long_functions(PKG)
    assert not long, f"split these into steps of at most {MAX_FUNCTION_LINES} lines: {long}"


def test_the_length_check_counts_nested_functions_and_methods(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    (tmp_path / "m.py").write_text(f"def fits():\n{body}\n\nclass C:\n    def method(self):\n"
                                   + body.replace("    ", "        ") + "        return 1\n")
    assert long_functions(tmp_path) == {"m.py:method": 81}
