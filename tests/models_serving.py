"""Small real SavedModels for the server-configuration tests (tests/test_serving_config.py)."""
from __future__ import annotations

import os

import tensorflow as tf


def rank0_module(export_dir) -> str:
    """A batched signature beside a rank-0 one (which TF Serving's batching rejects)."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[1.0], [2.0], [3.0]])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.matmul(x, self.w)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="t")])
        def scalar(self, t):
            return {"t2": t * 2.0}

    m = M()
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(m, export_dir, signatures={"serving_default": m.serve, "scalar": m.scalar})
    return export_dir


def shared_state_module(export_dir) -> str:
    """Two signatures over one variable: ``bump`` adds to it, ``read`` reads it."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.v = tf.Variable(0.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def read(self, x):
            return {"y": x + self.v}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def bump(self, x):
            self.v.assign_add(1.0)
            return {"y": x * 0.0 + self.v.read_value()}

    m = M()
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(m, export_dir, signatures={"serving_default": m.read, "bump": m.bump})
    return export_dir


def xla_sequence_module(export_dir) -> str:
    """A jit-compiled (XLA) signature over [batch, length] token ids, length unknown."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.emb = tf.Variable(tf.random.stateless_normal([50, 8], seed=(1, 2)))

        @tf.function(jit_compile=True)
        def encode(self, ids, mask):
            h = tf.gather(self.emb, ids) * tf.cast(mask, tf.float32)[..., None]
            return tf.reduce_sum(tf.tanh(tf.matmul(h, h, transpose_b=True)), axis=[1, 2])

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                      tf.TensorSpec([None, None], tf.int32, name="mask")])
        def seq(self, ids, mask):
            return {"score": self.encode(ids, mask)}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def plain(self, x):
            return {"y": x * 2.0}

    m = M()
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(m, export_dir, signatures={"seq": m.seq, "serving_default": m.plain})
    return export_dir
