"""Stateful signatures: which ops a signature runs that change model state.

TF Serving replays warmup against the live model at every load, so a signature
that writes a variable or a table would change the model each time it loads.
"""
from __future__ import annotations

from typing import Sequence

from tfwarm_export.analysis.index import index_for

# Op types that change model state. Reached from a signature's outputs, they
# mean replaying the signature at load time mutates the model.
_STATEFUL_EXACT = frozenset({
    "StridedSliceAssign", "ResourceStridedSliceAssign",
    "ScatterUpdate", "ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv", "ScatterMin",
    "ScatterMax", "ScatterNdUpdate", "ScatterNdAdd", "ScatterNdSub", "ScatterNdMin",
    "ScatterNdMax", "CountUpTo", "ResourceCountUpTo",
})
_STATEFUL_PREFIXES = ("Assign", "ResourceScatter", "LookupTableInsert", "LookupTableRemove",
                      "LookupTableImport", "InitializeTable", "ResourceApply", "ApplyGradient",
                      "ResourceSparseApply", "SparseApply")
_TRAINING_APPLY = frozenset({
    "ApplyAdagrad", "ApplyAdam", "ApplyGradientDescent", "ApplyMomentum", "ApplyRMSProp",
    "ApplyFtrl", "ApplyFtrlV2", "ApplyAdadelta", "ApplyAdaMax", "ApplyCenteredRMSProp",
    "ApplyProximalAdagrad", "ApplyProximalGradientDescent", "ApplyPowerSign", "ApplyAddSign",
    "ApplyAdagradDA",
})


def is_stateful_op(op: str) -> bool:
    """True for op types that write variables or tables."""
    return op in _STATEFUL_EXACT or op in _TRAINING_APPLY or op.startswith(_STATEFUL_PREFIXES)


def find_stateful_ops(meta_graph_def, output_tensor_names: Sequence[str]) -> list[str]:
    """State-changing ops a signature runs: "OpType at node" for each, sorted.

    Walks backwards from the output tensors through data and control inputs
    and into every function the reached nodes call (their returns and
    control returns, which is what a function call executes). Restore and
    init ops hang off the graph, not off outputs, so they are not counted.
    """
    found = {f"{node.op} at {node.qualified_name}"
             for node, _ in index_for(meta_graph_def).call_tree(output_tensor_names)
             if is_stateful_op(node.op)}
    return sorted(found)
