"""The documentation: the README stays short, the site covers the API, docstrings have their
sections, every code block runs or says why not, and breaking an example fails the suite.

The examples themselves run through Sybil (``conftest.py`` at the root, configured in
``doc_examples.py``); this file checks what surrounds them.
"""
from __future__ import annotations

import importlib
import inspect
import pathlib
import re
import shutil
import unittest

import pytest

import doc_examples

REPO = doc_examples.REPO
DOCS = REPO / "docs"
INTEGRATION_MODULES = ("keras", "beam", "fleet", "components")
FRAMEWORK_HOOKS = re.compile(r"^(on_\w+|set_model|set_params|expand|setup|teardown)$")
"""Methods a framework calls (Keras callbacks, Beam PTransforms): documented by that framework."""
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n`]*)$", re.M)
EXECUTED = {"python", "bash"}
NOT_CODE = {"", "text"}
BLOCK = re.compile(r"^[ \t]*(`{3,})([^\n`]*)\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
"""Fence languages that hold output or file contents, not commands (```text, a bare fence)."""


def _doc_files() -> list[pathlib.Path]:
    return [REPO / "README.md"] + sorted(DOCS.rglob("*.md"))


# ---------------------------------------------------------------------------------- README


def test_readme_is_short_and_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 150, f"README.md has {len(text.splitlines())} lines; move content to docs/"
    # after the title (and the block's skip marker, an HTML comment) the first thing is the commands
    opening = re.sub(r"<!--.*?-->", "", text, flags=re.S).split("\n", 1)[1].lstrip()
    block = re.match(r"```bash\n(.*?)```", opening, re.S)
    assert block, "README.md must open with the two set-up commands"
    lines = [ln.split("#")[0].strip() for ln in block.group(1).strip().splitlines()]
    assert lines == ['pip install -e . && python examples/quickstart.py',
                     'pip install -e ".[test]" && python -m pytest -q']
    assert "](docs/index.md)" in text and "mkdocs serve" in text


# ------------------------------------------------------------------------ code blocks


def test_every_code_block_is_run_or_skipped_with_a_reason():
    """Every fenced block is python or bash (collected by Sybil) or output; every skip says why."""
    counted = {"executed": 0, "skipped": 0}
    for path in _doc_files():
        text = path.read_text()
        fences = FENCE.findall(text)
        opening = [lang.strip() for i, (_, lang) in enumerate(fences) if i % 2 == 0]
        for lang in opening:
            assert lang in EXECUTED | NOT_CODE, (f"{path.relative_to(REPO)}: a ```{lang} block; write "
                                                 "```python or ```bash (run by the tests) or ```text")
        for reason in re.findall(r"<!--\s*skip:\s*next(.*?)-->", text, re.S):
            assert re.fullmatch(r'\s*"[^"]{15,}"\s*', reason), \
                f"{path.relative_to(REPO)}: skip without a reason: {reason!r}"
        assert not re.search(r"<!--\s*skip:\s*(start|end)", text), "skip one block at a time, with its reason"
        document = doc_examples.DOCS.parse(path)
        starts = [e.region.start for e in document if e.region.evaluator is not None]
        skips = len(re.findall(r"<!--\s*skip:\s*next", text))
        for block in BLOCK.finditer(text):
            if block.group(2).strip() in EXECUTED:  # Sybil collected it: an example starts inside
                assert any(block.start() <= s < block.end() for s in starts), \
                    f"{path.relative_to(REPO)}: the block at offset {block.start()} is not collected"
                counted["executed"] += 1
        counted["executed"] -= skips
        counted["skipped"] += skips
    assert counted["executed"] > 4 * counted["skipped"], counted


def _run_page(path: pathlib.Path) -> None:
    """Evaluate every example of one page, in order, as the suite does (skips skipped)."""
    sybil = doc_examples.make_sybil(patterns=[path.name], path=str(path.parent))
    document = sybil.parse(path)
    sybil.setup(document.namespace)
    try:
        for example in document:
            try:
                example.evaluate()
            except unittest.SkipTest:
                pass
    finally:
        sybil.teardown(document.namespace)


@pytest.mark.parametrize("where, before, after", [
    ("python", "batching_parameters=", "batching_params="),      # a keyword renamed in one place
    ("bash", "tfwarm add     export/1 --batching-parameters", "tfwarm add     export/1 --batching-params"),
])
def test_breaking_a_documented_example_fails_the_suite(tmp_path, where, before, after):
    """The README as it is passes; with one option renamed in one place, it fails."""
    text = (REPO / "README.md").read_text()
    assert text.count(before) == 1, f"the README no longer holds {before!r}; pick another option to break"
    broken = tmp_path / "README.md"
    broken.write_text(text.replace(before, after))
    with pytest.raises(Exception) as failure:
        _run_page(broken)
    assert not isinstance(failure.value, unittest.SkipTest)
    message = str(failure.value)
    assert ("batching_params" in message) if where == "python" else ("exited 2, the page says 0" in message)


def test_the_unbroken_readme_passes_the_same_way(tmp_path):
    """Control for the test above: the same runner on the README as it is raises nothing."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    _run_page(tmp_path / "README.md")


# ------------------------------------------------------------------------- the site


def test_reference_pages_cover_the_public_api():
    import tfwarm_export

    api = (DOCS / "reference" / "api.md").read_text()
    missing = [name for name in tfwarm_export.__all__
               if not any(f"::: {path}\n" in api for path in _reference_paths(name))]
    assert not missing, f"docs/reference/api.md lacks {missing}"
    for module in INTEGRATION_MODULES:
        page = DOCS / "reference" / f"{module}.md"
        assert f"::: tfwarm_export.{module}\n" in page.read_text(), page
    nav = (REPO / "mkdocs.yml").read_text()
    for page in sorted(DOCS.rglob("*.md")):
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"


def _reference_paths(name: str) -> set[str]:
    """Where the reference may document ``tfwarm_export.NAME``: there, or where it is defined
    (``tfwarm_export.check`` the function is shadowed by the ``check`` module for mkdocstrings)."""
    import tfwarm_export

    return {f"tfwarm_export.{name}", f"{getattr(getattr(tfwarm_export, name), '__module__', '')}.{name}"}


def _error_classes() -> list[type]:
    from tfwarm_export import errors

    found, todo = [], [errors.TfwarmError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted({c for c in found if c.__module__.startswith("tfwarm_export")}, key=lambda c: c.__name__)


def test_every_error_class_has_a_troubleshooting_entry():
    """A new TfwarmError subclass without an entry (trigger, example, fix) fails here."""
    text = (DOCS / "troubleshooting.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)`\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    for cls in _error_classes():
        name = cls.__name__
        assert name in sections, f"docs/troubleshooting.md has no '## `{name}`' entry"
        if cls.__name__ == "TfwarmError":
            continue
        body = sections[name]
        assert "**Raised when**" in body and "**Fix:**" in body, name
        assert f"tfwarm_export.errors.{name}: " in body, f"the {name} entry has no example that raises it"


# --------------------------------------------------------------------------- docstrings


def _public_objects():
    """(qualified name, object) of every public function and class, and their public methods."""
    import tfwarm_export

    seen = {}
    for name in tfwarm_export.__all__:
        seen[f"tfwarm_export.{name}"] = getattr(tfwarm_export, name)
    for module_name in INTEGRATION_MODULES:
        module = importlib.import_module(f"tfwarm_export.{module_name}")
        names = getattr(module, "__all__", None) or [
            n for n, o in vars(module).items()
            if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__]
        for n in names:
            obj = getattr(module, n)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen[f"{module.__name__}.{n}"] = obj
    out = []
    for qualname, obj in seen.items():
        out.append((qualname, obj))
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for n, member in vars(obj).items():
                if n.startswith("_") or FRAMEWORK_HOOKS.match(n) or not inspect.isfunction(member):
                    continue
                out.append((f"{qualname}.{n}", member))
    return out


def _sections(obj) -> dict[str, list[str]]:
    """Google-style sections as griffe (mkdocstrings' parser) reads them: kind -> names."""
    import griffe

    text = inspect.getdoc(obj) or ""
    parsed = griffe.Docstring(text, lineno=1).parse("google", warnings=False)
    out: dict[str, list[str]] = {}
    for section in parsed:
        kind = section.kind.value
        value = section.value
        names = [getattr(item, "name", "") or getattr(item, "annotation", "") or "" for item in value] \
            if isinstance(value, list) else []
        out.setdefault(kind, []).extend(str(n) for n in names)
    return out


def _params(obj) -> list[str]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls")
            and not (p.kind is p.VAR_POSITIONAL and p.name == "args")]


def _docstring_problems(qualname: str, obj) -> list[str]:
    text = inspect.getdoc(obj) or ""
    if not text.strip():
        return [f"{qualname}: no docstring"]
    sections = _sections(obj)
    problems = []
    is_method = qualname.count(".") >= 2 and inspect.isfunction(obj) and "." in obj.__qualname__
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            init = obj.__dict__.get("__init__")
            params = [p for p in _params(init) if p != "message"] if init else []
        else:
            init = obj.__init__ if obj.__init__ is not object.__init__ else None
            params = _params(init) if init else []
        documented = sections.get("attributes", []) + sections.get("parameters", [])
        if params and not documented:
            problems.append(f"{qualname}: no Attributes or Args section for {params}")
        missing = [p for p in params if p.lstrip("*") not in {d.lstrip("*") for d in documented}]
        if documented and missing:
            problems.append(f"{qualname}: Args/Attributes miss {missing}")
        return problems
    params = _params(obj)
    documented = [d.lstrip("*") for d in sections.get("parameters", [])]
    if params and not documented:
        problems.append(f"{qualname}: no Args section for {params}")
    elif sorted(documented) != sorted(params):
        problems.append(f"{qualname}: Args {sorted(documented)} != parameters {sorted(params)}")
    returns = inspect.signature(obj).return_annotation
    if returns not in (None, "None", inspect.Signature.empty) and "returns" not in sections \
            and "yields" not in sections:
        problems.append(f"{qualname}: no Returns section")
    if not is_method and "raises" not in sections and "Never raises" not in text:
        problems.append(f"{qualname}: no Raises section (or a line saying 'Never raises')")
    return problems


def test_public_callables_have_args_returns_raises():
    """Every public function documents Args (when it takes any), Returns and Raises; a class its
    Attributes or __init__ Args; a public method its Args and Returns. Names must match."""
    problems = [p for qualname, obj in _public_objects() for p in _docstring_problems(qualname, obj)]
    assert not problems, "\n".join(problems)


def test_the_docstring_check_can_fail():
    def undocumented(path: str, retries: int = 1) -> int:
        """Does something.

        Args:
          path: a path.
        """
        return retries

    problems = _docstring_problems("x.undocumented", undocumented)
    assert any("retries" in p for p in problems) and any("Returns" in p for p in problems)
    assert any("Raises" in p for p in problems)


def test_the_built_site_has_a_reference_entry_for_every_public_name(tmp_path):
    """``mkdocs build --strict`` (as CI runs it) passes, and the API reference page holds an
    entry (its anchor) for every name of ``__all__`` and each integration module."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")
    import subprocess
    import sys

    import tfwarm_export

    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    api = (site / "reference" / "api" / "index.html").read_text()
    missing = [n for n in tfwarm_export.__all__ if not any(f'id="{p}"' in api for p in _reference_paths(n))]
    assert not missing, missing
    for module in INTEGRATION_MODULES:
        page = (site / "reference" / module / "index.html").read_text()
        assert f'id="tfwarm_export.{module}.' in page, module
    results = (site / "benchmarks" / "results" / "index.html").read_text()
    assert "Machine (measured by the run)" in results and "--8&lt;--" not in results  # RESULTS.md included
