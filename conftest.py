"""The documentation's examples as tests: every ```python and ```bash block of README.md and
docs/ runs under pytest through Sybil (configured in tests/doc_examples.py)."""
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "tests"))

from doc_examples import DOCS  # noqa: E402

pytest_collect_file = DOCS.pytest()
