"""A plain tensor input's shape and the source of its values, strongest evidence first.

Shapes: the signature, the user's ``shapes``/``dim_sizes``, what the graph's consumers
need, then the default size. Values: a string guard that pins the text, the decoder the
bytes reach, value domains, the weaker guards; an input whose bytes reach an op no value
can satisfy is refused here, before anything runs.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import tensorflow as tf

from tfwarm_export import analysis
from tfwarm_export.config import DEFAULT_DIM_SIZE
from tfwarm_export.errors import PlanError
from tfwarm_export.model.signatures import ModelSignatures, SignatureInfo, TensorSpec
from tfwarm_export.planning.feeds import TENSOR, FeedPlan
from tfwarm_export.planning.input_options import ResolvedInputs
from tfwarm_export.planning.plan_inputs import Skip
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.encodings import GuardEncoding


def input_shapes(sig: SignatureInfo, spec: TensorSpec, inputs: ResolvedInputs, meta_graph=None,
                  notes: list[str] | None = None
                  ) -> tuple[tuple[int | None, ...], list[tuple[int, ...]], tuple[int, ...]]:
    """The declared shape (after user ``shapes``), its non-batch variants, and the
    axes that fell back to ``DEFAULT_DIM_SIZE``.

    An unknown rank or unknown non-batch dims not sized by the user are first read from
    the ops that consume the input (``analysis.consumer_shapes``); the plan notes where from.
    """
    shape = spec.shape
    user_shape = inputs.get(sig.name, spec.alias).shape
    if user_shape is not None:
        user_shape = tuple(None if (d is None or int(d) < 0) else int(d) for d in user_shape)
        if shape is not None and (len(user_shape) != len(shape) or any(
                a is not None and b is not None and a != b for a, b in zip(user_shape, shape))):
            raise PlanError(f"shape override {list(user_shape)} for {sig.name}/{spec.alias} is not "
                            f"compatible with the signature's {spec.shape_str()}.")
        shape = user_shape
    dims = inputs.get(sig.name, spec.alias).dims
    minimum: dict[int, int] = {}
    if meta_graph is not None and user_shape is None and (shape is None or any(
            d is None and axis not in dims and str(axis) not in dims
            for axis, d in enumerate(shape) if axis > 0)):
        found = analysis.find_consumer_shape(meta_graph, spec.name, shape)
        if found is not None:
            before = shape
            shape = found.shape if shape is None else tuple(
                d if d is not None or axis == 0 else found.shape[axis] for axis, d in enumerate(shape))
            minimum = found.minimum
            if shape != before and notes is not None:
                was = "unknown rank" if before is None else "shape " + spec.shape_str()
                notes.append(f"{sig.name}: input {spec.alias!r} has {was}; shape {found.describe()}")
    if shape is None:
        raise Skip(
            f"input {spec.alias!r} of signature {sig.name!r} has unknown rank, and no op that reads it "
            f"(Reshape, MatMul, Conv, BiasAdd, ConcatV2, EnsureShape) fixes one, so no shape can be "
            f"synthesised. Give one: shapes={{'{sig.name}/{spec.alias}': (None, 16)}} in Python, or "
            f"--shape {sig.name}/{spec.alias}=-1,16 on the command line (-1 marks the batch dim).")
    per_axis: list[list[int]] = []
    defaulted: list[int] = []
    for axis, d in enumerate(shape):
        if axis == 0:
            continue
        if d is not None:
            per_axis.append([d])
            continue
        if axis not in dims and str(axis) not in dims:
            defaulted.append(axis)
        chosen = dims.get(axis, dims.get(str(axis), max(DEFAULT_DIM_SIZE, minimum.get(axis, 0))))
        chosen = [int(c) for c in (chosen if isinstance(chosen, (list, tuple)) else [chosen])]
        if any(c < 0 for c in chosen):
            raise PlanError(f"dim size for {sig.name}/{spec.alias} axis {axis} must be >= 0, got {chosen}")
        per_axis.append(chosen)
    # Variants zip across axes (a sequence length list applies to every unknown axis alike).
    n = max((len(a) for a in per_axis), default=1)
    variants = [tuple(a[min(i, len(a) - 1)] for a in per_axis) for i in range(n)]
    return shape, variants, tuple(defaulted)


def tensor_domain(model: ModelSignatures, sig: SignatureInfo, spec: TensorSpec,
                   inputs: ResolvedInputs) -> Domain | None:
    """Where a plain tensor input's values come from, strongest evidence first: a string guard
    that fixes the text (regex, membership), the decoder the bytes reach, value domains
    (tables, gathers, Assert bounds), then the remaining guards (length, exclusions,
    cond/where bounds)."""
    guard = analysis.find_guard_domain(model.meta_graph, spec.name, spec.dtype)
    strong = (guard is not None and isinstance(guard.encoding, GuardEncoding)
              and (guard.encoding.patterns or guard.encoding.choices is not None))
    if strong:
        return guard
    if spec.dtype == tf.string:  # bytes a graph decoder reads
        size = inputs.get(sig.name, spec.alias).image_size
        found = analysis.find_decoder_domain(model.meta_graph, spec.name, model.export_dir, size)
        if found is not None:
            return found
    found = analysis.find_value_domains(model.meta_graph, {spec.alias: spec.name}, None,
                                        export_dir=model.export_dir).get(spec.alias)
    if found is None and guard is None and spec.dtype == tf.string:
        refuse_unsupported_use(model, sig.name, spec)  # nothing says what to write: can any bytes do?
    return found if found is not None else guard


def refuse_unsupported_use(model, signature: str, spec) -> None:
    """A PlanError when a string input reaches an op the catalogue marks unsupported."""
    use = analysis.find_unsupported_use(model.meta_graph, spec.name)
    if use is None:
        return
    key = f"{signature}/{spec.alias}"
    raise PlanError(f"signature {signature!r}: input {spec.alias!r} reaches {use.op} (node {use.node}, "
                    f"input {use.arg!r}), which the op catalogue marks unsupported: {use.why}. No value "
                    f"the tool writes is known to work there; give values that do with "
                    f"overrides={{'{key}': [b'...']}} (CLI --value '{key}=[\"...\"]'), or leave the "
                    "signature out with signatures=[...] (CLI --signatures).")


# ---------------------------------------------------------------- issue 26: rules the graph states
def solve_constraints(model: ModelSignatures, sig: SignatureInfo, per_input: Mapping[str, FeedPlan],
                      sizes: tuple, batching, notes: list[str]) -> dict:
    """Per batch size, what ``analysis.constraint_solver`` makes of the signature's checks.

    Runs when something is not fixed by the signature or the user: a defaulted axis, or an
    integer input (ragged row_splits, segment ids, gather indices, sparse indices). Returns
    ``{batch_size: Solved}``; the plan note names the node each size or role comes from.
    """
    tensors = {a: p for a, p in per_input.items() if p.kind == TENSOR}
    if not tensors or not any(p.defaulted or p.spec.dtype.is_integer for p in tensors.values()):
        return {}
    inputs = []
    for alias, p in sorted(tensors.items()):
        if p.domain is not None and p.domain.user:
            continue  # the user's values stay as given
        shape = p.shape
        planned = ((shape[0],) + tuple(p.variant(0))) if len(shape) >= 1 else ()
        inputs.append(analysis.InputVar(alias, p.spec.name, p.spec.dtype, planned, tuple(p.defaulted)))
    outputs = [s.name for s in sig.outputs.values()]
    solved = {}
    for b in sizes:
        if b is None:
            continue
        solved[b] = analysis.solve_constraints(model.meta_graph, outputs, inputs, int(b))
    first = next(iter(solved.values()), None)
    if first is None:
        return {}
    moved = [r for r in first.roles if r.kind != analysis.INDEX and r.kind != analysis.SEGMENT_IDS]
    if moved and batching is not None:
        raise Skip(f"{moved[0].describe()}: the parts' 0th dimensions differ by construction, and TF "
                   "Serving's batching session refuses inputs whose 0th dimensions differ. Serve it "
                   "without batching, or feed one dense (padded) input")
    notes.extend(f"{sig.name}: {n}" for n in first.notes)
    notes.extend(f"{sig.name}: no size satisfies {u}; the record keeps the planned size" for u in first.unsolved)
    return solved


def solved_input(solved: Mapping, batch_size, variant: int, alias: str, shape: tuple,
                 domain: Domain | None, defaulted: set) -> tuple[tuple, Domain | None, set]:
    """An input's shape, value domain and defaulted axes after the solver (unchanged without one)."""
    s = solved.get(batch_size)
    if s is None or variant or alias not in s.shapes or (domain is not None and domain.user):
        return shape, domain, defaulted
    new_shape = tuple(s.shapes[alias])
    role = next((r for r in s.roles if alias in (r.alias,) + tuple(x for x in r.extra if isinstance(x, str))
                 or (r.target == alias and r.kind != analysis.INDEX)), None)
    if alias in s.values:
        domain = Domain(constant=s.values[alias], source=role.describe() if role else "planned with its parts")
    elif alias in s.bounds:
        low, high = s.bounds[alias]
        if domain is not None and domain.high is not None:
            high = min(high, domain.high)
        domain = Domain(low=low, high=high, source=role.describe() if role else "index bound")
    left = set(defaulted) - set(s.changed.get(alias, ()))
    if role is not None and role.kind != analysis.INDEX:
        left = set()
    return new_shape, domain, left


def refuse_unservable(model: ModelSignatures, sig: SignatureInfo) -> None:
    """Skip a signature that runs an op no model server can run (``tf.py_function``)."""
    found = analysis.find_unservable_op(model.meta_graph, [s.name for s in sig.outputs.values()])
    if found is not None:
        op, node, why = found
        raise Skip(f"it runs {op} (node {node}), an op that {why}: every request fails, so no "
                   f"warmup record can pass. Re-export it without {op}")


def solve_failed_record(meta_graph, record):
    """A failed record re-planned by the solver from its own shapes (data buckets, user dims
    and retries skip the plan-time solve), or None when the solver changes nothing.

    The failing check is among the rules solved; when no size satisfies it, None, and the
    error names the node and its condition (``analysis.Rejection.condition``).
    """
    sig = meta_graph.signature_def.get(record.signature) if meta_graph is not None else None
    tensors = [i for i in record.inputs if i.kind == "tensor" and len(i.shape) >= 1
               and not (i.domain is not None and i.domain.user)]
    if sig is None or not tensors or record.batch_size is None:
        return None
    inputs = [analysis.InputVar(i.alias, i.tensor, i.dtype, (None,) + tuple(i.shape[1:]), tuple(i.defaulted_axes))
              for i in tensors]
    solved = analysis.solve_constraints(meta_graph, [t.name for t in sig.outputs.values()], inputs,
                                        int(record.batch_size))
    if solved.unsolved or not (solved.changed or solved.values or solved.bounds):
        return None
    new, changed = [], False
    solvable = {i.alias for i in tensors}
    for i in record.inputs:
        if i.alias not in solvable:
            new.append(i)
            continue
        shape, domain, left = solved_input({0: solved}, 0, 0, i.alias, i.shape, i.domain, set(i.defaulted_axes))
        changed = changed or tuple(shape) != tuple(i.shape) or domain is not i.domain
        new.append(dataclasses.replace(i, shape=shape, domain=domain, defaulted_axes=tuple(sorted(left))))
    return dataclasses.replace(record, inputs=tuple(new)) if changed else None
