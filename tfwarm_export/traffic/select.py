"""Selection: which rows are kept, and how kept rows become a batch.

The ``Scanner`` validates each chunk of rows against a signature, updates the
statistics (``stats``) and offers rows to the sampler; ``DataSample`` is what
it hands the plan: the kept rows plus what every scanned row taught.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.errors import DatasetError
from tfwarm_export.model.signatures import TensorSpec
from tfwarm_export.traffic.privacy import privacy_note
from tfwarm_export.traffic.privacy import synthesize as synthesize_shapes_only
from tfwarm_export.traffic.rows import (
    Chunk,
    Column,
    RngLike,
    Row,
    Single,
    SizeKey,
    as_rng,
    coerce,
    example_alias,
    fill_value,
    key_str,
    np_dtype,
    to_column,
)
from tfwarm_export.traffic.hashing import row_hashes
from tfwarm_export.traffic.stats import (
    VOCAB_CAP,
    VOCAB_MIN_COUNT,
    ExampleStats,
    ValueStats,
    choose_buckets,
    looks_like_examples,
)

DEFAULT_K = 256
_U64 = np.uint64
EXAMPLE_SNIFF = 32  # values parsed to decide whether strings are tf.Examples


# --------------------------------------------------------------------------- bottom-k


class Stratum:
    """The ``k`` distinct rows with the smallest hashes seen in one stratum.

    A bottom-k sketch: which rows are kept depends only on the set of rows,
    not their order or sharding, and two sketches merge into the sketch of the
    union. Equal rows have equal hashes, so a row repeated a million times in
    the logs is kept once. A chunk's rows above the current k-th hash are
    dismissed with one vectorised comparison, without touching Python.
    """

    __slots__ = ("k", "rows", "_heap")

    def __init__(self, k: int):
        self.k = k
        self.rows: dict[int, Row] = {}
        self._heap: list[int] = []  # negated hashes: a max-heap

    @property
    def threshold(self) -> int | None:
        return -self._heap[0] if len(self._heap) >= self.k else None

    def offer(self, hashes: np.ndarray, make: Callable[[np.ndarray], list[Row]]) -> None:
        """Consider rows with these hashes; ``make(indices)`` materialises, in one call,
        only the rows that end up kept."""
        import heapq

        thr = self.threshold
        idx = np.nonzero(hashes < _U64(thr))[0] if thr is not None else np.arange(len(hashes))
        if not len(idx):
            return
        cand = hashes[idx]
        order = np.argsort(cand, kind="stable")
        idx, cand = idx[order], cand[order]
        first = np.ones(len(cand), dtype=bool)
        first[1:] = cand[1:] != cand[:-1]  # a row repeated in the chunk is one candidate
        idx, cand = idx[first], cand[first]
        kept = np.fromiter(self.rows, dtype=np.uint64, count=len(self.rows))
        if len(kept):
            fresh = ~np.isin(cand, kept)
            idx, cand = idx[fresh], cand[fresh]
        idx, cand = idx[:self.k], cand[:self.k]
        if not len(idx):
            return
        both = np.concatenate([kept, cand])
        if len(both) > self.k:
            cutoff = np.partition(both, self.k - 1)[self.k - 1]
            take = cand <= cutoff
            idx, cand = idx[take], cand[take]
            for h in kept[kept > cutoff].tolist():
                del self.rows[h]
        for h, row in zip(cand.tolist(), make(idx)):
            self.rows[h] = row
        self._heap = [-h for h in self.rows]
        heapq.heapify(self._heap)

    def merge(self, other: "Stratum") -> None:
        items = sorted(other.rows.items())
        if items:
            hashes = np.array([h for h, _ in items], dtype=np.uint64)
            self.offer(hashes, lambda sel: [items[i][1] for i in sel.tolist()])

    def items(self) -> list[tuple[int, Row]]:
        return sorted(self.rows.items())

    def __getstate__(self) -> dict:
        """Columns, not rows: an accumulator crosses Beam's wire once per bundle, and
        pickling k x strata small arrays one by one dominated a Beam scan."""
        hashes = sorted(self.rows)
        return {"k": self.k, "hashes": hashes, "cols": rows_to_columns([self.rows[h] for h in hashes])}

    def __setstate__(self, state: dict) -> None:
        import heapq

        self.k = state["k"]
        self.rows = dict(zip(state["hashes"], columns_to_rows(state["cols"], len(state["hashes"]))))
        self._heap = [-h for h in self.rows]
        heapq.heapify(self._heap)


def rows_to_columns(rows: Sequence[Row]) -> dict:
    """Rows as one flat array per alias (plus which rows have it and their shapes):
    what pickles fast."""
    cols = {}
    for alias in sorted({a for row in rows for a in row}):
        have = [i for i, row in enumerate(rows) if alias in row]
        arrs = [rows[i][alias] for i in have]
        cols[alias] = (np.array(have, dtype=np.int64), [a.shape for a in arrs],
                       np.concatenate([a.ravel() for a in arrs]))
    return cols


def columns_to_rows(cols: dict, n: int) -> list[Row]:
    rows: list[Row] = [{} for _ in range(n)]
    for alias, (have, shapes, flat) in cols.items():
        start = 0
        for i, shape in zip(have.tolist(), shapes):
            end = start + math.prod(shape)
            rows[i][alias] = flat[start:end].reshape(shape)
            start = end
    return rows


def take_rows(cols: Mapping[str, Column], pick: np.ndarray) -> list[Row]:
    """Rows ``pick`` of a chunk, copied out together (a kept row never pins the chunk)."""
    per_alias = {}
    for alias, col in cols.items():
        if col.dense is not None:
            sub = col.dense[pick]  # one fancy-index copy of the picked rows
            per_alias[alias] = [sub[j, ...] for j in range(len(pick))]
        else:
            per_alias[alias] = [col.rows[i].copy() for i in pick.tolist()]
    return [{a: per_alias[a][j] for a in per_alias} for j in range(len(pick))]


def size_class(size: int) -> int:
    """Coarse length class for stratifying: 0, 1, 2-3, 4-7, 8-15, ... (bit length)."""
    return int(size).bit_length()


@dataclass
class DataSample:
    """The selected rows of one signature plus what every scanned row taught
    (size distributions, value stats, drop counts).

    ``rows`` holds, for every stratum (request type, batch after padding, size
    class of each unknown dimension), the ``k`` distinct rows with the smallest
    ``hash(seed, row)``, ordered by hash: the same rows in the same order
    whether the scan ran locally or sharded on Beam, whatever the file order.
    """

    signature: str
    rows: list[Row] = field(repr=False)
    scanned: int
    size_counts: dict[SizeKey, Counter] = field(repr=False)
    value_stats: dict[str, ValueStats] = field(repr=False)
    source: str
    inputs: Mapping[str, TensorSpec] = field(default_factory=dict, repr=False)
    example_aliases: tuple[str, ...] = ()
    learned_example_stats: dict[str, ExampleStats] = field(default_factory=dict, repr=False)
    k: int = DEFAULT_K
    seed: int = 0
    vocab_min_count: int = VOCAB_MIN_COUNT
    vocab_cap: int = VOCAB_CAP
    row_strata: list[tuple] = field(default_factory=list, repr=False)  # per row: its stratum key
    requests: int = 0              # logged requests the rows came from (traffic)
    strata: int = 0
    class_counts: Counter = field(default_factory=Counter, repr=False)  # RequestClass -> requests
    row_shapes: Counter = field(default_factory=Counter, repr=False)    # ((alias, dims), ...) -> rows

    def __getstate__(self) -> dict:
        """Rows as columns (see ``rows_to_columns``): a selection travels back from Beam."""
        state = dict(self.__dict__)
        state["rows"] = (len(self.rows), rows_to_columns(self.rows))
        return state

    def __setstate__(self, state: dict) -> None:
        n, cols = state["rows"]
        self.__dict__.update({**state, "rows": columns_to_rows(cols, n)})

    @property
    def example_stats(self) -> dict[str, ExampleStats]:
        """Per-feature stats of serialized tf.Example inputs. Unless
        ``example_stats="all"`` learned them while scanning, they come from the
        sample, parsed on first use, so scans that never need them (copy mode)
        pay nothing for Python-side proto parsing."""
        for alias in self.example_aliases:
            if alias not in self.learned_example_stats:
                stats = ExampleStats(vocab_cap=self.vocab_cap)
                for row in self.rows:
                    for v in row[alias].ravel().tolist():
                        stats.update(v)
                self.learned_example_stats[alias] = stats
        return self.learned_example_stats

    @property
    def sample_size(self) -> int:
        return len(self.rows)

    @property
    def aliases(self) -> list[str]:
        """Inputs the data provides (inputs with signature defaults may be absent)."""
        return sorted(self.rows[0]) if self.rows else []

    def buckets(self, max_buckets: int = 8,
                quantiles: Sequence[float] | None = None) -> dict[SizeKey, list[int]]:
        """:func:`choose_buckets` for every unknown dimension seen."""
        return {key: choose_buckets(c, max_buckets, quantiles)
                for key, c in sorted(self.size_counts.items())}

    # -- batching ---------------------------------------------------------

    def _row_len(self, row: Row, key: SizeKey) -> int | None:
        alias, axis = key
        arr = row.get(alias)
        if arr is None or arr.ndim < axis:
            return None
        return int(arr.shape[axis - 1])

    def choose_rows(self, batch_size: int, bucket: Mapping[SizeKey, int] | None,
              rng: np.random.Generator) -> tuple[list[int], dict[str, tuple]]:
        """Which sample rows make the batch, and each input's per-row target shape."""
        if not self.rows:
            raise DatasetError(f"the sample of signature {self.signature!r} from {self.source} "
                               "has no rows; pass a dataset with at least one element.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        bucket = dict(bucket or {})
        for key, length in bucket.items():
            if key not in self.size_counts:
                raise ValueError(f"bucket key {key!r} is not an unknown dimension of signature "
                                 f"{self.signature!r}; known: {sorted(self.size_counts)}")
            if int(length) < 0:
                raise ValueError(f"bucket length for {key!r} must be >= 0, got {length}")
        n = len(self.rows)
        # rows logged at this batch size (after padding) first: they are the traffic it sees
        pref = np.array([0.0 if not st or st[1] in (0, batch_size) else 0.25
                         for st in (self.row_strata or [()] * n)])
        if bucket:
            # closest rows first; padding (row shorter) beats truncating at equal distance
            dist = np.zeros(n)
            for i, row in enumerate(self.rows):
                for key, length in bucket.items():
                    got = self._row_len(row, key)
                    if got is not None:
                        dist[i] += abs(got - length) + (0.5 if got > length else 0.0)
            order = np.lexsort((rng.random(n), dist + pref))
        else:
            order = np.lexsort((rng.random(n), pref))
        chosen = [int(order[i % n]) for i in range(batch_size)]

        targets: dict[str, tuple] = {}
        for alias in self.aliases:
            arrs = [self.rows[i][alias] for i in chosen]
            ranks = {a.ndim for a in arrs}
            if len(ranks) != 1:
                raise DatasetError(
                    f"sampled rows of input {alias!r} have different ranks {sorted(ranks)}, so "
                    "they cannot form one batch tensor; make the dataset's rank consistent.")
            spec = self.inputs.get(alias)
            if spec is not None and spec.shape is not None:
                fixed = spec.shape[1:]
            else:  # unknown rank: every axis is padded like an unknown dim
                fixed = (None,) * ranks.pop()
            target = []
            for j, dim in enumerate(fixed):
                key = (alias, j + 1)
                if key in bucket:
                    target.append(int(bucket[key]))
                elif dim is not None:
                    target.append(int(dim))
                else:
                    target.append(max(a.shape[j] for a in arrs))
            targets[alias] = tuple(target)
        return chosen, targets

    def spec_dtype(self, alias: str) -> tf.DType:
        spec = self.inputs.get(alias)
        if spec is not None:
            return spec.dtype
        arr = self.rows[0][alias]
        return tf.string if arr.dtype == object else tf.as_dtype(arr.dtype)

    def is_scalar_input(self, alias: str) -> bool:
        spec = self.inputs.get(alias)
        return spec is not None and spec.rank == 0

    def batches(self, batch_size: int, bucket: Mapping[SizeKey, int] | None = None,
                rng: RngLike = None) -> dict[str, np.ndarray]:
        """One request's inputs built from sampled user rows.

        Rows are cycled when the sample is smaller than the batch. With a
        ``bucket`` ({(alias, axis): length}), each such dimension is padded
        (zeros / b"") or truncated to that length and rows whose length is
        closest are preferred; other unknown dimensions are padded to the
        longest chosen row, as ``padded_batch`` does. Rank-0 inputs have no
        batch dimension and carry one row's value.
        """
        rng = as_rng(rng)
        chosen, targets = self.choose_rows(batch_size, bucket, rng)
        out: dict[str, np.ndarray] = {}
        for alias, target in targets.items():
            if self.is_scalar_input(alias):
                out[alias] = self.rows[chosen[0]][alias].copy()
                continue
            dtype = self.spec_dtype(alias)
            batch = np.full((batch_size,) + target, fill_value(dtype), dtype=np_dtype(dtype))
            for i, r in enumerate(chosen):
                row = self.rows[r][alias]
                sl = tuple(slice(0, min(a, b)) for a, b in zip(row.shape, target))
                batch[(i,) + sl] = row[sl]
            out[alias] = batch
        return out

    def synthesize(self, batch_size: int, bucket: Mapping[SizeKey, int] | None = None,
                   rng: RngLike = None) -> dict[str, np.ndarray]:
        """``privacy="shapes_only"`` values for one request; see ``privacy.synthesize``."""
        return synthesize_shapes_only(self, batch_size, bucket, rng)

    def _all_value_stats(self) -> list[tuple[str, Any]]:
        """Every ValueStats with a label: inputs, then tf.Example features."""
        out = [(f"input {a!r}", v) for a, v in sorted(self.value_stats.items())]
        for alias, ex in sorted(self.example_stats.items()):
            out += [(f"input {alias!r} feature {k!r}", f.values) for k, f in sorted(ex.context.items())]
            out += [(f"input {alias!r} feature list {k!r}", fl.step[""].values)
                    for k, fl in sorted(ex.feature_lists.items()) if "" in fl.step]
        return out

    def unavoidable_values(self) -> list[str]:
        """Under ``shapes_only``: where the file can hold a value that occurs in the
        data, because the learned domain holds nothing else, and why (never the value)."""
        flags = []
        for label, v in self._all_value_stats():
            vocab = v.vocabulary(self.vocab_min_count) if v.kind == "string" else []
            if vocab:
                flags.append(f"{label}: strings are drawn from a vocabulary of {len(vocab)} value(s) "
                             f"each seen at least {self.vocab_min_count} times in the data")
            elif v.kind == "bool" and v.low is not None:
                flags.append(f"{label}: boolean; its values are the ones seen in the data")
            if v.sampled_emitted:
                flags.append(f"{label}: {v.sampled_emitted} synthesised value(s) equal a value in the "
                             "data: the learned range holds no other value (or redrawing gave up)")
        return flags

    def to_dict(self, privacy: str = "copy", max_buckets: int = 8) -> dict:
        """Summary for reports. Values are summarised (ranges, vocabulary
        sizes), never listed; under ``shapes_only`` not even the range ends
        (each is some row's value) appear, so the report leaks no data value."""
        copies = privacy != "shapes_only"
        value_stats = {a: s.to_dict() for a, s in sorted(self.value_stats.items())}
        example_stats = {a: s.to_dict() for a, s in sorted(self.example_stats.items())}
        extra: dict[str, Any] = {}
        if not copies:
            value_stats, example_stats = _redact_range(value_stats), _redact_range(example_stats)
            extra["sampled_values_in_file"] = self.unavoidable_values()
        return {
            "signature": self.signature,
            "source": self.source,
            "scanned": self.scanned,
            "sample_size": self.sample_size,
            "strata": self.strata,
            "requests": self.requests,
            "k": self.k,
            "seed": self.seed,
            "size_distributions": {key_str(key): dict(sorted(c.items()))
                                   for key, c in sorted(self.size_counts.items())},
            "buckets": {key_str(key): b for key, b in self.buckets(max_buckets).items()},
            "value_stats": value_stats,
            "example_stats": example_stats,
            **extra,
            "privacy": privacy,
            "copies_user_rows": copies,
            "privacy_note": privacy_note(copies, self.source),
        }


def _redact_range(d: Any) -> Any:
    """``d`` with every learned ``low``/``high`` replaced by a marker (shapes_only reports)."""
    if isinstance(d, dict):
        out = {k: _redact_range(v) for k, v in d.items() if k not in ("low", "high")}
        if "low" in d or "high" in d:
            out["range"] = "learned from the data; not shown under privacy='shapes_only'"
        return out
    return d



# --------------------------------------------------------------------------- scanning


class Scanner:
    """Validates chunks, updates counters and keeps the bottom-k rows per stratum.

    This is the accumulator of the selection: ``add`` folds in one chunk,
    ``merge`` folds in another scanner (a shard), ``finish`` extracts the
    ``DataSample``. ``SelectionCombiner`` wraps it in Beam's ``CombineFn``
    protocol so the local path and Beam run exactly this code.
    """

    def __init__(self, inputs: Mapping[str, TensorSpec], required: list[str], sig_name: str,
                 k: int, seed: int, max_scan: int | None, vocab_cap: int,
                 examples: bool | None, example_stats: str):
        self.inputs = inputs
        self.required = required
        self.sig_name = sig_name
        self.k = k
        self.seed = seed
        self.max_scan = max_scan
        self.vocab_cap = vocab_cap
        self.strata: dict[tuple, Stratum] = {}
        self.scanned = 0
        self.requests = 0  # logged requests that contributed rows (traffic only)
        self.size_counts: dict[SizeKey, Counter] = {
            (alias, axis): Counter()
            for alias, spec in sorted(inputs.items()) if spec.shape is not None
            for axis in range(1, len(spec.shape)) if spec.shape[axis] is None
        }
        self.value_stats: dict[str, ValueStats] = {}
        self.examples = examples
        self.example_alias: str | None = None
        self.example_stats_mode = example_stats
        self.example_stats: ExampleStats | None = None
        # Exact request classes (``specs.request_class``) with their request counts (traffic,
        # counted by ``TrafficScan``), and exact row shapes with their row counts (datasets):
        # what a signature that compiles per shape must warm to cover the data.
        self.class_counts: Counter = Counter()
        self.row_shapes: Counter = Counter()

    @property
    def done(self) -> bool:
        return self.max_scan is not None and self.scanned >= self.max_scan

    def _fail(self, chunk: Chunk, label: str, alias: str, off: int | None = None):
        spec = self.inputs[alias]

        if label.startswith("tuple position"):
            hint = (" Tuples are matched by position in sorted alias order; if this is an (x, y) "
                    "pair, yield x as a dict keyed by alias.")
        else:
            hint = ""

        def fail(problem: str, fix: str) -> DatasetError:
            return DatasetError(
                f"{chunk.where(off)}: field {label} does not fit signature {self.sig_name!r} input "
                f"{alias!r} (dtype {spec.dtype.name}, shape {spec.shape_str()}): {problem}. {fix}{hint}")
        return fail

    def _validate(self, chunk: Chunk, alias: str, label: str, col: Column) -> Column:
        """Cast to the signature dtype and check rank and fixed dims of every row."""
        spec = self.inputs[alias]
        fail = self._fail(chunk, label, alias)
        if col.dense is not None:
            col.dense = coerce(col.dense, spec, fail)
            if col.dense.ndim == 0:
                raise fail("wrong rank: the element is a scalar but the input needs a batch axis",
                           "Give every field a leading batch (row) axis.")
            shapes = [col.dense.shape[1:]]
        else:
            col.rows = [coerce(r, spec, fail) for r in col.rows]
            shapes = [r.shape for r in col.rows]
        if spec.shape is None:
            return col
        want = spec.shape[1:]
        extra = 1 if chunk.numbering == "batch" else 0
        for i, shape in enumerate(shapes):
            off = None if col.dense is not None else i
            if len(shape) != len(want):
                r = spec.rank
                raise self._fail(chunk, label, alias, off)(
                    f"wrong rank: the element has rank {len(shape) + extra} (row shape {tuple(shape)}), "
                    f"the input has rank {r}",
                    f"An element must have rank {r} (a batch)"
                    + (f" or {r - 1} (one example)" if r else "") + "; reshape it in the dataset.")
            for axis, (got, dim) in enumerate(zip(shape, want), start=1):
                if dim is not None and got != dim:
                    raise self._fail(chunk, label, alias, off)(
                        f"fixed dimension mismatch: axis {axis} has size {got}, the input needs {dim}",
                        "Pad, crop or reshape it in the dataset.")
        return col

    def _columns(self, chunk: Chunk) -> dict[str, Column]:
        raw: dict[str, tuple[str, Column]] = {}
        for alias, (label, value) in chunk.comps.items():
            if isinstance(value, Column):
                col = value
            elif isinstance(value, Single):
                col = to_column(value.value, False, chunk.where, label)
            else:
                col = to_column(value, True, chunk.where, label)
            raw[alias] = (label, col)
        # a rank-0 input of a user batch is one value shared by every row
        shared = {a for a, (_, c) in raw.items()
                  if chunk.user_batch and self.inputs[a].rank == 0
                  and c.dense is not None and c.dense.ndim == 0}
        sizes = {a: c.n for a, (_, c) in raw.items()
                 if a not in shared and not (c.dense is not None and c.dense.ndim == 0)}
        if len(set(sizes.values())) > 1:
            raise DatasetError(
                f"{chunk.where()}: fields have different batch sizes {sizes} for signature "
                f"{self.sig_name!r}; every field of a batch needs the same number of rows.")
        n = next(iter(sizes.values()), 1)
        for a in shared:
            label, c = raw[a]
            raw[a] = (label, Column(dense=np.repeat(c.dense[None], n, axis=0)))
        return {a: self._validate(chunk, a, label, c) for a, (label, c) in raw.items()}

    def _sniff(self, cols: dict[str, Column]) -> None:
        """Serialized tf.Examples? Decided per chunk until one says yes, so the
        answer is the same whatever order shards see the chunks in."""
        alias = example_alias(self.inputs, self.required)
        if alias is None or alias not in cols or self.examples is False:
            return
        col = cols[alias]
        vals = (col.dense.ravel()[:EXAMPLE_SNIFF].tolist() if col.dense is not None
                else [v for r in col.rows[:EXAMPLE_SNIFF] for v in r.ravel().tolist()])
        if self.examples or looks_like_examples(vals):
            self.example_alias = alias
            self.example_stats = ExampleStats(vocab_cap=self.vocab_cap)

    def add(self, chunk: Chunk) -> None:
        cols = self._columns(chunk)
        total = next(iter(cols.values())).n if cols else 0
        n = total if self.max_scan is None else min(total, self.max_scan - self.scanned)
        if n <= 0:
            return
        if n < total:
            cols = {a: (Column(dense=c.dense[:n]) if c.dense is not None else Column(rows=c.rows[:n]))
                    for a, c in cols.items()}
        if self.example_alias is None:
            self._sniff(cols)

        for (alias, axis), counter in self.size_counts.items():
            col = cols.get(alias)
            if col is None or self.inputs[alias].shape is None:
                continue
            if col.dense is not None:
                counter[int(col.dense.shape[axis])] += n
            else:
                counter.update(int(r.shape[axis - 1]) for r in col.rows)
        for alias, col in cols.items():
            spec = self.inputs[alias]
            if spec.shape is None:  # unknown rank: every axis of a row is an unknown dim
                shapes = ([(col.dense.shape[1:], n)] if col.dense is not None
                          else [(r.shape, 1) for r in col.rows])
                for shape, count in shapes:
                    for axis, size in enumerate(shape, start=1):
                        self.size_counts.setdefault((alias, axis), Counter())[int(size)] += count
            if alias == self.example_alias:
                if self.example_stats_mode == "all":
                    for arr in col.arrays():
                        for v in arr.ravel().tolist():
                            self.example_stats.update(v)
                continue
            stats = self.value_stats.get(alias)
            if stats is None:
                stats = self.value_stats[alias] = ValueStats.for_dtype(spec.dtype, self.vocab_cap)
            for arr in col.arrays():
                stats.update(arr)

        if chunk.numbering != "none":
            self._count_row_shapes(cols, n)
        self._keep(chunk, cols, n)
        self.scanned += n
        if chunk.numbering == "none":
            self.requests += chunk.requests

    def _count_row_shapes(self, cols: dict[str, Column], n: int) -> None:
        """Exact row shapes of a dataset chunk: ``((alias, row dims), ...)`` -> rows."""
        if all(c.dense is not None for c in cols.values()):
            self.row_shapes[tuple((a, tuple(int(d) for d in c.dense.shape[1:]))
                                  for a, c in sorted(cols.items()))] += n
            return
        for i in range(n):
            self.row_shapes[tuple((a, tuple(int(d) for d in (c.dense.shape[1:] if c.dense is not None
                                                               else c.rows[i].shape)))
                                  for a, c in sorted(cols.items()))] += 1

    def _stratum_keys(self, cols: dict[str, Column], n: int) -> list[tuple] | tuple:
        """Per row: the size class of each unknown dim; one tuple when every column is
        dense (all rows share it)."""
        keys = sorted(k for k in self.size_counts if k[0] in cols)
        if all(c.dense is not None for c in cols.values()):
            return tuple(size_class(cols[a].dense.shape[ax]) for a, ax in keys)
        out = []
        for i in range(n):
            cls = []
            for a, ax in keys:
                c = cols[a]
                cls.append(size_class(c.dense.shape[ax] if c.dense is not None else
                                      (c.rows[i].shape[ax - 1] if c.rows[i].ndim >= ax else 0)))
            out.append(tuple(cls))
        return out

    def _keep(self, chunk: Chunk, cols: dict[str, Column], n: int) -> None:
        hashes = row_hashes(cols, n, self.seed)
        keys = self._stratum_keys(cols, n)
        groups: dict[tuple, list[int]] = {}
        if isinstance(keys, tuple):  # dense: the whole chunk is one stratum
            groups[chunk.stratum + keys] = range(n)
        else:
            for i, key in enumerate(keys):
                groups.setdefault(chunk.stratum + key, []).append(i)
        for key, idx in sorted(groups.items()):
            stratum = self.strata.get(key)
            if stratum is None:
                stratum = self.strata[key] = Stratum(self.k)
            if len(idx) == n:
                stratum.offer(hashes, lambda pick: take_rows(cols, pick))
            else:
                sel = np.asarray(idx)
                stratum.offer(hashes[sel], lambda pick: take_rows(cols, sel[pick]))

    def merge(self, other: "Scanner") -> "Scanner":
        """Fold another shard's scanner into this one (Beam ``merge_accumulators``)."""
        self.scanned += other.scanned
        self.requests += other.requests
        self.class_counts.update(other.class_counts)
        self.row_shapes.update(other.row_shapes)
        for key, counter in other.size_counts.items():
            self.size_counts.setdefault(key, Counter()).update(counter)
        for alias, stats in other.value_stats.items():
            if alias in self.value_stats:
                self.value_stats[alias].merge(stats)
            else:
                self.value_stats[alias] = stats
        if other.example_alias is not None:
            if self.example_alias is None:
                self.example_alias, self.example_stats = other.example_alias, other.example_stats
            elif other.example_stats is not None:
                self.example_stats.merge(other.example_stats)
        for key, stratum in other.strata.items():
            if key in self.strata:
                self.strata[key].merge(stratum)
            else:
                self.strata[key] = stratum
        return self

    def finish(self, source: str, k: int, seed: int, vocab_min_count: int,
               allow_empty: bool = False) -> DataSample | None:
        if self.scanned == 0:
            if allow_empty:
                return None
            raise DatasetError(f"{source} has no rows for signature {self.sig_name!r}; "
                               "pass a non-empty dataset.")
        learned = {}
        if self.example_alias is not None and self.example_stats_mode == "all":
            learned[self.example_alias] = self.example_stats
        # one list, ordered by hash: identical whatever the read order or sharding
        kept: dict[int, tuple[Row, tuple]] = {}
        for key in sorted(self.strata):
            for h, row in self.strata[key].items():
                kept.setdefault(h, (row, key))
        order = sorted(kept)
        return DataSample(signature=self.sig_name, rows=[kept[h][0] for h in order],
                          scanned=self.scanned, size_counts=self.size_counts,
                          value_stats=self.value_stats, source=source, inputs=self.inputs,
                          example_aliases=(self.example_alias,) if self.example_alias else (),
                          learned_example_stats=learned, k=k, seed=seed,
                          vocab_min_count=vocab_min_count, vocab_cap=self.vocab_cap,
                          row_strata=[kept[h][1] for h in order], requests=self.requests,
                          strata=len(self.strata), class_counts=Counter(self.class_counts),
                          row_shapes=Counter(self.row_shapes))
