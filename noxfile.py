"""The test matrix: ``nox`` runs both sessions, ``nox -s oldest`` one of them.

* ``newest``: the newest TensorFlow pip resolves for ``.[test]``, Keras 3 plus
  tf_keras, running the README's test command (the whole suite).
* ``oldest``: the oldest supported TensorFlow with its tensorflow-serving-api and
  tf_keras, running the tests marked ``compat`` (quickstart, add/check/inspect on TF
  Serving's own test models, save/export/the Keras callback on that TF's Keras and on
  tf_keras, the pipeline component, ``tfwarm bench``, traffic and fleet smoke tests).

``OLDEST`` must match the lower bounds in setup.cfg's ``install_requires``;
``tests/test_matrix.py`` checks that. pip's cache is used when there is one
(``PIP_CACHE_DIR``), never needed: every install resolves from the index.
"""
from __future__ import annotations

import nox

PYTHON = "3.11"
OLDEST = "2.14"
"""The oldest TensorFlow (and tensorflow-serving-api, tf-keras) release series supported."""

RELEASES = ("2.14", "2.15", "2.16", "2.17", "2.18", "2.19", "2.20", "2.21")
"""Every release series in setup.cfg's range; ``nox -s release`` runs the compat subset on each."""


def pins(series: str) -> list[str]:
    """TensorFlow, its tensorflow-serving-api and tf-keras, all of one release series."""
    return [f"tensorflow=={series}.*", f"tensorflow-serving-api=={series}.*", f"tf-keras=={series}.*"]


OLDEST_PINS = pins(OLDEST)
COMPAT_TEST_DEPS = ["pytest>=7", "hypothesis>=6", "sybil>=6"]
"""The compat sessions install no extra; sybil because conftest.py hands docs/ to it at collection."""

VERSIONS = ("from importlib.metadata import version; print(', '.join(f'{p} {version(p)}' for p in "
            "('tensorflow', 'tensorflow-serving-api', 'keras', 'tf-keras', 'protobuf', 'numpy')))")
"""Printed first, so a CI log says which versions the session ran."""

nox.options.sessions = ["newest", "oldest"]
nox.options.default_venv_backend = "venv"


@nox.session(python=PYTHON)
def newest(session: nox.Session) -> None:
    """README's test command on the newest TensorFlow."""
    session.install("-e", ".[test]")
    session.run("python", "-c", VERSIONS)
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON)
def oldest(session: nox.Session) -> None:
    """The ``compat`` subset on the oldest supported TensorFlow, with tf_keras beside tf.keras."""
    # One resolve, so the package's own requirements cannot move TensorFlow off the pins.
    session.install(*OLDEST_PINS, "-e", ".", *COMPAT_TEST_DEPS)
    session.run("python", "-c", VERSIONS)
    session.run("python", "-m", "pytest", "-q", "-m", "compat", *session.posargs,
                env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON)
@nox.parametrize("series", RELEASES)
def release(session: nox.Session, series: str) -> None:
    """The ``compat`` subset on one release series (``nox -s "release(series='2.18')"``, or all:
    ``nox -s release``). Not in CI, which runs the two ends; run it before changing the range."""
    session.install(*pins(series), "-e", ".", *COMPAT_TEST_DEPS)
    session.run("python", "-c", VERSIONS)
    session.run("python", "-m", "pytest", "-q", "-m", "compat", *session.posargs,
                env={"TF_CPP_MIN_LOG_LEVEL": "2"})
