"""tf.Example parse specs: which features a string input is parsed into.

A string input that reaches ``ParseExample(V2)``, ``ParseSingleExample`` or a
sequence-example parser (through plumbing and into function bodies) must carry
serialized examples with the parser's required features; this module reads
keys, dtypes, shapes and defaults off those parser nodes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.index import (STRING_PLUMBING, GraphIndex, Node, Ref, index_for)
from tfwarm_export.specs.example_spec import DenseFeature, ExampleSpec, RaggedFeature, SparseFeature

PARSER_OPS = frozenset({
    "ParseExample", "ParseExampleV2", "ParseSingleExample",
    "ParseSequenceExample", "ParseSequenceExampleV2", "ParseSingleSequenceExample",
})
SINGLE_PARSERS = frozenset({"ParseSingleExample", "ParseSingleSequenceExample"})

def _string_passthrough(node: Node, pos: int) -> Sequence[int]:
    if node.op in STRING_PLUMBING and pos == 0:
        return (0,)
    if node.op == "IdentityN":
        return (pos,)
    return ()


def _scalar_str(v: np.ndarray | None) -> str | None:
    if v is None or v.size != 1:
        return None
    x = v.ravel()[0]
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _str_list(v: np.ndarray | None) -> list[str] | None:
    if v is None:
        return None
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in np.ravel(v).tolist()]


def _types(node: Node, name: str) -> list[tf.DType]:
    a = node.attr(name)
    return [] if a is None else [tf.dtypes.as_dtype(t) for t in a.list.type]


def _shapes(node: Node, name: str) -> list[tuple]:
    a = node.attr(name)
    if a is None:
        return []
    return [tuple(None if d.size < 0 else int(d.size) for d in s.dim) for s in a.list.shape]


def _attr_strs(node: Node, name: str) -> list[str]:
    a = node.attr(name)
    return [] if a is None else [s.decode("utf-8") for s in a.list.s]


@dataclass
class ParserMatch:
    """A parser op and, per feature, the tensor holding its parsed values."""

    node: Node
    spec: ExampleSpec
    values: dict[tuple[bool, str], Ref]  # (is_feature_list, key) -> values tensor


def _dense_features(idx: GraphIndex, keys, types, shapes, defaults,
                    missing_ok: Iterable[str] = ()) -> list[DenseFeature] | None:
    if keys is None or len(keys) != len(types) or len(keys) != len(shapes):
        return None
    missing_ok = set(missing_ok)
    out = []
    for i, key in enumerate(keys):
        shape = shapes[i]
        default = None
        if defaults is not None and i < len(defaults):
            d = idx.const_value(defaults[i])
            # Empty default = required. A default we cannot fold: treat as required
            # (always sending the feature is valid either way).
            if d is not None and d.size:
                if all(s is not None for s in shape) and d.size == math.prod(shape):
                    d = d.reshape(shape)
                default = d
        variable = bool(shape) and shape[0] is None
        out.append(DenseFeature(key, types[i], shape, default, variable or key in missing_ok))
    return out


def _keys_from(idx: GraphIndex, g: Mapping[str, list[Ref]], name: str, scalar_inputs: bool) -> list[str] | None:
    """The constant keys a parser input lists (one scalar per key for the V1 ops); None if not constant."""
    refs = g.get(name, [])
    if scalar_inputs:
        ks = [_scalar_str(idx.const_value(r)) for r in refs]
        return None if any(k is None for k in ks) else ks
    if not refs:
        return []
    return _str_list(idx.const_value(refs[0]))


def _record(idx: GraphIndex, node: Node, values: dict[tuple[bool, str], Ref], fl: bool, out_arg: str,
            keys: list[str]) -> None:
    """Note the parser output that carries each key's values (``fl``: a feature list)."""
    for i, k in enumerate(keys):
        values[(fl, k)] = idx.output_ref(node, out_arg, i)


def _ragged(keys, types, splits) -> tuple[RaggedFeature, ...]:
    return tuple(RaggedFeature(k, t, splits[i] if i < len(splits) else tf.int64)
                 for i, (k, t) in enumerate(zip(keys, types)))


def _example_match(idx: GraphIndex, node: Node) -> ParserMatch | None:
    """``ParseExample``/``ParseExampleV2``/``ParseSingleExample``: a tf.Example spec."""
    g, op = idx.input_groups(node), node.op
    values: dict[tuple[bool, str], Ref] = {}
    if op == "ParseSingleExample":
        sparse_keys, dense_keys, ragged_keys = (_attr_strs(node, "sparse_keys"),
                                                _attr_strs(node, "dense_keys"), [])
    else:
        v1 = op == "ParseExample"
        sparse_keys = _keys_from(idx, g, "sparse_keys", v1)
        dense_keys = _keys_from(idx, g, "dense_keys", v1)
        ragged_keys = [] if v1 else _keys_from(idx, g, "ragged_keys", False)
    if sparse_keys is None or dense_keys is None or ragged_keys is None:
        return None
    dense = _dense_features(idx, dense_keys, _types(node, "Tdense"), _shapes(node, "dense_shapes"),
                            g.get("dense_defaults"))
    stypes = _types(node, "sparse_types")
    rtypes, rsplits = _types(node, "ragged_value_types"), _types(node, "ragged_split_types")
    if dense is None or len(stypes) != len(sparse_keys) or len(rtypes) != len(ragged_keys):
        return None
    sparse = [SparseFeature(k, t) for k, t in zip(sparse_keys, stypes)]
    ragged = [RaggedFeature(k, t, rsplits[i] if i < len(rsplits) else tf.int64)
              for i, (k, t) in enumerate(zip(ragged_keys, rtypes))]
    _record(idx, node, values, False, "sparse_values", sparse_keys)
    _record(idx, node, values, False, "dense_values", dense_keys)
    _record(idx, node, values, False, "ragged_values", ragged_keys)
    spec = ExampleSpec("example", tuple(dense), tuple(sparse), tuple(ragged),
                       parser_op=op, single=op in SINGLE_PARSERS,
                       parser_nodes=(node.qualified_name,))
    return ParserMatch(node, spec, values)


def _sequence_keys(idx: GraphIndex, node: Node, g: Mapping[str, list[Ref]]
                   ) -> tuple[dict[str, list[str] | None], list[str]] | None:
    """A SequenceExample parser's keys per kind, and the feature lists assumed empty when missing."""
    if node.op == "ParseSequenceExample":
        ck = {s: _attr_strs(node, f"{s}_keys") for s in
              ("context_sparse", "context_dense", "feature_list_sparse", "feature_list_dense")}
        ck["context_ragged"] = ck["feature_list_ragged"] = []
        return ck, _attr_strs(node, "feature_list_dense_missing_assumed_empty")
    single = node.op == "ParseSingleSequenceExample"
    ck = {}
    for s in ("context_sparse", "context_dense", "feature_list_sparse", "feature_list_dense"):
        ck[s] = _keys_from(idx, g, f"{s}_keys", single)
    for s in ("context_ragged", "feature_list_ragged"):
        ck[s] = [] if single else _keys_from(idx, g, f"{s}_keys", False)
    if any(v is None for v in ck.values()):
        return None
    m = g.get("feature_list_dense_missing_assumed_empty", [])
    mv = idx.const_value(m[0]) if m else None
    if single:
        missing = _str_list(mv) or []
    elif mv is not None and mv.size == len(ck["feature_list_dense"]):
        missing = [k for k, flag in zip(ck["feature_list_dense"], np.ravel(mv)) if bool(flag)]
    else:
        missing = []
    return ck, missing


def _sequence_match(idx: GraphIndex, node: Node) -> ParserMatch | None:
    """``ParseSequenceExample``/``V2``/``ParseSingleSequenceExample``: a tf.SequenceExample spec."""
    g, op = idx.input_groups(node), node.op
    keys = _sequence_keys(idx, node, g)
    if keys is None or any(v is None for v in keys[0].values()):
        return None
    ck, missing = keys
    cdense = _dense_features(idx, ck["context_dense"], _types(node, "Tcontext_dense"),
                             _shapes(node, "context_dense_shapes"), g.get("context_dense_defaults"))
    fdense = _dense_features(idx, ck["feature_list_dense"], _types(node, "feature_list_dense_types"),
                             _shapes(node, "feature_list_dense_shapes"), None, missing)
    cst, fst = _types(node, "context_sparse_types"), _types(node, "feature_list_sparse_types")
    crt, fr = _types(node, "context_ragged_value_types"), _types(node, "feature_list_ragged_value_types")
    crs, frs = _types(node, "context_ragged_split_types"), _types(node, "feature_list_ragged_split_types")
    if (cdense is None or fdense is None or len(cst) != len(ck["context_sparse"])
            or len(fst) != len(ck["feature_list_sparse"]) or len(crt) != len(ck["context_ragged"])
            or len(fr) != len(ck["feature_list_ragged"])):
        return None
    values: dict[tuple[bool, str], Ref] = {}
    for fl, kind in ((False, "context_sparse"), (False, "context_dense"), (False, "context_ragged"),
                     (True, "feature_list_sparse"), (True, "feature_list_dense"), (True, "feature_list_ragged")):
        _record(idx, node, values, fl, f"{kind}_values", ck[kind])
    spec = ExampleSpec(
        "sequence_example", tuple(cdense),
        tuple(SparseFeature(k, t) for k, t in zip(ck["context_sparse"], cst)),
        _ragged(ck["context_ragged"], crt, crs),
        tuple(fdense),
        tuple(SparseFeature(k, t) for k, t in zip(ck["feature_list_sparse"], fst)),
        _ragged(ck["feature_list_ragged"], fr, frs),
        parser_op=op, single=op in SINGLE_PARSERS, parser_nodes=(node.qualified_name,))
    return ParserMatch(node, spec, values)


def spec_from_parser(idx: GraphIndex, node: Node) -> ParserMatch | None:
    """Read keys, dtypes, shapes and defaults off one parser node."""
    if node.op in ("ParseExample", "ParseExampleV2", "ParseSingleExample"):
        return _example_match(idx, node)
    if node.op in ("ParseSequenceExample", "ParseSequenceExampleV2", "ParseSingleSequenceExample"):
        return _sequence_match(idx, node)
    return None


def find_parsers(idx: GraphIndex, start: Ref) -> list[ParserMatch]:
    matches, seen = [], set()
    for node, pos in idx.walk_forward(start, _string_passthrough):
        if node.op in PARSER_OPS and pos == 0 and node.key not in seen:
            seen.add(node.key)
            m = spec_from_parser(idx, node)
            if m is not None:
                matches.append(m)
    return matches


def _merge_dense(a: tuple[DenseFeature, ...], b: tuple[DenseFeature, ...]) -> tuple[DenseFeature, ...]:
    out = {f.key: f for f in a}
    for f in b:
        if f.key not in out:
            out[f.key] = f
        elif f.required and not out[f.key].required:
            out[f.key] = f  # one parser requires it: every record must carry it
    return tuple(out[k] for k in sorted(out))


def _merge_other(a: tuple, b: tuple) -> tuple:
    out = {f.key: f for f in a}
    for f in b:
        out.setdefault(f.key, f)
    return tuple(out[k] for k in sorted(out))


def merge_specs(specs: list[ExampleSpec]) -> ExampleSpec:
    """Several parsers read the same strings (e.g. features and labels): union of features."""
    first = specs[0]
    same = [s for s in specs if s.kind == first.kind]
    merged = first
    for s in same[1:]:
        merged = ExampleSpec(
            first.kind,
            _merge_dense(merged.dense, s.dense), _merge_other(merged.sparse, s.sparse),
            _merge_other(merged.ragged, s.ragged),
            _merge_dense(merged.feature_list_dense, s.feature_list_dense),
            _merge_other(merged.feature_list_sparse, s.feature_list_sparse),
            _merge_other(merged.feature_list_ragged, s.feature_list_ragged),
            parser_op=merged.parser_op, single=merged.single and s.single,
            parser_nodes=merged.parser_nodes + s.parser_nodes)
    return merged


def _is_scalar_tensor(idx: GraphIndex, ref: Ref) -> bool:
    node = idx.producer(ref)
    if node is None:
        return False
    if node.op in ("Placeholder", "PlaceholderWithDefault") and node.attr("shape") is not None:
        s = node.attr("shape").shape
        if not s.unknown_rank:
            return len(s.dim) == 0
    shapes = node.attr("_output_shapes")
    if shapes is not None and ref[2] < len(shapes.list.shape):
        s = shapes.list.shape[ref[2]]
        return not s.unknown_rank and len(s.dim) == 0
    return False


def find_example_spec(meta_graph_def, tensor_name: str) -> ExampleSpec | None:
    """The tf.Example/SequenceExample spec the string tensor ``tensor_name`` is parsed with.

    Follows the tensor through identity/reshape plumbing and into function
    bodies to ``ParseExample``/``ParseExampleV2``/``ParseSingleExample``/
    ``ParseSequenceExample(V2)``/``ParseSingleSequenceExample``. None when it
    reaches no parser (or the parser's keys are not constants).
    """
    idx = index_for(meta_graph_def)
    start = idx.tensor_ref(tensor_name)
    if start is None:
        return None
    matches = find_parsers(idx, start)
    if not matches:
        return None
    spec = merge_specs([m.spec for m in matches])
    if not spec.single and _is_scalar_tensor(idx, start):
        spec = ExampleSpec(spec.kind, spec.dense, spec.sparse, spec.ragged, spec.feature_list_dense,
                           spec.feature_list_sparse, spec.feature_list_ragged, parser_op=spec.parser_op,
                           single=True, parser_nodes=spec.parser_nodes)
    return spec
