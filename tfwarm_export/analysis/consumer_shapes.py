"""Shapes from the consumers: what the graph does with an input whose shape it does not declare.

A TF1 ``placeholder(tf.float32, shape=None)`` has no rank, and a ``[None, None]``
input has no row width; the SignatureDef says nothing more. The ops that read
the input usually do: a ``Reshape`` to ``[-1, 8]``, a ``MatMul`` with an
``[8, 4]`` variable, a ``Conv2D`` whose filter has 3 input channels, a
``BiasAdd`` or broadcast against a ``[c]`` variable, a ``ConcatV2`` with fixed
parts, an ``EnsureShape``, and through ``Squeeze``/``ExpandDims`` whatever
reads their output. This module reads those (axis 0 is the batch) and says
where the shape came from; the planner uses it before the default size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tfwarm_export.analysis.index import IDENTITY_OPS, GraphIndex, Node, Ref, index_for

_SAME_SHAPE = frozenset({
    "Cast", "Relu", "Relu6", "Elu", "Selu", "Tanh", "Sigmoid", "Neg", "Abs", "Exp", "Log", "Log1p",
    "Square", "Sqrt", "Rsqrt", "Floor", "Ceil", "Round", "Sign", "Softplus", "LeakyRelu", "Erf",
})
_BROADCAST = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum",
                        "SquaredDifference", "FloorDiv", "TruncateDiv", "Pow"})
_CONV_CIN = {"Conv2D": -2, "Conv3D": -2, "DepthwiseConv2dNative": 2, "Conv": -2}
_PRIORITY = ("EnsureShape", "Reshape", "MatMul", "Conv", "BiasAdd", "ConcatV2", "broadcast")


@dataclass(frozen=True)
class ConsumerShape:
    """A shape the consumers need (``None``: any size), the smallest size per axis, and why."""

    shape: tuple[int | None, ...]
    source: str
    minimum: dict = field(default_factory=dict)  # axis -> smallest size that runs (conv kernels)
    kind: str = ""

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"({dims}) from its consumers ({self.source})"


def _shape_through(n: Node, pos: int) -> Sequence[int]:
    if pos == 0 and (n.op in IDENTITY_OPS or n.op in _SAME_SHAPE):
        return (0,)
    if n.op == "IdentityN":
        return (pos,)
    return ()


def static_shape(idx: GraphIndex, ref: Ref) -> tuple[int | None, ...] | None:
    """The shape of a constant, variable or placeholder (through reads and identities), or None."""
    through = lambda n: 0 if n.op in IDENTITY_OPS or n.op in ("ReadVariableOp", "Identity") else None  # noqa: E731
    found = idx.resolve_back(ref, through)
    shapes = set()
    for r, node in found:
        if node.op == "Const":
            v = idx.const_value(r)
            shapes.add(None if v is None else tuple(v.shape))
        elif node.op == "Reshape" and len(node.inputs) > 1:  # tf.reshape(var, [1, 2, 5])
            t = _int_list(idx, node.inputs[1])
            shapes.add(tuple(t) if t is not None and all(d >= 0 for d in t) else None)
        elif node.op == "Tile" and len(node.inputs) > 1:  # a fixed part tiled to the batch
            base, mult = static_shape(idx, node.inputs[0]), _partial_ints(idx, node.inputs[1])
            if base is None or mult is None or len(mult) != len(base):
                shapes.add(None)
            else:
                shapes.add(tuple(b if m == 1 else (b * m if b is not None and m is not None else None)
                                 for b, m in zip(base, mult)))
        elif node.op in ("VarHandleOp", "VariableV2", "Variable", "Placeholder", "PlaceholderWithDefault"):
            a = node.attr("shape")
            if a is None or a.shape.unknown_rank:
                shapes.add(None)
            else:
                shapes.add(tuple(None if d.size < 0 else int(d.size) for d in a.shape.dim))
        else:
            shapes.add(None)
    return shapes.pop() if len(shapes) == 1 else None


def _partial_ints(idx: GraphIndex, ref: Ref) -> list[int | None] | None:
    """A constant int vector, or a ``Pack`` of scalars some of which are constant."""
    full = _int_list(idx, ref)
    if full is not None:
        return full
    node = idx.producer(ref)
    if node is None or node.op != "Pack":
        return None
    out: list[int | None] = []
    for r in node.inputs:
        v = _int_list(idx, r)
        out.append(v[0] if v is not None and len(v) == 1 else None)
    return out


def _int_list(idx: GraphIndex, ref: Ref) -> list[int] | None:
    v = idx.const_value(ref)
    return None if v is None or v.dtype.kind not in "iu" else [int(x) for x in np.ravel(v)]


def _with_last(rank: int | None, last: int) -> tuple[int | None, ...]:
    return (None,) * (max(rank or 2, 2) - 1) + (last,)


def _ensure_shape(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``EnsureShape``: its shape, batch left free."""
    op, name = node.op, node.qualified_name
    if op == "EnsureShape" and pos == 0:
        s = node.attr("shape")
        if s is not None and not s.shape.unknown_rank:
            dims = tuple(None if d.size < 0 else int(d.size) for d in s.shape.dim)
            return ConsumerShape((None,) + dims[1:] if dims else dims, f"EnsureShape at {name}", kind="EnsureShape")
    return None


def _reshape(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``Reshape`` to ``[-1, ...]``: the trailing dims (flattened for a rank-2 input)."""
    op, name = node.op, node.qualified_name
    if op == "Reshape" and pos == 0 and len(node.inputs) > 1:
        t = _int_list(idx, node.inputs[1])
        if t and len(t) >= 2 and t[0] == -1 and all(d > 0 for d in t[1:]):
            src = f"Reshape to {t} at {name}"
            if rank is None or rank == len(t):
                return ConsumerShape((None,) + tuple(t[1:]), src, kind="Reshape")
            if rank == 2:
                return ConsumerShape((None, int(np.prod(t[1:]))), src, kind="Reshape")
    return None


def _matmul(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``MatMul``/``BatchMatMul``: the last dim the weight's contraction dim fixes."""
    op, name = node.op, node.qualified_name
    if op in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3") and pos == 0 and len(node.inputs) > 1:
        w = static_shape(idx, node.inputs[1])
        if w is not None and len(w) >= 2:
            adj_b = node.attr("transpose_b" if op == "MatMul" else "adj_y")
            adj_a = node.attr("transpose_a" if op == "MatMul" else "adj_x")
            k = w[-1] if adj_b is not None and adj_b.b else w[-2]
            if k is not None and not (adj_a is not None and adj_a.b):
                r = 2 if op == "MatMul" else rank
                return ConsumerShape(_with_last(r, k), f"{op} with a {list(w)} operand at {name}", kind="MatMul")
    return None


def _conv(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """A convolution: the filter's input channels, and its spatial size as a minimum."""
    op, name = node.op, node.qualified_name
    if op in _CONV_CIN and pos == 0 and len(node.inputs) > 1:
        f = static_shape(idx, node.inputs[1])
        if f is not None and len(f) >= 3 and f[_CONV_CIN[op]] is not None:
            cin, spatial = f[_CONV_CIN[op]], f[:len(f) - 2]
            fmt = node.attr("data_format")
            channels_first = fmt is not None and fmt.s.startswith(b"NC")
            n_sp = len(spatial)
            shape = (None, cin) + (None,) * n_sp if channels_first else (None,) + (None,) * n_sp + (cin,)
            first = 2 if channels_first else 1
            minimum = {first + i: int(k) for i, k in enumerate(spatial) if k is not None}
            return ConsumerShape(shape, f"{op} with a {list(f)} filter at {name}", minimum, kind="Conv")
    return None


def _bias_add(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``BiasAdd`` (channels last): the bias length as the last dim."""
    op, name = node.op, node.qualified_name
    if op == "BiasAdd" and pos == 0 and len(node.inputs) > 1:
        b = static_shape(idx, node.inputs[1])
        fmt = node.attr("data_format")
        if b is not None and len(b) == 1 and b[0] is not None and not (fmt is not None and fmt.s.startswith(b"NC")):
            return ConsumerShape(_with_last(rank, b[0]), f"BiasAdd with a {list(b)} bias at {name}", kind="BiasAdd")
    return None


def _concat(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``ConcatV2`` on a non-batch axis: the other dims of a static part."""
    op, name = node.op, node.qualified_name
    if op == "ConcatV2" and pos < len(node.inputs) - 1:
        axis = _int_list(idx, node.inputs[-1])
        for j, other in enumerate(node.inputs[:-1]):
            s = static_shape(idx, other) if j != pos else None
            if s is None or axis is None or len(s) < 2 or (rank is not None and rank != len(s)):
                continue
            a = axis[0] % len(s)
            if a == 0:
                continue
            shape = tuple(None if i in (0, a) else d for i, d in enumerate(s))
            return ConsumerShape(shape, f"ConcatV2 on axis {a} with a {list(s)} part at {name}", kind="ConcatV2")
    return None


def _broadcast(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """A binary elementwise op with a static operand: its trailing dims."""
    op, name = node.op, node.qualified_name
    if op in _BROADCAST and pos in (0, 1) and len(node.inputs) == 2:
        s = static_shape(idx, node.inputs[1 - pos])
        if s is not None and len(s) >= 1 and all(d is not None for d in s) and any(d > 1 for d in s):
            trail = s[1:] if len(s) > 1 and s[0] == 1 else s
            if rank is None or rank == len(trail) + 1:
                return ConsumerShape((None,) + tuple(trail), f"{op} with a {list(s)} operand at {name}",
                                     kind="broadcast")
    return None


def _squeeze_or_expand(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """``Squeeze``/``ExpandDims``: what the op's consumers need, with the axis put back or taken out."""
    op, name = node.op, node.qualified_name
    if op in ("Squeeze", "ExpandDims") and pos == 0 and depth < 4:
        inner = _find(idx, (node.scope, node.name, 0), None, depth + 1)
        if inner is None:
            return None
        out = list(inner.shape)
        if op == "ExpandDims":
            a = _int_list(idx, node.inputs[1]) if len(node.inputs) > 1 else None
            if not a:
                return None
            a0 = a[0] % len(out)
            if a0 == 0:
                return None
            del out[a0]
            minimum = {(k if k < a0 else k - 1): v for k, v in inner.minimum.items() if k != a0}
        else:
            axes = list(node.attr("squeeze_dims").list.i) if node.attr("squeeze_dims") is not None else []
            if not axes:
                return None
            full = len(out) + len(axes)
            for a in sorted(x % full for x in axes):
                out.insert(a, 1)
            minimum = {}
        return ConsumerShape(tuple(out), f"{op} at {name}, then {inner.source}", minimum, inner.kind)
    return None


_READERS = (_ensure_shape, _reshape, _matmul, _conv, _bias_add, _concat, _broadcast, _squeeze_or_expand)
"""One reader per consumer kind, asked in this order; the first that reads a shape wins."""


def _at(idx: GraphIndex, node: Node, pos: int, rank: int | None, depth: int) -> ConsumerShape | None:
    """What ``node`` needs of the tensor it takes at input ``pos`` (``rank``: that tensor's rank if known)."""
    for read in _READERS:
        found = read(idx, node, pos, rank, depth)
        if found is not None:
            return found
    return None


def _merge(found: list[ConsumerShape]) -> ConsumerShape:
    """The strongest reading, with unknown dims filled from the others of the same rank."""
    found = sorted(found, key=lambda c: _PRIORITY.index(c.kind) if c.kind in _PRIORITY else len(_PRIORITY))
    best = found[0]
    dims = list(best.shape)
    minimum = dict(best.minimum)
    sources = [best.source]
    for other in found[1:]:
        if len(other.shape) != len(dims):
            continue
        if any(a is not None and b is not None and a != b for a, b in zip(dims, other.shape)):
            continue  # disagrees: keep the stronger reading
        filled = [a if a is not None else b for a, b in zip(dims, other.shape)]
        if filled != dims or other.minimum:
            sources.append(other.source)
        dims = filled
        for k, v in other.minimum.items():
            minimum[k] = max(minimum.get(k, 0), v)
    dims[0] = None
    return ConsumerShape(tuple(dims), "; ".join(sources), minimum, best.kind)


def _find(idx: GraphIndex, start: Ref, rank: int | None, depth: int = 0) -> ConsumerShape | None:
    found = []
    seen = set()
    for node, pos in idx.walk_forward(start, _shape_through):
        if (node.key, pos) in seen:
            continue
        seen.add((node.key, pos))
        got = _at(idx, node, pos, rank, depth)
        if got is not None and len(got.shape) >= 1:
            found.append(got)
    return _merge(found) if found else None


def find_consumer_shape(meta_graph_def, tensor_name: str,
                        known: tuple[int | None, ...] | None = None) -> ConsumerShape | None:
    """The shape the ops reading ``tensor_name`` need, or None when they do not say.

    With ``known`` (a declared shape with unknown dims) only readings of the same rank
    that agree with its known dims count.
    """
    idx = index_for(meta_graph_def)
    start = idx.tensor_ref(tensor_name)
    if start is None:
        return None
    got = _find(idx, start, None if known is None else len(known))
    if got is None:
        return None
    if known is not None:
        if len(got.shape) != len(known) or any(
                a is not None and b is not None and a != b for a, b in zip(known, got.shape)):
            return None
    return got


__all__ = ["ConsumerShape", "find_consumer_shape", "static_shape"]
