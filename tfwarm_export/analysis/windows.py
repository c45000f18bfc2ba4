"""Windows with constant bounds: ``tf.slice``, ``strided_slice`` indices and ``Reshape`` sizes.

``tf.slice(x, [0, 5], [-1, 10])`` needs ``x.shape[1] >= 15``; ``x[:, 9]`` needs more
than 9 rows on axis 1; ``tf.reshape(x, [-1, 6])`` needs an element count divisible by 6,
``tf.split(x, 3, axis=1)`` an axis divisible by 3
(the crop/pad checks of ``tf.image`` are Asserts, read by ``assert_conditions``). Each
rule is a ``Constraint`` decided by ``graph_eval.Evaluator`` on a candidate request:
lower bounds on a dimension, a sum of constants (begin + size) and divisibility.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from tfwarm_export.analysis.assert_conditions import Constraint, render
from tfwarm_export.analysis.graph_eval import Evaluator
from tfwarm_export.analysis.index import GraphIndex, Node
from tfwarm_export.analysis.slicing import node_index, shrink_out_of_range

WINDOW_OPS = frozenset({"Slice", "StridedSlice", "Reshape", "Split", "SplitV"})


def _slice_ok(ev: Evaluator, node: Node) -> tuple:
    x, d0 = ev.shape(node.inputs[0])
    begin, d1 = ev.value(node.inputs[1])
    size, d2 = ev.value(node.inputs[2])
    deps = d0 | d1 | d2
    if x is None or begin is None or size is None:
        return None, deps
    for d, b, n in zip(x, np.ravel(begin), np.ravel(size)):
        if b < 0 or b > d or (n >= 0 and b + n > d):
            return False, deps
    return True, deps


def _strided_ok(ev: Evaluator, node: Node) -> tuple:
    x, deps = ev.shape(node.inputs[0])
    parts = [ev.value(r) for r in node.inputs[1:4]]
    for _, d in parts:
        deps = deps | d
    if x is None or any(p is None for p, _ in parts):
        return None, deps
    index = node_index(node.attr, *(p for p, _ in parts))
    return (None, deps) if index is None else (not shrink_out_of_range(index, x), deps)


def _reshape_ok(ev: Evaluator, node: Node) -> tuple:
    x, d0 = ev.shape(node.inputs[0])
    target, d1 = ev.value(node.inputs[1])
    deps = d0 | d1
    if x is None or target is None:
        return None, deps
    t = [int(d) for d in np.ravel(target)]
    total = int(np.prod(x, dtype=np.int64))
    known = int(np.prod([d for d in t if d != -1], dtype=np.int64))
    if -1 in t:
        return (total % known == 0 if known else total == 0), deps
    return total == known, deps


def _split_ok(ev: Evaluator, node: Node) -> tuple:
    """``tf.split(x, n, axis)``: the axis divides by n; ``SplitV``: the sizes add up to it."""
    data, axis_ref = (node.inputs[1], node.inputs[0]) if node.op == "Split" else (node.inputs[0], node.inputs[2])
    x, d0 = ev.shape(data)
    axis, d1 = ev.value(axis_ref)
    deps = d0 | d1
    if x is None or axis is None or not x:
        return None, deps
    dim = x[int(np.ravel(axis)[0]) % len(x)]
    if node.op == "Split":
        n = node.attr("num_split")
        return (dim % int(n.i) == 0 if n is not None and n.i else None), deps
    sizes, d2 = ev.value(node.inputs[1])
    if sizes is None:
        return None, deps | d2
    sizes = [int(v) for v in np.ravel(sizes)]
    known = sum(v for v in sizes if v != -1)
    return (known <= dim if -1 in sizes else known == dim), deps | d2


_CHECKS = {"Slice": (_slice_ok, "begin + size within"), "StridedSlice": (_strided_ok, "index within"),
           "Reshape": (_reshape_ok, "element count fits"), "Split": (_split_ok, "axis divides by num_split"),
           "SplitV": (_split_ok, "size_splits add up on the axis of")}


def window_constraints(idx: GraphIndex, nodes: Iterable[Node], names: dict) -> list[Constraint]:
    """A constraint per Slice/StridedSlice/Reshape among ``nodes`` with constant bounds."""
    out = []
    for node in nodes:
        if node.op not in _CHECKS or len(node.inputs) < (2 if node.op in ("Reshape", "Split") else 3):
            continue  # bounds may be computed from the request's shape (Keras' Reshape packs the batch)
        fn, what = _CHECKS[node.op]
        data = node.inputs[1] if node.op == "Split" else node.inputs[0]
        out.append(Constraint(node, "window", f"{node.op} {what} {render(idx, data, names)}",
                              lambda ev, node=node, fn=fn: fn(ev, node)))
    return out


__all__ = ["window_constraints", "WINDOW_OPS"]
