"""Synthesise input values: deterministic, small, finite, of the exact dtype.

Values only need to exercise the kernels TF Serving will run, so they are small
(no overflow, no NaN) and derive from a seed: the same model, options and seed
give a byte-identical warmup file. Each (signature, batch size, alias) gets its
own RNG stream, so warming one more signature does not change the others.
"""
from __future__ import annotations

import string
import zlib
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.values.composite_values import composite_from_sample, composite_values
from tfwarm_export.specs.domains import Domain
from tfwarm_export.values.encoders import encode_array
from tfwarm_export.errors import PlanError
from tfwarm_export.values.examples import json_examples, synthesize_examples

_LETTERS = np.array(list(string.ascii_lowercase))

SUPPORTED_DTYPES: tuple[tf.DType, ...] = (
    tf.float16, tf.bfloat16, tf.float32, tf.float64,
    tf.int8, tf.int16, tf.int32, tf.int64,
    tf.uint8, tf.uint16, tf.uint32, tf.uint64,
    tf.bool, tf.complex64, tf.complex128, tf.string,
)


def rng_for(seed: int, *key: Any) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (stable across runs)."""
    digest = zlib.crc32("\x1f".join(str(k) for k in key).encode("utf-8"))
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, digest])


def _random_strings(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    lengths = rng.integers(1, 9, size=n)
    out = np.empty(n, dtype=object)
    for i, length in enumerate(lengths):
        out[i] = "".join(rng.choice(_LETTERS, size=int(length))).encode("ascii")
    return out.reshape(shape)


def _from_domain(domain: Domain, dtype: tf.DType, shape: tuple[int, ...],
                 rng: np.random.Generator) -> np.ndarray:
    np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    if domain.encoding is not None and dtype == tf.string:  # bytes a graph decoder reads
        if domain.encoding.op == "DecodeJSONExample":
            return json_examples(domain.encoding, shape, rng)
        return encode_array(domain.encoding, shape, rng)
    if domain.constant is not None:
        value = np.asarray(domain.constant)
        if dtype == tf.string:
            value = np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(),
                                 otypes=[object])(value)
        return np.broadcast_to(value.astype(np_dtype), shape).copy()
    if domain.fn is not None:
        value = np.asarray(domain.fn(rng, shape))
        if value.shape != shape:
            raise PlanError(f"callable {getattr(domain.fn, '__name__', 'fn')} ({domain.source}) "
                            f"returned shape {list(value.shape)}, expected {list(shape)}; it is "
                            "called as fn(rng, shape) and must return exactly that shape.")
        return value.astype(np_dtype)
    if domain.choices is not None:
        if not domain.choices:
            raise PlanError(f"empty choice list in domain ({domain.source}); give at least one value.")
        idx = rng.integers(0, len(domain.choices), size=shape)
        choices = list(domain.choices)
        if dtype == tf.string:
            choices = [c if isinstance(c, bytes) else str(c).encode() for c in choices]
        arr = np.empty(shape, dtype=object)
        for pos, i in np.ndenumerate(idx):
            arr[pos] = choices[int(i)]
        return arr if dtype == tf.string else arr.astype(np_dtype)
    # A one-sided bound (e.g. from an assert) gets a range of width 10 beside it.
    high = domain.high
    low = domain.low if domain.low is not None else (0 if high is None or high > 0 else high - 10)
    if high is None:
        high = low + 10
    if dtype.is_integer:
        if high <= low:
            raise PlanError(f"empty integer range [{low}, {high}) ({domain.source}).")
        return rng.integers(int(low), int(high), size=shape).astype(np_dtype)
    if dtype.is_floating or dtype.is_complex:
        return rng.uniform(float(low), float(high), size=shape).astype(np_dtype)
    return synthesize(dtype, shape, rng)


def synthesize(dtype: tf.DType, shape: Sequence[int], rng: np.random.Generator,
               domain: Domain | None = None) -> np.ndarray:
    """An array of ``dtype`` and concrete ``shape``: small, finite, deterministic."""
    shape = tuple(int(d) for d in shape)
    if domain is not None:
        return _from_domain(domain, dtype, shape, rng)
    if dtype == tf.string:
        return _random_strings(rng, shape)
    if dtype == tf.bool:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.is_complex:
        real = rng.uniform(-1, 1, size=shape)
        imag = rng.uniform(-1, 1, size=shape)
        return (real + 1j * imag).astype(dtype.as_numpy_dtype)
    if dtype.is_floating:
        # Rounded to 1/64 so the value is exact even in float16/bfloat16.
        return (np.round(rng.uniform(-1, 1, size=shape) * 64) / 64).astype(dtype.as_numpy_dtype)
    if dtype.is_integer:
        return rng.integers(0, 8, size=shape).astype(dtype.as_numpy_dtype)
    raise PlanError(
        f"cannot synthesise values of dtype {dtype.name}; TF Serving cannot receive it in a "
        "request either. Remove it from the signature or give an override.")


def _composite_part_values(strategy: str):
    """How a composite's values part is filled: the planned domain, or its safe value."""
    def make(dtype: tf.DType, shape: tuple, rng: np.random.Generator, domain: Domain | None) -> np.ndarray:
        return synthesize(dtype, shape, rng, safe_domain(dtype, domain) if strategy == SAFE else domain)
    return make


PLANNED, SAFE = "planned", "safe"
"""Value strategies: the plan's values, then a conservative retry (zeros, empty
strings, the lowest value of a known domain) for records that fail replay."""


def safe_domain(dtype: tf.DType, domain: Domain | None) -> Domain | None:
    """The most conservative value consistent with ``domain`` (user overrides are kept)."""
    if domain is not None and (domain.user or domain.constant is not None):
        return domain
    if domain is not None and domain.safe is not None:
        return domain.safe
    if domain is not None and domain.choices:
        return Domain(constant=domain.choices[0], source=f"safe: first of {domain.source}")
    if domain is not None and domain.low is not None:
        return Domain(constant=domain.low, source=f"safe: low end of {domain.source}")
    return Domain(constant=b"" if dtype == tf.string else 0, source="safe: zeros/empty")


def record_values(record, seed: int, strategy: str = PLANNED, sample: Any = None,
                  privacy: str = "rows") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Values for every input of a ``PlannedRecord`` and how each was made.

    Returns ``(values, strategies)``: alias -> array (tensors, or serialized
    tf.Examples for "examples" inputs), and alias -> a short description.
    A "dataset" record takes rows from ``sample`` (a ``traffic.DataSample``),
    or, with ``privacy="shapes_only"``, values synthesised from what the data
    taught (shapes, lengths, ranges, vocabularies). The safe retry is synthetic.
    """
    values: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}
    if record.source == "dataset" and sample is not None and strategy == PLANNED:
        rng = rng_for(seed, record.signature, record.batch_size, record.variant, "data")
        bucket = dict(record.bucket)
        make = sample.synthesize if privacy == "shapes_only" else sample.batches
        data = make(record.batch_size or 1, bucket or None, rng)
        for inp in record.inputs:
            if inp.kind == "composite":  # rebuilt from whole sampled rows, parts consistent
                if inp.alias not in values:
                    parts = [i for i in record.inputs if i.composite and i.composite.group == inp.composite.group]
                    values.update(composite_from_sample(parts, sample, rng, privacy, _composite_part_values(PLANNED)))
                    how.update({p.alias: f"{p.composite.describe()} from {sample.source}"
                                + (" (shapes_only)" if privacy == "shapes_only" else "") for p in parts})
                continue
            value = np.asarray(data[inp.alias])
            if tuple(value.shape) != tuple(inp.shape):
                raise PlanError(f"dataset values for {record.signature}/{inp.alias} have shape "
                                f"{list(value.shape)}, the plan expects {list(inp.shape)}.")
            values[inp.alias] = value
            how[inp.alias] = ("shapes_only: synthesised from dataset stats" if privacy == "shapes_only"
                              else f"dataset rows ({sample.source})")
        return values, how
    for inp in record.inputs:
        rng = rng_for(seed, record.signature, record.batch_size, record.variant, inp.alias)
        if inp.kind == "composite":  # all parts of one ragged/sparse value at once, consistent
            if inp.alias not in values:
                parts = [i for i in record.inputs if i.composite and i.composite.group == inp.composite.group]
                made = composite_values(parts, rng, _composite_part_values(strategy), strategy == SAFE)
                values.update(made)
                how.update({a: f"{strategy}: {p.composite.describe()}" for a, p in
                            ((p.alias, p) for p in parts)})
            continue
        if inp.kind == "examples":
            domains = dict(inp.feature_domains)
            if strategy == SAFE:
                for f in list(inp.example_spec.context_features()):
                    key = inp.example_spec.domain_key(f.key)
                    domains[key] = safe_domain(f.dtype, domains.get(key))
                for f in list(inp.example_spec.feature_list_features()):
                    key = inp.example_spec.domain_key(f.key, True)
                    domains[key] = safe_domain(f.dtype, domains.get(key))
            count = inp.shape[0] if inp.shape else 1
            examples = synthesize_examples(inp.example_spec, count, rng, domains)
            arr = np.empty(len(examples), dtype=object)
            arr[:] = examples
            values[inp.alias] = arr.reshape(inp.shape)
            decoded = [f"{k}: {d.source}" for k, d in sorted(domains.items())
                       if d is not None and d.encoding is not None]
            how[inp.alias] = f"{strategy} tf.Examples ({'; '.join([inp.example_spec.parser_op] + decoded)})"
        else:
            domain = safe_domain(inp.dtype, inp.domain) if strategy == SAFE else inp.domain
            values[inp.alias] = synthesize(inp.dtype, inp.shape, rng, domain)
            how[inp.alias] = f"{strategy}: " + (domain.describe() if domain else "synthetic")
    return values, how
