"""Inputs that must agree with each other: ops that combine them, and values rebuilt from parts.

Two kinds of rule, both read from the graph:

* **Equal dimensions across inputs** (``relation_constraints``): ``MatMul``/``BatchMatMul``
  inner dimensions, ``Einsum`` subscripts, ``ConcatV2`` on another axis, broadcasting
  element-wise ops (attention's key and value share a length the same way). Each is a
  ``Constraint`` the solver makes hold by choosing the unknown sizes together.
* **Values rebuilt from several inputs** (``structural_roles``; ragged ones are judged in
  ``constraint_solver``): a ragged value from flat values and row_splits / row_lengths /
  value_rowids / row_starts / row_limits (``from_nested_row_splits`` chains them), a
  ``SparseTensor`` from indices, values and dense_shape, ``segment_*`` ids beside their
  data, a gather whose indices select from another input. A role says how to build
  consistent parts (``build_parts``): one row count drawn, shared where it must be;
  row_splits from 0, non-decreasing, ending at ``len(values)``; sorted non-negative
  segment ids as long as the data; indices below the other input's size; sparse indices
  sorted, unique and inside ``dense_shape``.

Ragged roles are hypotheses judged by the graph's own validation Asserts: a role is kept
only when the Asserts that read the input's values pass with the values it builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from tensorflow.python.framework import op_def_registry

from tfwarm_export.analysis.assert_conditions import Constraint, render
from tfwarm_export.analysis.graph_eval import BINARY_ELEMENTWISE, Evaluator, broadcast_shapes
from tfwarm_export.analysis.index import GraphIndex, Node, Ref

ROW_SPLITS, ROW_LENGTHS, VALUE_ROWIDS = "row_splits", "row_lengths", "value_rowids"
ROW_STARTS, ROW_LIMITS = "row_starts", "row_limits"
SEGMENT_IDS, INDEX, SPARSE = "segment_ids", "index", "sparse"
RAGGED_KINDS = (ROW_STARTS, ROW_SPLITS, ROW_LENGTHS, VALUE_ROWIDS, ROW_LIMITS)  # hypotheses, strictest first
SORTED_SEGMENT_OPS = frozenset({"SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin", "SegmentProd",
                                "SegmentSumV2", "SegmentMaxV2", "SegmentMinV2", "SegmentProdV2"})
UNSORTED_SEGMENT_OPS = frozenset({"UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin",
                                  "UnsortedSegmentProd"})
SPARSE_SEGMENT_OPS = frozenset({"SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN"})
GATHER_OPS = frozenset({"GatherV2", "Gather", "ResourceGather", "GatherNd"})
MATMUL_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"})
RELATION_OPS = MATMUL_OPS | {"ConcatV2", "Einsum"} | BINARY_ELEMENTWISE
ROLE_OPS = SORTED_SEGMENT_OPS | UNSORTED_SEGMENT_OPS | SPARSE_SEGMENT_OPS | GATHER_OPS


def _pattern_lengths(rows: int) -> np.ndarray:
    """Row lengths 1, 2, 3, 1, 2, 3...: every row non-empty, lengths differ (deterministic)."""
    return (np.arange(rows) % 3 + 1).astype(np.int64)


@dataclass(frozen=True)
class Role:
    """How one integer input relates to another: ``alias`` is a ``kind`` of ``target``."""

    alias: str
    kind: str
    target: str
    axis: int = 0
    source: str = ""
    extra: tuple = ()  # SPARSE: (values alias, dense_shape alias); unsorted segments: (num_segments,)

    def describe(self) -> str:
        if self.kind == SPARSE:
            return (f"indices {self.alias!r}, values {self.extra[0]!r} and dense_shape {self.extra[1]!r} "
                    f"of one SparseTensor ({self.source})")
        if self.kind == INDEX:
            return f"{self.alias!r} indexes axis {self.axis} of {self.target!r} ({self.source})"
        return f"{self.alias!r} is the {self.kind} of {self.target!r} ({self.source})"


# ------------------------------------------------------------------ op rules
def _matmul_ok(ev: Evaluator, node: Node) -> tuple:
    (a, da), (b, db) = ev.shape(node.inputs[0]), ev.shape(node.inputs[1])
    deps = da | db
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None, deps
    if node.op == "MatMul":
        ta, tb = node.attr("transpose_a"), node.attr("transpose_b")
        k1 = a[0] if ta is not None and ta.b else a[1]
        k2 = b[1] if tb is not None and tb.b else b[0]
        return k1 == k2, deps
    ax, ay = node.attr("adj_x"), node.attr("adj_y")
    k1 = a[-2] if ax is not None and ax.b else a[-1]
    k2 = b[-1] if ay is not None and ay.b else b[-2]
    return k1 == k2 and broadcast_shapes(a[:-2], b[:-2]) is not None, deps


def _concat_ok(ev: Evaluator, node: Node) -> tuple:
    axis, deps = ev.value(node.inputs[-1])
    shapes = []
    for r in node.inputs[:-1]:
        s, d = ev.shape(r)
        deps = deps | d
        shapes.append(s)
    if axis is None or any(s is None for s in shapes):
        return None, deps
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes) or rank == 0:
        return False, deps
    a = int(np.ravel(axis)[0]) % rank
    return all(s[i] == shapes[0][i] for s in shapes for i in range(rank) if i != a), deps


def _broadcast_ok(ev: Evaluator, node: Node) -> tuple:
    (a, da), (b, db) = ev.shape(node.inputs[0]), ev.shape(node.inputs[1])
    if a is None or b is None:
        return None, da | db
    return broadcast_shapes(a, b) is not None, da | db


def einsum_letters(node: Node) -> tuple[list[str], str] | None:
    """An Einsum's input subscripts and output, or None with an ellipsis (broadcast dims)."""
    eq = node.attr("equation")
    text = eq.s.decode() if eq is not None else ""
    if "->" not in text or "." in text:
        return None
    ins, out = text.replace(" ", "").split("->")
    return ins.split(","), out


def _einsum_ok(ev: Evaluator, node: Node) -> tuple:
    """Every subscript letter has one size across the operands (Keras attention's einsums)."""
    letters = einsum_letters(node)
    deps: frozenset = frozenset()
    if letters is None:
        return None, deps
    sizes: dict[str, int] = {}
    for sub, ref in zip(letters[0], node.inputs):
        shape, d = ev.shape(ref)
        deps = deps | d
        if shape is None or len(shape) != len(sub):
            return None, deps
        for ch, dim in zip(sub, shape):
            if sizes.setdefault(ch, dim) != dim:
                return False, deps
    return True, deps


def relation_constraints(idx: GraphIndex, nodes: Iterable[Node], names: dict) -> list[Constraint]:
    """Equal-dimension rules of the ops among ``nodes`` that combine tensors."""
    out = []
    for node in nodes:
        if node.op in MATMUL_OPS and len(node.inputs) >= 2:
            fn, what = _matmul_ok, "inner dimensions equal"
        elif node.op == "ConcatV2" and len(node.inputs) >= 3:
            fn, what = _concat_ok, "other dimensions equal"
        elif node.op in BINARY_ELEMENTWISE and len(node.inputs) == 2:
            fn, what = _broadcast_ok, "shapes broadcast"
        elif node.op == "Einsum" and len(node.inputs) >= 2:
            fn, what = _einsum_ok, "subscripts agree"
        else:
            continue
        args = ", ".join(render(idx, r, names, 4) for r in node.inputs[:2])
        out.append(Constraint(node, "relation", f"{node.op}({args}): {what}",
                              lambda ev, node=node, fn=fn: fn(ev, node)))
    return out


# ------------------------------------------------------------------ roles
def _input_of(idx: GraphIndex, ref: Ref, by_ref: Mapping[Ref, str]) -> str | None:
    """The signature input a tensor is (through identities, function args and calls)."""
    found = {by_ref.get(r) for r, _ in idx.resolve_back(ref)}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _arg(idx: GraphIndex, node: Node, name: str) -> Ref | None:
    refs = idx.input_groups(node).get(name)
    return refs[0] if refs else None


def structural_roles(idx: GraphIndex, nodes: Iterable[Node], by_ref: Mapping[Ref, str],
                     int_inputs: set) -> list[Role]:
    """Roles the ops say outright: segment ids, gather indices, SparseTensor parts."""
    roles: dict[str, Role] = {}
    for node in nodes:
        where = f"{node.op} at {node.qualified_name}"
        if node.op in SORTED_SEGMENT_OPS | UNSORTED_SEGMENT_OPS | SPARSE_SEGMENT_OPS:
            ids = _input_of(idx, _arg(idx, node, "segment_ids") or node.inputs[1], by_ref)
            data = _input_of(idx, node.inputs[0], by_ref)
            if ids in int_inputs and data is not None and node.op not in SPARSE_SEGMENT_OPS:
                extra = ()
                if node.op in UNSORTED_SEGMENT_OPS and len(node.inputs) > 2:
                    n = idx.const_value(node.inputs[2])
                    extra = (int(np.ravel(n)[0]),) if n is not None and n.size == 1 else ()
                roles.setdefault(ids, Role(ids, SEGMENT_IDS, data, 0, where, extra))
            if node.op in SPARSE_SEGMENT_OPS and len(node.inputs) > 2:
                sel = _input_of(idx, node.inputs[1], by_ref)
                seg = _input_of(idx, node.inputs[2], by_ref)
                if sel in int_inputs and data is not None:
                    roles.setdefault(sel, Role(sel, INDEX, data, 0, where))
                if seg in int_inputs and sel is not None:
                    roles.setdefault(seg, Role(seg, SEGMENT_IDS, sel, 0, where))
        elif node.op in GATHER_OPS and len(node.inputs) >= 2:
            ids, params = _input_of(idx, node.inputs[1], by_ref), _input_of(idx, node.inputs[0], by_ref)
            if ids in int_inputs and params is not None and params != ids:
                axis = 0
                if node.op == "GatherNd":  # indices[..., j] < params.shape[j]
                    roles.setdefault(ids, Role(ids, INDEX, params, 0, where, ("nd",)))
                    continue
                if node.op == "GatherV2" and len(node.inputs) > 2:
                    a = idx.const_value(node.inputs[2])
                    if a is None or a.size != 1:
                        continue
                    axis = int(a.ravel()[0])
                roles.setdefault(ids, Role(ids, INDEX, params, axis, where))
        else:
            role = _sparse_role(idx, node, by_ref, int_inputs)
            if role is not None and role.alias not in roles:
                roles[role.alias] = role
    return list(roles.values())


def _sparse_role(idx: GraphIndex, node: Node, by_ref: Mapping[Ref, str], int_inputs: set) -> Role | None:
    """An op whose OpDef takes ``*indices``, ``*values`` and ``*shape`` from three inputs."""
    op_def = op_def_registry.get(node.op)
    if op_def is None or not node.op.startswith("Sparse"):
        return None
    groups = idx.input_groups(node)
    found: dict[str, str] = {}
    for arg in op_def.input_arg:
        for part in ("indices", "values", "shape"):
            if arg.name.endswith(part) and part not in found and groups.get(arg.name):
                alias = _input_of(idx, groups[arg.name][0], by_ref)
                if alias is not None:
                    found[part] = alias
    if len(found) == 3 and len(set(found.values())) == 3 and found["indices"] in int_inputs:
        return Role(found["indices"], SPARSE, found["values"], 0, f"{node.op} at {node.qualified_name}",
                    (found["values"], found["shape"]))
    return None


# ------------------------------------------------------------------ building parts
def build_parts(roles: Iterable[Role], shapes: dict[str, tuple], rng_rows: int) -> dict[str, np.ndarray]:
    """Values for the role inputs, and their (and their targets') shapes updated in place.

    ``shapes`` holds every input's planned shape with axis 0 = the record's batch.
    """
    roles = list(roles)
    values: dict[str, np.ndarray] = {}
    by_alias = {r.alias: r for r in roles}
    children = {r.target for r in roles if r.kind in RAGGED_KINDS}
    tops = [r for r in roles if r.kind in RAGGED_KINDS and r.alias not in children]
    for top in tops:  # a chain of row partitions, outermost first
        role, rows = top, max(1, rng_rows)
        seen = set()
        while role is not None and role.alias not in seen:
            seen.add(role.alias)
            lengths = _pattern_lengths(rows)
            nvals = int(lengths.sum())
            splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            if role.kind in (ROW_SPLITS, ROW_STARTS, ROW_LIMITS):
                values[role.alias] = {ROW_SPLITS: splits, ROW_STARTS: splits[:-1], ROW_LIMITS: splits[1:]}[role.kind]
            elif role.kind == ROW_LENGTHS:
                values[role.alias] = lengths
            else:
                values[role.alias] = np.repeat(np.arange(rows), lengths).astype(np.int64)
            shapes[role.alias] = (len(values[role.alias]),) + tuple(shapes[role.alias][1:])
            nxt = by_alias.get(role.target)
            if nxt is not None and nxt.kind in RAGGED_KINDS:
                rows = nvals
                role = nxt
                continue
            shapes[role.target] = (nvals,) + tuple(shapes[role.target][1:])
            role = None
    for role in roles:
        if role.kind == SEGMENT_IDS and role.target in shapes:
            n = shapes[role.target][0]
            ids = np.arange(n) // 2
            if role.extra:
                ids = np.minimum(ids, role.extra[0] - 1)
            values[role.alias] = ids.astype(np.int64)
            shapes[role.alias] = (n,) + tuple(shapes[role.alias][1:])
        elif role.kind == SPARSE:
            _sparse_parts(role, shapes, values, rng_rows)
    return values


def _sparse_parts(role: Role, shapes: dict, values: dict, batch: int) -> None:
    vals, dense = role.extra
    own = shapes[role.alias]
    rank = own[1] if len(own) > 1 and own[1] else len(shapes.get(dense, (2,)))
    rank = int(shapes[dense][0]) if dense in shapes and shapes[dense] and shapes[dense][0] else rank
    dims = (max(1, batch),) + (4,) * (rank - 1)
    total = int(np.prod(dims))
    n = min(total, 2 * max(1, batch))
    flat = np.unique(np.linspace(0, total - 1, n).astype(np.int64))
    values[role.alias] = np.stack(np.unravel_index(flat, dims), axis=1).astype(np.int64)
    values[dense] = np.array(dims, dtype=np.int64)
    shapes[role.alias] = (len(flat), rank)
    shapes[vals] = (len(flat),) + tuple(shapes[vals][1:])
    shapes[dense] = (rank,)


def index_bound(role: Role, shapes: Mapping[str, tuple]) -> int | None:
    """The exclusive upper bound of an INDEX role's values: the target's size on the axis."""
    target = shapes.get(role.target)
    if role.extra == ("nd",):  # GatherNd: every column of the indices below its own dim
        depth = shapes.get(role.alias, ())[-1:] or (0,)
        dims = target[:depth[0]] if target is not None else ()
        return int(min(dims)) if dims else None
    if target is None or not -len(target) <= role.axis < len(target):
        return None
    return int(target[role.axis])


__all__ = ["Role", "relation_constraints", "structural_roles", "build_parts", "index_bound",
           "ROW_SPLITS", "ROW_LENGTHS", "VALUE_ROWIDS", "SEGMENT_IDS", "INDEX", "SPARSE",
           "ROW_STARTS", "ROW_LIMITS", "RAGGED_KINDS", "RELATION_OPS", "ROLE_OPS"]
