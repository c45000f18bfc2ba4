"""Windows with constant bounds: ``tf.slice``, ``strided_slice`` indices and ``Reshape`` sizes.

``tf.slice(x, [0, 5], [-1, 10])`` needs ``x.shape[1] >= 15``; ``x[:, 9]`` needs more
than 9 rows on axis 1; ``tf.reshape(x, [-1, 6])`` needs an element count divisible by 6
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

WINDOW_OPS = frozenset({"Slice", "StridedSlice", "Reshape"})


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


_CHECKS = {"Slice": (_slice_ok, "begin + size within"), "StridedSlice": (_strided_ok, "index within"),
           "Reshape": (_reshape_ok, "element count fits")}


def window_constraints(idx: GraphIndex, nodes: Iterable[Node], names: dict) -> list[Constraint]:
    """A constraint per Slice/StridedSlice/Reshape among ``nodes`` with constant bounds."""
    out = []
    for node in nodes:
        if node.op not in _CHECKS or len(node.inputs) < (2 if node.op == "Reshape" else 3):
            continue
        if any(idx.const_value(r) is None for r in node.inputs[1:]):
            continue  # bounds computed from the request: not a constant window
        fn, what = _CHECKS[node.op]
        out.append(Constraint(node, "window", f"{node.op} {what} {render(idx, node.inputs[0], names)}",
                              lambda ev, node=node, fn=fn: fn(ev, node)))
    return out


__all__ = ["window_constraints", "WINDOW_OPS"]
