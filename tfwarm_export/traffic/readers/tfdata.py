"""``tf.data.Dataset`` elements (batched or not; dict, tuple or single tensor)."""
from __future__ import annotations

from typing import Iterator

import tensorflow as tf

from tfwarm_export.errors import DatasetError, tf_error_text
from tfwarm_export.traffic.rows import (
    Chunk,
    Single,
    chunk_len,
    decide_batched,
    split_element,
)

DATASET_CHUNK_ROWS = 1024  # a user's elements may be large (images): rows re-batched at a time


def dataset_chunks(ds: tf.data.Dataset, inputs, required, sig_name, batched: bool | None,
                    max_scan: int | None) -> Iterator[Chunk]:
    """Iterate a tf.data.Dataset as chunks, re-batching unbatched data where it
    is safe so that a million small elements do not cost a million eager steps."""
    if max_scan is None and ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetError("the dataset is infinite (e.g. .repeat()); pass dataset_max_scan=N "
                           "(CLI: --max-scan N) to stop after N rows.")
    spec_comps = split_element(ds.element_spec, inputs, required, sig_name, "element 0")
    for alias, (label, comp) in spec_comps.items():
        if isinstance(comp, tf.SparseTensorSpec):
            raise DatasetError(f"field {label} for signature {sig_name!r} input {alias!r} is a "
                               "SparseTensor; the Predict API feeds dense tensors. Densify it "
                               "with tf.sparse.to_dense in a dataset.map().")
    if batched is None:
        batched = decide_batched(spec_comps, inputs, sig_name, "element 0")
    if batched is None:  # static ranks unknown: look at the first element
        for first in ds.take(1):
            comps = split_element(first, inputs, required, sig_name, "element 0")
            batched = decide_batched(comps, inputs, sig_name, "element 0")
        if batched is None:
            batched = True  # Keras convention: data given to fit/predict is batched

    def dense_spec(s) -> bool:
        return (isinstance(s, tf.TensorSpec) or
                (isinstance(s, tf.RaggedTensorSpec) and s.ragged_rank == 0)) and s.shape.rank is not None

    rebatch = None
    if not batched:
        flat = tf.nest.flatten(ds.element_spec)
        used = [c for _, c in spec_comps.values()]
        if all(dense_spec(s) for s in flat):
            if all(s.shape.is_fully_defined() for s in flat):
                rebatch = "batch"
            elif all(s.shape.rank >= 1 and None not in s.shape.as_list()[1:] for s in used):
                rebatch = "ragged"  # one variable leading dim per row: ragged_rank 1 rows
    if not batched and max_scan is not None:
        ds = ds.take(max_scan)
    if rebatch == "batch":
        ds = ds.batch(DATASET_CHUNK_ROWS)
    elif rebatch == "ragged":
        ds = ds.ragged_batch(DATASET_CHUNK_ROWS)

    index = 0
    it = iter(ds)
    while True:
        try:
            el = next(it)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            raise DatasetError(f"reading element {index} of the dataset failed: "
                               f"{tf_error_text(e)}") from e
        where = f"element {index}"
        comps = split_element(el, inputs, required, sig_name, where)
        if batched:
            yield Chunk(index, comps, user_batch=True, numbering="batch")
            index += 1
        elif rebatch:
            chunk = Chunk(index, comps, user_batch=False)
            yield chunk
            index += chunk_len(comps)
        else:
            yield Chunk(index, {a: (lbl, Single(v)) for a, (lbl, v) in comps.items()}, user_batch=False)
            index += 1


