"""The supported range is stated once per place and the places agree: setup.cfg's
``install_requires``, ``noxfile.py``'s oldest session, the test extra, CI and the README."""
from __future__ import annotations

import ast
import configparser
import re

from conftest import REPO


def _noxfile_constant(name: str) -> str:
    tree = ast.parse((REPO / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py defines no {name}")


def _requirements(section: str, key: str) -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [ln.strip() for ln in cfg[section][key].splitlines() if ln.strip()]
    return {re.split(r"[<>=!~\[ ]", ln, maxsplit=1)[0]: ln for ln in lines}


def test_oldest_session_is_setup_cfgs_lower_bound():
    oldest = _noxfile_constant("OLDEST")
    reqs = _requirements("options", "install_requires")
    for dist in ("tensorflow", "tensorflow-serving-api"):
        lower = re.search(r">=\s*([\d.]+)", reqs[dist])
        assert lower and lower.group(1) == oldest, (dist, reqs[dist], oldest)
    extra = _requirements("options.extras_require", "test")
    assert re.search(rf">=\s*{re.escape(oldest)}\b", extra["tf-keras"]), extra["tf-keras"]


def test_ci_runs_the_readme_command_and_the_oldest_session():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "nox -s oldest" in ci
    readme = (REPO / "README.md").read_text()
    oldest = _noxfile_constant("OLDEST")
    assert f"TensorFlow {oldest} to" in readme and "nox -s oldest" in readme


def test_release_sessions_cover_setup_cfgs_range():
    """``nox -s release`` has one session per release series from the oldest to the upper bound."""
    releases = _noxfile_constant("RELEASES")
    upper = re.search(r"<\s*2\.(\d+)", _requirements("options", "install_requires")["tensorflow"])
    assert upper, "setup.cfg gives tensorflow no upper bound"
    first = int(_noxfile_constant("OLDEST").split(".")[1])
    assert list(releases) == [f"2.{m}" for m in range(first, int(upper.group(1)))]
