"""``privacy="shapes_only"``: values drawn from what the data taught, never a copied row.

Sampled rows end up inside the model artifact (``assets.extra``); this module
is the alternative that keeps them out.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tfwarm_export.values.learned_encodings import draw as draw_learned
from tfwarm_export.values.learned_encodings import learn_from_rows
from tfwarm_export.traffic.rows import RngLike, SizeKey, as_rng, fill_value, np_dtype
from tfwarm_export.traffic.stats import ValueStats


def synthesize(sample: Any, batch_size: int, bucket: Mapping[SizeKey, int] | None = None,
               rng: RngLike = None) -> dict[str, np.ndarray]:
    """Like :meth:`batches` but for ``privacy="shapes_only"``: same shapes
    and padding, values drawn fresh from the learned stats.

    Numbers are uniform within the scanned [min, max] (ints inclusive) and
    are never copied from a row, though for small integer ranges or at
    float32 granularity a draw can coincide with a real value. Strings come
    from the learned vocabulary (values seen >= ``vocab_min_count`` times)
    or are random ASCII of learned lengths. Serialized tf.Example inputs get
    new protos built from per-feature stats.
    """
    rng = as_rng(rng)
    chosen, targets = sample.choose_rows(batch_size, bucket, rng)
    out: dict[str, np.ndarray] = {}
    for alias, target in targets.items():
        dtype = sample.spec_dtype(alias)
        dtype_np = np_dtype(dtype)
        if alias in sample.example_aliases:
            stats = sample.example_stats[alias]
            n = 1 if sample.is_scalar_input(alias) else batch_size
            flat = np.empty(n * int(np.prod(target, dtype=np.int64)), dtype=object)
            flat[:] = [stats.synthesize_one(rng, sample.vocab_min_count) for _ in range(flat.size)]
            out[alias] = flat.reshape(target if sample.is_scalar_input(alias) else (n,) + target)
            continue
        learned = learn_from_rows(sample.rows, alias) if dtype == tf.string else None
        if learned is not None:  # encoded images, CSV lines, number strings: new values of that form
            scalar = sample.is_scalar_input(alias)
            out[alias] = draw_learned(learned, target if scalar else (batch_size,) + target, rng)
            continue
        stats = sample.value_stats.get(alias) or ValueStats.for_dtype(dtype)
        if sample.is_scalar_input(alias):
            out[alias] = stats.draw((), dtype_np, rng, sample.vocab_min_count)
            continue
        seen = [np.asarray(row[alias]).ravel() for row in sample.rows if alias in row]
        values = stats.draw((batch_size,) + target, dtype_np, rng, sample.vocab_min_count,
                            avoid=np.concatenate(seen) if seen and stats.kind != "bool" else None)
        batch = np.full((batch_size,) + target, fill_value(dtype), dtype=dtype_np)
        for i, r in enumerate(chosen):
            row = sample.rows[r][alias]
            sl = tuple(slice(0, min(a, b)) for a, b in zip(row.shape, target))
            batch[(i,) + sl] = values[(i,) + sl]  # keep the row's real extent; pad the rest
        out[alias] = batch
    return out


def privacy_note(copies: bool, source: str = "the user's data") -> str:
    """What the report says about user data in the file, naming the source."""
    if copies:
        return (f"warmup requests contain rows copied from {source}; they ship inside the "
                "SavedModel's assets.extra")
    return (f"warmup requests hold synthesized values: only shapes, lengths, value ranges and "
            f"string vocabularies were learned from {source}; no row is copied")
