"""Values and shapes of graph tensors for one concrete request, computed with numpy.

A check such as ``assert_equal(tf.shape(x)[1], 12)`` or "width must be >= target +
offset" is a small computation on the request's shapes (and, for ragged row_splits or
segment ids, on a few integer values). Given concrete input shapes and the values of
some integer inputs, ``Evaluator`` runs that computation over the ``GraphIndex`` (into
function bodies and back out through their callers), so a planner can ask whether a
candidate request passes every check the graph states, without TensorFlow.

Anything it does not know (an op outside its table, a float input's values, a value
too large to hold) is ``None``: unknown, never a guess. Each result carries the set of
inputs whose shape or value it read, so a failing check names the inputs it depends on.
"""
from __future__ import annotations

import sys
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.consumer_shapes import static_shape
from tfwarm_export.analysis.index import IDENTITY_OPS, GraphIndex, Node, Ref
from tfwarm_export.analysis.slicing import node_index, shrink_out_of_range, strided_slice

_MAX_ELEMENTS = 1 << 16  # values larger than this are not computed (unknown)
_MAX_DEPTH = 400

UNARY_SAME_SHAPE = frozenset({
    "Cast", "Relu", "Relu6", "Elu", "Selu", "Tanh", "Sigmoid", "Neg", "Abs", "Exp", "Log", "Log1p",
    "Square", "Sqrt", "Rsqrt", "Floor", "Ceil", "Round", "Sign", "Softplus", "LeakyRelu", "Erf",
    "Softmax", "LogSoftmax", "LogicalNot", "ZerosLike", "OnesLike", "Cumsum", "Cumprod", "Gelu",
    "Reciprocal", "Sin", "Cos", "IsNan", "IsFinite", "Invert", "CheckNumerics", "BiasAdd",
    "StringLength", "StringLower", "StringUpper", "StaticRegexReplace",
}) | IDENTITY_OPS
_BINARY = {
    "Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "Maximum": np.maximum,
    "Minimum": np.minimum, "FloorDiv": np.floor_divide, "FloorMod": np.mod, "Mod": np.mod,
    "TruncateDiv": lambda a, b: np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b)),
    "RealDiv": np.true_divide, "Div": None, "Equal": np.equal, "NotEqual": np.not_equal,
    "Less": np.less, "LessEqual": np.less_equal, "Greater": np.greater,
    "GreaterEqual": np.greater_equal, "LogicalAnd": np.logical_and, "LogicalOr": np.logical_or,
    "SquaredDifference": lambda a, b: np.square(a - b), "Pow": np.power,
}
BINARY_ELEMENTWISE = frozenset(_BINARY)
_UNARY = {"Neg": np.negative, "Abs": np.abs, "LogicalNot": np.logical_not, "Sign": np.sign,
          "Square": np.square, "ZerosLike": np.zeros_like, "OnesLike": np.ones_like}
_REDUCE = {"All": np.all, "Any": np.any, "Sum": np.sum, "Prod": np.prod, "Max": np.max,
           "Min": np.min, "Mean": np.mean}


def broadcast_shapes(a: tuple, b: tuple) -> tuple | None:
    """numpy/TF broadcasting of two shapes, or None when they are incompatible."""
    out = []
    for x, y in zip(reversed((1,) * (len(b) - len(a)) + tuple(a)), reversed((1,) * (len(a) - len(b)) + tuple(b))):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


class Evaluator:
    """numpy evaluation of main-graph and function-body tensors for one request.

    ``shapes``/``values`` map the fed main-graph tensors (``(MAIN, name, 0)``) to a
    concrete shape and, for some, a value. ``value(ref)``/``shape(ref)`` return
    ``(result, deps)`` where deps are ``("s"|"v", fed ref)``: the fed shapes and values the
    result was computed from. Callers raise the recursion limit (``deep_recursion``).
    """

    def __init__(self, idx: GraphIndex, shapes: Mapping[Ref, tuple], values: Mapping[Ref, np.ndarray]):
        self.idx, self.shapes, self.values = idx, dict(shapes), dict(values)
        self._v: dict[Ref, tuple] = {}
        self._s: dict[Ref, tuple] = {}
        self._depth = 0

    # ------------------------------------------------------------ plumbing
    def _memo(self, cache: dict, ref: Ref, compute: Callable[[Ref], tuple]) -> tuple:
        if ref in cache:
            return cache[ref]
        if self._depth > _MAX_DEPTH:
            return None, frozenset()
        cache[ref] = (None, frozenset())  # a cycle (loop back edge) reads as unknown
        self._depth += 1
        try:
            got = compute(ref)
        finally:
            self._depth -= 1
        cache[ref] = got
        return got

    def value(self, ref: Ref) -> tuple:
        return self._memo(self._v, ref, self._value)

    def shape(self, ref: Ref) -> tuple:
        return self._memo(self._s, ref, self._shape)

    def _forward(self, ref: Ref, get: Callable[[Ref], tuple]) -> tuple | None:
        """Through function args (each caller in turn) and calls (into the body's return)."""
        node = self.idx.producer(ref)
        if node is None:
            return None, frozenset()
        if node.op == "_Arg":
            for ckey, call in self.idx.callers.get(node.scope, ()):
                if call.input_offset is None:
                    continue
                cnode = self.idx.nodes[ckey]
                i = node.arg_index + call.input_offset
                if i < len(cnode.inputs):
                    got = get(cnode.inputs[i])
                    if got[0] is not None:
                        return got
            return None, frozenset()
        if node.op in ("StatefulPartitionedCall", "PartitionedCall") or node.op in self.idx.functions:
            for c in self.idx.calls.get(node.key, ()):
                rets = self.idx.returns.get(c.function, [])
                if c.maps_outputs and ref[2] < len(rets) and rets[ref[2]] is not None:
                    return get(rets[ref[2]])
            return None, frozenset()
        if node.op == "IdentityN" and ref[2] < len(node.inputs):
            return get(node.inputs[ref[2]])
        return None

    @staticmethod
    def _reader(node: Node, deps: set, get):
        """``i -> get(node.inputs[i])``, recording what it read in ``deps``; ``_Unknown`` when
        the input is missing or cannot be computed (so the op's result is unknown too)."""
        def read(i: int):
            if i >= len(node.inputs):
                raise _Unknown
            got, d = get(node.inputs[i])
            deps.update(d)
            if got is None:
                raise _Unknown
            return got
        return read

    # ------------------------------------------------------------ values
    def _value(self, ref: Ref) -> tuple:
        if ref in self.values:
            return np.asarray(self.values[ref]), frozenset({("v", ref)})
        fwd = self._forward(ref, self.value)
        if fwd is not None:
            return fwd
        node = self.idx.producer(ref)
        deps: set = set()

        v, s = self._reader(node, deps, self.value), self._reader(node, deps, self.shape)

        try:
            out = self._value_op(node, ref, v, s)
        except (_Unknown, ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError):
            return None, frozenset(deps)
        if out is None or np.size(out) > _MAX_ELEMENTS:
            return None, frozenset(deps)
        return np.asarray(out), frozenset(deps)

    def _value_op(self, node: Node, ref: Ref, v, s):
        op = node.op
        if op == "Const":
            return tf.make_ndarray(node.attr("value").tensor)
        if op in ("Placeholder", "PlaceholderV2"):
            return None
        if op in IDENTITY_OPS or op in ("Snapshot",):
            return v(0)
        if op in ("Shape", "ShapeN"):
            shp = s(ref[2] if op == "ShapeN" else 0)
            return np.array(shp, dtype=_out_type(node))
        if op == "Size":
            return np.array(int(np.prod(s(0), dtype=np.int64)), dtype=_out_type(node))
        if op == "Rank":
            return np.array(len(s(0)), dtype=np.int32)
        if op == "StridedSlice":
            index = node_index(node.attr, v(1), v(2), v(3))
            return None if index is None else strided_slice(v(0), index)
        if op == "Slice":
            x, begin, size = v(0), np.ravel(v(1)), np.ravel(v(2))
            return x[tuple(slice(int(b), None if int(n) < 0 else int(b) + int(n)) for b, n in zip(begin, size))]
        if op == "Cast":
            dst = tf.dtypes.as_dtype(node.attr("DstT").type)
            return v(0) if dst == tf.string else v(0).astype(dst.as_numpy_dtype)
        if op in _UNARY:
            return _UNARY[op](v(0))
        if op in _BINARY and len(node.inputs) == 2:
            a, b = v(0), v(1)
            if op == "Div":
                return np.floor_divide(a, b) if a.dtype.kind in "iu" else np.true_divide(a, b)
            return _BINARY[op](a, b)
        if op in _REDUCE:
            axes = tuple(int(a) for a in np.ravel(v(1)))
            keep = node.attr("keep_dims")
            x = v(0)
            out = _REDUCE[op](x, axis=tuple(a % max(x.ndim, 1) for a in axes) if x.ndim else None,
                              keepdims=bool(keep.b) if keep is not None else False)
            return np.asarray(out).astype(x.dtype) if op != "Mean" else out
        return self._value_structural(node, ref, v, s)

    def _value_structural(self, node: Node, ref: Ref, v, s):
        op = node.op
        if op == "Pack":
            axis = int(node.attr("axis").i) if node.attr("axis") is not None else 0
            return np.stack([v(i) for i in range(len(node.inputs))], axis=axis)
        if op == "Unpack":
            axis = int(node.attr("axis").i) if node.attr("axis") is not None else 0
            return np.take(v(0), ref[2], axis=axis)
        if op == "ConcatV2":
            return np.concatenate([v(i) for i in range(len(node.inputs) - 1)], axis=int(v(len(node.inputs) - 1)))
        if op == "Reshape":
            return np.reshape(v(0), tuple(int(d) for d in np.ravel(v(1))))
        if op == "ExpandDims":
            return np.expand_dims(v(0), int(np.ravel(v(1))[0]))
        if op == "Squeeze":
            dims = tuple(node.attr("squeeze_dims").list.i) if node.attr("squeeze_dims") is not None else ()
            return np.squeeze(v(0), axis=dims or None)
        if op == "Fill":
            dims = tuple(int(d) for d in np.ravel(v(0)))
            return None if np.prod(dims) > _MAX_ELEMENTS else np.full(dims, v(1))
        if op == "Range":
            start, limit, delta = (np.ravel(v(i))[0] for i in range(3))
            if delta == 0 or abs((limit - start) / delta) > _MAX_ELEMENTS:
                return None
            return np.arange(start, limit, delta)
        if op == "Cumsum":
            x, axis = v(0), int(np.ravel(v(1))[0])
            ex, rev = node.attr("exclusive"), node.attr("reverse")
            x = np.flip(x, axis) if rev is not None and rev.b else x
            out = np.cumsum(x, axis=axis).astype(x.dtype)
            if ex is not None and ex.b:
                out = out - x
            return np.flip(out, axis) if rev is not None and rev.b else out
        if op in ("GatherV2", "Gather"):
            axis = int(np.ravel(v(2))[0]) if op == "GatherV2" else 0
            params, indices = v(0), v(1)
            if np.any(indices < 0) or np.any(indices >= params.shape[axis]):
                return None
            return np.take(params, indices, axis=axis)
        if op in ("DenseBincount", "Bincount"):  # ragged value_rowids -> row lengths
            x, size = np.ravel(v(0)).astype(np.int64), int(np.ravel(v(1))[0])
            if x.size and (x.min() < 0 or size > _MAX_ELEMENTS):
                return None
            weights = v(2) if op == "Bincount" or len(node.inputs) > 2 else np.array([])
            w = np.ravel(weights) if np.size(weights) == x.size and x.size else None
            counts = np.bincount(x[x < size], weights=None if w is None else w[x < size], minlength=size)[:size]
            binary = node.attr("binary_output")
            if binary is not None and binary.b:
                counts = (counts > 0).astype(counts.dtype)
            return counts.astype(w.dtype if w is not None else tf.dtypes.as_dtype(node.attr("T").type).as_numpy_dtype)
        if op in ("Select", "SelectV2"):
            cond, a, b = v(0), v(1), v(2)
            if op == "Select" and cond.ndim == 1 and a.ndim > 1:
                cond = cond.reshape((-1,) + (1,) * (a.ndim - 1))
            return np.where(cond, a, b)
        if op == "BroadcastTo":
            dims = tuple(int(d) for d in np.ravel(v(1)))
            return None if np.prod(dims) > _MAX_ELEMENTS else np.broadcast_to(v(0), dims).copy()
        if op == "Tile":
            return np.tile(v(0), tuple(int(m) for m in np.ravel(v(1))))
        if op == "Transpose":
            return np.transpose(v(0), tuple(int(p) for p in np.ravel(v(1))))
        return None

    # ------------------------------------------------------------ shapes
    def _shape(self, ref: Ref) -> tuple:
        if ref in self.shapes:
            return tuple(self.shapes[ref]), frozenset({("s", ref)})
        fwd = self._forward(ref, self.shape)
        if fwd is not None:
            return fwd
        node = self.idx.producer(ref)
        deps: set = set()

        s, v = self._reader(node, deps, self.shape), self._reader(node, deps, self.value)

        try:
            out = self._shape_op(node, ref, s, v)
        except (_Unknown, ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError):
            out = None
        if out is None and node.op not in ("Placeholder", "PlaceholderV2"):
            val, d = self.value(ref)  # small computed values know their shape
            if val is not None:
                deps.update(d)
                out = val.shape
        return (None if out is None else tuple(int(x) for x in out)), frozenset(deps)

    def _shape_op(self, node: Node, ref: Ref, s, v):
        op = node.op
        if op == "Const":
            return tuple(int(d.size) for d in node.attr("value").tensor.tensor_shape.dim)
        if op in UNARY_SAME_SHAPE:
            return s(0)
        if op in ("ReadVariableOp", "VarHandleOp"):
            got = static_shape(self.idx, ref)
            return None if got is None or None in got else got
        if op in _BINARY and len(node.inputs) == 2:
            return broadcast_shapes(s(0), s(1))
        if op in ("Select", "SelectV2"):
            out = broadcast_shapes(s(1), s(2))
            return out if op == "Select" or out is None else broadcast_shapes(s(0), out)
        if op == "MatMul":
            a, b = s(0), s(1)
            ta, tb = node.attr("transpose_a"), node.attr("transpose_b")
            return (a[1] if ta is not None and ta.b else a[0], b[0] if tb is not None and tb.b else b[1])
        if op in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a, b = s(0), s(1)
            ax, ay = node.attr("adj_x"), node.attr("adj_y")
            batch = broadcast_shapes(a[:-2], b[:-2])
            m = a[-1] if ax is not None and ax.b else a[-2]
            n = b[-2] if ay is not None and ay.b else b[-1]
            return None if batch is None else batch + (m, n)
        if op == "ConcatV2":
            parts = [s(i) for i in range(len(node.inputs) - 1)]
            axis = int(np.ravel(v(len(node.inputs) - 1))[0]) % len(parts[0])
            out = list(parts[0])
            out[axis] = sum(p[axis] for p in parts)
            return tuple(out)
        if op == "Pack":
            first = s(0)
            axis = int(node.attr("axis").i) if node.attr("axis") is not None else 0
            out = list(first)
            out.insert(axis % (len(first) + 1), len(node.inputs))
            return tuple(out)
        if op in ("Reshape",):
            target = [int(d) for d in np.ravel(v(1))]
            if -1 in target:
                known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
                total = int(np.prod(s(0), dtype=np.int64))
                if known == 0 or total % known:
                    return None
                target[target.index(-1)] = total // known
            return tuple(target)
        if op in ("StridedSlice", "Slice", "ExpandDims", "Squeeze", "Transpose", "Tile", "Pad", "PadV2",
                  "MirrorPad"):
            return self._window_shape(node, s, v)
        if op in ("GatherV2", "Gather", "ResourceGather"):
            params, indices = s(0), s(1)
            axis = int(np.ravel(v(2))[0]) % len(params) if op == "GatherV2" else 0
            bd = int(node.attr("batch_dims").i) if node.attr("batch_dims") is not None else 0
            return params[:axis] + indices[bd:] + params[axis + 1:]
        if op in _REDUCE:
            x = s(0)
            axes = {int(a) % max(len(x), 1) for a in np.ravel(v(1))}
            keep = node.attr("keep_dims")
            if keep is not None and keep.b:
                return tuple(1 if i in axes else d for i, d in enumerate(x))
            return tuple(d for i, d in enumerate(x) if i not in axes)
        if op in ("UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd"):
            data, ids = s(0), s(1)
            return (int(np.ravel(v(2))[0]),) + data[len(ids):]
        if op in ("Fill", "BroadcastTo"):
            return tuple(int(d) for d in np.ravel(v(0 if op == "Fill" else 1)))
        if op == "Einsum":
            return _einsum_shape(node, [s(i) for i in range(len(node.inputs))])
        return None

    def _window_shape(self, node: Node, s, v):
        op = node.op
        x = s(0)
        if op == "StridedSlice":
            index = node_index(node.attr, v(1), v(2), v(3))
            if index is None or shrink_out_of_range(index, x):
                return None
            return np.broadcast_to(np.int8(0), x)[index].shape  # a zero-stride view: no data
        if op == "Slice":
            begin, size = np.ravel(v(1)), np.ravel(v(2))
            return tuple(int(d) - int(b) if int(n) < 0 else int(n) for d, b, n in zip(x, begin, size))
        if op == "ExpandDims":
            a = int(np.ravel(v(1))[0]) % (len(x) + 1)
            return x[:a] + (1,) + x[a:]
        if op == "Squeeze":
            dims = [int(d) % len(x) for d in node.attr("squeeze_dims").list.i] if node.attr("squeeze_dims") else []
            return tuple(d for i, d in enumerate(x) if (i not in dims if dims else d != 1))
        if op == "Transpose":
            return tuple(x[int(p)] for p in np.ravel(v(1)))
        if op == "Tile":
            return tuple(d * int(m) for d, m in zip(x, np.ravel(v(1))))
        pads = np.reshape(v(1), (-1, 2))
        return tuple(d + int(a) + int(b) for d, (a, b) in zip(x, pads))


class deep_recursion:
    """A context raising Python's recursion limit for walks up long graphs (restored after)."""

    def __enter__(self):
        self.old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(self.old, 20000))

    def __exit__(self, *exc):
        sys.setrecursionlimit(self.old)


def _einsum_shape(node: Node, shapes: list) -> tuple | None:
    eq = node.attr("equation")
    text = eq.s.decode().replace(" ", "") if eq is not None else ""
    if "->" not in text or "." in text:
        return None
    ins, out = text.split("->")
    sizes: dict[str, int] = {}
    for sub, shape in zip(ins.split(","), shapes):
        if len(sub) != len(shape):
            return None
        for ch, d in zip(sub, shape):
            sizes[ch] = max(sizes.get(ch, 1), d) if sizes.get(ch, d) in (1, d) or d == 1 else -1
    return None if any(sizes.get(ch, -1) < 0 for ch in out) else tuple(sizes[ch] for ch in out)


class _Unknown(Exception):
    """An input of the computation is not known: the result is unknown."""


def _out_type(node: Node):
    t = node.attr("out_type")
    return tf.dtypes.as_dtype(t.type).as_numpy_dtype if t is not None and t.type else np.int32


__all__ = ["Evaluator", "deep_recursion", "broadcast_shapes", "UNARY_SAME_SHAPE", "BINARY_ELEMENTWISE"]
