"""Sample real traffic shapes from the data users already have (issue #5).

Warmup requests built from a signature alone have to guess every unknown
dimension, so the first real request can still hit an untraced shape. Users
usually have a ``tf.data`` pipeline, numpy arrays or TFRecord files of the
traffic the model serves: this module scans such data once and keeps

* a uniform reservoir sample of ``k`` rows (Algorithm L: O(k) memory, so a 10x
  larger dataset costs the same memory and skipped rows cost no Python work);
* the distribution of sizes of every unknown non-batch dimension over *all*
  scanned rows (cheap counters), from which :func:`choose_buckets` picks the
  lengths worth warming;
* per-input value statistics (numeric range, capped string vocabulary, and for
  serialized ``tf.Example`` inputs per-feature key/type/length/range), which let
  ``privacy="shapes_only"`` synthesize look-alike data without copying rows.

Data flows one way: this module only reads data and hands out numpy batches;
turning them into requests is for the plan/requests modules, which import this
one (never the reverse).

Row/element conventions:

* A *row* is one example: ``{alias: np.ndarray}`` whose arrays have the
  signature input's shape without the leading batch dimension. String inputs
  hold ``bytes`` in ``dtype=object`` arrays, as TF's numpy bridge does.
* A tuple element is matched to inputs **by position in sorted alias order**
  (``SignatureInfo.inputs`` is sorted the same way); if the tuple has as many
  items as there are *required* inputs (those without a signature default), it
  is matched to the sorted required aliases instead.
* An ``(x, y)`` or ``(x, y, sample_weight)`` tuple as passed to ``Model.fit`` is
  recognised when its first item is itself a dict/tuple, or when its length does
  not match the input count; ``x`` is used. A 2-tuple of plain tensors for a
  two-input signature is ambiguous and is read as ``(input_a, input_b)``.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message

from tfwarm_export import progress
from tfwarm_export.errors import DatasetError, SignatureError
from tfwarm_export.learned_encodings import draw as draw_learned
from tfwarm_export.learned_encodings import learn_from_rows
from tfwarm_export.signatures import SignatureInfo, TensorSpec

__all__ = [
    "DEFAULT_K",
    "DataSample",
    "ExampleStats",
    "FeatureStats",
    "Reservoir",
    "SizeKey",
    "ValueStats",
    "choose_buckets",
    "sample_dataset",
]

SizeKey = tuple[str, int]  # (alias, axis); axis counts the batch dimension as 0
Row = dict[str, np.ndarray]
RngLike = np.random.Generator | int | None

DEFAULT_K = 256
VOCAB_CAP = 1000           # distinct strings kept per input before it counts as free text
VOCAB_MIN_COUNT = 2        # a string must be seen this often before synthesis may emit it
VOCAB_MAX_LEN = 128        # a longer string is free text, never vocabulary
_CHUNK_ROWS = 1024         # rows per internal read batch (TFRecord, re-batched tf.data)
_NUMPY_CHUNK_ROWS = 65536  # bounds temporaries when scanning large in-memory arrays
_EXAMPLE_SNIFF = 32        # values parsed to decide whether strings are tf.Examples
_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"

_FIX_STRUCTURE = ("Make each element a dict keyed by the signature's input aliases "
                  "(e.g. dataset.map(lambda x, y: {...})) or pass arrays in sorted alias order.")


# --------------------------------------------------------------------------- buckets


_REDRAWS = 8
"""Redraws of a value equal to a sampled one before it is counted as unavoidable."""


def choose_buckets(sizes: Mapping[int, int], max_buckets: int = 8,
                   quantiles: Sequence[float] | None = None) -> list[int]:
    """Pick the lengths worth warming from a size histogram.

    Every distinct size when there are at most ``max_buckets``; otherwise the
    sizes at ``quantiles`` of the row distribution (default ``1/m, 2/m, ..., 1``)
    so buckets follow where traffic actually is. The largest size seen is
    always included, because padding up to a bucket works and truncating a long
    request does not.
    """
    if max_buckets < 1:
        raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
    counts = sorted((int(s), int(c)) for s, c in sizes.items() if c > 0)
    if not counts:
        return []
    distinct = [s for s, _ in counts]
    if len(distinct) <= max_buckets:
        return distinct
    if quantiles is None:
        quantiles = [i / max_buckets for i in range(1, max_buckets + 1)]
    qs = sorted(set(float(q) for q in quantiles) | {1.0})
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    if len(qs) > max_buckets:
        raise ValueError(f"{len(qs)} quantiles (with the max, 1.0) exceed max_buckets={max_buckets}")
    cum = np.cumsum([c for _, c in counts])
    total = int(cum[-1])
    picked = set()
    for q in qs:
        # inverse CDF: smallest size covering at least a fraction q of rows
        idx = int(np.searchsorted(cum, max(q * total, 1), side="left"))
        picked.add(distinct[min(idx, len(distinct) - 1)])
    picked.add(distinct[-1])
    return sorted(picked)


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


# --------------------------------------------------------------------------- value stats


def _draw_from_counts(counts: Counter, size: int, rng: np.random.Generator) -> np.ndarray:
    keys = sorted(counts)
    w = np.array([counts[k] for k in keys], dtype=np.float64)
    return np.asarray(keys)[rng.choice(len(keys), size=size, p=w / w.sum())]


@dataclass
class ValueStats:
    """What ``shapes_only`` synthesis may learn about one input's values.

    A range for numbers, and for strings a capped vocabulary plus byte lengths.
    The vocabulary is dropped (``vocab=None``) once an input shows more than
    ``vocab_cap`` distinct values or any value longer than ``VOCAB_MAX_LEN``:
    such an input is free text or ids, and its values are not categories.
    """

    kind: str                 # "numeric" | "bool" | "string"
    integer: bool = False
    count: int = 0            # values seen
    low: Any = None
    high: Any = None
    nonfinite: int = 0        # NaN/inf values, left out of the range
    vocab: Counter | None = field(default_factory=Counter)
    vocab_cap: int = VOCAB_CAP
    str_lengths: Counter = field(default_factory=Counter)
    # Values ``draw`` emitted that equal a sampled value because the learned domain
    # held no other (or redrawing gave up): reported, never silently kept.
    sampled_emitted: int = 0

    @classmethod
    def for_dtype(cls, dtype: tf.DType, vocab_cap: int = VOCAB_CAP) -> "ValueStats":
        if dtype == tf.string:
            return cls(kind="string", vocab_cap=vocab_cap)
        if dtype == tf.bool:
            return cls(kind="bool", vocab=None)
        return cls(kind="numeric", integer=dtype.is_integer, vocab=None)

    def _merge_range(self, lo, hi) -> None:
        self.low = lo if self.low is None else min(self.low, lo)
        self.high = hi if self.high is None else max(self.high, hi)

    def update(self, values: np.ndarray) -> None:
        flat = np.asarray(values).ravel()
        if flat.size == 0:
            return
        self.count += int(flat.size)
        if self.kind == "string":
            self.update_strings(flat.tolist(), counted=True)
        elif self.kind == "bool":
            self._merge_range(bool(flat.min()), bool(flat.max()))
        elif self.integer:
            self._merge_range(flat.min().item(), flat.max().item())
        else:
            if flat.dtype.kind == "c":
                flat = flat.real
            f = flat.astype(np.float64, copy=False)
            finite = np.isfinite(f)
            if not finite.all():
                self.nonfinite += int(f.size - finite.sum())
                f = f[finite]
            if f.size:
                self._merge_range(float(f.min()), float(f.max()))

    def update_scalars(self, values: Sequence) -> None:
        """Cheaper than ``update`` for the short lists inside a tf.Example."""
        if not values:
            return
        self.count += len(values)
        if self.kind == "string":
            self.update_strings(list(values), counted=True)
            return
        if not self.integer:
            vals = [v for v in values if math.isfinite(v)]
            self.nonfinite += len(values) - len(vals)
            if not vals:
                return
            values = vals
        self._merge_range(min(values), max(values))

    def update_strings(self, values: list, counted: bool = False) -> None:
        if not counted:
            self.count += len(values)
        values = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        self.str_lengths.update(map(len, values))
        if self.vocab is not None:
            if any(len(v) > VOCAB_MAX_LEN for v in values):
                self.vocab = None
                return
            self.vocab.update(values)
            if len(self.vocab) > self.vocab_cap:
                self.vocab = None

    def vocabulary(self, min_count: int = VOCAB_MIN_COUNT) -> list[bytes]:
        """Strings synthesis may emit: categories seen at least ``min_count`` times."""
        if not self.vocab:
            return []
        return sorted(v for v, c in self.vocab.items() if c >= min_count)

    def draw(self, shape: tuple, np_dtype, rng: np.random.Generator,
             min_count: int = VOCAB_MIN_COUNT, avoid: np.ndarray | None = None) -> np.ndarray:
        """Fresh values of ``shape`` from the learned range/vocabulary; never a copied row.

        Numbers equal to any value in ``avoid`` (the sampled rows' values) or to
        the learned ``low``/``high`` (each is some scanned row's value, kept even
        when that row is not in the sample) are redrawn; so are random strings
        (no vocabulary) equal to a sampled string. What is still equal when the
        domain holds nothing else (a small int range entirely seen, a constant
        float) or after ``_REDRAWS`` tries is counted in ``sampled_emitted`` and
        flagged in the report, never kept silently."""
        out = self._draw(shape, np_dtype, rng, min_count)
        if not out.size or (self.kind == "string" and self.vocabulary(min_count)):
            return out  # vocabulary strings are the learned domain itself; the report says so
        if self.kind == "string":
            seen = set(self.vocab or ())  # every string seen, while few enough to count
            if avoid is not None:
                seen.update(np.asarray(avoid, dtype=object).ravel().tolist())
            if not seen:
                return out
            return self._redraw(out, lambda o: np.array([v in seen for v in o.ravel().tolist()],
                                                        dtype=bool).reshape(o.shape),
                                np_dtype, rng, min_count)
        if self.kind != "numeric" or self.low is None:
            return out
        ends = np.array([self.low, self.high], dtype=np.asarray(out).dtype)
        avoid = np.unique(np.concatenate([np.asarray(avoid, dtype=out.dtype).ravel(), ends])
                          if avoid is not None else ends)
        if self.integer and int(self.high) - int(self.low) < 1_000_000:
            pool = np.setdiff1d(np.arange(int(self.low), int(self.high) + 1), avoid)
            hit = np.isin(out, avoid)
            if pool.size:
                out[hit] = pool[rng.integers(pool.size, size=int(hit.sum()))].astype(out.dtype)
            else:
                self.sampled_emitted += int(hit.sum())
            return out
        return self._redraw(out, lambda o: np.isin(o, avoid), np_dtype, rng, min_count)

    def _redraw(self, out: np.ndarray, hits, np_dtype, rng: np.random.Generator,
                min_count: int) -> np.ndarray:
        """Redraw ``hits(out)`` up to ``_REDRAWS`` times; count what is left."""
        hit = hits(out)
        for _ in range(_REDRAWS):
            if not hit.any():
                return out
            out[hit] = self._draw((int(hit.sum()),), np_dtype, rng, min_count)
            hit = hits(out)
        self.sampled_emitted += int(hit.sum())
        return out

    def _draw(self, shape: tuple, np_dtype, rng: np.random.Generator,
              min_count: int = VOCAB_MIN_COUNT) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64))
        if self.kind == "string":
            vocab = self.vocabulary(min_count)
            if vocab:
                picks = rng.integers(len(vocab), size=size)
                flat = [vocab[i] for i in picks]
            else:
                lengths = (_draw_from_counts(self.str_lengths, size, rng) if self.str_lengths
                           else np.full(size, 8))
                alphabet = np.frombuffer(_ALPHABET, dtype=np.uint8)
                flat = [rng.choice(alphabet, int(n)).tobytes() for n in lengths]
            out = np.empty(size, dtype=object)
            out[:] = flat
            return out.reshape(shape)
        if self.low is None:  # nothing seen: zeros are the only honest value
            return np.zeros(shape, dtype=np_dtype)
        if self.kind == "bool":
            if self.low == self.high:
                return np.full(shape, self.low, dtype=bool)
            return rng.random(shape) < 0.5
        if self.integer:
            return rng.integers(self.low, self.high, size=shape, endpoint=True,
                                dtype=np.dtype(np_dtype)).astype(np_dtype)
        vals = rng.uniform(self.low, self.high, size=shape)
        return vals.astype(np_dtype)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.kind == "string":
            d["vocab_size"] = None if self.vocab is None else len(self.vocab)
            d["free_text"] = self.vocab is None
            if self.str_lengths:
                d["max_length"] = max(self.str_lengths)
        else:
            d["low"], d["high"] = self.low, self.high
            if self.nonfinite:
                d["nonfinite"] = self.nonfinite
        return d


# --------------------------------------------------------------------------- tf.Example stats


_FEATURE_KINDS = ("bytes_list", "float_list", "int64_list")


@dataclass
class FeatureStats:
    """One tf.Example feature: its type, how often it is present, its list
    lengths and its values' range/vocabulary."""

    kind: str  # "bytes_list" | "float_list" | "int64_list"
    present: int = 0
    lengths: Counter = field(default_factory=Counter)
    values: ValueStats | None = None
    conflicts: int = 0  # rows where the key had another type (ignored)

    @classmethod
    def new(cls, kind: str, vocab_cap: int) -> "FeatureStats":
        dtype = {"bytes_list": tf.string, "float_list": tf.float32, "int64_list": tf.int64}[kind]
        return cls(kind=kind, values=ValueStats.for_dtype(dtype, vocab_cap))

    def update(self, feature: tf.train.Feature) -> None:
        vals = getattr(feature, self.kind).value
        self.present += 1
        self.lengths[len(vals)] += 1
        self.values.update_scalars(vals)

    def fill(self, feature: tf.train.Feature, rng: np.random.Generator, min_count: int) -> None:
        n = int(_draw_from_counts(self.lengths, 1, rng)[0])
        np_dtype = {"bytes_list": object, "float_list": np.float32, "int64_list": np.int64}[self.kind]
        vals = self.values.draw((n,), np_dtype, rng, min_count)
        getattr(feature, self.kind).value.extend(vals.tolist())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "present": self.present,
                "lengths": dict(sorted(self.lengths.items())), "values": self.values.to_dict()}


def _update_features(table: dict[str, FeatureStats], features, vocab_cap: int) -> None:
    for key, feat in features.items():
        kind = feat.WhichOneof("kind")
        if kind is None:  # an empty Feature has no type to learn
            continue
        fs = table.get(key)
        if fs is None:
            fs = table[key] = FeatureStats.new(kind, vocab_cap)
        if fs.kind != kind:
            fs.conflicts += 1
            continue
        fs.update(feat)


@dataclass
class FeatureListStats:
    """One SequenceExample feature list: presence, number of steps, and the
    per-step feature stats pooled over steps."""

    present: int = 0
    steps: Counter = field(default_factory=Counter)
    step: dict[str, FeatureStats] = field(default_factory=dict)  # one entry: key "" -> stats

    def to_dict(self) -> dict:
        d = {"present": self.present, "steps": dict(sorted(self.steps.items()))}
        if "" in self.step:
            d["step"] = self.step[""].to_dict()
        return d


@dataclass
class ExampleStats:
    """Per-feature statistics of serialized tf.Example / SequenceExample inputs,
    so ``shapes_only`` can emit new protos with the same keys, types, lengths
    and ranges. Parsing as SequenceExample covers both: an Example's
    ``features`` and a SequenceExample's ``context`` share field number 1."""

    kind: str = "example"  # becomes "sequence_example" once feature_lists are seen
    rows: int = 0
    unparsed: int = 0
    context: dict[str, FeatureStats] = field(default_factory=dict)
    feature_lists: dict[str, FeatureListStats] = field(default_factory=dict)
    vocab_cap: int = VOCAB_CAP

    def update(self, serialized: bytes) -> bool:
        try:
            seq = tf.train.SequenceExample.FromString(serialized)
        except pb_message.DecodeError:
            self.unparsed += 1
            return False
        self.rows += 1
        _update_features(self.context, seq.context.feature, self.vocab_cap)
        for key, flist in seq.feature_lists.feature_list.items():
            self.kind = "sequence_example"
            fl = self.feature_lists.setdefault(key, FeatureListStats())
            fl.present += 1
            fl.steps[len(flist.feature)] += 1
            for feat in flist.feature:
                _update_features(fl.step, {"": feat}, self.vocab_cap)
        return True

    def synthesize_one(self, rng: np.random.Generator, min_count: int = VOCAB_MIN_COUNT) -> bytes:
        """A new proto: each feature present as often as in the data, with a
        learned length and fresh values."""
        rows = max(self.rows, 1)
        if self.kind == "sequence_example":
            msg = tf.train.SequenceExample()
            features = msg.context.feature
        else:
            msg = tf.train.Example()
            features = msg.features.feature
        for key in sorted(self.context):
            fs = self.context[key]
            if fs.present >= rows or rng.random() < fs.present / rows:
                fs.fill(features[key], rng, min_count)
        for key in sorted(self.feature_lists):
            fl = self.feature_lists[key]
            if not (fl.present >= rows or rng.random() < fl.present / rows):
                continue
            flist = msg.feature_lists.feature_list[key]
            steps = int(_draw_from_counts(fl.steps, 1, rng)[0])
            for _ in range(steps):
                feat = flist.feature.add()
                if "" in fl.step:
                    fl.step[""].fill(feat, rng, min_count)
        return msg.SerializeToString()

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "rows": self.rows,
             "features": {k: v.to_dict() for k, v in sorted(self.context.items())}}
        if self.feature_lists:
            d["feature_lists"] = {k: v.to_dict() for k, v in sorted(self.feature_lists.items())}
        if self.unparsed:
            d["unparsed"] = self.unparsed
        return d


def _looks_like_examples(values: Sequence) -> bool:
    """True when every value parses as a (Sequence)Example and most carry
    features: plain text almost never parses as a proto with a field 1."""
    vals = [v for v in values if isinstance(v, (bytes, np.bytes_))]
    if not vals or len(vals) != len(values):
        return False
    with_features = 0
    for v in vals:
        try:
            seq = tf.train.SequenceExample.FromString(bytes(v))
        except pb_message.DecodeError:
            return False
        if len(seq.context.feature) or len(seq.feature_lists.feature_list):
            with_features += 1
    return with_features * 2 >= len(vals)


# --------------------------------------------------------------------------- the sample


def _as_rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng or 0)


def _np_dtype(dtype: tf.DType):
    return object if dtype == tf.string else dtype.as_numpy_dtype


def _fill_value(dtype: tf.DType):
    return b"" if dtype == tf.string else 0


def _key_str(key: SizeKey) -> str:
    return f"{key[0]}[{key[1]}]"


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

    def _plan(self, batch_size: int, bucket: Mapping[SizeKey, int] | None,
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

    def _spec_dtype(self, alias: str) -> tf.DType:
        spec = self.inputs.get(alias)
        if spec is not None:
            return spec.dtype
        arr = self.rows[0][alias]
        return tf.string if arr.dtype == object else tf.as_dtype(arr.dtype)

    def _is_scalar_input(self, alias: str) -> bool:
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
        rng = _as_rng(rng)
        chosen, targets = self._plan(batch_size, bucket, rng)
        out: dict[str, np.ndarray] = {}
        for alias, target in targets.items():
            if self._is_scalar_input(alias):
                out[alias] = self.rows[chosen[0]][alias].copy()
                continue
            dtype = self._spec_dtype(alias)
            batch = np.full((batch_size,) + target, _fill_value(dtype), dtype=_np_dtype(dtype))
            for i, r in enumerate(chosen):
                row = self.rows[r][alias]
                sl = tuple(slice(0, min(a, b)) for a, b in zip(row.shape, target))
                batch[(i,) + sl] = row[sl]
            out[alias] = batch
        return out

    def synthesize(self, batch_size: int, bucket: Mapping[SizeKey, int] | None = None,
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
        rng = _as_rng(rng)
        chosen, targets = self._plan(batch_size, bucket, rng)
        out: dict[str, np.ndarray] = {}
        for alias, target in targets.items():
            dtype = self._spec_dtype(alias)
            np_dtype = _np_dtype(dtype)
            if alias in self.example_aliases:
                stats = self.example_stats[alias]
                n = 1 if self._is_scalar_input(alias) else batch_size
                flat = np.empty(n * int(np.prod(target, dtype=np.int64)), dtype=object)
                flat[:] = [stats.synthesize_one(rng, self.vocab_min_count) for _ in range(flat.size)]
                out[alias] = flat.reshape(target if self._is_scalar_input(alias) else (n,) + target)
                continue
            learned = learn_from_rows(self.rows, alias) if dtype == tf.string else None
            if learned is not None:  # encoded images, CSV lines, number strings: new values of that form
                scalar = self._is_scalar_input(alias)
                out[alias] = draw_learned(learned, target if scalar else (batch_size,) + target, rng)
                continue
            stats = self.value_stats.get(alias) or ValueStats.for_dtype(dtype)
            if self._is_scalar_input(alias):
                out[alias] = stats.draw((), np_dtype, rng, self.vocab_min_count)
                continue
            seen = [np.asarray(row[alias]).ravel() for row in self.rows if alias in row]
            values = stats.draw((batch_size,) + target, np_dtype, rng, self.vocab_min_count,
                                avoid=np.concatenate(seen) if seen and stats.kind != "bool" else None)
            batch = np.full((batch_size,) + target, _fill_value(dtype), dtype=np_dtype)
            for i, r in enumerate(chosen):
                row = self.rows[r][alias]
                sl = tuple(slice(0, min(a, b)) for a, b in zip(row.shape, target))
                batch[(i,) + sl] = values[(i,) + sl]  # keep the row's real extent; pad the rest
            out[alias] = batch
        return out

    def _all_value_stats(self) -> list[tuple[str, ValueStats]]:
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
            "k": self.k,
            "seed": self.seed,
            "size_distributions": {_key_str(key): dict(sorted(c.items()))
                                   for key, c in sorted(self.size_counts.items())},
            "buckets": {_key_str(key): b for key, b in self.buckets(max_buckets).items()},
            "value_stats": value_stats,
            "example_stats": example_stats,
            **extra,
            "privacy": privacy,
            "copies_user_rows": copies,
            "privacy_note": (
                "warmup requests contain rows copied from the user's data; they ship inside "
                "the SavedModel's assets.extra" if copies else
                "warmup requests hold synthesized values: only shapes, lengths, value ranges and "
                "string vocabularies were learned from the data; no row is copied"),
        }


def _redact_range(d: Any) -> Any:
    """``d`` with every learned ``low``/``high`` replaced by a marker (shapes_only reports)."""
    if isinstance(d, dict):
        out = {k: _redact_range(v) for k, v in d.items() if k not in ("low", "high")}
        if "low" in d or "high" in d:
            out["range"] = "learned from the data; not shown under privacy='shapes_only'"
        return out
    return d


# --------------------------------------------------------------------------- element matching


def _is_struct(x) -> bool:
    return isinstance(x, (Mapping, tuple, list))


def _split_element(el, inputs: Mapping[str, TensorSpec], required: list[str],
                   sig_name: str, where: str) -> dict[str, tuple[str, Any]]:
    """Map one element (values or element_spec) to ``{alias: (field label, component)}``."""
    aliases = sorted(inputs)
    if isinstance(el, (tuple, list)) and not isinstance(el, Mapping):
        if len(el) in (2, 3) and (_is_struct(el[0]) or len(el) not in (len(aliases), len(required))):
            el = el[0]  # (x, y[, sample_weight]) as passed to Model.fit
    if isinstance(el, Mapping):
        keys = set(el)
        extra = sorted(str(k) for k in keys - set(aliases))
        if extra:
            raise DatasetError(
                f"{where}: field {extra[0]!r} is not an input of signature {sig_name!r} "
                f"(inputs: {aliases}); unknown extra key(s) {extra}. Drop them, e.g. "
                f"dataset.map(lambda d: {{k: d[k] for k in {aliases}}}), or rename them to aliases.")
        missing = [a for a in required if a not in keys]
        if missing:
            raise DatasetError(
                f"{where}: missing key {missing[0]!r} for signature {sig_name!r} input "
                f"{missing[0]!r} (element keys: {sorted(map(str, keys))}; required: {required}). "
                "Add the field to every element, or pick the signature it belongs to.")
        return {a: (f"key {a!r}", el[a]) for a in aliases if a in keys}
    if isinstance(el, (tuple, list)):
        if len(el) == len(aliases):
            names = aliases
        elif len(el) == len(required):
            names = required
        else:
            raise DatasetError(
                f"{where}: a tuple of {len(el)} items does not match signature {sig_name!r}, "
                f"which has {len(aliases)} inputs {aliases} ({len(required)} required). Tuples are "
                f"matched by position in sorted alias order. {_FIX_STRUCTURE}")
        for i, item in enumerate(el):
            if _is_struct(item):
                raise DatasetError(
                    f"{where}: tuple position {i} is a nested {type(item).__name__}, expected a "
                    f"tensor for signature {sig_name!r} input {names[i]!r}. {_FIX_STRUCTURE}")
        return {a: (f"tuple position {i}", v) for i, (a, v) in enumerate(zip(names, el))}
    if len(aliases) == 1 or len(required) == 1:
        alias = aliases[0] if len(aliases) == 1 else required[0]
        return {alias: ("the element", el)}
    raise DatasetError(
        f"{where}: a single tensor cannot feed signature {sig_name!r}, which has "
        f"{len(aliases)} inputs {aliases}. {_FIX_STRUCTURE}")


def _component_rank(comp) -> int | None:
    if isinstance(comp, tf.TypeSpec):
        shape = getattr(comp, "shape", None)
        return None if shape is None else shape.rank
    if isinstance(comp, (tf.Tensor, tf.RaggedTensor, tf.SparseTensor)):
        return comp.shape.rank
    if isinstance(comp, np.ndarray):
        return comp.ndim
    return None


def _decide_batched(comps: dict[str, tuple[str, Any]], inputs: Mapping[str, TensorSpec],
                    sig_name: str, where: str) -> bool | None:
    """Equal ranks mean a batch, one less means one example; None when undecidable."""
    votes: dict[bool, str] = {}
    for alias, (label, comp) in comps.items():
        spec_rank = inputs[alias].rank
        rank = _component_rank(comp)
        if spec_rank in (None, 0) or rank is None:
            continue
        if rank == spec_rank:
            votes.setdefault(True, alias)
        elif rank == spec_rank - 1:
            votes.setdefault(False, alias)
        else:
            spec = inputs[alias]
            raise DatasetError(
                f"{where}: field {label} has rank {rank} but signature {sig_name!r} input "
                f"{alias!r} has shape {spec.shape_str()} (rank {spec_rank}): wrong rank. An element "
                f"must have rank {spec_rank} (a batch) or {spec_rank - 1} (one example); "
                "reshape it in the dataset.")
    if len(votes) == 2:
        raise DatasetError(
            f"{where}: input {votes[True]!r} looks batched but {votes[False]!r} looks unbatched "
            f"for signature {sig_name!r}; batch every field the same way.")
    return next(iter(votes)) if votes else None


# --------------------------------------------------------------------------- columns


@dataclass
class _Column:
    """One input's values for a chunk of rows: dense with a leading row axis,
    or a list of per-row arrays when rows differ in shape (ragged data)."""

    dense: np.ndarray | None = None
    rows: list[np.ndarray] | None = None

    @property
    def n(self) -> int:
        return len(self.dense) if self.dense is not None else len(self.rows)

    def row(self, i: int) -> np.ndarray:
        """A copy, so a kept row never pins the whole chunk in memory."""
        if self.dense is not None:
            return np.array(self.dense[i], dtype=self.dense.dtype)
        return self.rows[i].copy()

    def arrays(self) -> list[np.ndarray]:
        return [self.dense] if self.dense is not None else self.rows


def _ragged_rows(rt: tf.RaggedTensor) -> list[np.ndarray]:
    if rt.ragged_rank == 1:
        values = rt.flat_values.numpy()
        splits = rt.row_splits.numpy()
        return [values[a:b] for a, b in zip(splits[:-1], splits[1:])]
    rows = []
    for r in rt.to_list():
        try:
            rows.append(np.array(r))
        except ValueError:
            raise DatasetError("a ragged row is ragged inside (more than one variable dimension "
                               "per row), so it cannot be a dense request tensor; pad it with "
                               ".to_tensor() in the dataset.") from None
    return rows


def _py_array(value) -> np.ndarray:
    """np.asarray for Python data, but strings stay ``bytes``/``str`` objects:
    numpy's fixed-width 'S'/'U' dtypes silently drop trailing NUL bytes, which
    would corrupt serialized protos."""
    arr = np.asarray(value)
    if arr.dtype.kind in "SU" and not isinstance(value, np.ndarray):
        arr = np.array(value, dtype=object)
    return arr


def _to_column(value, leading: bool, where: Callable[[], str], label: str) -> _Column:
    """Numpy view of a component; ``leading`` says it already has a row axis.
    ``where()`` names the element, built only for an error."""
    if isinstance(value, (tf.SparseTensor, tf.compat.v1.SparseTensorValue)):
        raise DatasetError(f"{where()}: field {label} is a SparseTensor; the Predict API feeds dense "
                           "tensors. Densify it with tf.sparse.to_dense in a dataset.map().")
    if isinstance(value, tf.RaggedTensor):
        if not leading:
            raise DatasetError(f"{where()}: field {label} is a RaggedTensor row; make it dense "
                               "(.to_tensor()) in the dataset.")
        return _Column(rows=_ragged_rows(value))
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    if isinstance(value, (bytes, str)):
        arr = np.empty((), dtype=object)
        arr[()] = value
        return _Column(dense=arr if leading else arr[None])
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        try:
            arr = _py_array(value)
        except ValueError:  # inhomogeneous python lists: one array per row
            arr = None
        nested = (arr is not None and arr.dtype == object and arr.size
                  and isinstance(arr.flat[0], (list, tuple, np.ndarray)))
        if arr is None or nested:
            if not leading:
                raise DatasetError(f"{where()}: field {label} is a ragged nested list; pass arrays.")
            return _Column(rows=[_py_array(r) for r in value])
        if (arr.dtype == object and arr.size
                and not isinstance(arr.flat[0], (bytes, str, np.bytes_, np.str_))):
            arr = np.array(arr.tolist())  # python numbers in an object array: re-infer
        value = arr
    arr = np.asarray(value)
    return _Column(dense=arr if leading else arr[None])


def _kind(arr: np.ndarray) -> str:
    k = arr.dtype.kind
    if k in "SU" or (k == "O"):
        return "string"
    if k == "b":
        return "bool"
    if k in "iu":
        return "int"
    if k in "fc" or arr.dtype == np.dtype(tf.bfloat16.as_numpy_dtype) or arr.dtype == np.float16:
        return "float"
    return k


def _to_bytes_object(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "U":
        return np.char.encode(arr, "utf-8").astype(object)
    if arr.dtype.kind == "S":
        return arr.astype(object)
    if arr.size and isinstance(arr.flat[0], str):
        return np.frompyfunc(lambda s: s.encode("utf-8") if isinstance(s, str) else s, 1, 1)(arr).astype(object)
    return arr


def _coerce(arr: np.ndarray, spec: TensorSpec, fail: Callable[[str, str], DatasetError]) -> np.ndarray:
    """Cast to the signature dtype where TF Serving would accept the value
    unchanged in meaning: ints->float yes, float->int and string<->number never."""
    want = spec.dtype
    got = _kind(arr)
    if want == tf.string:
        if got != "string":
            raise fail(f"dtype {arr.dtype} is numeric but the input is a string tensor",
                       "Feed bytes/str values (string vs numeric is never converted).")
        return _to_bytes_object(arr)
    if got == "string":
        raise fail(f"dtype {arr.dtype} holds strings but the input is {want.name}",
                   "Parse the strings to numbers in the dataset (string vs numeric is never converted).")
    if want == tf.bool:
        if got != "bool":
            raise fail(f"dtype {arr.dtype} is not bool", "Cast to bool in the dataset, e.g. x != 0.")
        return arr
    if want.is_integer:
        if got not in ("int", "bool"):
            raise fail(f"dtype {arr.dtype} cannot be cast to {want.name} without truncating",
                       "Round and cast in the dataset (tf.cast / np.astype) if the values are integral.")
        if arr.size and got == "int" and not np.can_cast(arr.dtype, want.as_numpy_dtype, "safe"):
            lo, hi = arr.min().item(), arr.max().item()
            if lo < want.min or hi > want.max:
                raise fail(f"values in [{lo}, {hi}] overflow {want.name}",
                           "Check the data, or the signature's dtype.")
        return arr.astype(want.as_numpy_dtype, copy=False)
    if want.is_floating or want.is_complex:
        if got == "float" and arr.dtype.kind == "c" and not want.is_complex:
            raise fail(f"dtype {arr.dtype} is complex but the input is {want.name}",
                       "Take the real part in the dataset if that is intended.")
        if got not in ("int", "bool", "float"):
            raise fail(f"dtype {arr.dtype} is not numeric", "Cast in the dataset.")
        return arr.astype(want.as_numpy_dtype, copy=False)
    raise fail(f"the input's dtype {want.name} cannot be fed from data",
               "Use the synthesized plan for this signature.")


# --------------------------------------------------------------------------- sources


@dataclass
class _Chunk:
    """Rows from the source, each component with a leading row axis (or a
    ``_Single`` element still without one).

    ``user_batch``: the components are a batch the user built, so a rank-0
    input is one value shared by every row. ``numbering`` says how errors name
    a row: "batch" (element ``index`` is that batch) or "rows" (consecutive
    elements/rows/records numbered from ``index``).
    """

    index: int
    comps: dict[str, tuple[str, Any]]
    user_batch: bool
    numbering: str = "rows"
    label: str = "element"

    def where(self, off: int | None = None) -> str:
        if self.numbering == "batch":
            return f"{self.label} {self.index}" + ("" if off is None else f" (row {off} of that batch)")
        return f"{self.label} {self.index + (off or 0)}"


def _tfrecord_files(dataset) -> list[str] | None:
    """Expand a path, list of paths or glob; None when ``dataset`` is not paths."""
    if isinstance(dataset, (str, os.PathLike)):
        items = [dataset]
    elif (isinstance(dataset, (list, tuple)) and dataset
          and all(isinstance(p, (str, os.PathLike)) for p in dataset)):
        items = list(dataset)
    else:
        return None
    files: list[str] = []
    for item in items:
        path = os.fspath(item)
        if any(c in path for c in "*?["):
            matched = sorted(tf.io.gfile.glob(path))
            if not matched:
                raise DatasetError(f"no TFRecord files match {path!r}; check the pattern.")
            files.extend(matched)
        elif tf.io.gfile.isdir(path):
            raise DatasetError(f"{path} is a directory; pass a glob such as "
                               f"{os.path.join(path, '*.tfrecord')!r} or a list of files.")
        elif not tf.io.gfile.exists(path):
            raise DatasetError(f"TFRecord file {path} does not exist; check the path.")
        else:
            files.append(path)
    return files


def _detect_compression(path: str) -> str:
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(2)
    return "GZIP" if head == b"\x1f\x8b" else ""


def _example_alias(inputs: Mapping[str, TensorSpec], required: list[str]) -> str | None:
    """The input that takes serialized examples: the one string input a request must carry."""
    strings = [a for a in (required or sorted(inputs)) if inputs[a].dtype == tf.string]
    if len(strings) == 1 and len(required or sorted(inputs)) == 1:
        return strings[0]
    return None


def _tfrecord_chunks(files: list[str], compression: str, inputs, required, sig_name,
                     max_scan: int | None) -> tuple[str, str, Iterator[_Chunk]]:
    alias = _example_alias(inputs, required)
    if alias is None:
        shown = ", ".join(f"{a}: {s.dtype.name}{s.shape_str()}" for a, s in sorted(inputs.items()))
        raise DatasetError(
            f"TFRecord files hold serialized tf.Example records, but signature {sig_name!r} does "
            f"not take a single string input (inputs: {shown}). Pass a tf.data.Dataset or numpy "
            "arrays of its inputs instead, or pick the signature that parses examples.")
    groups: list[tuple[str, list[str]]] = []
    for f in files:
        c = _detect_compression(f) if compression == "auto" else compression
        if groups and groups[-1][0] == c:
            groups[-1][1].append(f)
        else:
            groups.append((c, [f]))
    ds = None
    for c, group in groups:
        part = tf.data.TFRecordDataset(group, compression_type=c, buffer_size=1 << 20)
        ds = part if ds is None else ds.concatenate(part)
    if max_scan is not None:
        ds = ds.take(max_scan)
    ds = ds.batch(_CHUNK_ROWS)
    spec = inputs[alias]
    trailing = spec.shape[1:] if spec.shape else ()
    reshape = trailing and all(d == 1 for d in trailing)
    kinds = sorted({c or "plain" for c, _ in groups})
    source = (f"TFRecord {files[0]}" if len(files) == 1 else
              f"TFRecord {len(files)} files ({files[0]} ... {files[-1]})") + f" [{', '.join(kinds)}]"

    def gen() -> Iterator[_Chunk]:
        index = 0
        it = ds.as_numpy_iterator()
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except tf.errors.DataLossError as e:
                raise DatasetError(
                    f"{source}: record {index} onwards cannot be read ({e.message.splitlines()[0]}). "
                    "Is it a TFRecord file? For ZLIB-compressed files pass compression='ZLIB'.") from None
            if reshape:
                batch = batch.reshape((len(batch),) + tuple(trailing))
            yield _Chunk(index, {alias: ("record", batch)}, user_batch=False, label="record")
            index += len(batch)

    return source, alias, gen()


def _dataset_chunks(ds: tf.data.Dataset, inputs, required, sig_name, batched: bool | None,
                    max_scan: int | None) -> Iterator[_Chunk]:
    """Iterate a tf.data.Dataset as chunks, re-batching unbatched data where it
    is safe so that a million small elements do not cost a million eager steps."""
    if max_scan is None and ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetError("the dataset is infinite (e.g. .repeat()); pass max_scan=N to "
                           "stop after N rows.")
    spec_comps = _split_element(ds.element_spec, inputs, required, sig_name, "element 0")
    for alias, (label, comp) in spec_comps.items():
        if isinstance(comp, tf.SparseTensorSpec):
            raise DatasetError(f"field {label} for signature {sig_name!r} input {alias!r} is a "
                               "SparseTensor; the Predict API feeds dense tensors. Densify it "
                               "with tf.sparse.to_dense in a dataset.map().")
    if batched is None:
        batched = _decide_batched(spec_comps, inputs, sig_name, "element 0")
    if batched is None:  # static ranks unknown: look at the first element
        for first in ds.take(1):
            comps = _split_element(first, inputs, required, sig_name, "element 0")
            batched = _decide_batched(comps, inputs, sig_name, "element 0")
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
        ds = ds.batch(_CHUNK_ROWS)
    elif rebatch == "ragged":
        ds = ds.ragged_batch(_CHUNK_ROWS)

    index = 0
    it = iter(ds)
    while True:
        try:
            el = next(it)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            raise DatasetError(f"reading element {index} of the dataset failed: "
                               f"{e.message.splitlines()[0] if e.message else e}") from e
        where = f"element {index}"
        comps = _split_element(el, inputs, required, sig_name, where)
        if batched:
            yield _Chunk(index, comps, user_batch=True, numbering="batch")
            index += 1
        elif rebatch:
            chunk = _Chunk(index, comps, user_batch=False)
            yield chunk
            index += _chunk_len(comps)
        else:
            yield _Chunk(index, {a: (lbl, _Single(v)) for a, (lbl, v) in comps.items()}, user_batch=False)
            index += 1


@dataclass
class _Single:
    """Marks a component of one unbatched element (no row axis yet)."""

    value: Any


def _chunk_len(comps: dict[str, tuple[str, Any]]) -> int:
    for _, v in comps.values():
        if isinstance(v, (tf.Tensor, np.ndarray)) and len(v.shape):
            return int(v.shape[0])
        if isinstance(v, tf.RaggedTensor):
            return int(v.nrows())
    return 1


def _numpy_chunks(data, inputs, required, sig_name) -> tuple[str, Iterator[_Chunk]]:
    """In-memory data: the leading axis of every array is the row axis."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy") and not isinstance(data, Mapping):
        data = {str(c): data[c].to_numpy() for c in data.columns}  # a pandas DataFrame
    comps = _split_element(data, inputs, required, sig_name, "the arrays")
    source = "numpy " + ("{" + ", ".join(sorted(comps)) + "}" if isinstance(data, Mapping)
                         else type(data).__name__)

    def gen() -> Iterator[_Chunk]:
        columns = {a: (lbl, _to_column(v, True, lambda: "the arrays", lbl)) for a, (lbl, v) in comps.items()}
        lengths = [c.n for _, c in columns.values() if not (c.dense is not None and c.dense.ndim == 0)]
        n = max(lengths, default=1)  # unequal lengths are reported by the scanner
        for start in range(0, n, _NUMPY_CHUNK_ROWS):
            stop = min(start + _NUMPY_CHUNK_ROWS, n)
            part = {}
            for a, (lbl, col) in columns.items():
                if col.dense is not None and col.dense.ndim == 0:
                    part[a] = (lbl, col)
                elif col.dense is not None:
                    part[a] = (lbl, _Column(dense=col.dense[start:stop]))
                else:
                    part[a] = (lbl, _Column(rows=col.rows[start:stop]))
            yield _Chunk(start, part, user_batch=True, numbering="rows", label="row")

    return source, gen()


# --------------------------------------------------------------------------- scanning


class _Scanner:
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

    def _fail(self, chunk: _Chunk, label: str, alias: str, off: int | None = None):
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

    def _validate(self, chunk: _Chunk, alias: str, label: str, col: _Column) -> _Column:
        """Cast to the signature dtype and check rank and fixed dims of every row."""
        spec = self.inputs[alias]
        fail = self._fail(chunk, label, alias)
        if col.dense is not None:
            col.dense = _coerce(col.dense, spec, fail)
            if col.dense.ndim == 0:
                raise fail("wrong rank: the element is a scalar but the input needs a batch axis",
                           "Give every field a leading batch (row) axis.")
            shapes = [col.dense.shape[1:]]
        else:
            col.rows = [_coerce(r, spec, fail) for r in col.rows]
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

    def _columns(self, chunk: _Chunk) -> dict[str, _Column]:
        raw: dict[str, tuple[str, _Column]] = {}
        for alias, (label, value) in chunk.comps.items():
            if isinstance(value, _Column):
                col = value
            elif isinstance(value, _Single):
                col = _to_column(value.value, False, chunk.where, label)
            else:
                col = _to_column(value, True, chunk.where, label)
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
            raw[a] = (label, _Column(dense=np.repeat(c.dense[None], n, axis=0)))
        return {a: self._validate(chunk, a, label, c) for a, (label, c) in raw.items()}

    def _sniff(self, cols: dict[str, _Column]) -> None:
        self._sniffed = True
        alias = _example_alias(self.inputs, self.required)
        if alias is None or alias not in cols or self.examples is False:
            return
        col = cols[alias]
        vals = (col.dense.ravel()[:_EXAMPLE_SNIFF].tolist() if col.dense is not None
                else [v for r in col.rows[:_EXAMPLE_SNIFF] for v in r.ravel().tolist()])
        if self.examples or _looks_like_examples(vals):
            self.example_alias = alias
            self.example_stats = ExampleStats(vocab_cap=self.vocab_cap)

    def add(self, chunk: _Chunk) -> None:
        cols = self._columns(chunk)
        total = next(iter(cols.values())).n if cols else 0
        n = total if self.max_scan is None else min(total, self.max_scan - self.scanned)
        if n <= 0:
            return
        if n < total:
            cols = {a: (_Column(dense=c.dense[:n]) if c.dense is not None else _Column(rows=c.rows[:n]))
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


def sample_dataset(dataset, signature: SignatureInfo | Mapping[str, TensorSpec], *,
                   k: int = DEFAULT_K, seed: int = 0, max_scan: int | None = None,
                   batched: bool | None = None, compression: str = "auto",
                   examples: bool | None = None, example_stats: str = "sample",
                   vocab_cap: int = VOCAB_CAP,
                   vocab_min_count: int = VOCAB_MIN_COUNT) -> DataSample:
    """Scan ``dataset`` once and keep a uniform sample of ``k`` rows for ``signature``.

    ``dataset`` is a ``tf.data.Dataset`` (batched or not), numpy arrays (a
    single array, a dict keyed by alias, a tuple in sorted alias order, or a
    pandas DataFrame; the leading axis is rows), or TFRecord files of
    serialized tf.Example/SequenceExample (a path, list of paths or glob;
    GZIP detected from the magic bytes) for signatures with one string input.

    ``max_scan`` caps the rows scanned (required for infinite datasets).
    ``batched`` overrides the rank-based batched/unbatched decision for a
    tf.data.Dataset; when no input has a known rank, elements are taken to be
    batches (the Keras convention). In-memory arrays always have rows first.
    A batched dataset that was padded (``padded_batch``) reports padded lengths.
    ``examples`` forces (True) or disables (False) treating a single string
    input as serialized tf.Examples; by default TFRecord data always is, other
    data when its values parse as Examples. ``example_stats="all"`` parses every
    scanned example (slow: Python per record) instead of only the sample.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_scan is not None and max_scan < 1:
        raise ValueError(f"max_scan must be >= 1, got {max_scan}")
    if example_stats not in ("sample", "all"):
        raise ValueError(f"example_stats must be 'sample' or 'all', got {example_stats!r}")
    if compression not in ("auto", "", "GZIP", "ZLIB"):
        raise ValueError(f"compression must be 'auto', '', 'GZIP' or 'ZLIB', got {compression!r}")
    if isinstance(signature, SignatureInfo):
        inputs, defaults, sig_name = signature.inputs, signature.defaults, signature.name
    else:
        inputs, defaults, sig_name = signature, {}, "<inputs>"
    if not inputs:
        raise SignatureError(f"signature {sig_name!r} has no inputs: there is nothing to sample.")
    for alias, spec in inputs.items():
        if spec.encoding != "dense":
            raise SignatureError(
                f"signature {sig_name!r} input {alias!r} uses {spec.encoding} encoding, which the "
                "Predict API cannot feed; sample a signature with dense inputs.")
    required = [a for a in sorted(inputs) if a not in defaults]

    scanner = _Scanner(inputs, required, sig_name, k, seed, max_scan, vocab_cap, examples, example_stats)
    files = _tfrecord_files(dataset)
    if files is not None:
        source, alias, chunks = _tfrecord_chunks(files, compression, inputs, required, sig_name, max_scan)
        if examples is None:
            scanner.examples = True
    elif isinstance(dataset, tf.data.Dataset):
        source = f"tf.data.Dataset {dataset.element_spec}"
        if len(source) > 200:
            source = source[:197] + "..."
        chunks = _dataset_chunks(dataset, inputs, required, sig_name, batched, max_scan)
    else:
        source, chunks = _numpy_chunks(dataset, inputs, required, sig_name)
    with progress.bar(total=max_scan, desc=f"scan data for {sig_name}", unit="row") as scan_bar:
        for chunk in chunks:
            before = scanner.scanned
            scanner.add(chunk)
            scan_bar.update(scanner.scanned - before)
            if scanner.done:
                break
    return scanner.finish(source, k, seed, vocab_min_count)
