"""A writable copy of a model version directory, shared by the tests and the docs' examples.

Its own module (not ``conftest``): the repository root's Sybil ``conftest.py`` and
``tests/conftest.py`` share that module name, so neither can import the other's helpers.
"""
from __future__ import annotations

import os
import pathlib
import shutil


def copy_model_to(src: pathlib.Path | str, dst: pathlib.Path | str) -> str:
    """Copy ``src`` to ``dst`` writable. A warmup file someone wrote into the shared testdata
    (e.g. by running ``tfwarm add ../shared/...``) is not part of the model: copies start clean."""
    shutil.copytree(src, dst, ignore=lambda d, names: ["tf_serving_warmup_requests"]
                    if os.path.basename(d) == "assets.extra" else [])
    for root, dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return str(dst)
