"""The tf.Example parse spec a SavedModel expects, recovered from its graph.

Classify/Regress signatures (and many Predict ones) take serialized
``tf.train.Example``/``SequenceExample`` strings. A warmup request built from a
random string fails to parse, so we read the parser op's keys, dtypes, shapes
and defaults out of the graph (``tfwarm_export.analysis``) and synthesize records
that conform (``tfwarm_export.values.examples``). These classes are plain data: no
graph access, so plans can be serialized and compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
import tensorflow as tf

Kind = Literal["example", "sequence_example"]

# Dtypes a tf.train.Feature can carry; a parser op accepts nothing else.
SUPPORTED_DTYPES = (tf.float32, tf.int64, tf.string)

FEATURE_LIST_PREFIX = "feature_lists/"


def _jsonable(value):
    """Numpy default values -> JSON types (bytes decoded, undecodable bytes escaped)."""
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


@dataclass(frozen=True, eq=False)
class DenseFeature:
    """A ``FixedLenFeature`` (or ``FixedLenSequenceFeature`` when ``shape[0]`` is None).

    ``default`` is None when the parser was given an empty default, i.e. the
    feature is required and every record must carry exactly ``prod(shape)``
    values. ``allow_missing`` is True for variable-length dense features (any
    multiple of the inner size, padding fills the rest) and for feature-list
    dense features listed in ``feature_list_dense_missing_assumed_empty``.
    """

    key: str
    dtype: tf.DType
    shape: tuple  # tuple[int | None, ...]
    default: np.ndarray | None = None
    allow_missing: bool = False

    @property
    def variable_length(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    @property
    def required(self) -> bool:
        return self.default is None and not self.allow_missing

    @property
    def inner_size(self) -> int:
        """Values per row: prod(shape), or prod(shape[1:]) when variable length."""
        dims = self.shape[1:] if self.variable_length else self.shape
        return int(math.prod(int(d) for d in dims))

    def _key(self):
        default = None if self.default is None else (self.default.dtype.str, self.default.shape,
                                                     self.default.tobytes() if self.default.dtype != object
                                                     else tuple(self.default.ravel().tolist()))
        return (self.key, self.dtype, tuple(self.shape), default, self.allow_missing)

    def __eq__(self, other) -> bool:
        return isinstance(other, DenseFeature) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "dtype": self.dtype.name,
            "shape": list(self.shape),
            "default": None if self.default is None else _jsonable(self.default),
            "allow_missing": self.allow_missing,
            "required": self.required,
        }


@dataclass(frozen=True)
class SparseFeature:
    """A ``VarLenFeature``: any number of values, including none."""

    key: str
    dtype: tf.DType

    def to_dict(self) -> dict:
        return {"key": self.key, "dtype": self.dtype.name}


@dataclass(frozen=True)
class RaggedFeature:
    """A ``RaggedFeature`` without partitions as the parser op sees it.

    Partitioned ragged features (``partitions=...``) are parsed as several
    ragged keys and reassembled in Python; the graph alone does not say which
    keys are partitions, so each key shows up here as an independent feature.
    """

    key: str
    dtype: tf.DType
    row_splits_dtype: tf.DType = tf.int64

    def to_dict(self) -> dict:
        return {"key": self.key, "dtype": self.dtype.name, "row_splits_dtype": self.row_splits_dtype.name}


Feature = DenseFeature | SparseFeature | RaggedFeature


@dataclass(frozen=True)
class ExampleSpec:
    """What one string input is parsed into.

    For ``kind == "sequence_example"`` ``dense``/``sparse``/``ragged`` are the
    context features (also reachable as ``context_*``) and ``feature_list_*``
    the per-step features. ``single`` means the string input is a scalar (one
    record per request tensor), as with ``ParseSingleExample`` or a signature
    whose serialized input has rank 0.
    """

    kind: Kind = "example"
    dense: tuple[DenseFeature, ...] = ()
    sparse: tuple[SparseFeature, ...] = ()
    ragged: tuple[RaggedFeature, ...] = ()
    feature_list_dense: tuple[DenseFeature, ...] = ()
    feature_list_sparse: tuple[SparseFeature, ...] = ()
    feature_list_ragged: tuple[RaggedFeature, ...] = ()
    parser_op: str = ""
    single: bool = False
    # Where the parser(s) live ("function/node", or "node" in the main graph), so
    # value domains can be found from the spec alone. Not part of equality.
    parser_nodes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def context_dense(self) -> tuple[DenseFeature, ...]:
        return self.dense

    @property
    def context_sparse(self) -> tuple[SparseFeature, ...]:
        return self.sparse

    @property
    def context_ragged(self) -> tuple[RaggedFeature, ...]:
        return self.ragged

    @property
    def is_sequence(self) -> bool:
        return self.kind == "sequence_example"

    def context_features(self) -> Iterator[Feature]:
        yield from self.dense
        yield from self.sparse
        yield from self.ragged

    def feature_list_features(self) -> Iterator[Feature]:
        yield from self.feature_list_dense
        yield from self.feature_list_sparse
        yield from self.feature_list_ragged

    def domain_key(self, key: str, feature_list: bool = False) -> str:
        """Key under which a feature's Domain is stored in a domains mapping.

        Context/Example features use their key. Feature-list features do too,
        unless a context feature has the same key; then they are prefixed with
        ``feature_lists/`` so both can carry a domain.
        """
        if feature_list and any(f.key == key for f in self.context_features()):
            return FEATURE_LIST_PREFIX + key
        return key

    def required_keys(self) -> list[str]:
        keys = [f.key for f in self.dense if f.required]
        keys += [self.domain_key(f.key, True) for f in self.feature_list_dense if f.required]
        return keys

    def to_tf_features(self):
        """The ``tf.io`` feature dicts that reproduce this spec.

        Returns ``features`` for an Example, or ``(context, sequence)`` for a
        SequenceExample. Handy for checking records without the model.
        """
        def dense(f: DenseFeature, seq: bool):
            if seq or f.variable_length:
                shape = list(f.shape[1:] if f.variable_length else f.shape)
                default = None
                if f.variable_length and f.default is not None and f.default.size:
                    default = f.default.ravel().tolist()[0]
                return tf.io.FixedLenSequenceFeature(shape, f.dtype, allow_missing=f.allow_missing,
                                                     default_value=default)
            return tf.io.FixedLenFeature(list(f.shape), f.dtype,
                                         default_value=None if f.default is None else f.default)

        context = {f.key: dense(f, False) for f in self.dense}
        context.update({f.key: tf.io.VarLenFeature(f.dtype) for f in self.sparse})
        context.update({f.key: tf.io.RaggedFeature(f.dtype, row_splits_dtype=f.row_splits_dtype)
                        for f in self.ragged})
        if not self.is_sequence:
            return context
        seq = {f.key: dense(f, True) for f in self.feature_list_dense}
        seq.update({f.key: tf.io.VarLenFeature(f.dtype) for f in self.feature_list_sparse})
        seq.update({f.key: tf.io.RaggedFeature(f.dtype, row_splits_dtype=f.row_splits_dtype)
                    for f in self.feature_list_ragged})
        return context, seq

    def to_dict(self) -> dict:
        d = {
            "kind": self.kind,
            "parser_op": self.parser_op,
            "single": self.single,
            "parser_nodes": list(self.parser_nodes),
            "dense": [f.to_dict() for f in self.dense],
            "sparse": [f.to_dict() for f in self.sparse],
            "ragged": [f.to_dict() for f in self.ragged],
        }
        if self.is_sequence:
            d["feature_list_dense"] = [f.to_dict() for f in self.feature_list_dense]
            d["feature_list_sparse"] = [f.to_dict() for f in self.feature_list_sparse]
            d["feature_list_ragged"] = [f.to_dict() for f in self.feature_list_ragged]
        return d
