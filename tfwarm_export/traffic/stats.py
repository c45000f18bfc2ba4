"""What the data teaches beyond its rows: size histograms, value ranges,
vocabularies and tf.Example feature statistics.

Everything here is learned from *every* scanned row with cheap counters and is
mergeable (``merge``), so statistics computed on shards (Beam workers) combine to
what one pass would learn. ``privacy="shapes_only"`` synthesises from these.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message

VOCAB_CAP = 1000           # distinct strings kept per input before it counts as free text
VOCAB_MIN_COUNT = 2        # a string must be seen this often before synthesis may emit it
VOCAB_MAX_LEN = 128        # a longer string is free text, never vocabulary
_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"


# --------------------------------------------------------------------------- buckets


_REDRAWS = 8
"""Redraws of a value equal to a sampled one before it is counted as unavoidable."""


def bucket_quantiles(max_buckets: int, quantiles: Sequence[float] | None = None) -> list[float]:
    """The quantiles buckets are cut at (1.0, the max, always among them), validated.

    Checked whether or not the data has more sizes than buckets, so a bad value is an
    error on every dataset, not only on the large ones.
    """
    if max_buckets < 1:
        raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
    if quantiles is None:
        return [i / max_buckets for i in range(1, max_buckets + 1)]
    try:
        qs = sorted(set(float(q) for q in quantiles) | {1.0})
    except (TypeError, ValueError):
        raise ValueError(f"bucket_quantiles must be numbers in [0, 1], got {quantiles!r}") from None
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"bucket_quantiles must lie in [0, 1], got {list(quantiles)}")
    if len(qs) > max_buckets:
        raise ValueError(f"bucket_quantiles {list(quantiles)} name {len(qs)} buckets (with the max, 1.0), "
                         f"more than max_buckets={max_buckets}; give at most {max_buckets} quantiles "
                         "or raise max_buckets")
    return qs


def cut_quantiles(quantiles: Sequence[float], n: int) -> list[float]:
    """``n`` of the validated ``quantiles``, evenly spread over them, the max (1.0) kept."""
    qs = sorted(set(float(q) for q in quantiles) | {1.0})
    if n >= len(qs):
        return qs
    if n <= 1:
        return [1.0]
    picks = {round(i * (len(qs) - 1) / (n - 1)) for i in range(n)}
    return [qs[i] for i in sorted(picks)]


def choose_buckets(sizes: Mapping[int, int], max_buckets: int = 8,
                   quantiles: Sequence[float] | None = None) -> list[int]:
    """Pick the lengths worth warming from a size histogram.

    Every distinct size when there are at most ``max_buckets``; otherwise the
    sizes at ``quantiles`` of the row distribution (default ``1/m, 2/m, ..., 1``)
    so buckets follow where traffic actually is. The largest size seen is
    always included, because padding up to a bucket works and truncating a long
    request does not.
    """
    qs = bucket_quantiles(max_buckets, quantiles)
    counts = sorted((int(s), int(c)) for s, c in sizes.items() if c > 0)
    if not counts:
        return []
    distinct = [s for s, _ in counts]
    if len(distinct) <= max_buckets:
        return distinct
    cum = np.cumsum([c for _, c in counts])
    total = int(cum[-1])
    picked = set()
    for q in qs:
        # inverse CDF: smallest size covering at least a fraction q of rows
        idx = int(np.searchsorted(cum, max(q * total, 1), side="left"))
        picked.add(distinct[min(idx, len(distinct) - 1)])
    picked.add(distinct[-1])
    return sorted(picked)



# --------------------------------------------------------------------------- value stats


def draw_from_counts(counts: Counter, size: int, rng: np.random.Generator) -> np.ndarray:
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

    def merge(self, other: "ValueStats") -> None:
        """Fold in another shard's stats: the result is what one pass would learn."""
        self.count += other.count
        self.nonfinite += other.nonfinite
        if other.low is not None:
            self._merge_range(other.low, other.high)
        self.str_lengths.update(other.str_lengths)
        if self.vocab is not None:
            if other.vocab is None and other.kind == "string":
                self.vocab = None
            elif other.vocab:
                self.vocab.update(other.vocab)
                if len(self.vocab) > self.vocab_cap:
                    self.vocab = None

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
        if str in set(map(type, values)):
            values = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        lengths = list(map(len, values))
        self.str_lengths.update(lengths)
        if self.vocab is not None:
            if lengths and max(lengths) > VOCAB_MAX_LEN:
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
                lengths = (draw_from_counts(self.str_lengths, size, rng) if self.str_lengths
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

    def merge(self, other: "FeatureStats") -> None:
        self.present += other.present
        self.lengths.update(other.lengths)
        self.conflicts += other.conflicts
        self.values.merge(other.values)

    def fill(self, feature: tf.train.Feature, rng: np.random.Generator, min_count: int) -> None:
        n = int(draw_from_counts(self.lengths, 1, rng)[0])
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


def _merge_tables(mine: dict[str, FeatureStats], other: dict[str, FeatureStats]) -> None:
    for key, fs in other.items():
        if key not in mine:
            mine[key] = fs
        elif mine[key].kind == fs.kind:
            mine[key].merge(fs)
        else:  # the type seen first locally is not order-free across shards: keep the more common
            keep, lose = (mine[key], fs) if (mine[key].present, mine[key].kind) >= (fs.present, fs.kind) else (fs, mine[key])
            keep.conflicts += lose.present
            mine[key] = keep


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

    def merge(self, other: "ExampleStats") -> None:
        """Fold in another shard's stats (Beam workers)."""
        if other.kind == "sequence_example":
            self.kind = other.kind
        self.rows += other.rows
        self.unparsed += other.unparsed
        _merge_tables(self.context, other.context)
        for key, fl in other.feature_lists.items():
            mine = self.feature_lists.setdefault(key, FeatureListStats())
            mine.present += fl.present
            mine.steps.update(fl.steps)
            _merge_tables(mine.step, fl.step)

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
            steps = int(draw_from_counts(fl.steps, 1, rng)[0])
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


def looks_like_examples(values: Sequence) -> bool:
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


