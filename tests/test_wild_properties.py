"""Property: for random wild signatures, only the project's clean errors ever escape.

Random dtypes and ranks, ragged (ragged_rank 1/2) and sparse inputs, zero inputs,
SignatureDef defaults, TensorInfos without shapes, batching on or off. ``add_warmup``
either writes a file that ``check`` passes or raises a ``TfwarmError``; the CLI
never prints a traceback and exits 0, 1 or 2. A signature of plain dense inputs
(common dtypes, known rank, shapes kept) must be warmed: a clean error there is a
failure, so the property cannot pass by refusing everything.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import models_wild
import tfwarm_export as tw
from models import ALL_DTYPES
from tfwarm_export import cli

COMPOSITE_DTYPES = [tf.float32, tf.int64, tf.int32, tf.string, tf.bool]
dims = st.one_of(st.none(), st.integers(min_value=1, max_value=3))
dense = st.tuples(st.just("dense"), st.sampled_from(ALL_DTYPES),
                  st.one_of(st.none(), st.lists(dims, min_size=0, max_size=2)))
ragged = st.tuples(st.just("ragged"), st.sampled_from(COMPOSITE_DTYPES), st.integers(1, 2))
sparse = st.tuples(st.just("sparse"), st.sampled_from(COMPOSITE_DTYPES), st.integers(2, 3))
counter = itertools.count()


def _spec(kind, dtype, arg, i):
    if kind == "dense":
        return tf.TensorSpec([] if arg is None else [None] + arg, dtype, name=f"in{i}")
    if kind == "ragged":
        return tf.RaggedTensorSpec([None] * (arg + 1), dtype, ragged_rank=arg)
    return tf.SparseTensorSpec([None] * arg, dtype)


def _output(kind, x):
    if kind == "dense":
        return tf.identity(x)
    if kind == "ragged":
        return x.row_lengths()
    return x.indices[:, 0]


def _build(tmp_path, inputs, defaults, strip) -> str:
    specs = [_spec(k, dt, a, i) for i, (k, dt, a) in enumerate(inputs)]
    kinds = [k for k, _, _ in inputs]

    class M(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, *args):
            out = {f"out{i}": _output(k, a) for i, (k, a) in enumerate(zip(kinds, args))}
            return out or {"const": tf.constant([1.0])}

    m = M()
    d = str(tmp_path / f"wild{next(counter)}" / "1")
    tf.saved_model.save(m, d, signatures={"serving_default": m.serve})

    def edit(mg):
        sig = mg.signature_def["serving_default"]
        for n, alias in enumerate(sorted(sig.inputs)):
            info = sig.inputs[alias]
            # Defaults only on dense inputs (named in<i>), as tf.saved_model.save writes them.
            if n in defaults and alias.startswith("in") and not info.tensor_shape.unknown_rank:
                shape = [1 if d.size < 0 else d.size for d in info.tensor_shape.dim]
                dtype = tf.dtypes.as_dtype(info.dtype)
                value = (np.full(shape, b"a", dtype=object) if dtype == tf.string
                         else np.zeros(shape, dtype=dtype.as_numpy_dtype))
                sig.defaults[alias].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
            if n in strip:
                info.ClearField("tensor_shape")
    models_wild._edit_saved_model(d, edit)
    return d


PLAIN_DTYPES = (tf.float32, tf.float64, tf.int32, tf.int64, tf.string, tf.bool)


def must_warm(inputs, defaults, strip, batching) -> bool:
    """Dense inputs of common dtypes with a known rank >= 1 and their shapes kept: nothing
    about them is hard, so add_warmup has no excuse to refuse. (A SignatureDef default,
    of batch 1, fixes the batch size, which batching may legitimately refuse.)"""
    used = set(range(len(inputs)))
    return bool(inputs) and all(k == "dense" and dt in PLAIN_DTYPES and a is not None
                                for k, dt, a in inputs) and not strip & used \
        and not (batching and defaults & used)


# Modest for CI time; TFWARM_WILD_EXAMPLES=200 for a deeper local sweep.
@settings(max_examples=int(os.environ.get("TFWARM_WILD_EXAMPLES", "10")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=st.lists(st.one_of(dense, dense, ragged, sparse), min_size=0, max_size=3),
       defaults=st.sets(st.integers(0, 5), max_size=3),
       strip=st.sets(st.integers(0, 5), max_size=3),
       batching=st.booleans(), seed=st.integers(0, 2**31))
@example(inputs=[("dense", tf.float32, [None])], defaults=set(), strip=set(), batching=False, seed=0)
@example(inputs=[("dense", tf.string, [2]), ("dense", tf.int64, [None, 3])], defaults=set(), strip=set(),
         batching=True, seed=1)
@example(inputs=[("dense", tf.bool, []), ("dense", tf.float64, [3])], defaults={0}, strip={4},
         batching=False, seed=2)
def test_only_clean_errors_escape(tmp_path, capsys, inputs, defaults, strip, batching, seed):
    d = _build(tmp_path, inputs, defaults, strip)
    options = {"seed": seed, "batch_sizes": [1, 3]}
    argv_extra, add_extra = [], ["--batch-sizes", "1,3"]
    if batching:
        cfg = tmp_path / "batching.txt"
        cfg.write_text("max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
        options = {"seed": seed, "batching_parameters": str(cfg)}
        argv_extra = ["--batching-parameters", str(cfg)]
        add_extra = []
    try:
        report = tw.add_warmup(d, **options)
    except tw.TfwarmError as e:
        assert not must_warm(inputs, defaults, strip, batching), f"a plain dense signature was refused: {e}"
        event(f"clean error: {type(e).__name__}")
        wrote = False
    else:
        wrote = True
        event("warmed")
        assert report.ok
    rc = cli.main(["check", d, *argv_extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert rc in (0, 1, 2)
    if wrote:
        assert rc == 0, out + err
    rc = cli.main(["add", d, "--overwrite", "--seed", str(seed), *argv_extra, *add_extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and rc in (0, 1, 2)
    assert (rc == 0) == wrote, out + err
