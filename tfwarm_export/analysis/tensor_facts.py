"""What the graph itself says about a fed tensor: its dtype and static shape.

A SignatureDef's ``TensorInfo`` is only a description. Old TF1 exports leave out
``tensor_shape`` (which does *not* mean scalar), some record a dtype that
disagrees with the placeholder they name (a float ``inputs`` over a string
``tf_example`` placeholder), and a few carry ``DT_INVALID``. ``Session::Run``
follows the graph, so that is what a warmup request must match.

The placeholder's own attrs answer most cases without TensorFlow; anything else
(an ``Identity`` fed directly, an old graph whose empty ``shape`` attr means
"unknown") goes through TF's shape inference on the imported graph.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from tfwarm_export.analysis.index import MAIN, index_for

log = logging.getLogger("tfwarm_export.analysis")

_PLACEHOLDERS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
# TF's Placeholder shape function: up to this GraphDef producer version an empty
# shape attr cannot be told from "unknown", so it is read as unknown.
_LEGACY_PLACEHOLDER_PRODUCER = 21


@dataclass(frozen=True)
class GraphTensor:
    """A tensor as the graph defines it. ``shape`` None: unknown rank; ``source`` says how we know."""

    dtype: tf.DType | None
    shape: tuple | None
    source: str


def _shape_tuple(proto) -> tuple | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def _from_placeholder(meta_graph: meta_graph_pb2.MetaGraphDef, tensor_name: str) -> GraphTensor | None:
    idx = index_for(meta_graph)
    ref = idx.tensor_ref(tensor_name)
    node = idx.producer(ref) if ref is not None else None
    if node is None or node.scope != MAIN or node.op not in _PLACEHOLDERS or ref[2] != 0:
        return None
    dtype_attr = node.attr("dtype")
    dtype = tf.dtypes.as_dtype(dtype_attr.type) if dtype_attr is not None and dtype_attr.type else None
    shape_attr = node.attr("shape")
    shape = None
    if shape_attr is not None and shape_attr.HasField("shape"):
        shape = _shape_tuple(shape_attr.shape)
        producer = meta_graph.graph_def.versions.producer
        if shape == () and producer <= _LEGACY_PLACEHOLDER_PRODUCER:
            shape = None
    return GraphTensor(dtype, shape, f"{node.op} {node.name}")


_INFERRED: list[tuple[meta_graph_pb2.MetaGraphDef, tf.Graph | None]] = []


def _imported_graph(meta_graph: meta_graph_pb2.MetaGraphDef) -> tf.Graph | None:
    """The graph imported once (shape inference runs on import); None if TF cannot import it."""
    for mg, g in _INFERRED:
        if mg is meta_graph:
            return g
    graph: tf.Graph | None = tf.Graph()
    try:
        with graph.as_default():
            tf.graph_util.import_graph_def(meta_graph.graph_def, name="")
    except (tf.errors.OpError, ValueError, TypeError) as e:
        # Unregistered ops (NotFoundError), inconsistent graphs (ValueError: unknown input
        # node, bad attr), malformed protos (TypeError): no inference, not a failure.
        log.debug("shape inference off for this MetaGraph: importing its graph failed with "
                  "%s: %s; tensor facts come from placeholders only", type(e).__name__, e)
        graph = None
    _INFERRED.append((meta_graph, graph))
    del _INFERRED[:-2]
    return graph


def graph_tensor(meta_graph: meta_graph_pb2.MetaGraphDef, tensor_name: str,
                 infer: bool = True) -> GraphTensor | None:
    """dtype and static shape of ``tensor_name`` in the main graph, or None when unknown.

    A placeholder's attrs are read directly; otherwise (and when ``infer``) TF's
    shape inference over the imported graph answers.
    """
    found = _from_placeholder(meta_graph, tensor_name)
    if found is not None and found.shape is not None:
        return found
    if not infer:
        return found
    graph = _imported_graph(meta_graph)
    if graph is None:
        return found
    try:
        t = graph.get_tensor_by_name(tensor_name)
    except (KeyError, ValueError):
        return found
    dims = t.shape.as_list() if t.shape.rank is not None else None
    inferred = GraphTensor(t.dtype.base_dtype, None if dims is None else tuple(dims),
                           f"shape inference on {t.op.type} {t.op.name}")
    if found is not None and inferred.shape is None:
        return found
    return inferred
