"""Tiny real SavedModels whose string inputs the graph decodes (images, CSV, numbers, raw bytes).

Each is a ``tf.Module`` saved with ``tf.saved_model.save``, built the way such
serving functions are written in the wild: ``tf.map_fn`` over a batch of
encoded images, ``tf.cond``/``tf.switch_case`` around a decoder, base64 from a
REST client, CSV lines, decimal strings, raw bytes and serialized tensors.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _save(module: tf.Module, export_dir, fn) -> str:
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": fn})
    return export_dir


def _dense(n_in: int, n_out: int, seed: int) -> tf.Variable:
    return tf.Variable(np.random.default_rng(seed).normal(size=(n_in, n_out)).astype("float32"))


def jpeg_classifier(export_dir) -> str:
    """JPEG bytes [batch] -> decode_jpeg in map_fn -> resize to 24x24 -> linear classifier."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(3, 5, 0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            def one(b):
                img = tf.io.decode_jpeg(b, channels=3)
                return tf.image.resize(tf.cast(img, tf.float32) / 255.0, [24, 24])

            images = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([24, 24, 3], tf.float32))
            return {"logits": tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.w)}

    m = M()
    return _save(m, export_dir, m.serve)


def decode_image_with_float(export_dir) -> str:
    """Any-format image bytes beside a float input; tf.switch_case picks a branch by the float."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                      tf.TensorSpec([None], tf.float32, name="scale")])
        def serve(self, image, scale):
            def one(b):
                img = tf.io.decode_image(b, channels=3, expand_animations=False)
                return tf.image.resize(tf.cast(img, tf.float32), [16, 16])

            images = tf.map_fn(one, image, fn_output_signature=tf.TensorSpec([16, 16, 3], tf.float32))
            branch = tf.cast(tf.reduce_mean(scale) > 0, tf.int32)
            mean = tf.switch_case(branch, [lambda: tf.reduce_mean(images, axis=[1, 2, 3]),
                                           lambda: tf.reduce_max(images, axis=[1, 2, 3])])
            return {"y": mean * scale}

    m = M()
    return _save(m, export_dir, m.serve)


def png_through_cond(export_dir) -> str:
    """PNG bytes; each element decoded inside tf.cond (empty bytes -> zeros) inside map_fn."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="png")])
        def serve(self, png):
            def one(b):
                return tf.cond(tf.strings.length(b) > 0,
                               lambda: tf.image.resize(tf.cast(tf.io.decode_png(b, channels=4), tf.float32),
                                                       [8, 8]),
                               lambda: tf.zeros([8, 8, 4]))

            images = tf.map_fn(one, png, fn_output_signature=tf.TensorSpec([8, 8, 4], tf.float32))
            return {"alpha_mean": tf.reduce_mean(images[..., 3], axis=[1, 2])}

    m = M()
    return _save(m, export_dir, m.serve)


def base64_jpeg(export_dir) -> str:
    """Web-safe base64 of JPEG bytes (what a REST client sends), decoded in the graph."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="b64")])
        def serve(self, b64):
            def one(s):
                img = tf.io.decode_jpeg(tf.io.decode_base64(s), channels=1)
                return tf.image.resize(tf.cast(img, tf.float32), [12, 12])

            images = tf.map_fn(one, b64, fn_output_signature=tf.TensorSpec([12, 12, 1], tf.float32))
            return {"mean": tf.reduce_mean(images, axis=[1, 2, 3])}

    m = M()
    return _save(m, export_dir, m.serve)


def csv_lines(export_dir) -> str:
    """CSV lines with 4 typed fields (float, int, string, double); the string one is optional."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.emb = _dense(50, 2, 1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="line")])
        def serve(self, line):
            price, qty, city, weight = tf.io.decode_csv(
                line, record_defaults=[tf.constant([], tf.float32), tf.constant([], tf.int32),
                                       tf.constant(["unknown"]), tf.constant([], tf.float64)])
            city_vec = tf.nn.embedding_lookup(self.emb, tf.strings.to_hash_bucket_fast(city, 50))
            x = price * tf.cast(qty, tf.float32) + tf.cast(weight, tf.float32)
            return {"score": x + tf.reduce_sum(city_vec, axis=1)}

    m = M()
    return _save(m, export_dir, m.serve)


def number_strings(export_dir) -> str:
    """Amounts as decimal strings, [batch, 3], parsed with tf.strings.to_number."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(3, 1, 2)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.string, name="amounts")])
        def serve(self, amounts):
            x = tf.strings.to_number(amounts, out_type=tf.float32)
            return {"risk": tf.matmul(x, self.w)}

    m = M()
    return _save(m, export_dir, m.serve)


def raw_bytes(export_dir) -> str:
    """Raw little-endian float32 bytes per row, decode_raw then reshape to [batch, 4, 4]."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="raw")])
        def serve(self, raw):
            x = tf.reshape(tf.io.decode_raw(raw, tf.float32), [-1, 4, 4])
            return {"trace": tf.linalg.trace(x)}

    m = M()
    return _save(m, export_dir, m.serve)


def serialized_tensor(export_dir) -> str:
    """Serialized float TensorProtos of shape [8], one per row, parsed in map_fn."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(8, 2, 3)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tensor")])
        def serve(self, tensor):
            rows = tf.map_fn(lambda s: tf.ensure_shape(tf.io.parse_tensor(s, tf.float32), [8]), tensor,
                             fn_output_signature=tf.TensorSpec([8], tf.float32))
            return {"y": tf.matmul(rows, self.w)}

    m = M()
    return _save(m, export_dir, m.serve)


BUILDERS = {
    "jpeg_map_fn": jpeg_classifier,
    "decode_image_float": decode_image_with_float,
    "png_cond": png_through_cond,
    "base64_jpeg": base64_jpeg,
    "csv": csv_lines,
    "number_strings": number_strings,
    "decode_raw": raw_bytes,
    "parse_tensor": serialized_tensor,
}
