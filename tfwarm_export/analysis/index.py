"""Static analysis of a SavedModel's MetaGraphDef, for building valid warmup data.

TF Serving feeds tensors by name into the graph; whether a request succeeds
depends on what the graph does with them: a string input may be parsed as a
tf.Example with required features, an id may index an embedding table, a
string may be looked up in a vocabulary. Everything here reads the protos only
(no session, no ``tf.saved_model.load``), so it sees TF1 builder exports and
TF2 saves exactly as TF Serving does, including TF2's nested
``StatefulPartitionedCall`` function bodies.

All analyses are best-effort: when the graph does not say, they return
nothing rather than a guess.
"""
from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import op_def_registry

from tfwarm_export.domains import Domain
from tfwarm_export.example_spec import (DenseFeature, ExampleSpec, RaggedFeature, SparseFeature)

MAIN = ""  # scope name of the main graph; functions use their own name

Ref = tuple  # (scope, node_name, output_index): one tensor
NodeKey = tuple  # (scope, node_name)

_MAX_VISITS = 200_000  # safety valve for pathological graphs
_MAX_CALL_DEPTH = 64

# Ops that forward their first input unchanged (for strings, handles and values alike).
_IDENTITY_OPS = frozenset({
    "Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics",
    "PlaceholderWithDefault", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    "RefIdentity", "Enter", "Exit", "NextIteration",
})

# Ops that keep a serialized-string batch a batch of the same records.
_STRING_PLUMBING = _IDENTITY_OPS | {"Reshape", "ExpandDims", "Squeeze"}

PARSER_OPS = frozenset({
    "ParseExample", "ParseExampleV2", "ParseSingleExample",
    "ParseSequenceExample", "ParseSequenceExampleV2", "ParseSingleSequenceExample",
})
_SINGLE_PARSERS = frozenset({"ParseSingleExample", "ParseSingleSequenceExample"})

_TABLE_CREATORS = frozenset({
    "HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2",
    "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2",
    "MutableDenseHashTable", "MutableDenseHashTableV2",
})
_TABLE_FIND = frozenset({"LookupTableFind", "LookupTableFindV2"})
_TABLE_IMPORT = frozenset({"LookupTableImport", "LookupTableImportV2", "InitializeTable",
                           "InitializeTableV2"})
_TABLE_TEXTFILE = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
_VARIABLE_CREATORS = frozenset({"VarHandleOp", "VariableV2", "Variable"})

_COMPARISONS = frozenset({"Less", "LessEqual", "Greater", "GreaterEqual"})

# Op types that change model state. Reached from a signature's outputs, they
# mean replaying the signature at load time mutates the model.
_STATEFUL_EXACT = frozenset({
    "StridedSliceAssign", "ResourceStridedSliceAssign",
    "ScatterUpdate", "ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv", "ScatterMin",
    "ScatterMax", "ScatterNdUpdate", "ScatterNdAdd", "ScatterNdSub", "ScatterNdMin",
    "ScatterNdMax", "CountUpTo", "ResourceCountUpTo",
})
_STATEFUL_PREFIXES = ("Assign", "ResourceScatter", "LookupTableInsert", "LookupTableRemove",
                      "LookupTableImport", "InitializeTable", "ResourceApply", "ApplyGradient",
                      "ResourceSparseApply", "SparseApply")
_TRAINING_APPLY = frozenset({
    "ApplyAdagrad", "ApplyAdam", "ApplyGradientDescent", "ApplyMomentum", "ApplyRMSProp",
    "ApplyFtrl", "ApplyFtrlV2", "ApplyAdadelta", "ApplyAdaMax", "ApplyCenteredRMSProp",
    "ApplyProximalAdagrad", "ApplyProximalGradientDescent", "ApplyPowerSign", "ApplyAddSign",
    "ApplyAdagradDA",
})


def is_stateful_op(op: str) -> bool:
    """True for op types that write variables or tables."""
    return op in _STATEFUL_EXACT or op in _TRAINING_APPLY or op.startswith(_STATEFUL_PREFIXES)


@dataclass(frozen=True)
class Node:
    """One node of the main graph or of a library function (``_Arg`` for function inputs)."""

    scope: str
    name: str
    op: str
    inputs: tuple  # tuple[Ref, ...], data inputs only
    control_inputs: tuple  # tuple[NodeKey, ...]
    node_def: node_def_pb2.NodeDef | None = None
    arg_index: int = -1

    @property
    def key(self) -> NodeKey:
        return (self.scope, self.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.scope}/{self.name}" if self.scope else self.name

    def attr(self, name: str):
        """An attr, or the OpDef's default for it (SavedModels strip default-valued attrs)."""
        if self.node_def is None:
            return None
        if name in self.node_def.attr:
            return self.node_def.attr[name]
        op_def = op_def_registry.get(self.op)
        return None if op_def is None else _attr_or_default(self.node_def, op_def, name)


@dataclass(frozen=True)
class _Call:
    """A node that runs a library function: which one, and how inputs map to its args."""

    function: str
    input_offset: int | None  # function arg j <- node input j + offset; None: no mapping
    maps_outputs: bool  # node output k <- function return k


def _parse_tensor_name(name: str) -> tuple[str, int]:
    name = name.lstrip("^")
    if ":" in name:
        node, _, idx = name.rpartition(":")
        if idx.isdigit():
            return node, int(idx)
    return name, 0


def _attr_or_default(node_def, op_def, name: str):
    """An attr value, falling back to the OpDef default (SavedModels strip default-valued attrs)."""
    if name in node_def.attr:
        return node_def.attr[name]
    for a in op_def.attr:
        if a.name == name and a.HasField("default_value"):
            return a.default_value
    return None


def _count_for_arg(arg, node_def, op_def) -> int:
    """How many tensors one (possibly list-valued) OpDef arg stands for in a NodeDef."""
    if arg.number_attr:
        v = _attr_or_default(node_def, op_def, arg.number_attr)
        return int(v.i) if v is not None else 1
    if arg.type_list_attr:
        v = _attr_or_default(node_def, op_def, arg.type_list_attr)
        return len(v.list.type) if v is not None else 1
    return 1


class GraphIndex:
    """The main graph and every library function, with producer/consumer links.

    Tensors are ``(scope, node, output_index)`` where scope is ``MAIN`` ("") for
    the main graph or a function name. Function inputs appear as ``_Arg`` nodes.
    Calls (``StatefulPartitionedCall``/``PartitionedCall`` attr ``f``, direct
    calls of a library function, ``If``/``While``/``Case`` branches) are
    recorded so walks can step into a body and back out through its returns.
    """

    def __init__(self, meta_graph_def: meta_graph_pb2.MetaGraphDef):
        self.meta_graph = meta_graph_def
        graph_def = meta_graph_def.graph_def
        self.functions = {f.signature.name: f for f in graph_def.library.function}
        self.nodes: dict[NodeKey, Node] = {}
        self.consumers: dict[Ref, list[tuple[NodeKey, int]]] = {}
        self.calls: dict[NodeKey, list[_Call]] = {}
        self.callers: dict[str, list[tuple[NodeKey, _Call]]] = {}
        self.returns: dict[str, list[Ref]] = {}
        self.control_returns: dict[str, list[NodeKey]] = {}
        self.ret_index: dict[Ref, list[tuple[str, int]]] = {}
        self.by_op: dict[str, list[NodeKey]] = {}
        self._offset_cache: dict[NodeKey, dict[str, int]] = {}
        self._table_inits: dict[NodeKey, list[Node]] | None = None
        self._asset_map: dict[str, str] | None = None

        raw: dict[str, list[node_def_pb2.NodeDef]] = {MAIN: list(graph_def.node)}
        for fname, fdef in self.functions.items():
            raw[fname] = list(fdef.node_def)
        self._raw = {(scope, nd.name): nd for scope, nds in raw.items() for nd in nds}
        self._fn_args = {f: [a.name for a in fdef.signature.input_arg] for f, fdef in self.functions.items()}

        for fname, args in self._fn_args.items():
            for i, a in enumerate(args):
                self._add(Node(fname, a, "_Arg", (), (), None, i))
        for scope, nds in raw.items():
            for nd in nds:
                data, control = [], []
                for s in nd.input:
                    if s.startswith("^"):
                        control.append((scope, s[1:]))
                    else:
                        data.append(self._resolve_input(scope, s))
                self._add(Node(scope, nd.name, nd.op, tuple(data), tuple(control), nd))
        for node in self.nodes.values():
            for pos, ref in enumerate(node.inputs):
                self.consumers.setdefault(ref, []).append((node.key, pos))
            calls = self._calls_of(node)
            if calls:
                self.calls[node.key] = calls
                for c in calls:
                    self.callers.setdefault(c.function, []).append((node.key, c))
        for fname, fdef in self.functions.items():
            rets = []
            for i, out in enumerate(fdef.signature.output_arg):
                spec = fdef.ret.get(out.name)
                ref = self._resolve_input(fname, spec) if spec else None
                rets.append(ref)
                if ref is not None:
                    self.ret_index.setdefault(ref, []).append((fname, i))
            self.returns[fname] = rets
            self.control_returns[fname] = [(fname, n) for n in fdef.control_ret.values()]

    # ---------------------------------------------------------------- building
    def _add(self, node: Node) -> None:
        self.nodes[node.key] = node
        self.by_op.setdefault(node.op, []).append(node.key)

    def _output_offsets(self, key: NodeKey) -> dict[str, int]:
        """Flat output index of each named output arg (function bodies name outputs)."""
        if key in self._offset_cache:
            return self._offset_cache[key]
        nd = self._raw.get(key)
        offsets: dict[str, int] = {}
        if nd is not None:
            if nd.op in self.functions:
                for i, a in enumerate(self.functions[nd.op].signature.output_arg):
                    offsets[a.name] = i
            else:
                op_def = op_def_registry.get(nd.op)
                if op_def is not None:
                    pos = 0
                    for a in op_def.output_arg:
                        offsets[a.name] = pos
                        pos += _count_for_arg(a, nd, op_def)
        self._offset_cache[key] = offsets
        return offsets

    def _resolve_input(self, scope: str, s: str) -> Ref:
        if scope == MAIN:
            node, idx = _parse_tensor_name(s)
            return (MAIN, node, idx)
        parts = s.split(":")
        if len(parts) == 1:
            return (scope, parts[0], 0)
        if len(parts) == 2:  # "node:idx" is not emitted by TF for bodies, but be lenient
            return (scope, parts[0], int(parts[1]) if parts[1].isdigit() else 0)
        node, arg, idx = parts[0], parts[1], int(parts[2]) if parts[2].isdigit() else 0
        offsets = self._output_offsets((scope, node))
        return (scope, node, offsets.get(arg, 0) + idx)

    def _calls_of(self, node: Node) -> list[_Call]:
        nd = node.node_def
        if nd is None:
            return []
        calls = []
        if nd.op in self.functions:
            calls.append(_Call(nd.op, 0, True))
        for attr_name, value in nd.attr.items():
            names = []
            if value.HasField("func") and value.func.name in self.functions:
                names.append(value.func.name)
            names += [f.name for f in value.list.func if f.name in self.functions]
            for fname in names:
                if nd.op in ("If", "StatelessIf", "Case", "StatelessCase"):
                    calls.append(_Call(fname, 1, True))
                elif nd.op in ("While", "StatelessWhile"):
                    calls.append(_Call(fname, 0, False))
                elif attr_name == "f" and "PartitionedCall" in nd.op:
                    calls.append(_Call(fname, 0, True))
                else:  # dataset functions, gradients...: reachable, but no tensor mapping
                    calls.append(_Call(fname, None, False))
        return calls

    # ---------------------------------------------------------------- lookups
    def producer(self, ref: Ref) -> Node | None:
        return self.nodes.get((ref[0], ref[1]))

    def tensor_ref(self, tensor_name: str) -> Ref | None:
        """A main-graph tensor name ("x:0") as a Ref, or None if no such node."""
        node, idx = _parse_tensor_name(tensor_name)
        return (MAIN, node, idx) if (MAIN, node) in self.nodes else None

    def input_groups(self, node: Node) -> dict[str, list[Ref]]:
        """A node's data inputs grouped by its OpDef's input arg names."""
        op_def = op_def_registry.get(node.op)
        groups: dict[str, list[Ref]] = {}
        if op_def is None or node.node_def is None:
            return groups
        pos = 0
        for a in op_def.input_arg:
            n = _count_for_arg(a, node.node_def, op_def)
            groups[a.name] = list(node.inputs[pos:pos + n])
            pos += n
        return groups

    def output_ref(self, node: Node, arg: str, i: int = 0) -> Ref:
        return (node.scope, node.name, self._output_offsets(node.key).get(arg, 0) + i)

    def function_has_op(self, fname: str, ops: Iterable[str], _seen=None) -> bool:
        """Whether a function (or anything it calls) contains one of ``ops``."""
        ops = frozenset(ops)
        seen = _seen if _seen is not None else set()
        if fname in seen or fname not in self.functions:
            return False
        seen.add(fname)
        for nd in self.functions[fname].node_def:
            if nd.op in ops:
                return True
            for c in self.calls.get((fname, nd.name), ()):
                if self.function_has_op(c.function, ops, seen):
                    return True
        return False

    # ---------------------------------------------------------------- walks
    def walk_forward(self, start: Ref, passthrough: Callable[[Node, int], Sequence[int]],
                     follow_calls: bool = True) -> Iterator[tuple[Node, int]]:
        """Yield every (consumer node, input position) the tensor ``start`` reaches.

        The walk continues through outputs ``passthrough(node, pos)`` names, into
        function bodies (call input i -> body arg i) and back out through a
        body's returns to the caller it came from (or every caller when the
        walk started inside the body).
        """
        queue = deque([(start, ())])
        seen = set()
        while queue:
            ref, stack = queue.popleft()
            if (ref, stack) in seen or len(seen) > _MAX_VISITS:
                continue
            seen.add((ref, stack))
            if follow_calls:
                for fname, out_i in self.ret_index.get(ref, ()):
                    if stack and stack[-1][1] == fname:
                        targets, rest = [stack[-1][0]], stack[:-1]
                    else:
                        targets = [k for k, c in self.callers.get(fname, ()) if c.maps_outputs]
                        rest = ()
                    for caller in targets:
                        queue.append(((caller[0], caller[1], out_i), rest))
            for ckey, pos in self.consumers.get(ref, ()):
                node = self.nodes[ckey]
                yield node, pos
                if follow_calls and len(stack) < _MAX_CALL_DEPTH:
                    for c in self.calls.get(ckey, ()):
                        if c.input_offset is None or pos < c.input_offset:
                            continue
                        j = pos - c.input_offset
                        args = self._fn_args.get(c.function, [])
                        if j < len(args):
                            queue.append(((c.function, args[j], 0), stack + ((ckey, c.function),)))
                for out in passthrough(node, pos) or ():
                    queue.append(((node.scope, node.name, out), stack))

    def resolve_back(self, ref: Ref, through: Callable[[Node], int | None] | None = None,
                     stack: tuple = ()) -> list[tuple[Ref, Node]]:
        """Where a tensor really comes from: walk producers backwards.

        Steps over identity-like ops (and whatever ``through(node)`` names an
        input position for), from a function arg to the caller's input, and
        from a call's output into the callee's return. Returns the terminal
        (tensor, producing node) pairs: several when a function has several callers.
        """
        through = through or (lambda n: 0 if n.op in _IDENTITY_OPS or n.op == "IdentityN" else None)
        out: list[tuple[Ref, Node]] = []
        queue = deque([(ref, stack)])
        seen = set()
        while queue:
            ref, stack = queue.popleft()
            if (ref, stack) in seen or len(seen) > _MAX_VISITS:
                continue
            seen.add((ref, stack))
            node = self.producer(ref)
            if node is None:
                continue
            if node.op == "_Arg":
                fname = node.scope
                if stack and stack[-1][1] == fname:
                    callers, rest = [(stack[-1][0], None)], stack[:-1]
                else:
                    callers, rest = self.callers.get(fname, []), ()
                for ckey, call in callers:
                    cnode = self.nodes[ckey]
                    cs = [call] if call else [c for c in self.calls.get(ckey, ()) if c.function == fname]
                    for c in cs:
                        if c.input_offset is None:
                            continue
                        i = node.arg_index + c.input_offset
                        if i < len(cnode.inputs):
                            queue.append((cnode.inputs[i], rest))
                continue
            calls = [c for c in self.calls.get(node.key, ()) if c.maps_outputs]
            if calls and len(stack) < _MAX_CALL_DEPTH:
                for c in calls:
                    rets = self.returns.get(c.function, [])
                    if ref[2] < len(rets) and rets[ref[2]] is not None:
                        queue.append((rets[ref[2]], stack + ((node.key, c.function),)))
                continue
            if node.op == "IdentityN":
                if ref[2] < len(node.inputs):
                    queue.append((node.inputs[ref[2]], stack))
                continue
            pos = through(node)
            if pos is not None and pos < len(node.inputs):
                queue.append((node.inputs[pos], stack))
                continue
            out.append((ref, node))
        return out

    # ---------------------------------------------------------------- constants
    def const_value(self, ref: Ref, _depth: int = 0) -> np.ndarray | None:
        """Fold a tensor to a numpy value if it is built from Consts only (simple ops)."""
        if _depth > 16:
            return None
        values = []
        for r, node in self.resolve_back(ref):
            v = self._fold(node, r, _depth)
            if v is None:
                return None
            values.append(v)
        if not values:
            return None
        first = values[0]
        for v in values[1:]:
            if v.shape != first.shape or not np.array_equal(v, first):
                return None  # different callers pass different constants
        return first

    def _fold(self, node: Node, ref: Ref, depth: int) -> np.ndarray | None:
        op = node.op
        try:
            if op == "Const":
                return tf.make_ndarray(node.attr("value").tensor)
            if op in ("Reshape", "ExpandDims", "Squeeze", "Cast", "Pack", "ConcatV2", "Fill"):
                if op == "Pack":
                    parts = [self.const_value(i, depth + 1) for i in node.inputs]
                    if any(p is None for p in parts):
                        return None
                    return np.stack(parts, axis=int(node.attr("axis").i))
                if op == "ConcatV2":
                    parts = [self.const_value(i, depth + 1) for i in node.inputs]
                    if any(p is None for p in parts):
                        return None
                    return np.concatenate(parts[:-1], axis=int(parts[-1]))
                if op == "Fill":
                    dims, value = (self.const_value(i, depth + 1) for i in node.inputs[:2])
                    if dims is None or value is None:
                        return None
                    return np.full(tuple(int(d) for d in dims), value)
                x = self.const_value(node.inputs[0], depth + 1)
                if x is None:
                    return None
                if op == "Cast":
                    dst = tf.dtypes.as_dtype(node.attr("DstT").type)
                    return x if dst == tf.string else x.astype(dst.as_numpy_dtype)
                if op == "Squeeze":
                    dims = tuple(node.attr("squeeze_dims").list.i) if node.attr("squeeze_dims") else ()
                    return np.squeeze(x, axis=dims or None)
                y = self.const_value(node.inputs[1], depth + 1)
                if y is None:
                    return None
                if op == "Reshape":
                    return x.reshape(tuple(int(d) for d in np.ravel(y)))
                return np.expand_dims(x, int(y))
        except (ValueError, TypeError, IndexError, AttributeError):
            return None
        return None

    # ---------------------------------------------------------------- assets
    def asset_map(self) -> dict[str, str]:
        """Main-graph tensor name -> asset filename (relative to ``assets/``)."""
        if self._asset_map is None:
            m = {}
            for a in self.meta_graph.asset_file_def:
                m[a.tensor_info.name] = a.filename
            coll = self.meta_graph.collection_def.get("saved_model_assets")
            if coll is not None:
                for any_proto in coll.any_list.value:
                    a = meta_graph_pb2.AssetFileDef()
                    if any_proto.Unpack(a):
                        m[a.tensor_info.name] = a.filename
            self._asset_map = m
        return self._asset_map

    def resolve_path(self, ref: Ref, export_dir: str | None, _depth: int = 0) -> str | None:
        """The file a string tensor names at serving time (vocabulary files).

        Asset tensors (TF1 Consts or TF2 ``asset_path_initializer`` placeholders
        stored in a variable) map to ``<export_dir>/assets/<filename>``; a plain
        Const path is used when that file exists.
        """
        def through(n: Node):
            return 0 if n.op in _IDENTITY_OPS or n.op == "ReadVariableOp" else None

        if _depth > 8:
            return None
        for r, node in self.resolve_back(ref, through):
            name = f"{r[1]}:{r[2]}" if r[0] == MAIN else None
            if name is not None and name in self.asset_map() and export_dir:
                path = os.path.join(export_dir, "assets", self.asset_map()[name])
                if tf.io.gfile.exists(path):
                    return path
            if node.op in _VARIABLE_CREATORS:
                for wkey, pos in self.consumers.get(r, ()):
                    writer = self.nodes[wkey]
                    if writer.op in ("AssignVariableOp", "Assign") and pos == 0 and len(writer.inputs) > 1:
                        path = self.resolve_path(writer.inputs[1], export_dir, _depth + 1)
                        if path:
                            return path
            if node.op == "Const":
                v = self.const_value(r)
                if v is None or v.size != 1:
                    continue
                p = v.ravel()[0]
                p = p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
                candidates = [p]
                if export_dir:
                    candidates.insert(0, os.path.join(export_dir, "assets", os.path.basename(p)))
                for c in candidates:
                    if tf.io.gfile.exists(c):
                        return c
        return None

    # ---------------------------------------------------------------- tables
    def table_creators(self, handle: Ref) -> list[Node]:
        return [n for _, n in self.resolve_back(handle) if n.op in _TABLE_CREATORS]

    def table_initializers(self) -> dict[NodeKey, list[Node]]:
        """Table creator -> the nodes that fill it (import from Consts or a text file)."""
        if self._table_inits is None:
            inits: dict[NodeKey, list[Node]] = {}
            for op in sorted(_TABLE_IMPORT | _TABLE_TEXTFILE):
                for key in self.by_op.get(op, ()):
                    node = self.nodes[key]
                    if not node.inputs:
                        continue
                    for creator in self.table_creators(node.inputs[0]):
                        inits.setdefault(creator.key, []).append(node)
            self._table_inits = inits
        return self._table_inits


_INDEX_CACHE: list[tuple[meta_graph_pb2.MetaGraphDef, GraphIndex]] = []


def index_for(meta_graph_def) -> GraphIndex:
    """A (small, identity-keyed) cache so plan-time calls share one index per MetaGraph."""
    if isinstance(meta_graph_def, GraphIndex):
        return meta_graph_def
    for mg, idx in _INDEX_CACHE:
        if mg is meta_graph_def:
            return idx
    idx = GraphIndex(meta_graph_def)
    _INDEX_CACHE.append((meta_graph_def, idx))
    del _INDEX_CACHE[:-4]
    return idx


# ====================================================================== example specs
def _string_passthrough(node: Node, pos: int) -> Sequence[int]:
    if node.op in _STRING_PLUMBING and pos == 0:
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
class _ParserMatch:
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


def _spec_from_parser(idx: GraphIndex, node: Node) -> _ParserMatch | None:
    """Read keys, dtypes, shapes and defaults off one parser node."""
    g = idx.input_groups(node)
    values: dict[tuple[bool, str], Ref] = {}
    op = node.op

    def keys_from(name: str, scalar_inputs: bool) -> list[str] | None:
        refs = g.get(name, [])
        if scalar_inputs:
            ks = [_scalar_str(idx.const_value(r)) for r in refs]
            return None if any(k is None for k in ks) else ks
        if not refs:
            return []
        return _str_list(idx.const_value(refs[0]))

    def record(fl: bool, out_arg: str, keys: list[str]):
        for i, k in enumerate(keys):
            values[(fl, k)] = idx.output_ref(node, out_arg, i)

    if op in ("ParseExample", "ParseExampleV2", "ParseSingleExample"):
        if op == "ParseSingleExample":
            sparse_keys, dense_keys, ragged_keys = (_attr_strs(node, "sparse_keys"),
                                                    _attr_strs(node, "dense_keys"), [])
        else:
            v1 = op == "ParseExample"
            sparse_keys = keys_from("sparse_keys", v1)
            dense_keys = keys_from("dense_keys", v1)
            ragged_keys = [] if v1 else keys_from("ragged_keys", False)
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
        record(False, "sparse_values", sparse_keys)
        record(False, "dense_values", dense_keys)
        record(False, "ragged_values", ragged_keys)
        spec = ExampleSpec("example", tuple(dense), tuple(sparse), tuple(ragged),
                           parser_op=op, single=op in _SINGLE_PARSERS,
                           parser_nodes=(node.qualified_name,))
        return _ParserMatch(node, spec, values)

    if op in ("ParseSequenceExample", "ParseSequenceExampleV2", "ParseSingleSequenceExample"):
        if op == "ParseSequenceExample":
            ck = {s: _attr_strs(node, f"{s}_keys") for s in
                  ("context_sparse", "context_dense", "feature_list_sparse", "feature_list_dense")}
            ck["context_ragged"] = ck["feature_list_ragged"] = []
            missing = _attr_strs(node, "feature_list_dense_missing_assumed_empty")
        else:
            single = op == "ParseSingleSequenceExample"
            ck = {}
            for s in ("context_sparse", "context_dense", "feature_list_sparse", "feature_list_dense"):
                ck[s] = keys_from(f"{s}_keys", single)
            for s in ("context_ragged", "feature_list_ragged"):
                ck[s] = [] if single else keys_from(f"{s}_keys", False)
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
        if any(v is None for v in ck.values()):
            return None
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

        def ragged(keys, types, splits):
            return tuple(RaggedFeature(k, t, splits[i] if i < len(splits) else tf.int64)
                         for i, (k, t) in enumerate(zip(keys, types)))

        record(False, "context_sparse_values", ck["context_sparse"])
        record(False, "context_dense_values", ck["context_dense"])
        record(False, "context_ragged_values", ck["context_ragged"])
        record(True, "feature_list_sparse_values", ck["feature_list_sparse"])
        record(True, "feature_list_dense_values", ck["feature_list_dense"])
        record(True, "feature_list_ragged_values", ck["feature_list_ragged"])
        spec = ExampleSpec(
            "sequence_example", tuple(cdense),
            tuple(SparseFeature(k, t) for k, t in zip(ck["context_sparse"], cst)),
            ragged(ck["context_ragged"], crt, crs),
            tuple(fdense),
            tuple(SparseFeature(k, t) for k, t in zip(ck["feature_list_sparse"], fst)),
            ragged(ck["feature_list_ragged"], fr, frs),
            parser_op=op, single=op in _SINGLE_PARSERS, parser_nodes=(node.qualified_name,))
        return _ParserMatch(node, spec, values)
    return None


def _find_parsers(idx: GraphIndex, start: Ref) -> list[_ParserMatch]:
    matches, seen = [], set()
    for node, pos in idx.walk_forward(start, _string_passthrough):
        if node.op in PARSER_OPS and pos == 0 and node.key not in seen:
            seen.add(node.key)
            m = _spec_from_parser(idx, node)
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


def _merge_specs(specs: list[ExampleSpec]) -> ExampleSpec:
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
    matches = _find_parsers(idx, start)
    if not matches:
        return None
    spec = _merge_specs([m.spec for m in matches])
    if not spec.single and _is_scalar_tensor(idx, start):
        spec = ExampleSpec(spec.kind, spec.dense, spec.sparse, spec.ragged, spec.feature_list_dense,
                           spec.feature_list_sparse, spec.feature_list_ragged, parser_op=spec.parser_op,
                           single=True, parser_nodes=spec.parser_nodes)
    return spec


# ====================================================================== value domains
_VALUE_PASS_FIRST = frozenset({
    "Reshape", "ExpandDims", "Squeeze", "Transpose", "StridedSlice", "Slice", "Tile",
    "BroadcastTo", "ReverseV2", "Reverse", "Cast", "GatherV2", "Gather", "GatherNd", "Pad",
    "PadV2", "MirrorPad", "Unique", "UniqueV2", "UniqueWithCounts",
})


def _value_passthrough(node: Node, pos: int) -> Sequence[int]:
    """Outputs that carry (a subset of) the input's values unchanged."""
    op = node.op
    if op in _IDENTITY_OPS:
        return (0,) if pos == 0 else ()
    if op == "IdentityN":
        return (pos,)
    if op in _VALUE_PASS_FIRST:
        return (0,) if pos == 0 else ()
    if op == "ConcatV2":
        return (0,) if pos < len(node.inputs) - 1 else ()
    if op == "Concat":
        return (0,) if pos >= 1 else ()
    if op == "Pack":
        return (0,)
    if op == "Unpack":
        n = node.attr("num")
        return tuple(range(int(n.i))) if n is not None else (0,)
    if op in ("Split", "SplitV"):
        data_pos = 1 if op == "Split" else 0
        n = node.attr("num_split")
        return tuple(range(int(n.i))) if pos == data_pos and n is not None else ()
    if op in ("Select", "SelectV2"):
        return (0,) if pos in (1, 2) else ()
    if op in ("Switch", "RefSwitch"):  # TF1 control flow: data goes out either branch
        return (0, 1) if pos == 0 else ()
    if op in ("Merge", "RefMerge"):
        return (0,)
    if op == "SparseFillEmptyRows":
        return (1,) if pos == 1 else ()
    if op == "SparseToDense":
        return (0,) if pos == 2 else ()
    if op == "RaggedTensorToTensor":
        return (0,) if pos == 1 else ()
    if op == "SparseReorder":  # (indices, values, shape) -> (indices, values)
        return (1,) if pos == 1 else ()
    # Text standardization keeps vocabulary tokens as they are (they were
    # standardized the same way when the vocabulary was built).
    if op in ("StringLower", "StaticRegexReplace", "RegexReplace", "StringStrip"):
        return (0,) if pos == 0 else ()
    if op in ("StringSplitV2", "StringSplit"):
        return (1,) if pos == 0 else ()
    return ()


def _variable_shape(idx: GraphIndex, ref: Ref) -> tuple[list[int] | None, str]:
    """Shape and name of the variable/constant a gather's params come from."""
    def through(n: Node):
        return 0 if n.op in _IDENTITY_OPS or n.op == "ReadVariableOp" else None

    found = []
    for r, node in idx.resolve_back(ref, through):
        if node.op in _VARIABLE_CREATORS and node.attr("shape") is not None:
            s = node.attr("shape").shape
            if s.unknown_rank:
                return None, ""
            shape = [int(d.size) for d in s.dim]
            name = node.qualified_name
        elif node.op == "Const":
            shape = [int(d.size) for d in node.attr("value").tensor.tensor_shape.dim]
            name = f"Const {node.qualified_name}"
        else:
            return None, ""
        found.append((shape, name))
    if not found or any(f[0] != found[0][0] for f in found):
        return None, ""
    return found[0]


def _gather_bound(idx: GraphIndex, node: Node, pos: int) -> tuple[int, str] | None:
    """Rows of the table an index tensor at input ``pos`` of ``node`` selects from."""
    if pos != 1 or node.op not in ("Gather", "GatherV2", "ResourceGather"):
        return None
    batch_dims = int(node.attr("batch_dims").i) if node.attr("batch_dims") is not None else 0
    axis = batch_dims if node.op == "ResourceGather" else 0
    if node.op == "GatherV2" and len(node.inputs) > 2:
        a = idx.const_value(node.inputs[2])
        if a is None or a.size != 1:
            return None
        axis = int(a.ravel()[0])
    shape, name = _variable_shape(idx, node.inputs[0])
    if shape is None:
        return None
    if axis < 0:
        axis += len(shape)
    if not 0 <= axis < len(shape) or shape[axis] < 0:
        return None
    rows = shape[axis]
    return rows, f"{node.op} on {name!r} ({rows} rows)"


def _decode_keys(values: list, key_dtype: tf.DType) -> list:
    if key_dtype == tf.string:
        out = []
        for v in values:
            if isinstance(v, bytes):
                try:
                    out.append(v.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(v)
            else:
                out.append(str(v))
        return out
    if key_dtype.is_integer:
        return [int(v) for v in values]
    return list(values)


def _read_vocab(path: str, node: Node) -> list | None:
    """Keys InitializeTableFromTextFile reads from ``path`` (per its key_index/delimiter)."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            content = f.read()
    except (tf.errors.OpError, OSError):
        return None
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    size = int(node.attr("vocab_size").i) if node.attr("vocab_size") is not None else -1
    if size > 0:
        lines = lines[:size]
    key_index = int(node.attr("key_index").i) if node.attr("key_index") is not None else -2
    delim = node.attr("delimiter").s if node.attr("delimiter") is not None else b"\t"
    if key_index == -2:
        return lines
    if key_index == -1:
        return list(range(len(lines)))
    out = []
    for ln in lines:
        cols = ln.split(delim)
        if key_index >= len(cols):
            return None
        out.append(cols[key_index])
    return out


def _table_keys(idx: GraphIndex, find: Node, export_dir: str | None) -> tuple[list, str] | None:
    """Keys a ``LookupTableFind`` can hit: from Const imports or a vocabulary file."""
    creators = idx.table_creators(find.inputs[0])
    if len(creators) != 1:
        return None
    creator = creators[0]
    key_dtype = tf.dtypes.as_dtype(creator.attr("key_dtype").type) if creator.attr("key_dtype") else tf.string
    inits = idx.table_initializers().get(creator.key, [])
    keys: list = []
    sources = []
    for init in inits:
        if init.op in _TABLE_IMPORT:
            v = idx.const_value(init.inputs[1]) if len(init.inputs) > 1 else None
            if v is None:
                return None
            keys += np.ravel(v).tolist()
            sources.append("constant keys")
        else:
            path = idx.resolve_path(init.inputs[1], export_dir) if len(init.inputs) > 1 else None
            if path is None:
                return None
            vocab = _read_vocab(path, init)
            if vocab is None:
                return None
            keys += vocab
            sources.append(f"vocabulary file {os.path.basename(path)}")
    if not keys:
        return None
    keys = _decode_keys(keys, key_dtype)
    seen, unique = set(), []
    for k in keys:
        if k not in seen:
            seen.add(k)
            unique.append(k)
    how = ", ".join(sorted(set(sources)))
    return unique, f"{find.op} on table {creator.qualified_name!r} ({len(unique)} keys, {how})"


def _bool_passthrough(node: Node, pos: int) -> Sequence[int]:
    if pos == 0 and (node.op in _IDENTITY_OPS or node.op in ("All", "Reshape", "Squeeze", "ExpandDims")):
        return (0,)
    if node.op == "LogicalAnd":
        return (0,)
    if node.op == "Switch" and pos in (0, 1):  # TF1 tf.cond around the Assert
        return (0, 1)
    if node.op == "IdentityN":
        return (pos,)
    return ()


def _guards_assert(idx: GraphIndex, cmp: Node) -> bool:
    """Whether a comparison's result feeds an Assert (directly or as an AssertGuard cond)."""
    for node, pos in idx.walk_forward((cmp.scope, cmp.name, 0), _bool_passthrough):
        if node.op == "Assert" and pos == 0:
            return True
        if node.op in ("If", "StatelessIf") and pos == 0:
            for c in idx.calls.get(node.key, ()):
                if idx.function_has_op(c.function, ("Assert",)):
                    return True
    return False


def _assert_bound(idx: GraphIndex, node: Node, pos: int) -> tuple[str, float | int, str] | None:
    """('low'|'high', value, source) when ``node`` compares our value to a constant under an Assert."""
    if node.op not in _COMPARISONS or pos not in (0, 1) or len(node.inputs) != 2:
        return None
    c = idx.const_value(node.inputs[1 - pos])
    if c is None or c.size != 1 or c.dtype.kind not in "iuf":
        return None
    if not _guards_assert(idx, node):
        return None
    c = c.ravel()[0].item()
    op = node.op
    if pos == 1:  # C op x  ==  x flipped-op C
        op = {"Less": "Greater", "LessEqual": "GreaterEqual", "Greater": "Less",
              "GreaterEqual": "LessEqual"}[op]
    is_int = isinstance(c, int)
    src = f"Assert at {node.qualified_name}"
    if op == "Less":
        return "high", c, src
    if op == "LessEqual":
        return "high", (c + 1 if is_int else float(np.nextafter(c, np.inf))), src
    if op == "Greater":
        return "low", (c + 1 if is_int else float(np.nextafter(c, np.inf))), src
    return "low", c, src


def _domain_for_value(idx: GraphIndex, start: Ref, export_dir: str | None) -> Domain | None:
    lows: list[tuple] = []
    highs: list[tuple] = []
    choice_sets: list[tuple[list, str]] = []
    seen = set()
    for node, pos in idx.walk_forward(start, _value_passthrough):
        if (node.key, pos) in seen:
            continue
        seen.add((node.key, pos))
        g = _gather_bound(idx, node, pos)
        if g is not None:
            lows.append((0, g[1]))
            highs.append(g)
            continue
        if node.op in _TABLE_FIND and pos == 1:
            keys = _table_keys(idx, node, export_dir)
            if keys is not None:
                choice_sets.append(keys)
            continue
        b = _assert_bound(idx, node, pos)
        if b is not None:
            (lows if b[0] == "low" else highs).append((b[1], b[2]))
    low = max((v for v, _ in lows), default=None)
    high = min((v for v, _ in highs), default=None)
    sources = [s for _, s in lows + highs]
    if choice_sets:
        choices = choice_sets[0][0]
        for other, _ in choice_sets[1:]:
            allowed = set(other)
            choices = [c for c in choices if c in allowed]
        if low is not None or high is not None:
            choices = [c for c in choices if isinstance(c, (int, float))
                       and (low is None or c >= low) and (high is None or c < high)]
        if not choices:
            return None
        src = "; ".join(dict.fromkeys([s for _, s in choice_sets] + sources))
        return Domain(choices=tuple(choices), source=src)
    if low is None and high is None:
        return None
    if low is not None and high is not None and low >= high:
        return None  # contradictory bounds: say nothing rather than guess
    return Domain(low=low, high=high, source="; ".join(dict.fromkeys(sources)))


def _locate_parsers(idx: GraphIndex, spec: ExampleSpec) -> list[_ParserMatch]:
    """Parser nodes named by ``spec.parser_nodes`` (or, failing that, any with the same keys)."""
    out = []
    for q in spec.parser_nodes:
        # Node names contain "/" too: try the main graph, then each function prefix.
        key = None
        if (MAIN, q) in idx.nodes:
            key = (MAIN, q)
        else:
            for f in idx.functions:
                if q.startswith(f + "/") and (f, q[len(f) + 1:]) in idx.nodes:
                    key = (f, q[len(f) + 1:])
                    break
        if key is not None:
            m = _spec_from_parser(idx, idx.nodes[key])
            if m is not None:
                out.append(m)
    if out:
        return out
    wanted = {f.key for f in spec.context_features()} | {f.key for f in spec.feature_list_features()}
    for op in sorted(PARSER_OPS):
        for key in idx.by_op.get(op, ()):
            m = _spec_from_parser(idx, idx.nodes[key])
            if m is not None and m.spec.kind == spec.kind and {k for _, k in m.values} == wanted:
                out.append(m)
    return out


def _feature_domains(idx: GraphIndex, matches: list[_ParserMatch], spec: ExampleSpec | None,
                     export_dir: str | None) -> dict[str, Domain]:
    merged = _merge_specs([m.spec for m in matches]) if spec is None else spec
    per_key: dict[str, list[Domain | None]] = {}
    for m in matches:
        for (fl, key), ref in m.values.items():
            dkey = merged.domain_key(key, fl)
            per_key.setdefault(dkey, []).append(_domain_for_value(idx, ref, export_dir))
    out = {}
    for k, doms in sorted(per_key.items()):
        found = [d for d in doms if d is not None]
        if found and all(d == found[0] for d in found):
            out[k] = found[0]
        elif found:
            out[k] = _intersect(found)
            if out[k] is None:
                del out[k]
    return out


def _intersect(domains: list[Domain]) -> Domain | None:
    """One domain that satisfies every parser reading the feature, or None."""
    if any(d.choices is not None for d in domains):
        choice = [d for d in domains if d.choices is not None]
        keep = [c for c in choice[0].choices if all(c in d.choices for d in choice[1:])]
        for d in domains:
            if d.choices is None:
                keep = [c for c in keep if isinstance(c, (int, float))
                        and (d.low is None or c >= d.low) and (d.high is None or c < d.high)]
        return Domain(choices=tuple(keep), source="; ".join(d.source for d in domains)) if keep else None
    lows = [d.low for d in domains if d.low is not None]
    highs = [d.high for d in domains if d.high is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    if low is not None and high is not None and low >= high:
        return None
    return Domain(low=low, high=high, source="; ".join(d.source for d in domains))


def find_value_domains(meta_graph_def, inputs: Mapping[str, str],
                       example_spec: ExampleSpec | None = None,
                       export_dir: str | None = None) -> dict[str, Domain]:
    """Value domains the graph implies, keyed by input alias or tf.Example feature key.

    * integer values reaching ``Gather``/``GatherV2``/``ResourceGather`` as
      indices -> ``[0, rows)`` of the gathered variable or constant;
    * values reaching ``LookupTableFind`` -> the table's keys (Const imports,
      or the vocabulary file an ``InitializeTableFromTextFile`` reads; pass
      ``export_dir`` to resolve asset files);
    * comparisons with a constant that feed an ``Assert`` -> that bound.

    ``inputs`` maps alias -> tensor name. A string input that is parsed as
    tf.Examples yields domains for its features instead of itself; with
    ``example_spec`` given, its parsers' features are analysed even when
    ``inputs`` is empty. Inputs with nothing inferable are absent.
    """
    idx = index_for(meta_graph_def)
    out: dict[str, Domain] = {}
    parsers_done: set = set()
    for alias, tensor in sorted(inputs.items()):
        start = idx.tensor_ref(tensor)
        if start is None:
            continue
        matches = _find_parsers(idx, start)
        if matches:
            parsers_done.update(m.node.key for m in matches)
            out.update(_feature_domains(idx, matches, example_spec, export_dir))
            continue
        d = _domain_for_value(idx, start, export_dir)
        if d is not None:
            out[alias] = d
    if example_spec is not None:
        matches = [m for m in _locate_parsers(idx, example_spec) if m.node.key not in parsers_done]
        if matches:
            for k, d in _feature_domains(idx, matches, example_spec, export_dir).items():
                out.setdefault(k, d)
    if example_spec is not None:
        keys = {example_spec.domain_key(f.key) for f in example_spec.context_features()}
        keys |= {example_spec.domain_key(f.key, True) for f in example_spec.feature_list_features()}
        out = {k: d for k, d in out.items() if k in keys or k in inputs}
    return out


# ====================================================================== stateful ops
def find_stateful_ops(meta_graph_def, output_tensor_names: Sequence[str]) -> list[str]:
    """State-changing ops a signature runs: "OpType at node" for each, sorted.

    Walks backwards from the output tensors through data and control inputs
    and into every function the reached nodes call (their returns and
    control returns, which is what a function call executes). Restore and
    init ops hang off the graph, not off outputs, so they are not counted.
    """
    idx = index_for(meta_graph_def)
    queue: deque[NodeKey] = deque()
    for name in output_tensor_names:
        ref = idx.tensor_ref(name)
        if ref is not None:
            queue.append((ref[0], ref[1]))
    seen: set[NodeKey] = set()
    found: set[str] = set()
    done_functions: set[str] = set()
    while queue:
        key = queue.popleft()
        if key in seen or key not in idx.nodes:
            continue
        seen.add(key)
        node = idx.nodes[key]
        if is_stateful_op(node.op):
            found.add(f"{node.op} at {node.qualified_name}")
        for ref in node.inputs:
            queue.append((ref[0], ref[1]))
        queue.extend(node.control_inputs)
        for c in idx.calls.get(key, ()):
            if c.function in done_functions:
                continue
            done_functions.add(c.function)
            queue.extend((r[0], r[1]) for r in idx.returns.get(c.function, ()) if r is not None)
            queue.extend(idx.control_returns.get(c.function, ()))
    return sorted(found)
