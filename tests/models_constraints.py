"""Real SavedModels for issue 26: rules the graph states about sizes, windows and related inputs.

Each signature is written the way serving code does it: ``tf.debugging.assert_equal`` on a
dimension, ``tf.image.crop_to_bounding_box`` on an image of unknown size, ragged and sparse
values rebuilt by hand from plain inputs, segment ops, gathers indexed by another input,
ops that need equal dimensions across inputs, and a membership check written as a
broadcast comparison. Many signatures share few SavedModels to keep the build short.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

F32, I32, I64 = tf.float32, tf.int32, tf.int64


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


class Shapes(tf.Module):
    """Checks and windows on the sizes of single inputs."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(16, dtype="float32").reshape(8, 2) / 16.0)

    @tf.function(input_signature=[_spec([None, None], F32, "x")])
    def assert12(self, x):
        with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(x)[1], 12)]):
            return {"y": tf.reduce_sum(x, axis=1)}

    @tf.function(input_signature=[_spec([None, None, None, 3], F32, "img")])
    def crop(self, img):
        return {"y": tf.reduce_mean(tf.image.crop_to_bounding_box(img, 16, 16, 64, 64), axis=[1, 2])}

    @tf.function(input_signature=[_spec([None, None, None, 1], F32, "img")])
    def pad(self, img):
        return {"y": tf.image.pad_to_bounding_box(img, 1, 1, 3, 3)}

    @tf.function(input_signature=[_spec([None, None], F32, "x")])
    def window(self, x):
        return {"y": tf.slice(x, [0, 5], [-1, 10])}

    @tf.function(input_signature=[_spec([None, None, None], F32, "x")])
    def strided(self, x):
        return {"y": x[:, 9, 2:4]}

    @tf.function(input_signature=[_spec([None, None], F32, "a"), _spec([None, 3], F32, "b")])
    def concat5(self, a, b):
        return {"y": tf.matmul(tf.concat([a, b], axis=1), self.w)}

    @tf.function(input_signature=[_spec([None, None], F32, "x")])
    def split(self, x):
        a, b, c = tf.split(x, 3, axis=1)
        return {"y": a * b + c}

    @tf.function(input_signature=[_spec([None, None, None], F32, "x")])
    def divisible(self, x):
        return {"y": tf.reduce_sum(tf.reshape(x, [-1, 6]), axis=1)}


class Agree(tf.Module):
    """Inputs whose unknown dimensions must equal another input's."""

    @tf.function(input_signature=[_spec([None, None, None], F32, "q"), _spec([None, 7, 5], F32, "k")])
    def matmul(self, q, k):
        return {"y": tf.matmul(q, k)}

    @tf.function(input_signature=[_spec([None, None, None], F32, "a"), _spec([None, 5, 3], F32, "b")])
    def concat(self, a, b):
        return {"y": tf.concat([a, b], axis=2)}

    @tf.function(input_signature=[_spec([None, None], F32, "x"), _spec([None, 6], F32, "y")])
    def elementwise(self, x, y):
        return {"z": x * y + 1.0}

    @tf.function(input_signature=[_spec([None, None, 16], F32, "query"), _spec([None, None, 16], F32, "key"),
                                  _spec([None, 10, 8], F32, "value")])
    def attention(self, query, key, value):
        scores = tf.nn.softmax(tf.matmul(query, key, transpose_b=True) / 4.0, axis=-1)
        return {"out": tf.matmul(scores, value)}

    @tf.function(input_signature=[_spec([None, None, 16], F32, "q"), _spec([None, None, 16], F32, "k"),
                                  _spec([None, 10, 8], F32, "v")])
    def einsum(self, q, k, v):
        scores = tf.nn.softmax(tf.einsum("bqd,bkd->bqk", q, k), axis=-1)
        return {"out": tf.einsum("bqk,bkv->bqv", scores, v)}

    @tf.function(input_signature=[_spec([None, None], F32, "x"), _spec([None, 6, None], F32, "y")])
    def assert_shapes(self, x, y):
        tf.debugging.assert_shapes([(x, ("N", "D")), (y, ("N", "D", 3))])  # kept by auto control deps
        return {"z": tf.reduce_sum(x, axis=1) + tf.reduce_sum(y, axis=[1, 2])}


class Related(tf.Module):
    """One value rebuilt from several plain inputs: the parts must agree."""

    @tf.function(input_signature=[_spec([None], F32, "values"), _spec([None], I64, "row_splits")])
    def ragged_splits(self, values, row_splits):
        rt = tf.RaggedTensor.from_row_splits(values, row_splits, validate=True)
        return {"y": tf.reduce_sum(rt, axis=1)}

    @tf.function(input_signature=[_spec([None], F32, "values"), _spec([None], I64, "row_lengths")])
    def ragged_lengths(self, values, row_lengths):
        rt = tf.RaggedTensor.from_row_lengths(values, row_lengths, validate=True)
        return {"y": tf.reduce_max(rt, axis=1)}

    @tf.function(input_signature=[_spec([None], F32, "values"), _spec([None], I64, "rowids")])
    def ragged_rowids(self, values, rowids):
        rt = tf.RaggedTensor.from_value_rowids(values, rowids, validate=True)
        return {"y": tf.reduce_sum(rt, axis=1)}

    @tf.function(input_signature=[_spec([None], F32, "values"), _spec([None], I64, "row_starts")])
    def ragged_starts(self, values, row_starts):
        rt = tf.RaggedTensor.from_row_starts(values, row_starts, validate=True)
        return {"y": tf.reduce_sum(rt, axis=1)}

    @tf.function(input_signature=[_spec([None, 5, 2], F32, "grid"), _spec([None, 2], I32, "points")])
    def gather_nd(self, grid, points):
        return {"y": tf.gather_nd(grid, points)}

    @tf.function(input_signature=[_spec([None], F32, "flat"), _spec([None], I64, "outer"),
                                  _spec([None], I64, "inner")])
    def ragged_nested(self, flat, outer, inner):
        rt = tf.RaggedTensor.from_nested_row_splits(flat, [outer, inner], validate=True)
        return {"y": tf.reduce_sum(rt, axis=[1, 2])}

    @tf.function(input_signature=[_spec([None, 2], I64, "indices"), _spec([None], F32, "values"),
                                  _spec([2], I64, "dense_shape")])
    def sparse(self, indices, values, dense_shape):
        sp = tf.sparse.SparseTensor(indices, values, dense_shape)
        return {"y": tf.sparse.to_dense(sp)}

    @tf.function(input_signature=[_spec([None, 3], F32, "data"), _spec([None], I32, "segment_ids")])
    def segment(self, data, segment_ids):
        return {"y": tf.math.segment_sum(data, segment_ids)}

    @tf.function(input_signature=[_spec([None, 4], F32, "table"), _spec([None], I32, "ids")])
    def gather(self, table, ids):
        return {"y": tf.gather(table, ids)}

    @tf.function(input_signature=[_spec([None], tf.string, "country")])
    def membership(self, country):
        known = tf.constant(["AT", "BE", "CH"])
        ok = tf.reduce_all(tf.reduce_any(tf.equal(country[:, None], known[None, :]), axis=1))
        with tf.control_dependencies([tf.debugging.Assert(ok, [country])]):
            return {"n": tf.strings.length(country)}


def keras_crop(export_dir) -> str:
    """A Keras 3 model (``model.export``) cropping a fixed window out of an image of any size,
    then split into 4 channel groups: the image must be at least 16 + 64 pixels each way."""
    import keras

    img = keras.Input((None, None, 3), name="image")
    crop = keras.layers.Lambda(lambda x: tf.image.crop_to_bounding_box(x, 16, 16, 64, 64))(img)
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(crop))
    model = keras.Model(img, out)
    export_dir = os.fspath(export_dir)
    model.export(export_dir, verbose=False)
    return export_dir


def _save(module: tf.Module, export_dir) -> str:
    export_dir = os.fspath(export_dir)
    fns = {name: getattr(module, name) for name in sorted(dir(type(module)))
           if isinstance(getattr(type(module), name, None), tf.types.experimental.GenericFunction)}
    fns["serving_default"] = fns[sorted(fns)[0]]
    tf.saved_model.save(module, export_dir, signatures=fns)
    return export_dir


def shapes(export_dir) -> str:
    return _save(Shapes(), export_dir)


def agree(export_dir) -> str:
    return _save(Agree(), export_dir)


def related(export_dir) -> str:
    return _save(Related(), export_dir)


ALL = {"shapes": shapes, "agree": agree, "related": related, "keras_crop": keras_crop}

RULE_MODELS = {
    # every rule of analysis.constraint_solver.RULES -> (model in ALL, signature exercising it)
    "assert condition": ("shapes", "assert12"), "slice window": ("shapes", "window"),
    "strided index": ("shapes", "strided"), "reshape divisibility": ("shapes", "divisible"),
    "matmul inner": ("shapes", "concat5"), "concat other axes": ("agree", "concat"),
    "einsum subscripts": ("agree", "einsum"), "split divisibility": ("shapes", "split"),
    "broadcast": ("agree", "elementwise"), "ragged row_splits": ("related", "ragged_splits"),
    "ragged row_lengths": ("related", "ragged_lengths"), "ragged value_rowids": ("related", "ragged_rowids"),
    "ragged nested": ("related", "ragged_nested"), "ragged row_starts": ("related", "ragged_starts"), "sparse parts": ("related", "sparse"),
    "segment ids": ("related", "segment"), "gather index": ("related", "gather"),
}
CLASSES = {"shapes": Shapes, "agree": Agree, "related": Related}
