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
from tfwarm_export.signatures import TensorSpec
from tfwarm_export.traffic import privacy
from tfwarm_export.traffic.privacy import privacy_note
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
from tfwarm_export.traffic.stats import (
    VOCAB_CAP,
    VOCAB_MIN_COUNT,
    ExampleStats,
    ValueStats,
    choose_buckets,
    looks_like_examples,
)

DEFAULT_K = 256
EXAMPLE_SNIFF = 32  # values parsed to decide whether strings are tf.Examples


# --------------------------------------------------------------------------- reservoir


class Reservoir:
    """Uniform k-of-n sample in one pass: Li's Algorithm L.

    Unlike Algorithm R it draws random numbers only when an item is taken
    (O(k log(n/k)) draws in all), so a chunk of skipped rows costs no Python
    work, and which items are kept depends only on their order, not on how
    they were chunked: batched and unbatched views of the same data with the
    same seed give the same sample.
    """

    def __init__(self, k: int, seed: int | np.random.Generator = 0):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.items: list[Any] = []
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._buf: list[float] = []  # uniforms drawn in blocks: scalar draws cost ~1us each
        self._pos = 0
        self._filled = 0
        self._w = 1.0
        self._next = 0  # global index of the next item to keep

    def _random(self) -> float:
        """Uniform in [0, 1)."""
        if self._pos >= len(self._buf):
            self._buf = self._rng.random(512).tolist()
            self._pos = 0
        self._pos += 1
        return self._buf[self._pos - 1]

    def _u(self) -> float:
        return 1.0 - self._random()  # (0, 1]: log() stays finite

    def _advance(self) -> None:
        self._w *= math.exp(math.log(self._u()) / self.k)
        skip = math.floor(math.log(self._u()) / math.log1p(-self._w)) if self._w < 1.0 else 0
        self._next += skip + 1

    def plan(self, n: int) -> list[tuple[int, int]]:
        """For the next ``n`` items: ``(offset in chunk, slot)`` of each to keep, in order."""
        start, end = self.seen, self.seen + n
        picks: list[tuple[int, int]] = []
        while self._next < end:
            off = self._next - start
            if self._filled < self.k:
                slot = self._filled
                self._filled += 1
                if self._filled == self.k:
                    self._next = self.k - 1
                    self._advance()
                else:
                    self._next += 1
            else:
                slot = min(int(self._random() * self.k), self.k - 1)
                self._advance()
            picks.append((off, slot))
        self.seen = end
        return picks

    def offer(self, n: int, make: Callable[[int], Any]) -> None:
        """Consider ``n`` more items; ``make(offset)`` materialises only the kept ones."""
        for off, slot in self.plan(n):
            item = make(off)
            if slot == len(self.items):
                self.items.append(item)
            else:
                self.items[slot] = item



@dataclass
class DataSample:
    """A uniform sample of one signature's input rows plus what was learned
    from every scanned row (size distributions, value stats)."""

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
        if bucket:
            # closest rows first; padding (row shorter) beats truncating at equal distance
            dist = np.zeros(n)
            for i, row in enumerate(self.rows):
                for key, length in bucket.items():
                    got = self._row_len(row, key)
                    if got is not None:
                        dist[i] += abs(got - length) + (0.5 if got > length else 0.0)
            order = np.lexsort((rng.random(n), dist))
        else:
            order = rng.permutation(n)
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
        return privacy.synthesize(self, batch_size, bucket, rng)

    def to_dict(self, privacy: str = "copy", max_buckets: int = 8) -> dict:
        """Summary for reports. Values are summarised (ranges, vocabulary
        sizes), never listed, so the report itself leaks no rows."""
        copies = privacy != "shapes_only"
        return {
            "signature": self.signature,
            "source": self.source,
            "scanned": self.scanned,
            "sample_size": self.sample_size,
            "k": self.k,
            "seed": self.seed,
            "size_distributions": {key_str(key): dict(sorted(c.items()))
                                   for key, c in sorted(self.size_counts.items())},
            "buckets": {key_str(key): b for key, b in self.buckets(max_buckets).items()},
            "value_stats": {a: s.to_dict() for a, s in sorted(self.value_stats.items())},
            "example_stats": {a: s.to_dict() for a, s in sorted(self.example_stats.items())},
            "privacy": privacy,
            "copies_user_rows": copies,
            "privacy_note": privacy_note(copies),
        }



# --------------------------------------------------------------------------- scanning


class Scanner:
    """Validates chunks, updates counters and the reservoir."""

    def __init__(self, inputs: Mapping[str, TensorSpec], required: list[str], sig_name: str,
                 k: int, seed: int, max_scan: int | None, vocab_cap: int,
                 examples: bool | None, example_stats: str):
        self.inputs = inputs
        self.required = required
        self.sig_name = sig_name
        self.max_scan = max_scan
        self.vocab_cap = vocab_cap
        self.reservoir = Reservoir(k, seed)
        self.scanned = 0
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
        self._sniffed = False

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
        self._sniffed = True
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
        if not self._sniffed:
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

        self.reservoir.offer(n, lambda off: {a: c.row(off) for a, c in cols.items()})
        self.scanned += n

    def finish(self, source: str, k: int, seed: int, vocab_min_count: int) -> DataSample:
        if self.scanned == 0:
            raise DatasetError(f"{source} has no rows for signature {self.sig_name!r}; "
                               "pass a non-empty dataset.")
        learned = {}
        if self.example_alias is not None and self.example_stats_mode == "all":
            learned[self.example_alias] = self.example_stats
        return DataSample(signature=self.sig_name, rows=self.reservoir.items, scanned=self.scanned,
                          size_counts=self.size_counts, value_stats=self.value_stats,
                          source=source, inputs=self.inputs,
                          example_aliases=(self.example_alias,) if self.example_alias else (),
                          learned_example_stats=learned, k=k, seed=seed,
                          vocab_min_count=vocab_min_count, vocab_cap=self.vocab_cap)


