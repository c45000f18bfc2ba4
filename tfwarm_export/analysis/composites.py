"""Composite inputs: which flat signature aliases make up one ragged or sparse tensor.

``tf.saved_model.save`` flattens a ``RaggedTensorSpec`` or ``SparseTensorSpec``
argument into several plain aliases (ragged ``x`` = flat_values, ``x_1`` ... =
row_splits per ragged dimension, outermost first; sparse ``sp`` = indices,
``sp_1`` = values, ``sp_2`` = dense_shape). TF Serving feeds each alias on its
own, so a warmup request is only valid when the parts agree with each other.

The SavedModel's object graph (``SavedObjectGraph.concrete_functions``) keeps
the structured input signature of every traced function. Walking forward from
each alias's placeholder to the first call of a function whose signature holds
composites tells which flat argument (and so which component) the alias is.
Dtypes must agree with the component's, and the graph's ragged/sparse consumers
are named as confirmation. When the object graph says nothing (TF1 exports),
nothing is grouped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, struct_pb2

from tfwarm_export.analysis.index import GraphIndex, index_for

log = logging.getLogger("tfwarm_export.analysis")

RAGGED, SPARSE = "ragged", "sparse"
VALUES, ROW_SPLITS, INDICES, DENSE_SHAPE = "values", "row_splits", "indices", "dense_shape"


@dataclass(frozen=True)
class CompositeSpec:
    """One composite argument of a traced function, as its structured signature records it."""

    kind: str  # RAGGED or SPARSE
    path: str  # where it sits in the argument structure, e.g. "x" or "0/r"
    dtype: tf.DType  # of the values
    shape: tuple | None  # logical shape, batch first; None entries unknown
    ragged_rank: int = 0
    row_splits_dtype: tf.DType = tf.int64

    def components(self) -> list[tuple[str, int, tf.DType]]:
        """(role, level, dtype) of each flat component, in TF's flattening order."""
        if self.kind == SPARSE:
            return [(INDICES, 0, tf.int64), (VALUES, 0, self.dtype), (DENSE_SHAPE, 0, tf.int64)]
        return [(VALUES, 0, self.dtype)] + [(ROW_SPLITS, level, self.row_splits_dtype)
                                             for level in range(1, self.ragged_rank + 1)]


@dataclass(frozen=True)
class Component:
    """One alias's place in a composite: the group it belongs to and its role there.

    ``level`` numbers row_splits from the outermost ragged dimension (1). The plan
    fills ``sizes`` with the concrete logical shape it warms (batch first).
    """

    group: str  # the composite's name in the signature: its first alias
    aliases: tuple[str, ...]  # every alias of the group, in component order
    spec: CompositeSpec
    role: str
    level: int = 0
    confirmed_by: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()

    def describe(self) -> str:
        what = f"{self.spec.kind} {self.group}"
        role = f"row_splits[{self.level}]" if self.role == ROW_SPLITS else self.role
        return f"{role} of {what} ({', '.join(self.aliases)})"


@dataclass
class _Flat:
    specs: list = field(default_factory=list)  # per flat position: (CompositeSpec | None, component index)


def _shape(proto) -> tuple | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def _type_spec(value: struct_pb2.StructuredValue, path: str) -> tuple[CompositeSpec | None, int]:
    """A TypeSpec value: the composite it describes (or None) and how many flat args it takes."""
    ts = value.type_spec_value
    state = list(ts.type_state.tuple_value.values)
    try:
        if ts.type_spec_class == struct_pb2.TypeSpecProto.RAGGED_TENSOR_SPEC and len(state) >= 4:
            ragged_rank = int(state[2].int64_value)
            spec = CompositeSpec(RAGGED, path, tf.dtypes.as_dtype(state[1].tensor_dtype_value),
                                 _shape(state[0].tensor_shape_value), ragged_rank,
                                 tf.dtypes.as_dtype(state[3].tensor_dtype_value))
            if ragged_rank == 0:
                return None, 1
            return spec, ragged_rank + 1
        if ts.type_spec_class == struct_pb2.TypeSpecProto.SPARSE_TENSOR_SPEC and len(state) >= 2:
            spec = CompositeSpec(SPARSE, path, tf.dtypes.as_dtype(state[1].tensor_dtype_value),
                                 _shape(state[0].tensor_shape_value))
            return spec, 3
    except TypeError as e:  # tf.dtypes.as_dtype on a dtype enum this TF does not know
        log.debug("composite input %r not recognised (%s: %s); treated as %d plain tensor(s)",
                  path, type(e).__name__, e, int(ts.num_flat_components) or 1)
    return None, int(ts.num_flat_components) or 1


def _flatten(value: struct_pb2.StructuredValue, path: str, out: _Flat) -> None:
    """Flat argument positions in ``tf.nest`` order (dict keys sorted), like tf.function."""
    kind = value.WhichOneof("kind")
    if kind in ("tuple_value", "list_value"):
        for i, v in enumerate(getattr(value, kind).values):
            _flatten(v, f"{path}/{i}" if path else str(i), out)
    elif kind == "dict_value":
        for key in sorted(value.dict_value.fields):
            _flatten(value.dict_value.fields[key], f"{path}/{key}" if path else key, out)
    elif kind == "named_tuple_value":
        for pair in value.named_tuple_value.values:
            _flatten(pair.value, f"{path}/{pair.key}" if path else pair.key, out)
    elif kind == "tensor_spec_value" or kind == "bounded_tensor_spec_value":
        out.specs.append((None, 0))
    elif kind == "type_spec_value":
        spec, n = _type_spec(value, path)
        for i in range(n):
            out.specs.append((spec, i))
    # None, Python constants and everything else take no flat argument.


_FUNCTIONS_CACHE: list[tuple[meta_graph_pb2.MetaGraphDef, dict]] = []


def _composite_functions(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, list]:
    """Function name -> per flat input position (CompositeSpec | None, component), for
    traced functions whose structured signature holds at least one composite (cached per
    MetaGraph object: replay asks once per record)."""
    for mg, found in _FUNCTIONS_CACHE:
        if mg is meta_graph:
            return found
    out = {}
    for fname, cf in sorted(meta_graph.object_graph_def.concrete_functions.items()):  # upb map order is per process
        flat = _Flat()
        _flatten(cf.canonicalized_input_signature, "", flat)
        if any(spec is not None for spec, _ in flat.specs):
            out[fname] = flat.specs
    _FUNCTIONS_CACHE.append((meta_graph, out))
    del _FUNCTIONS_CACHE[:-4]
    return out


_CONFIRMING_PREFIXES = ("Ragged", "Sparse", "SerializeSparse", "SegmentSum", "UnsortedSegment")


def _first_call(idx: GraphIndex, tensor_name: str, functions: Mapping[str, list]
                ) -> tuple[str, int, list[str]] | None:
    """The first call of a composite-bearing function ``tensor_name`` flows into: (function,
    argument position), plus ragged/sparse op types seen on the way (confirmation)."""
    ref = idx.tensor_ref(tensor_name)
    if ref is None:
        return None
    seen_ops: list[str] = []
    for node, pos in idx.walk_forward(ref, lambda n, p: [0] if n.op in ("Identity", "IdentityN") else []):
        if node.op.startswith(_CONFIRMING_PREFIXES) and node.op not in seen_ops:
            seen_ops.append(node.op)
        nd = node.node_def
        if nd is None:
            continue
        fname = nd.attr["f"].func.name if "f" in nd.attr else (nd.op if nd.op in functions else "")
        if fname in functions and pos < len(functions[fname]):
            return fname, pos, seen_ops
    return None


def _confirming_ops(idx: GraphIndex, fname: str, pos: int) -> list[str]:
    """Ragged/sparse op types inside ``fname`` that its argument ``pos`` reaches."""
    args = idx.functions[fname].signature.input_arg if fname in idx.functions else []
    if pos >= len(args):
        return []
    ops: list[str] = []
    for node, _ in idx.walk_forward((fname, args[pos].name, 0), lambda n, p: [0]):
        if node.op.startswith(_CONFIRMING_PREFIXES) and node.op not in ops:
            ops.append(node.op)
            if len(ops) >= 3:
                break
    return ops


def find_composites(meta_graph: meta_graph_pb2.MetaGraphDef,
                    inputs: Mapping[str, tuple[str, tf.DType]]) -> dict[str, Component]:
    """alias -> Component for every alias of ``inputs`` ({alias: (tensor, dtype)}) that is a
    part of a ragged or sparse argument. Groups are only returned whole and type-consistent."""
    functions = _composite_functions(meta_graph)
    if not functions:
        return {}
    idx = index_for(meta_graph)
    hits: dict[tuple[str, int], str] = {}  # (function, flat position) -> alias
    for alias, (tensor, _) in sorted(inputs.items()):
        found = _first_call(idx, tensor, functions)
        if found is not None:
            hits[(found[0], found[1])] = alias
    out: dict[str, Component] = {}
    for fname, flat in functions.items():
        groups: dict[int, list[int]] = {}  # first flat position of a composite -> its positions
        start = None
        for pos, (spec, comp) in enumerate(flat):
            if spec is None:
                start = None
                continue
            if comp == 0:
                start = pos
            if start is not None:
                groups.setdefault(start, []).append(pos)
        for start, positions in groups.items():
            spec = flat[start][0]
            roles = spec.components()
            aliases = [hits.get((fname, p)) for p in positions]
            if len(positions) != len(roles) or any(a is None for a in aliases):
                continue
            if any(inputs[a][1] != dt for a, (_, _, dt) in zip(aliases, roles)):
                continue  # the aliases are not what the signature says the parts are
            confirmed = tuple(_confirming_ops(idx, fname, positions[-1 if spec.kind == RAGGED else 0]))
            for a, (role, level, _) in zip(aliases, roles):
                out[a] = Component(group=aliases[0], aliases=tuple(aliases), spec=spec, role=role,
                                   level=level, confirmed_by=confirmed)
    return out


__all__ = ["RAGGED", "SPARSE", "VALUES", "ROW_SPLITS", "INDICES", "DENSE_SHAPE", "CompositeSpec",
           "Component", "find_composites"]
