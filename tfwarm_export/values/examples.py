"""Synthesize serialized tf.train.Example / SequenceExample records for a parse spec.

Warmup only helps if the requests exercise the paths real traffic takes, and
only if they parse. So the records carry every required feature with exactly
the right number of values, leave optional features out in some records (so
the default-filling path is warmed too), vary sparse/ragged lengths down to
zero, and draw values from the domains the graph implies (embedding ids in
range, vocabulary strings). Serialization goes through the protos with
``deterministic=True``: the same rng seed gives byte-identical records.
"""
from __future__ import annotations

import math
import string
from typing import Any, Mapping

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.encodings import JsonExampleEncoding
from tfwarm_export.specs.example_spec import DenseFeature, ExampleSpec
from tfwarm_export.values.encoder_registry import encode_array, register_encoder

MAX_VARLEN = 3  # longest sparse/ragged list or feature-list we generate
_LETTERS = np.array(list(string.ascii_lowercase))


def _length(i: int, rng: np.random.Generator, high: int = MAX_VARLEN) -> int:
    """Record 0 non-empty, record 1 empty, the rest random in [0, high]: both paths warmed."""
    n = int(rng.integers(0, high + 1))
    if i == 0:
        return max(1, n)
    if i == 1:
        return 0
    return n


def _omit_optional(i: int) -> bool:
    """Leave optional features out of every other record, never out of record 0."""
    return i % 2 == 1


def _as_key(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _may_omit(f: DenseFeature, domain: Domain | None) -> bool:
    """Optional features are left out only when their default is a valid value.

    A default outside the feature's domain (say "" for a vocabulary lookup
    that feeds an embedding) would make the record fail where the model
    fails on real traffic without the feature; warmup must not fail, so such
    features are always sent.
    """
    if f.required:
        return False
    if domain is None or f.default is None:
        return True
    values = [_as_key(v) for v in np.ravel(f.default).tolist()]
    if domain.choices is not None:
        allowed = {_as_key(c) for c in domain.choices}
        return all(v in allowed for v in values)
    if domain.low is not None or domain.high is not None:
        try:
            return all((domain.low is None or v >= domain.low) and (domain.high is None or v < domain.high)
                       for v in values)
        except TypeError:
            return False
    return True


def _default_values(dtype: tf.DType, n: int, rng: np.random.Generator) -> list:
    if dtype == tf.int64:
        return [int(v) for v in rng.integers(0, 10, size=n)]
    if dtype == tf.float32:
        return [float(v) for v in np.round(rng.random(n), 4).astype(np.float32)]
    words = []
    for _ in range(n):
        k = int(rng.integers(1, 9))
        words.append("".join(_LETTERS[rng.integers(0, len(_LETTERS), size=k)]).encode("ascii"))
    return words


def _range_values(dtype: tf.DType, n: int, rng: np.random.Generator, low, high) -> np.ndarray:
    """Draw from [low, high); a missing bound is placed next to the known one."""
    if dtype == tf.float32:
        lo = float(low) if low is not None else (0.0 if high is None or high > 0 else float(high) - 1.0)
        hi = float(high) if high is not None else lo + 1.0
        if not hi > lo:
            hi = lo + 1.0
        return rng.uniform(lo, hi, size=n)
    lo = int(math.ceil(low)) if low is not None else (0 if high is None or high > 0 else int(high) - 10)
    hi = int(math.ceil(high)) if high is not None else lo + 10
    if hi <= lo:
        hi = lo + 1
    return rng.integers(lo, hi, size=n)


def _convert(dtype: tf.DType, values) -> list:
    if dtype == tf.int64:
        return [int(v) for v in values]
    if dtype == tf.float32:
        out = [float(v) for v in values]
        if not all(math.isfinite(v) for v in out):
            raise ValueError("domain produced a non-finite float")
        return out
    out = []
    for v in values:
        if isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, np.bytes_):
            out.append(bytes(v))
        else:
            out.append(str(v).encode("utf-8"))
    return out


def feature_values(dtype: tf.DType, n: int, rng: np.random.Generator,
                   domain: Domain | None = None) -> list:
    """``n`` values of ``dtype`` (float32/int64/string), from ``domain`` when given."""
    if n <= 0:
        return []
    if domain is None:
        return _default_values(dtype, n, rng)
    if domain.encoding is not None and dtype == tf.string:  # a feature the graph decodes
        return list(encode_array(domain.encoding, (n,), rng))
    if domain.constant is not None:
        arr = np.ravel(np.asarray(domain.constant, dtype=object))
        vals = list(np.resize(arr, n)) if arr.size else []
    elif domain.choices is not None:
        if not domain.choices:
            return _default_values(dtype, n, rng)
        picks = rng.integers(0, len(domain.choices), size=n)
        vals = [domain.choices[int(j)] for j in picks]
    elif domain.fn is not None:
        arr = np.ravel(np.asarray(domain.fn(rng, (n,)), dtype=object))
        vals = list(np.resize(arr, n)) if arr.size else []
    elif domain.low is not None or domain.high is not None:
        vals = list(_range_values(dtype, n, rng, domain.low, domain.high))
    else:
        return _default_values(dtype, n, rng)
    return _convert(dtype, vals)


def _feature(dtype: tf.DType, values: list) -> tf.train.Feature:
    if dtype == tf.int64:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if dtype == tf.float32:
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if dtype == tf.string:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    raise ValueError(f"tf.Example features cannot hold {dtype.name}; the parser only reads "
                     "float32, int64 and string")


def _fill_context(features: tf.train.Features, spec: ExampleSpec, i: int,
                  rng: np.random.Generator, domains: Mapping[str, Domain]) -> None:
    for f in spec.dense:
        dom = domains.get(spec.domain_key(f.key))
        if _omit_optional(i) and _may_omit(f, dom):
            continue
        if f.variable_length:
            n = _length(i, rng) * f.inner_size
        else:
            n = f.inner_size
        features.feature[f.key].CopyFrom(_feature(f.dtype, feature_values(f.dtype, n, rng, dom)))
    for f in (*spec.sparse, *spec.ragged):
        n = _length(i, rng)
        if n == 0 and rng.random() < 0.5:
            continue  # absent and empty parse the same; send both shapes of "nothing"
        dom = domains.get(spec.domain_key(f.key))
        features.feature[f.key].CopyFrom(_feature(f.dtype, feature_values(f.dtype, n, rng, dom)))


def _fill_feature_lists(lists: tf.train.FeatureLists, spec: ExampleSpec, i: int,
                        rng: np.random.Generator, domains: Mapping[str, Domain]) -> None:
    for f in spec.feature_list_dense:
        dom = domains.get(spec.domain_key(f.key, True))
        if f.allow_missing and _omit_optional(i):
            continue
        steps = _length(i, rng)
        fl = lists.feature_list[f.key]  # present even with zero steps: required lists must exist
        for _ in range(steps):
            fl.feature.add().CopyFrom(_feature(f.dtype, feature_values(f.dtype, f.inner_size, rng, dom)))
    for f in (*spec.feature_list_sparse, *spec.feature_list_ragged):
        steps = _length(i, rng)
        if steps == 0 and rng.random() < 0.5:
            continue
        dom = domains.get(spec.domain_key(f.key, True))
        fl = lists.feature_list[f.key]
        for _ in range(steps):
            n = int(rng.integers(0, MAX_VARLEN + 1))
            fl.feature.add().CopyFrom(_feature(f.dtype, feature_values(f.dtype, n, rng, dom)))


def synthesize_example_protos(spec: ExampleSpec, count: int, rng: np.random.Generator,
                              domains: Mapping[str, Domain] | None = None) -> list[Any]:
    """Like ``synthesize_examples`` but returns the protos (for inspection and tests)."""
    domains = dict(domains or {})
    out = []
    for i in range(count):
        if spec.is_sequence:
            proto = tf.train.SequenceExample()
            _fill_context(proto.context, spec, i, rng, domains)
            _fill_feature_lists(proto.feature_lists, spec, i, rng, domains)
        else:
            proto = tf.train.Example()
            _fill_context(proto.features, spec, i, rng, domains)
        out.append(proto)
    return out


def synthesize_examples(spec: ExampleSpec, count: int, rng: np.random.Generator,
                        domains: Mapping[str, Domain] | None = None) -> list[bytes]:
    """``count`` serialized records that the parser described by ``spec`` accepts.

    Required dense features always carry ``prod(shape)`` values. Optional ones
    are left out of every other record (record 0 always has them, record 1
    never, when ``count > 1``) unless their default lies outside their
    domain. Variable-length features get 0..3 values, record 0 non-empty and
    record 1 empty. Values come from ``domains`` (keyed by
    ``spec.domain_key``) when given, else small non-negative ints, floats in
    [0, 1) and short lowercase ascii strings. Byte-identical for equal seeds.
    """
    return [p.SerializeToString(deterministic=True)
            for p in synthesize_example_protos(spec, count, rng, domains)]


def json_examples(encoding: JsonExampleEncoding, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """tf.Examples in proto3 JSON for ``DecodeJSONExample`` (a ``specs.encodings.JsonExampleEncoding``)."""
    n = int(np.prod(shape, dtype=np.int64))
    protos = synthesize_example_protos(encoding.spec, 1 if encoding.zero else n, rng,
                                       dict(encoding.feature_domains))
    texts = [json_format.MessageToJson(p, indent=None, sort_keys=True).encode("utf-8") for p in protos]
    out = np.empty(n, dtype=object)
    out[:] = (texts * n)[:n]
    return out.reshape(shape)


@register_encoder(JsonExampleEncoding)
def _json_example(enc: JsonExampleEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    """One JSON tf.Example, for a decoder that wraps ``DecodeJSONExample`` (base64, compression)."""
    return bytes(json_examples(enc, (1,), rng)[0])


__all__ = ["synthesize_examples", "synthesize_example_protos", "feature_values", "json_examples"]
