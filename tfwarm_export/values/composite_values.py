"""Values for ragged and sparse inputs whose parts TF Serving feeds as separate aliases.

Each part synthesised on its own contradicts the others ("data.shape = [1] does
not start with segment_ids.shape = [0]"). Here one logical value is built per
composite and split into its parts, so they hold together:

* ragged: at every ragged_rank, row_splits start at 0, never decrease and end
  at the number of rows of the next level (the last one at ``len(flat_values)``);
  a dimension the signature fixes gets uniform rows of that length;
* sparse: indices sorted in row-major order, unique and inside ``dense_shape``;
  one value per index; ``dense_shape`` starts with the batch;
* the batch is the record's batch for every composite (and every dense input).

``tf.RaggedTensor.from_nested_row_splits`` / ``tf.sparse.SparseTensor`` validate
the result, so a value TF itself would reject is never written.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.composites import DENSE_SHAPE, INDICES, RAGGED, ROW_SPLITS, VALUES
from tfwarm_export.specs.domains import Domain
from tfwarm_export.errors import PlanError

ValueFn = Callable[[tf.DType, tuple, np.random.Generator, Domain | None], np.ndarray]


def _row_lengths(rng: np.random.Generator, rows: int, longest: int, fixed: bool, safe: bool) -> np.ndarray:
    if fixed:
        return np.full(rows, longest, dtype=np.int64)
    if safe:  # the conservative retry: every row as long as the longest (like a dense batch)
        return np.full(rows, max(1, longest), dtype=np.int64)
    return rng.integers(1, max(1, longest) + 1, size=rows).astype(np.int64)


def ragged_parts(spec, sizes: Sequence[int], rng: np.random.Generator, values: ValueFn,
                 domain: Domain | None, safe: bool = False) -> list[np.ndarray]:
    """[flat_values, row_splits_1, ..., row_splits_R] for a batch of ``sizes[0]`` rows.

    ``sizes[k]`` for a ragged axis k is its longest row (or the fixed length when the
    signature gives one); axes after the ragged ones are dense inner dimensions.
    """
    rows = int(sizes[0])
    splits = []
    for level in range(1, spec.ragged_rank + 1):
        fixed = spec.shape is not None and spec.shape[level] is not None
        lengths = _row_lengths(rng, rows, int(sizes[level]), fixed, safe)
        splits.append(np.concatenate([[0], np.cumsum(lengths)]).astype(spec.row_splits_dtype.as_numpy_dtype))
        rows = int(lengths.sum())
    inner = tuple(int(d) for d in sizes[1 + spec.ragged_rank:])
    flat = values(spec.dtype, (rows,) + inner, rng, domain)
    tf.RaggedTensor.from_nested_row_splits(flat, splits, validate=True)  # TF's own consistency check
    return [flat] + splits


def sparse_parts(spec, sizes: Sequence[int], rng: np.random.Generator, values: ValueFn,
                 domain: Domain | None, safe: bool = False) -> list[np.ndarray]:
    """[indices, values, dense_shape]: about half the positions set (all of them in the safe retry)."""
    dense_shape = np.asarray([int(d) for d in sizes], dtype=np.int64)
    total = int(np.prod(dense_shape))
    if total == 0:
        positions = np.zeros(0, dtype=np.int64)
    elif safe:
        positions = np.arange(total, dtype=np.int64)
    else:
        count = max(1, total // 2)
        positions = np.sort(rng.choice(total, size=count, replace=False)).astype(np.int64)
    indices = np.stack(np.unravel_index(positions, tuple(dense_shape)), axis=1).astype(np.int64) \
        if len(dense_shape) else np.zeros((len(positions), 0), dtype=np.int64)
    vals = values(spec.dtype, (len(positions),), rng, domain)
    st = tf.sparse.SparseTensor(indices, vals if spec.dtype != tf.string else vals.astype(object), dense_shape)
    tf.sparse.reorder(st)  # raises on out-of-bounds; order is already canonical
    return [indices, vals, dense_shape]


def composite_values(parts: Sequence, rng: np.random.Generator, values: ValueFn,
                     safe: bool = False) -> dict[str, np.ndarray]:
    """alias -> array for every part of one composite (``parts``: its ``InputPlan``s)."""
    by_alias = {p.alias: p for p in parts}
    first = parts[0].composite
    missing = [a for a in first.aliases if a not in by_alias]
    if missing:
        raise PlanError(f"{first.spec.kind} input {first.group!r}: parts {missing} are not in the plan; "
                        "a composite is fed whole or not at all.")
    value_part = next(p for p in parts if p.composite.role == VALUES)
    make = ragged_parts if first.spec.kind == RAGGED else sparse_parts
    try:
        arrays = make(first.spec, first.sizes, rng, values, value_part.domain, safe)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        raise PlanError(f"{first.describe()}: the values built for it are inconsistent ({e}); give "
                        f"its values with overrides={{'{first.group}': ...}}.") from None
    roles = first.spec.components()
    out = {}
    for alias, array, (role, level, dtype) in zip(first.aliases, arrays, roles):
        if role in (ROW_SPLITS, INDICES, DENSE_SHAPE):
            array = np.asarray(array).astype(dtype.as_numpy_dtype)
        out[alias] = array
    return out


def _rows_of(sample, group: str, batch: int, rng: np.random.Generator, privacy: str,
             np_dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``batch`` sampled rows of ``group`` (cycled) and the rows to use: the same rows, or
    with ``shapes_only`` fresh values of the same shapes."""
    n = len(sample.rows)
    order = rng.permutation(n)
    rows = [np.asarray(sample.rows[int(order[i % n])][group]) for i in range(batch)]
    if privacy != "shapes_only":
        return rows, rows
    stats = sample.value_stats.get(group)
    if stats is None:
        raise PlanError(f"shapes_only: nothing was learned about the values of {group!r}; give "
                        f"overrides={{'{group}': ...}} or use privacy='rows'.")
    seen = np.concatenate([np.asarray(r[group]).ravel() for r in sample.rows if group in r])
    return rows, [stats.draw(r.shape, np_dtype, rng, sample.vocab_min_count,
                             avoid=seen if stats.kind == "numeric" else None) for r in rows]


def composite_from_sample(parts: Sequence, sample, rng: np.random.Generator, privacy: str,
                          values: ValueFn) -> dict[str, np.ndarray]:
    """Parts of one composite built from sampled rows of its whole value.

    Ragged: each row's length and values (ragged_rank 1; deeper levels are synthesised
    from the row's outer length). Sparse: the data comes densified; the non-zero
    entries of the chosen rows become sorted indices and their values.
    """
    first = parts[0].composite
    spec, batch = first.spec, int(first.sizes[0])
    np_dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    sampled, rows = _rows_of(sample, first.group, batch, rng, privacy, np_dtype)
    try:
        if spec.kind == RAGGED:
            lengths = np.asarray([len(r) if r.ndim else 1 for r in rows], dtype=np.int64)
            splits = [np.concatenate([[0], np.cumsum(lengths)])]
            flat = [np.asarray(r, dtype=np_dtype).reshape((-1,) + r.shape[1:]) for r in rows]
            flat = np.concatenate(flat) if flat else np.zeros((0,), dtype=np_dtype)
            if spec.ragged_rank > 1:  # inner levels: synthesised lengths under each sampled element
                inner = list(first.sizes[2:])
                sub = dataclasses.replace(first, sizes=(int(lengths.sum()),) + tuple(inner))
                deeper = ragged_parts(dataclasses.replace(spec, ragged_rank=spec.ragged_rank - 1,
                                                          shape=None), sub.sizes, rng, values,
                                      value_domain(parts))
                flat, splits = deeper[0], splits + deeper[1:]
            splits = [s.astype(spec.row_splits_dtype.as_numpy_dtype) for s in splits]
            tf.RaggedTensor.from_nested_row_splits(flat, splits, validate=True)
            arrays = [flat] + splits
        else:
            width = max((r.shape for r in rows), default=())
            dense = np.zeros((batch,) + tuple(width), dtype=np_dtype)
            if spec.dtype == tf.string:
                dense[...] = b""
            empty = b"" if spec.dtype == tf.string else 0
            for i, r in enumerate(rows):
                if privacy == "shapes_only":  # keep how many entries a row has, not which
                    count = int(np.count_nonzero(np.asarray(sampled[i]) != empty))
                    keep = np.zeros(r.size, dtype=bool)
                    keep[rng.choice(r.size, size=min(count, r.size), replace=False)] = True
                    r = np.where(keep.reshape(r.shape), r, np.asarray(empty, dtype=np_dtype))
                dense[(i,) + tuple(slice(0, d) for d in r.shape)] = r
            indices = np.argwhere(dense != empty).astype(np.int64)  # row-major: sorted, unique
            arrays = [indices, dense[tuple(indices.T)] if len(indices) else np.zeros(0, dtype=np_dtype),
                      np.asarray(dense.shape, dtype=np.int64)]
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise PlanError(f"{first.describe()}: the sampled rows of {first.group!r} do not form a "
                        f"{spec.kind} value ({e}); the dataset field must hold its rows.") from None
    return dict(zip(first.aliases, arrays))


def value_domain(parts: Sequence) -> Domain | None:
    return next((p.domain for p in parts if p.composite.role == VALUES), None)
