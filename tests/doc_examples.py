"""The documentation's code blocks, collected and run by Sybil.

Every ```python and ```bash block in docs/ and README.md is an example: the repository's
root ``conftest.py`` hands these files to ``DOCS.pytest()``, so ``python -m pytest -q``
runs them (``testpaths`` in setup.cfg names docs/ and README.md). A block that cannot run
here is preceded by ``<!-- skip: next "the reason" -->``; the reason is the skip message.

Each page runs in a fresh workspace (``setup``), its current directory, holding what the
examples name:

* ``export/1``, ``export/7``, ``export/8``: copies of TF Serving's ``half_plus_two`` test model
  (``../shared/testdata/tf_serving``; the page is skipped, with that message, when absent);
* ``export/2``: a ``tf.Module`` whose ``tokens`` (int32, variable length) index a 100-row
  embedding; ``export/3``: a JPEG classifier over ``image_bytes`` (both built once per run);
* ``batching.txt`` = ``batching_parameters.txt`` (allowed batches 1, 8, 32), ``logs/`` (REST
  JSONL request logs for ``half_plus_two``) and ``benchmarks`` (a link to the repository's).

Shell blocks: each command runs in order; a ``tfwarm`` command runs in this process
(``tfwarm_export.cli.main``, so a page costs one TensorFlow start, not one per line), any
other through ``bash``. A command must exit 0 unless its comment says ``exit N``.
"""
from __future__ import annotations

import contextlib
import doctest
import io
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile

from model_copy import copy_model_to
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

REPO = pathlib.Path(__file__).resolve().parent.parent
HALF_PLUS_TWO = REPO.parent / "shared" / "testdata" / "tf_serving" / "saved_model_half_plus_two_cpu" / "00000123"
DOC_FILES = ["README.md", "docs/*.md", "docs/*/*.md"]
BATCHING = "max_batch_size { value: 32 }\nallowed_batch_sizes: 1\nallowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
EXPECTED_EXIT = re.compile(r"#.*\bexit (\d+)\b")

_built: dict[str, str] = {}


def _tokens_model(path: str) -> None:
    import tensorflow as tf

    class Tokens(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(tf.random.stateless_normal([100, 4], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
        def score(self, tokens):
            return {"score": tf.reduce_mean(tf.gather(self.table, tokens), axis=[1, 2])}

    module = Tokens()
    tf.saved_model.save(module, path, signatures={"serving_default": module.score})


def _jpeg_model(path: str) -> None:
    import tensorflow as tf

    class Images(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def classify(self, image_bytes):
            def one(b):
                image = tf.image.resize(tf.io.decode_jpeg(b, channels=3), [32, 32])
                return tf.reduce_mean(image)

            return {"brightness": tf.map_fn(one, image_bytes, fn_output_signature=tf.float32)}

    module = Images()
    tf.saved_model.save(module, path, signatures={"serving_default": module.classify})


def _built_model(name: str, build) -> str:
    """A model built once per test run (in a temp dir) and copied into each workspace."""
    if name not in _built:
        path = os.path.join(tempfile.mkdtemp(prefix=f"tfwarm-docs-{name}-"), "1")
        build(path)
        _built[name] = path
    return _built[name]


def make_workspace(root: pathlib.Path) -> pathlib.Path:
    """The directory a page's examples run in (see the module docstring)."""
    if not (HALF_PLUS_TWO / "saved_model.pb").exists():
        import pytest

        pytest.skip(f"shared TF Serving testdata not found at {HALF_PLUS_TWO} (../shared/ is absent "
                    "in this checkout); skipping the documentation examples that run on it")
    for version in ("1", "7", "8"):
        copy_model_to(HALF_PLUS_TWO, root / "export" / version)
    copy_model_to(_built_model("tokens", _tokens_model), root / "export" / "2")
    copy_model_to(_built_model("jpeg", _jpeg_model), root / "export" / "3")
    for name in ("batching.txt", "batching_parameters.txt"):
        (root / name).write_text(BATCHING)
    (root / "logs").mkdir()
    rows = ['{"instances": [[1.0]]}', '{"instances": [[1.0], [2.0], [3.5]]}',
            '{"signature_name": "serving_default", "instances": [[0.5], [7.0]]}'] * 4
    (root / "logs" / "requests-1.jsonl").write_text("\n".join(rows) + "\n")
    (root / "benchmarks").symlink_to(REPO / "benchmarks")
    return root


def _setup(namespace: dict) -> None:
    workspace = pathlib.Path(tempfile.mkdtemp(prefix="tfwarm-docs-"))
    namespace["_docs_cwd"] = os.getcwd()
    namespace["_docs_workspace"] = workspace
    make_workspace(workspace)
    os.chdir(workspace)


def _teardown(namespace: dict) -> None:
    os.chdir(namespace.get("_docs_cwd", REPO))
    shutil.rmtree(namespace.get("_docs_workspace", ""), ignore_errors=True)


def commands(source: str) -> list[str]:
    """A shell block's commands: continuation lines joined, a heredoc kept with its command."""
    out: list[str] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            end = heredoc.group(1)
            body = [line]
            while i + 1 < len(lines):
                i += 1
                body.append(lines[i])
                if lines[i].strip() == end:
                    break
            line = "\n".join(body)
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
        i += 1
    return out


def run_tfwarm(argv: list[str]) -> tuple[int, str]:
    """``tfwarm ARGV`` in this process: (exit status, stdout + stderr)."""
    from tfwarm_export.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            status = main(argv)
        except SystemExit as e:  # argparse's usage errors
            status = e.code if isinstance(e.code, int) else 2
    return status, buffer.getvalue()


def evaluate_shell(example) -> None:
    """Run a ```bash block's commands in order; each must exit as its comment says (default 0)."""
    for command in commands(example.parsed):
        first_line = command.splitlines()[0]
        m = EXPECTED_EXIT.search(first_line)
        expected = int(m.group(1)) if m else 0
        words = shlex.split(first_line, comments=True)
        if words and words[0] == "tfwarm" and "\n" not in command:
            status, output = run_tfwarm(words[1:])
        else:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True,
                                  env=env, timeout=300)
            status, output = done.returncode, done.stdout + done.stderr
        if status != expected:
            raise AssertionError(f"`{first_line}` exited {status}, the page says {expected}:\n{output[-3000:]}")


def make_sybil(patterns=DOC_FILES, path: str = str(REPO)) -> Sybil:
    """The collector for the documentation: python and bash blocks, and skip markers."""
    return Sybil(
        parsers=[SkipParser(), PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS), CodeBlockParser("bash", evaluate_shell)],
        patterns=list(patterns),
        path=path,
        setup=_setup,
        teardown=_teardown,
    )


DOCS = make_sybil()
