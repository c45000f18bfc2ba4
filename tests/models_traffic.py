"""Small real SavedModels for the traffic tests: two versions of one model whose
signatures change between them (for ``previous_version``)."""
from __future__ import annotations

import os

import tensorflow as tf


class _V7(tf.Module):
    """serving_default(x float[?,3], ids int64[?,?], tag string[?]) and score(x)."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([3, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                  tf.TensorSpec([None, None], tf.int64, name="ids"),
                                  tf.TensorSpec([None], tf.string, name="tag")])
    def serve(self, x, ids, tag):
        extra = tf.cast(tf.reduce_sum(ids, axis=1, keepdims=True), tf.float32)
        extra += tf.cast(tf.strings.length(tag), tf.float32)[:, None]
        return {"y": tf.matmul(x, self.w) + extra}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def score(self, x):
        return {"s": tf.reduce_sum(x * 2.0, axis=1)}


class _V8(_V7):
    """serving_default loses ``tag``; score is unchanged; ``rank`` is new."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                  tf.TensorSpec([None, None], tf.int64, name="ids")])
    def serve8(self, x, ids):
        return {"y": tf.matmul(x, self.w) + tf.cast(tf.reduce_sum(ids, axis=1, keepdims=True), tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="q")])
    def rank(self, q):
        return {"r": tf.reduce_max(q, axis=1)}


def traffic_model(path, version: int = 7) -> str:
    """Version 7 or 8 of the traffic test model, saved with tf.saved_model.save."""
    path = os.fspath(path)
    if version == 7:
        m = _V7()
        sigs = {"serving_default": m.serve, "score": m.score}
    else:
        m = _V8()
        sigs = {"serving_default": m.serve8, "score": m.score, "rank": m.rank}
    tf.saved_model.save(m, path, signatures=sigs)
    return path
