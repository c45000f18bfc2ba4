"""Signatures that compile with XLA, found statically from the graph.

XLA compiles a cluster once per distinct input shape, so a signature that runs
XLA and has an unknown non-batch dimension compiles again for every length a
request brings. Warmup moves those compiles to load time only for the lengths it
sends; this finds the signatures where that matters. Every door into XLA, as TF
Serving's runtime would meet them:

- a function-call node, or a library function, with ``_XlaMustCompile``
  (``tf.function(jit_compile=True)``);
- a node with ``_XlaCompile`` set (``tf.xla.experimental.jit_scope``);
- already-clustered ``XlaLaunch``/``XlaLaunchV2``/``_XlaCompile``/``_XlaRun`` ops
  (auto-clustered exports);
- ``XlaCallModule``: a StableHLO module compiled per shape (jax2tf, Keras 3
  ``model.export`` on the JAX backend);
- any other ``Xla*`` op (``XlaDot``, ``XlaConv``, ``XlaGather``, ...): tf2xla ops
  whose CPU/GPU kernel is ``XlaCompileOnDemandOp``, which compiles per shape.
"""
from __future__ import annotations

from typing import Sequence

from tfwarm_export.analysis.index import index_for

XLA_OPS = frozenset({"XlaLaunch", "_XlaCompile", "_XlaRun", "XlaLaunchV2", "XlaCallModule"})
XLA_OP_PREFIX = "Xla"
"""tf2xla ops (``XlaDot``, ``XlaSort``, ...) run through an on-demand compile per shape."""
XLA_ATTR = "_XlaMustCompile"
JIT_SCOPE_ATTR = "_XlaCompile"


def is_xla_op(op: str) -> bool:
    """Whether running this op compiles it with XLA for each new input shape."""
    return op in XLA_OPS or op.startswith(XLA_OP_PREFIX)


def _attr_true(attrs, name: str) -> bool:
    return name in attrs and bool(attrs[name].b)


def find_xla_compilation(meta_graph_def, output_tensor_names: Sequence[str]) -> list[str]:
    """Where a signature compiles with XLA ("jit-compiled function F", "XlaLaunch at N"), sorted.

    Walks back from the outputs through data and control inputs and into every
    function the reached nodes call, like ``find_stateful_ops``. Empty when the
    signature's call tree has no XLA marker.
    """
    idx = index_for(meta_graph_def)
    found: set[str] = set()
    for node, new_functions in idx.call_tree(output_tensor_names):
        if is_xla_op(node.op):
            found.add(f"{node.op} at {node.qualified_name}")
        if node.node_def is not None and _attr_true(node.node_def.attr, XLA_ATTR):
            calls = idx.calls.get(node.key, ())
            target = calls[0].function if calls else node.qualified_name
            found.add(f"jit-compiled function {target}")
        elif node.node_def is not None and _attr_true(node.node_def.attr, JIT_SCOPE_ATTR):
            found.add(f"jit_scope node {node.qualified_name}")
        for fname in new_functions:
            if _attr_true(idx.functions[fname].attr, XLA_ATTR):
                found.add(f"jit-compiled function {fname}")
    return sorted(found)


def xla_shape_warning(where: Sequence[str], default_size: int, ms: float | None = None) -> str:
    """The user-facing flag for an XLA signature warmed only at the default dim size."""
    cost = f"about {ms:.0f} ms each, measured in replay" if ms is not None else "measured in replay"
    first = where[0] if where else "XLA"
    more = f" and {len(where) - 1} more" if len(where) > 1 else ""
    return (f"compiles with XLA ({first}{more}): compiles once per shape; lengths other than "
            f"{default_size} will compile at request time ({cost}); give `dim_sizes=` or "
            "traffic/a dataset")
