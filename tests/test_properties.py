"""Property: for generated signatures (dtype x rank x unknown dims), every planned request passes check."""
from __future__ import annotations

import itertools

import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfwarm_export as tw

from models import ALL_DTYPES

dims = st.one_of(st.none(), st.integers(min_value=1, max_value=3))
# rest=None: a rank-0 input (no batch dimension); else [batch] + rest.
input_spec = st.tuples(st.sampled_from(ALL_DTYPES),
                       st.one_of(st.none(), st.lists(dims, min_size=0, max_size=3)))
counter = itertools.count()


def _build(tmp_path, specs) -> str:
    """A tf.Module whose signature takes the generated inputs and returns batch-shaped outputs."""
    signature = []
    for i, (dtype, rest) in enumerate(specs):
        shape = [] if rest is None else [None] + rest  # batch dim first
        signature.append(tf.TensorSpec(shape, dtype, name=f"in{i}"))

    class M(tf.Module):
        @tf.function(input_signature=signature)
        def serve(self, *args):
            return {f"out{i}": tf.identity(a) for i, a in enumerate(args)}

    m = M()
    d = str(tmp_path / f"prop{next(counter)}" / "1")
    tf.saved_model.save(m, d, signatures={"serving_default": m.serve})
    return d


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(input_spec, min_size=1, max_size=3),
       batch_sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=3, unique=True),
       seed=st.integers(min_value=0, max_value=2**31))
def test_every_planned_request_passes_check(tmp_path, specs, batch_sizes, seed):
    d = _build(tmp_path, specs)
    report = tw.add_warmup(d, batch_sizes=batch_sizes, seed=seed)
    assert report.ok
    result = tw.check(d)
    assert result.ok, result.problems
    batched = any(rest is not None for _, rest in specs)
    assert result.batch_sizes == {"serving_default": sorted(batch_sizes) if batched else []}
