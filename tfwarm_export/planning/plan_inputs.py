"""Planning for inputs that are not one plain tensor: the parts of a ragged or sparse value.

``plan.py`` plans each alias on its own; the parts of a composite must instead be
sized together (the batch, the longest row per ragged dimension, the dense
shape of a sparse value), so their plan lives here. The values themselves are
made in ``composite_values.py`` from the sizes chosen here.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from tfwarm_export import analysis
from tfwarm_export.analysis.composites import DENSE_SHAPE, INDICES, RAGGED, ROW_SPLITS, VALUES
from tfwarm_export.config import DEFAULT_DIM_SIZE
from tfwarm_export.specs.domains import Domain
from tfwarm_export.errors import PlanError
from tfwarm_export.model.signatures import ModelSignatures, SignatureInfo, TensorSpec
from tfwarm_export.planning.feeds import COMPOSITE, FeedPlan
from tfwarm_export.planning.input_options import ResolvedInputs

UNKNOWN = -1
"""A part's dimension that depends on the values (ragged row lengths, non-zero count)."""


class Skip(Exception):
    """A signature TF Serving could never run; becomes a ``skipped`` entry."""


def composite_batching_reason(composites: Mapping[str, analysis.Component]) -> str:
    groups = sorted({f"{c.spec.kind} {c.group} ({', '.join(c.aliases)})" for c in composites.values()})
    return (f"inputs {', '.join(groups)} are the flattened parts of ragged/sparse tensors; their 0th "
            "dimensions differ by construction (row_splits has batch+1 entries, values one per "
            "element, indices one per non-zero, dense_shape one per dimension), and TF Serving's "
            "batching session rejects such a run (\"Batching Run() input tensors must have equal "
            "0th-dimension size\") and would concatenate and pad the parts of different requests as "
            "if they were rows. Serve this signature from a model without batching, or export it "
            "with dense (padded) inputs")


def _logical_sizes(sig: SignatureInfo, component: analysis.Component, inputs: ResolvedInputs) -> tuple[int, ...]:
    """Sizes of the composite's non-batch dimensions: the signature's, the user's, or the default.

    For a ragged dimension the size is the longest row; rows get lengths up to it.
    """
    spec = component.spec
    shape = spec.shape
    if shape is None:
        raise Skip(f"{spec.kind} input {component.group!r} has unknown rank; no value can be built. "
                   f"Re-export it with a known rank (e.g. tf.{'RaggedTensorSpec' if spec.kind == RAGGED else 'SparseTensorSpec'}"
                   "([None, None], ...))")
    dims = inputs.get(sig.name, component.group).dims
    sizes = []
    for axis, d in enumerate(shape[1:], start=1):
        if d is not None:
            sizes.append(int(d))
            continue
        chosen = dims.get(axis, dims.get(str(axis), DEFAULT_DIM_SIZE))
        chosen = chosen[0] if isinstance(chosen, (list, tuple)) and chosen else chosen
        if int(chosen) < 1:
            raise PlanError(f"dim size for {sig.name}/{component.group} axis {axis} must be >= 1, got {chosen}")
        sizes.append(int(chosen))
    return tuple(sizes)


def composite_input(model: ModelSignatures, sig: SignatureInfo, spec: TensorSpec,
                    component: analysis.Component, inputs: ResolvedInputs) -> FeedPlan:
    """The plan entry for one part of a composite: its logical non-batch sizes and, for the
    values part, a value domain (the user's override for the part or the whole composite,
    else what the graph says, e.g. an embedding's vocabulary size for ragged ids)."""
    rest = _logical_sizes(sig, component, inputs)
    domain = None
    if component.role == VALUES:
        override = inputs.get(sig.name, spec.alias).override
        if override is None:
            override = inputs.get(sig.name, component.group).override
        if override is not None:
            domain = Domain.from_user(override)
        else:
            domain = analysis.find_value_domains(model.meta_graph, {spec.alias: spec.name}, None,
                                                 export_dir=model.export_dir).get(spec.alias)
    batch_dim = component.spec.shape[0] if component.spec.shape else None
    return FeedPlan(spec=spec, shape=(batch_dim,) + rest, variants=(rest,), kind=COMPOSITE, domain=domain,
                    component=component, batch_dim=batch_dim)


def logical_signature(model: ModelSignatures, sig: SignatureInfo) -> SignatureInfo:
    """The signature as user data holds it: one input per ragged/sparse value, named by its
    first alias and shaped like the whole value (sparse data comes densified)."""
    parts = analysis.find_composites(model.meta_graph, {a: (s.name, s.dtype) for a, s in sig.inputs.items()})
    if not parts:
        return sig
    inputs = {a: s for a, s in sig.inputs.items() if a not in parts}
    for c in parts.values():
        inputs[c.group] = TensorSpec(alias=c.group, name=sig.inputs[c.group].name, dtype=c.spec.dtype,
                                     shape=c.spec.shape)
    return dataclasses.replace(sig, inputs=inputs)


def composite_part_shape(component: analysis.Component) -> tuple[int, ...]:
    """The shape of one part's tensor; ``UNKNOWN`` where the values decide it."""
    spec, sizes = component.spec, component.sizes
    batch = sizes[0]
    if spec.kind == RAGGED:
        inner = tuple(sizes[1 + spec.ragged_rank:])
        if component.role == VALUES:
            return (UNKNOWN,) + inner
        if component.role == ROW_SPLITS and component.level == 1:
            return (batch + 1,)
        return (UNKNOWN,)
    rank = len(sizes)
    return {INDICES: (UNKNOWN, rank), VALUES: (UNKNOWN,), DENSE_SHAPE: (rank,)}[component.role]
