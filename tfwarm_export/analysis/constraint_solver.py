"""Sizes and values that satisfy every rule the graph states, found before synthesis.

The rules come from ``assert_conditions`` (Assert conditions), ``windows`` (constant
slices, indices, reshapes) and ``input_relations`` (ops combining inputs; parts of one
value). The unknowns are the sizes the planner would otherwise default (4, then 32)
and the values of integer inputs with a role. The solver is generate-and-test with
the graph as the judge: candidate sizes come from the constants in the failing rules'
inputs (``c``, ``c +/- 1``, sums and differences of two constants, multiples), so an
equality (12), a bound (offset + target = 80), a remainder (5 = 8 - 3) or a divisor
(6) is among them; ``graph_eval.Evaluator`` decides each candidate request. What no
candidate satisfies is reported as unsolved, naming the rule.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.input_relations import (GATHER_OPS, INDEX, RAGGED_KINDS, SORTED_SEGMENT_OPS,
                                                    UNSORTED_SEGMENT_OPS, Role, build_parts, index_bound,
                                                    relation_constraints, structural_roles)
from tfwarm_export.analysis.assert_conditions import Constraint, assert_constraints
from tfwarm_export.analysis.consumer_shapes import static_shape
from tfwarm_export.analysis.graph_eval import Evaluator, deep_recursion
from tfwarm_export.analysis.index import GraphIndex, Node, index_for
from tfwarm_export.analysis.windows import window_constraints

log = logging.getLogger("tfwarm_export.analysis")

MAX_SIZE = 4096
_MAX_TRIES = 4000
_WORK = 200_000  # rule evaluations per group of rules (deterministic, unlike a clock): then unsolved
_MAX_CONE = 400
_HYPOTHESIS_ROWS = (2, 3)  # a role must hold at two row counts (no coincidence of lengths)


RULES = {
    # rule -> (ops it reads, what it needs): the op catalogue test wants a test model for each
    "assert condition": (("Assert", "If"), "an Assert's condition on shapes/values holds"),
    "slice window": (("Slice",), "begin + size within the dimension"),
    "strided index": (("StridedSlice",), "a constant index inside the dimension"),
    "reshape divisibility": (("Reshape",), "the element count fits the constant target"),
    "matmul inner": (("MatMul", "BatchMatMulV2"), "inner dimensions equal across inputs"),
    "einsum subscripts": (("Einsum",), "one size per subscript letter across the operands"),
    "split divisibility": (("Split", "SplitV"), "the axis divides by num_split (or size_splits add up)"),
    "concat other axes": (("ConcatV2",), "dimensions off the concat axis equal"),
    "broadcast": (("Mul", "AddV2"), "element-wise operands broadcast"),
    "ragged row_splits": (("Assert",), "from 0, non-decreasing, ending at len(values)"),
    "ragged row_lengths": (("Assert",), "non-negative, summing to len(values)"),
    "ragged value_rowids": (("Assert",), "sorted, non-negative, one per value"),
    "ragged row_starts": (("Assert",), "from 0, non-decreasing, below len(values)"),
    "ragged nested": (("Assert",), "each level's row_splits end at the next level's rows"),
    "sparse parts": (("SparseToDense", "SparseReorder", "SparseTensorDenseMatMul"),
                     "indices sorted, unique, inside dense_shape; one value each"),
    "segment ids": (tuple(sorted(SORTED_SEGMENT_OPS | UNSORTED_SEGMENT_OPS)),
                    "sorted, non-negative, as long as the data"),
    "gather index": (tuple(sorted(GATHER_OPS)), "below the other input's size on the axis"),
}


@dataclass(frozen=True)
class InputVar:
    """One plain tensor input: its planned shape (axis 0 is the batch) and the axes the solver may size."""

    alias: str
    tensor: str
    dtype: tf.DType
    shape: tuple
    free: tuple = ()


@dataclass
class Solved:
    """One batch size's answer: full shapes, constant values, index bounds, and what changed why."""

    shapes: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)  # alias -> (0, exclusive high) for INDEX roles
    changed: dict = field(default_factory=dict)  # alias -> axes the solver sized
    roles: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    unsolved: list = field(default_factory=list)


@dataclass
class _Context:
    idx: GraphIndex
    refs: dict  # alias -> Ref
    constraints: list
    roles: list


_CACHE: list = []


def _context(meta_graph, outputs: Sequence[str], inputs: Sequence[InputVar]) -> _Context:
    key = (id(meta_graph), tuple(outputs), tuple((i.alias, i.tensor) for i in inputs))
    for k, ctx in _CACHE:
        if k == key:
            return ctx
    idx = index_for(meta_graph)
    refs = {i.alias: idx.tensor_ref(i.tensor) for i in inputs if idx.tensor_ref(i.tensor) is not None}
    names = {r: a for a, r in refs.items()}
    nodes = [n for n, _ in idx.call_tree(outputs)]
    constraints = (assert_constraints(idx, nodes, names) + window_constraints(idx, nodes, names)
                   + relation_constraints(idx, nodes, names))
    ints = {i.alias for i in inputs if i.dtype.is_integer and i.alias in refs}
    roles = structural_roles(idx, nodes, names, ints)
    ctx = _Context(idx, refs, constraints, roles)
    _CACHE.append((key, ctx))
    del _CACHE[:-8]
    return ctx


def _world(ctx: _Context, inputs: Sequence[InputVar], dims: dict, roles: list, batch: int):
    shapes = {i.alias: tuple(dims[i.alias]) for i in inputs}
    values = build_parts(roles, shapes, batch)
    bounds = {}
    for r in roles:
        if r.kind == INDEX:
            high = index_bound(r, shapes)
            if high is not None and high >= 1:
                bounds[r.alias] = (0, high)
                n = int(np.prod(shapes[r.alias])) if shapes[r.alias] else 1
                values[r.alias] = (np.arange(n) % high).reshape(shapes[r.alias])
    ev = Evaluator(ctx.idx, {ctx.refs[a]: s for a, s in shapes.items() if a in ctx.refs},
                   {ctx.refs[a]: v for a, v in values.items() if a in ctx.refs})
    return ev, shapes, {a: v for a, v in values.items() if a not in bounds}, bounds


def _check(ev: Evaluator, constraints: Sequence[Constraint]) -> list[tuple[Constraint, bool | None, frozenset]]:
    out = []
    for c in constraints:
        try:
            ok, deps = c.check(ev)
        except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError) as e:
            log.debug("constraint %s not evaluated: %s", c.describe(), e)
            ok, deps = None, frozenset()
        out.append((c, ok, deps))
    return out


def _ragged_roles(ctx: _Context, inputs: Sequence[InputVar], dims: dict, roles: list) -> list:
    """Ragged partition roles judged by the Asserts that read the candidate input's values."""
    by_alias = {i.alias: i for i in inputs}
    asserts = [c for c in ctx.constraints if c.kind == "assert"]
    taken = {r.alias for r in roles}
    cands = [i.alias for i in inputs if i.alias in ctx.refs and i.dtype.is_integer
             and len(i.shape) == 1 and i.alias not in taken and 0 in i.free + (0,)]
    for _ in range(3):
        added = False
        for alias in cands:
            if alias in taken:
                continue
            probe = Evaluator(ctx.idx, {ctx.refs[a]: (2,) for a in ctx.refs},
                              {ctx.refs[alias]: np.zeros(2, np.int64)})
            probed = _check(probe, asserts)
            mine = [c for c, _, deps in probed if ("v", ctx.refs[alias]) in deps]
            if not mine:
                continue
            partitions = {r.alias for r in roles if r.kind in RAGGED_KINDS}
            targets = sorted((t for t in by_alias if t != alias and by_alias[t].shape),
                             key=lambda t: (t in partitions, by_alias[t].dtype.is_integer, t))
            for target, kind in itertools.product(targets, RAGGED_KINDS):
                if by_alias[target].dtype.is_integer and target not in partitions:
                    continue
                judged = [c for c, _, deps in probed if ctx.refs[alias] in {r for _, r in deps}]
                hyp = Role(alias, kind, target, 0, "checked by " + ", ".join(
                    sorted({c.node.qualified_name.rsplit("/", 1)[0] for c in mine}))[:200])
                results = []
                for rows in _HYPOTHESIS_ROWS:
                    trial = {a: ([rows] + d[1:] if by_alias[a].shape[0] is None else d) if d else d
                             for a, d in dims.items()}
                    ev = _world(ctx, inputs, trial, roles + [hyp], rows)[0]
                    results += [ok for _, ok, _ in _check(ev, judged)]
                if True in results and False not in results:
                    roles = roles + [hyp]
                    taken.add(alias)
                    added = True
                    break
        if not added:
            break
    return roles


def _cone_constants(ctx: _Context, nodes: Sequence[Node], shapes: dict) -> list[int]:
    """Integer constants (and fixed variable/input dims) the failing rules are computed from."""
    idx = ctx.idx
    found: set[int] = set()
    for s in shapes.values():
        found.update(int(d) for d in s)
    queue = [r for n in nodes for r in n.inputs]
    seen: set = set()
    while queue and len(seen) < _MAX_CONE:
        ref = queue.pop()
        if ref in seen:
            continue
        seen.add(ref)
        node = idx.producer(ref)
        if node is None:
            continue
        if node.op == "Const":
            v = idx.const_value(ref)
            if v is not None and v.dtype.kind in "iu" and v.size <= 16:
                found.update(int(x) for x in np.ravel(v))
            continue
        if node.op in ("ReadVariableOp", "VarHandleOp"):
            s = static_shape(idx, ref)
            found.update(int(d) for d in s or () if d is not None)
            continue
        if node.op == "_Arg":
            for ckey, call in idx.callers.get(node.scope, ()):
                cnode = idx.nodes[ckey]
                if call.input_offset is not None and node.arg_index + call.input_offset < len(cnode.inputs):
                    queue.append(cnode.inputs[node.arg_index + call.input_offset])
            continue
        for c in idx.calls.get(node.key, ()):
            if c.maps_outputs:
                queue.extend(r for r in idx.returns.get(c.function, []) if r is not None)
        queue.extend(node.inputs)
    return sorted(c for c in found if 0 < c <= MAX_SIZE)


def _candidates(consts: list[int], base: int) -> list[int]:
    out = set()
    for c in consts:
        out.update({c, c + 1, c - 1, 2 * c, 3 * c})
    for a, b in itertools.combinations(consts[:48], 2):
        out.update({a + b, abs(a - b)})
    cands = sorted(c for c in out if 0 < c <= MAX_SIZE and c != base)
    return [base] + cands


def _aliases(ctx: _Context, deps) -> set[str]:
    by_ref = {r: a for a, r in ctx.refs.items()}
    return {by_ref[r] for _, r in deps if r in by_ref}


def _components(ctx: _Context, failing: list) -> list[list]:
    """Failing rules grouped by the inputs they read: independent groups are solved apart."""
    groups: list[tuple[set, list]] = []
    for item in failing:
        names, members = _aliases(ctx, item[2]), [item]
        for g in [g for g in groups if g[0] & names]:
            groups.remove(g)
            names |= g[0]
            members = g[1] + members
        groups.append((names, members))
    return [members for _, members in groups]


def _combos(lists: list[list[int]]):
    """Index tuples in order of increasing rank sum, capped to _MAX_TRIES * 8 before sorting."""
    n = len(lists)
    cap = max(2, int((_MAX_TRIES * 8) ** (1.0 / n)))
    sizes = [min(len(x), cap) for x in lists]
    return sorted(itertools.product(*[range(k) for k in sizes]), key=lambda c: (sum(c), c))[:_MAX_TRIES]


def _search(ctx, inputs, dims, roles, batch, failing: list, everything: list):
    """New dims making ``failing`` hold without breaking ``everything``, or None."""
    free = {i.alias: i.free for i in inputs}
    deps = set().union(*(_aliases(ctx, d) for _, _, d in failing))
    variables = [(a, ax) for a in sorted(deps) for ax in free.get(a, ()) if ax > 0]
    if not variables:
        return None
    fixed = {i.alias: tuple(d for ax, d in enumerate(i.shape) if ax > 0 and ax not in i.free and d)
             for i in inputs}
    consts = _cone_constants(ctx, [c.node for c, _, _ in failing], fixed)
    lists = [_candidates(consts, dims[a][ax]) for a, ax in variables]
    wanted = [c for c, _, _ in failing]
    trial = _search_combos(ctx, inputs, dims, roles, batch, variables, lists, wanted, everything)
    if trial is None:  # bounds far down two candidate lists: one variable at a time
        trial = _search_greedy(ctx, inputs, dims, roles, batch, variables, lists, wanted, everything)
    return trial


def _failing(ctx, inputs, trial, roles, batch, wanted) -> int:
    ev = _world(ctx, inputs, trial, roles, batch)[0]
    return sum(1 for _, ok, _ in _check(ev, wanted) if not ok)


def _search_greedy(ctx, inputs, dims, roles, batch, variables, lists, wanted, everything):
    """Coordinate search: each variable in turn takes its first candidate that makes more of
    ``wanted`` hold (others held), for rules each variable meets alone (a crop's height and
    width bounds), whose joint value the rank-ordered combinations may not reach in budget."""
    trial = {a: list(s) for a, s in dims.items()}
    best, work = _failing(ctx, inputs, trial, roles, batch, wanted), 0
    for _ in range(2):
        for (a, ax), lst in zip(variables, lists):
            for value in lst[1:]:
                if best == 0 or work > _WORK:
                    break
                probe = {k: list(v) for k, v in trial.items()}
                probe[a][ax] = value
                work += len(wanted)
                n = _failing(ctx, inputs, probe, roles, batch, wanted)
                if n < best:
                    best, trial = n, probe
                    break
    if best:
        return None
    ev = _world(ctx, inputs, trial, roles, batch)[0]
    return None if any(ok is False for _, ok, _ in _check(ev, everything)) else trial


def _search_combos(ctx, inputs, dims, roles, batch, variables, lists, wanted, everything):
    """Candidate combinations in order of increasing rank sum, the first that holds."""
    work = 0
    for combo in _combos(lists):
        if work > _WORK:
            log.debug("constraint search stopped after %d evaluations: %s", work, wanted[0].describe())
            break
        work += len(wanted)
        trial = {a: list(s) for a, s in dims.items()}
        for (a, ax), lst, k in zip(variables, lists, combo):
            trial[a][ax] = lst[k]
        ev = _world(ctx, inputs, trial, roles, batch)[0]
        if not all(ok for _, ok, _ in _check(ev, wanted)):
            continue
        work += len(everything)
        if any(ok is False for _, ok, _ in _check(ev, everything)):
            continue
        return trial
    return None


def _solve_groups(ctx, inputs, dims, roles, batch, failing, relevant, out: Solved) -> dict:
    """Each independent group of failing rules solved in turn; the dims after all of them."""
    still = {id(c) for c, _, _ in failing}
    for group in _components(ctx, failing):
        mine = {id(c) for c, _, _ in group}
        others = [c for c in relevant if id(c) not in still or id(c) in mine]
        trial = _search(ctx, inputs, dims, roles, batch, group, others)
        if trial is None:
            out.unsolved += [c.describe() for c, _, _ in group]
            continue
        for i in inputs:
            axes = tuple(ax for ax in range(1, len(dims[i.alias])) if trial[i.alias][ax] != dims[i.alias][ax])
            if axes:
                out.changed[i.alias] = tuple(sorted(set(out.changed.get(i.alias, ())) | set(axes)))
                why = "; ".join(dict.fromkeys(c.describe() for c, _, d in group
                                              if ("s", ctx.refs.get(i.alias)) in d))
                out.notes.append(f"input {i.alias!r} axes {list(axes)} sized "
                                 f"{[trial[i.alias][a] for a in axes]} to satisfy {why}")
        still -= mine
        dims = trial
    return dims


def solve(meta_graph, outputs: Sequence[str], inputs: Sequence[InputVar], batch: int) -> Solved:
    """Shapes and values for one batch size under which the graph's checks hold (as far as known)."""
    with deep_recursion():
        return _solve(meta_graph, outputs, inputs, batch)


def _solve(meta_graph, outputs, inputs, batch) -> Solved:
    ctx = _context(meta_graph, outputs, inputs)
    dims = {i.alias: ([batch if i.shape[0] is None else i.shape[0]] + list(i.shape[1:])) if i.shape else []
            for i in inputs}
    roles = _ragged_roles(ctx, inputs, dims, list(ctx.roles))
    ev = _world(ctx, inputs, dims, roles, batch)[0]
    checked = [(c, ok, d) for c, ok, d in _check(ev, ctx.constraints) if any(k for k, _ in d)]
    relevant = [c for c, _, _ in checked]
    failing = [x for x in checked if x[1] is False]
    out = Solved(roles=roles)
    if failing:
        dims = _solve_groups(ctx, inputs, dims, roles, batch, failing, relevant, out)
    _, shapes, values, bounds = _world(ctx, inputs, dims, roles, batch)
    out.shapes, out.values, out.bounds = shapes, values, bounds
    out.notes += [f"{r.describe()}: planned together" for r in roles]
    return out


def explain(meta_graph, node_name: str, inputs: Sequence[InputVar], outputs: Sequence[str]) -> str | None:
    """The rule at a failing node, as a formula naming the inputs (for an error message)."""
    with deep_recursion():
        ctx = _context(meta_graph, outputs, inputs)
    for c in ctx.constraints:
        if c.node.name == node_name or c.node.qualified_name.endswith("/" + node_name):
            return c.describe()
    return None


__all__ = ["RULES", "InputVar", "Solved", "solve", "explain", "MAX_SIZE"]
