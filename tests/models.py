"""Builders of small real SavedModels for the tests (no mocks of TensorFlow)."""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

ALL_DTYPES = [
    tf.float16, tf.bfloat16, tf.float32, tf.float64,
    tf.int8, tf.int16, tf.int32, tf.int64,
    tf.uint8, tf.uint16, tf.uint32, tf.uint64,
    tf.bool, tf.complex64, tf.complex128, tf.string,
]


def save_module(module: tf.Module, export_dir, signatures) -> str:
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir


def mixed_module(export_dir) -> str:
    """tf.Module with two signatures, mixed dtypes and a variable dimension."""

    class Mixed(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="dense"),
                                      tf.TensorSpec([None, None], tf.int64, name="ids")])
        def serve(self, dense, ids):
            return {"y": tf.matmul(dense, self.w), "ids_sum": tf.reduce_sum(ids, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None, 2], tf.float16, name="half")])
        def other(self, text, half):
            return {"length": tf.strings.length(text), "half2": half * 2}

    m = Mixed()
    return save_module(m, export_dir, {"serving_default": m.serve, "other": m.other})


def dtype_module(export_dir, dtypes=ALL_DTYPES) -> str:
    """One signature per dtype: identity-like on a [batch, 2] input of that dtype."""

    class D(tf.Module):
        pass

    m = D()
    sigs = {}
    for dt in dtypes:
        def fn(x, _dt=dt):
            return {"out": tf.identity(x), "rows": tf.zeros(tf.shape(x)[:1])}

        f = tf.function(fn, input_signature=[tf.TensorSpec([None, 2], dt, name="x")])
        setattr(m, f"f_{dt.name}", f)
        sigs[f"sig_{dt.name}"] = f
    return save_module(m, export_dir, sigs)


def keras_dict_model(export_dir) -> str:
    """A Keras 3 functional model with named dict inputs, exported with model.export."""
    import keras

    a = keras.Input(shape=(4,), name="age_income")
    b = keras.Input(shape=(6,), name="embedding_in")
    x = keras.layers.Concatenate()([keras.layers.Dense(5)(a), keras.layers.Dense(5)(b)])
    out = keras.layers.Dense(1, name="score")(x)
    model = keras.Model({"age_income": a, "embedding_in": b}, out)
    model.export(os.fspath(export_dir), format="tf_saved_model", verbose=False)
    return os.fspath(export_dir)


def tf1_builder_model(export_dir) -> str:
    """A TF1 SavedModelBuilder export with a predict signature and a variable."""
    export_dir = os.fspath(export_dir)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        k = tf.compat.v1.placeholder(tf.int32, [None], name="k")
        w = tf.compat.v1.get_variable("w", initializer=tf.ones([3, 1]))
        y = tf.add(tf.matmul(x, w), tf.cast(tf.expand_dims(k, 1), tf.float32), name="y")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(export_dir)
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x, "k": k}, {"y": y})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
    return export_dir


def scalar_module(export_dir) -> str:
    """A signature with a rank-0 input next to a batched one."""

    class S(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                      tf.TensorSpec([], tf.float32, name="scale")])
        def serve(self, x, scale):
            return {"y": x * scale}

    m = S()
    return save_module(m, export_dir, {"serving_default": m.serve})


def unknown_rank_module(export_dir) -> str:
    class U(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
        def serve(self, x):
            return {"y": x + 1.0}

    m = U()
    return save_module(m, export_dir, {"serving_default": m.serve})


def guarded_module(export_dir) -> str:
    """Rejects values >= 100 at run time: synthetic values pass, a bad override fails replay."""

    class G(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            with tf.control_dependencies([tf.debugging.assert_less(x, 100.0, message="x too big")]):
                return {"y": tf.identity(x) * 2.0}

    m = G()
    return save_module(m, export_dir, {"serving_default": m.serve})
