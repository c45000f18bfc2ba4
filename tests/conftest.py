"""Shared fixtures: real SavedModels built in temp dirs, and the shared TF Serving testdata."""
from __future__ import annotations

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from model_copy import copy_model_to  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_TF_SERVING = REPO.parent / "shared" / "testdata" / "tf_serving"
HALF_PLUS_TWO = SHARED_TF_SERVING / "saved_model_half_plus_two_cpu" / "00000123"
BATCHING_CONFIG = SHARED_TF_SERVING / "batching_config.txt"


@pytest.fixture(scope="session")
def half_plus_two_src() -> pathlib.Path:
    """The real TF1 export from TF Serving's testdata (read-only: copy before writing)."""
    if not (HALF_PLUS_TWO / "saved_model.pb").exists():
        pytest.skip(f"shared TF Serving testdata not found at {HALF_PLUS_TWO} (../shared/ is "
                    "absent in this checkout); skipping tests that need the real TF1 model")
    return HALF_PLUS_TWO


def copy_model(src, tmp_path) -> str:
    """A writable copy of a model version directory (tests write warmup files into it)."""
    return copy_model_to(src, pathlib.Path(tmp_path) / "models" / pathlib.Path(src).name)


@pytest.fixture
def half_plus_two(half_plus_two_src, tmp_path) -> pathlib.Path:
    """A writable copy of the shared TF1 model."""
    return pathlib.Path(copy_model(half_plus_two_src, tmp_path))


@pytest.fixture(scope="session")
def mixed_src(tmp_path_factory) -> str:
    """A tf.Module with two signatures and mixed dtypes, built once per session."""
    from models import mixed_module

    return mixed_module(tmp_path_factory.mktemp("mixed") / "1")


@pytest.fixture
def mixed(mixed_src, tmp_path) -> str:
    return copy_model(mixed_src, tmp_path)


@pytest.fixture(scope="session")
def batching_config_path() -> pathlib.Path:
    if not BATCHING_CONFIG.exists():
        pytest.skip(f"shared batching config not found at {BATCHING_CONFIG}")
    return BATCHING_CONFIG


def group_rows(groups) -> list:
    """``RequestGroup``s as a sorted multiset of (group key, one row): what a batch
    decoder must give whatever its group order or chunking."""
    import numpy as np

    out = []
    for g in groups:
        layout = tuple((a, v.dtype.str, v.shape[1:] if g.batch is not None else v.shape)
                       for a, v in sorted(g.inputs.items()))
        head = (g.signature, g.request_type, g.batch, layout)
        if g.batch is None:
            out.append(head + (repr({a: v.tolist() for a, v in sorted(g.inputs.items())}),))
            continue
        n = g.batch * g.requests
        if n == 0:
            out += [head + ("no rows",)] * g.requests
        for i in range(n):
            out.append(head + (repr({a: np.asarray(v[i]).tolist() for a, v in sorted(g.inputs.items())}),))
    return sorted(out)
