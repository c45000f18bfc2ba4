"""Ops no request can make work under TF Serving: the signature is refused before anything runs.

``tf.py_function``/``tf.numpy_function`` save as ``EagerPyFunc``/``PyFunc``: a token naming
a Python callable registered in the exporting process. ``tensorflow_model_server`` has
no Python, so every request to such a signature fails ("Could not find callback"),
whatever its values; a warmup file for it would fail the model's load.
"""
from __future__ import annotations

from typing import Sequence

from tfwarm_export.analysis.index import index_for

UNSERVABLE_OPS = {
    "PyFunc": "runs Python code (tf.numpy_function/tf.py_func), which tensorflow_model_server cannot run",
    "PyFuncStateless": "runs Python code (tf.numpy_function), which tensorflow_model_server cannot run",
    "EagerPyFunc": "runs Python code (tf.py_function), which tensorflow_model_server cannot run",
}


def find_unservable_op(meta_graph_def, output_tensor_names: Sequence[str]) -> tuple[str, str, str] | None:
    """(op, node, why) for the first op a signature runs that no server can run, or None."""
    found = sorted((node.op, node.qualified_name) for node, _ in
                   index_for(meta_graph_def).call_tree(output_tensor_names) if node.op in UNSERVABLE_OPS)
    if not found:
        return None
    op, node = found[0]
    return op, node, UNSERVABLE_OPS[op]


__all__ = ["UNSERVABLE_OPS", "find_unservable_op"]
