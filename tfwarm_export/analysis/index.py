"""The one graph index every analysis walks: nodes, functions, calls, constants.

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

import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import op_def_registry

from tfwarm_export.analysis.slicing import node_index, strided_slice

log = logging.getLogger("tfwarm_export.analysis")


MAIN = ""  # scope name of the main graph; functions use their own name

Ref = tuple  # (scope, node_name, output_index): one tensor
NodeKey = tuple  # (scope, node_name)

_MAX_VISITS = 200_000  # safety valve for pathological graphs
_MAX_CALL_DEPTH = 64

# Ops that forward their first input unchanged (for strings, handles and values alike).
IDENTITY_OPS = frozenset({
    "Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics",
    "PlaceholderWithDefault", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    "RefIdentity", "Enter", "Exit", "NextIteration",
})

# Ops that keep a serialized-string batch a batch of the same records.
STRING_PLUMBING = IDENTITY_OPS | {"Reshape", "ExpandDims", "Squeeze"}

TABLE_CREATORS = frozenset({
    "HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2",
    "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2",
    "MutableDenseHashTable", "MutableDenseHashTableV2",
})
TABLE_FIND = frozenset({"LookupTableFind", "LookupTableFindV2"})
TABLE_IMPORT = frozenset({"LookupTableImport", "LookupTableImportV2", "InitializeTable",
                           "InitializeTableV2"})
TABLE_TEXTFILE = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
VARIABLE_CREATORS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


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


def _attrs_in_op_def_order(node_def) -> list:
    """``node_def.attr`` items in a fixed order: the OpDef's (``then_branch`` before ``else_branch``),
    then the rest by name. Python protobuf (upb) iterates map fields in an order seeded per
    process, and the first branch's decoder picks an image format, so raw map order made the
    same model give different bytes in different runs."""
    op_def = op_def_registry.get(node_def.op)
    rank = {a.name: i for i, a in enumerate(op_def.attr)} if op_def is not None else {}
    return sorted(node_def.attr.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


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
            self.control_returns[fname] = [(fname, n) for _, n in sorted(fdef.control_ret.items())]

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
        for attr_name, value in _attrs_in_op_def_order(nd):
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
    def call_tree(self, output_tensor_names: Sequence[str]) -> Iterator[tuple[Node, list[str]]]:
        """Every node a run fetching ``output_tensor_names`` executes, with the functions
        it is the first to call.

        Walks back through data and control inputs and into each called function's
        returns and control returns (what a function call executes). Restore and init
        ops hang off the graph, not off outputs, so they are not reached.
        """
        queue: deque[NodeKey] = deque()
        for name in output_tensor_names:
            ref = self.tensor_ref(name)
            if ref is not None:
                queue.append((ref[0], ref[1]))
        seen: set[NodeKey] = set()
        done: set[str] = set()
        while queue:
            key = queue.popleft()
            if key in seen or key not in self.nodes:
                continue
            seen.add(key)
            node = self.nodes[key]
            queue.extend((r[0], r[1]) for r in node.inputs)
            queue.extend(node.control_inputs)
            new = []
            for c in self.calls.get(key, ()):
                if c.function in done:
                    continue
                done.add(c.function)
                new.append(c.function)
                queue.extend((r[0], r[1]) for r in self.returns.get(c.function, ()) if r is not None)
                queue.extend(self.control_returns.get(c.function, ()))
            yield node, new

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
        through = through or (lambda n: 0 if n.op in IDENTITY_OPS or n.op == "IdentityN" else None)
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
            if op == "StridedSlice" and len(node.inputs) == 4:  # known[None, :], shape[1:]
                parts = [self.const_value(i, depth + 1) for i in node.inputs]
                if any(p is None for p in parts):
                    return None
                index = node_index(node.attr, *parts[1:])
                return None if index is None else strided_slice(parts[0], index)
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
        except (ValueError, TypeError, IndexError) as e:
            # The graph's values do not fold as numpy would (a reshape of the wrong size, an
            # axis out of range, a tensor proto make_ndarray cannot read, a node missing an
            # input): not a constant we can know. Anything else is a bug and propagates.
            log.debug("constant folding of %s (%s) stopped: %s: %s", node.name, op, type(e).__name__, e)
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
            return 0 if n.op in IDENTITY_OPS or n.op == "ReadVariableOp" else None

        if _depth > 8:
            return None
        for r, node in self.resolve_back(ref, through):
            name = f"{r[1]}:{r[2]}" if r[0] == MAIN else None
            if name is not None and name in self.asset_map() and export_dir:
                path = os.path.join(export_dir, "assets", self.asset_map()[name])
                if tf.io.gfile.exists(path):
                    return path
            if node.op in VARIABLE_CREATORS:
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
        return [n for _, n in self.resolve_back(handle) if n.op in TABLE_CREATORS]

    def table_initializers(self) -> dict[NodeKey, list[Node]]:
        """Table creator -> the nodes that fill it (import from Consts or a text file)."""
        if self._table_inits is None:
            inits: dict[NodeKey, list[Node]] = {}
            for op in sorted(TABLE_IMPORT | TABLE_TEXTFILE):
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
