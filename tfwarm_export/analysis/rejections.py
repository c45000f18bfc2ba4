"""Which op rejected a warmup value, and which request inputs played a part in it.

When a record still fails after every retry, TensorFlow's error names a node
(``[[{{node Assert/Assert}}]]``). This maps that node to its op type through the
graph index, gives its kind from the op catalogue (an ``Assert`` is the guard of
the ``RegexFullMatch``/``StringLength``/comparison its condition is built from),
and finds the signature inputs whose values reach the node, so the error asks
for an override of those inputs only.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Mapping

from tfwarm_export.analysis.assert_conditions import render
from tfwarm_export.analysis.index import GraphIndex, Node, index_for
from tfwarm_export.analysis.input_relations import relation_constraints
from tfwarm_export.analysis.op_catalogue import GUARD, classify
from tfwarm_export.analysis.windows import window_constraints

ASSERT_OPS = frozenset({"Assert"})
_MAX_BACK = 2000


@dataclass(frozen=True)
class Rejection:
    """The node that rejected a value: op, catalogue kind and reason, guard ops, inputs reaching it."""

    node: str
    op: str
    kind: str
    why: str
    guards: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # aliases whose values reach the node
    condition: str = ""  # the rule at the node, as a formula over the inputs (issue 26)

    def describe(self) -> str:
        guarded = f" on {', '.join(self.guards)}" if self.guards else ""
        cond = f"; condition {self.condition}" if self.condition else ""
        return f"rejected by {self.op} (node {self.node}; {self.kind}{guarded}: {self.why}{cond})"


def _outputs(idx: GraphIndex) -> dict[tuple, list[int]]:
    """Every output index of every node that something consumes or a function returns."""
    outs: dict[tuple, set[int]] = {}
    for ref in list(idx.consumers) + list(idx.ret_index):
        outs.setdefault((ref[0], ref[1]), set()).add(ref[2])
    return {k: sorted(v) for k, v in outs.items()}


def _reached(idx: GraphIndex, tensor: str, outs: Mapping[tuple, list[int]]) -> set[tuple]:
    """Keys of every node any value derived from ``tensor`` reaches (data edges, calls)."""
    start = idx.tensor_ref(tensor)
    if start is None:
        return set()
    return {node.key for node, _ in idx.walk_forward(start, lambda n, pos: outs.get(n.key, ()))}


def _guard_ops(idx: GraphIndex, node: Node) -> tuple[str, ...]:
    """Catalogued guard ops an Assert's condition is computed from (same function body)."""
    found: list[str] = []
    queue, seen = deque(node.inputs[:1]), set()
    while queue and len(seen) < _MAX_BACK:
        ref = queue.popleft()
        if ref in seen:
            continue
        seen.add(ref)
        producer = idx.producer(ref)
        if producer is None:
            continue
        c = classify(producer.op)
        if c is not None and c.kind == GUARD and producer.op not in found:
            found.append(producer.op)
        queue.extend(producer.inputs)
    return tuple(found)


def find_rejection(meta_graph_def, function: str, node_name: str,
                   inputs: Mapping[str, str]) -> Rejection | None:
    """The op behind TensorFlow's failing ``node_name`` (in ``function``, "" for any scope).

    ``inputs`` maps request aliases to tensor names. None when the graph has no such node.
    """
    idx = index_for(meta_graph_def)
    candidates = [n for n in idx.nodes.values() if n.name == node_name and (not function or n.scope == function)]
    if not candidates:
        return None
    outs = _outputs(idx)
    reach = {alias: _reached(idx, tensor, outs) for alias, tensor in sorted(inputs.items())}
    reached_by = {n.key: tuple(a for a, r in reach.items() if n.key in r) for n in candidates}
    node = max(candidates, key=lambda n: (len(reached_by[n.key]), n.scope == ""))
    if node.op in ASSERT_OPS:
        guards = _guard_ops(idx, node)
        why = "an assertion on the input failed"
        if guards:
            first = classify(guards[0])
            why += f"; {guards[0]} is {first.why}" if first is not None else ""
        rejection = Rejection(node.qualified_name, node.op, GUARD, why, guards, reached_by[node.key])
    else:
        c = classify(node.op)
        kind, why = (c.kind, c.why) if c is not None else ("not a string op", "see the TensorFlow error")
        rejection = Rejection(node.qualified_name, node.op, kind, why, (), reached_by[node.key])
    names = {idx.tensor_ref(t): a for a, t in inputs.items() if idx.tensor_ref(t) is not None}
    return replace(rejection, condition=condition_at(idx, node, names))


def condition_at(idx: GraphIndex, node: Node, names: Mapping) -> str:
    """The rule a failing node states (an Assert's condition, a window, equal dims), or ""."""
    if node.op in ASSERT_OPS or node.op in ("If", "StatelessIf"):
        return render(idx, node.inputs[0], dict(names)) if node.inputs else ""
    found = window_constraints(idx, [node], dict(names)) + relation_constraints(idx, [node], dict(names))
    return found[0].what if found else ""


__all__ = ["Rejection", "find_rejection", "ASSERT_OPS"]
