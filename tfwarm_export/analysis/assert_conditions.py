"""The checks ``Assert`` nodes state about a signature's inputs, as constraints to evaluate.

``tf.debugging.assert_equal(tf.shape(x)[1], 12)``, the "width must be >= target +
offset" checks ``tf.image.crop_to_bounding_box`` builds, ``assert_shapes``, ragged
validation (``row_splits[0] == 0``, non-decreasing, ``row_splits[-1] == nvals``) and
membership written as ``reduce_all(reduce_any(equal(x[:, None], known[None, :]), 1))``
are all an ``Assert`` (or TF2's ``AssertGuard`` ``If``) whose condition is computed from
the request. Each becomes a ``Constraint`` that ``graph_eval.Evaluator`` decides for a
candidate request (``True``/``False``, or ``None`` when it cannot be computed), so the
solver can pick sizes and values that make every check hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from tfwarm_export.analysis.graph_eval import Evaluator
from tfwarm_export.analysis.index import GraphIndex, Node, Ref

ASSERT_GUARDS = frozenset({"If", "StatelessIf"})
_RENDER_DEPTH = 6


@dataclass(frozen=True)
class Constraint:
    """A rule a request must meet at ``node``: an Assert's condition or an op's shape rule."""

    node: Node
    kind: str  # "assert", "window", "relation"
    what: str  # a short reading of the rule, e.g. "Equal(shape(x)[1], 12)"
    check: Callable[[Evaluator], tuple]  # -> (True | False | None, deps)

    def describe(self) -> str:
        return f"{self.what} ({self.kind} at {self.node.qualified_name})"


def truth(got: tuple) -> tuple:
    """(bool | None, deps) from an Evaluator result: every element true."""
    value, deps = got
    if value is None:
        return None, deps
    return bool(np.all(value)), deps


def render(idx: GraphIndex, ref: Ref, names: dict, depth: int = 0) -> str:
    """A short formula for a tensor: ``Equal(shape(x)[1], 12)``, inputs by alias."""
    node = idx.producer(ref)
    if node is None or depth > _RENDER_DEPTH:
        return "..."
    if ref in names:
        return names[ref]
    if node.op == "_Arg" or node.op in ("Identity", "IdentityN"):
        back = idx.resolve_back(ref)
        if len(back) == 1 and back[0][0] != ref:
            return render(idx, back[0][0], names, depth)
        return node.name
    if node.op == "Const":
        v = idx.const_value(ref)
        if v is not None and v.size <= 4:
            return str(v.tolist()).replace("b'", "'")
        return f"const{list(v.shape) if v is not None else ''}"
    if node.op == "Shape" and node.inputs:
        return f"shape({render(idx, node.inputs[0], names, depth + 1)})"
    if node.op == "StridedSlice" and len(node.inputs) == 4:
        b = idx.const_value(node.inputs[1])
        inner = render(idx, node.inputs[0], names, depth + 1)
        return f"{inner}[{','.join(str(int(x)) for x in np.ravel(b))}]" if b is not None else f"{inner}[...]"
    if node.op in ("All", "Any") and node.inputs:  # the reduction axes add nothing to read
        return f"{node.op.lower()}({render(idx, node.inputs[0], names, depth + 1)})"
    args = ", ".join(render(idx, r, names, depth + 1) for r in node.inputs[:3])
    return f"{node.op}({args})"


def _has_assert(idx: GraphIndex, node: Node) -> bool:
    return any(idx.function_has_op(c.function, ("Assert",)) for c in idx.calls.get(node.key, ()))


def assert_constraints(idx: GraphIndex, nodes: Iterable[Node], names: dict) -> list[Constraint]:
    """A constraint per Assert (and AssertGuard ``If``) among ``nodes``, deduplicated by condition."""
    out: list[Constraint] = []
    seen: set = set()
    for node in nodes:
        if not node.inputs:
            continue
        if node.op == "Assert" or (node.op in ASSERT_GUARDS and _has_assert(idx, node)):
            cond = node.inputs[0]
            back = idx.resolve_back(cond)
            key = tuple(sorted(r for r, _ in back)) or (cond,)
            if key in seen:
                continue
            seen.add(key)
            out.append(Constraint(node, "assert", render(idx, cond, names),
                                  lambda ev, cond=cond: truth(ev.value(cond))))
    return out


__all__ = ["Constraint", "assert_constraints", "truth", "render"]
