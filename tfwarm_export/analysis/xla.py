"""Signatures that compile with XLA, found statically from the graph.

XLA compiles a cluster once per distinct input shape, so a signature that runs
XLA and has an unknown non-batch dimension compiles again for every length a
request brings. Warmup moves those compiles to load time only for the lengths it
sends; this finds the signatures where that matters. Three markers, as TF
Serving's runtime would meet them: a function-call node with ``_XlaMustCompile``
(``tf.function(jit_compile=True)``), a library function whose own attrs carry it,
and already-clustered ``XlaLaunch``/``_XlaCompile`` ops (auto-clustered exports).
"""
from __future__ import annotations

from typing import Sequence

from tfwarm_export.analysis.index import index_for

XLA_OPS = frozenset({"XlaLaunch", "_XlaCompile", "_XlaRun", "XlaLaunchV2"})
XLA_ATTR = "_XlaMustCompile"


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
        if node.op in XLA_OPS:
            found.add(f"{node.op} at {node.qualified_name}")
        if node.node_def is not None and _attr_true(node.node_def.attr, XLA_ATTR):
            calls = idx.calls.get(node.key, ())
            target = calls[0].function if calls else node.qualified_name
            found.add(f"jit-compiled function {target}")
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
