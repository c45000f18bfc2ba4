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


HAS_WEBP = hasattr(tf.io, "decode_webp")
"""Older TF (2.15, 2.17) has no ``tf.io.decode_webp``; the zoo's webp signature needs it."""

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


def decoder_zoo(export_dir) -> str:
    """One SavedModel, one signature per less common decoder path (saved once for the tests)."""

    def sig(*specs):
        return tf.function(input_signature=list(specs))

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.emb = _dense(30, 2, 4)

        @sig(tf.TensorSpec([None], tf.string, name="gif"))
        def gif(self, gif):
            return {"y": tf.map_fn(lambda b: tf.reduce_mean(tf.cast(tf.io.decode_gif(b), tf.float32)), gif,
                                fn_output_signature=tf.float32)}

        @sig(tf.TensorSpec([None], tf.string, name="bmp"))
        def bmp(self, bmp):
            return {"y": tf.map_fn(lambda b: tf.reduce_mean(tf.cast(tf.io.decode_bmp(b, channels=4),
                                                                     tf.float32)), bmp,
                                fn_output_signature=tf.float32)}

        if HAS_WEBP:
            @sig(tf.TensorSpec([None], tf.string, name="webp"))
            def webp(self, webp):
                return {"y": tf.map_fn(lambda b: tf.reduce_mean(tf.cast(tf.io.decode_webp(b, channels=3),
                                                                         tf.float32)), webp,
                                    fn_output_signature=tf.float32)}

        @sig(tf.TensorSpec([None], tf.string, name="jpeg"))
        def vectorized(self, jpeg):
            def one(b):
                img = tf.ensure_shape(tf.io.decode_jpeg(b, channels=3), [20, 30, 3])
                return tf.reduce_mean(tf.cast(img, tf.float32))

            return {"y": tf.vectorized_map(one, jpeg)}

        @sig(tf.TensorSpec([None], tf.string, name="image"))
        def jpeg_or_png(self, image):
            def one(b):
                return tf.cond(tf.io.is_jpeg(b),
                               lambda: tf.image.resize(tf.io.decode_jpeg(b, channels=3), [10, 10]),
                               lambda: tf.image.resize(tf.io.decode_png(b, channels=3), [10, 10]))

            return {"y": tf.map_fn(one, image, fn_output_signature=tf.TensorSpec([10, 10, 3], tf.float32))}

        @sig(tf.TensorSpec([None], tf.string, name="json"))
        def json_example(self, json):
            f = tf.io.parse_example(tf.io.decode_json_example(json), {
                "age": tf.io.FixedLenFeature([1], tf.float32),
                "bucket": tf.io.FixedLenFeature([], tf.int64, default_value=0)})
            return {"y": f["age"][:, 0] + tf.reduce_sum(tf.gather(self.emb, f["bucket"]), axis=1)}

        @sig(tf.TensorSpec([None], tf.string, name="padded"))
        def padded_raw(self, padded):
            return {"y": tf.io.decode_raw(padded, tf.int16, little_endian=False, fixed_length=12)}

        @sig(tf.TensorSpec([None], tf.string, name="line"))
        def csv_options(self, line):
            a, c, d = tf.io.decode_csv(line, record_defaults=[[0], tf.constant([], tf.string), [1.5]],
                                       field_delim=";", na_value="NA", select_cols=[0, 2, 3])
            return {"y": tf.cast(a, tf.float32) + d + tf.cast(tf.strings.length(c), tf.float32)}

        @sig(tf.TensorSpec([None], tf.string, name="ids"))
        def ids_as_strings(self, ids):
            return {"y": tf.gather(self.emb, tf.strings.to_number(ids, out_type=tf.int64))}

        @sig(tf.TensorSpec([None], tf.string, name="jpeg"))
        def needs_300(self, jpeg):
            img = tf.io.decode_jpeg(jpeg[0], channels=3)
            with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(img)[0], 300)]):
                return {"y": tf.reduce_mean(tf.cast(img, tf.float32), axis=[0, 1])}

        @sig(tf.TensorSpec([None], tf.string, name="jpeg"))
        def small_only(self, jpeg):
            img = tf.io.decode_jpeg(jpeg[0], channels=3)
            with tf.control_dependencies([tf.debugging.assert_less(tf.shape(img)[0], 100)]):
                return {"y": tf.reduce_mean(tf.cast(img, tf.float32), axis=[0, 1])}

    m = M()
    export_dir = os.fspath(export_dir)
    names = ["small_only", "gif", "bmp", *HAS_WEBP * ["webp"], "vectorized", "jpeg_or_png", "json_example",
             "padded_raw", "csv_options", "ids_as_strings", "needs_300"]
    tf.saved_model.save(m, export_dir, signatures={n: getattr(m, n) for n in names})
    return export_dir


def tf1_jpeg_map_fn(export_dir) -> str:
    """A TF1 builder export with v1 control flow: map_fn over JPEG bytes is a TensorArray loop
    (TensorArrayScatterV3 -> Enter/Merge/Switch frame -> TensorArrayReadV3), as in TF Serving's
    ResNet example era models."""
    export_dir = os.fspath(export_dir)
    from tensorflow.python.ops import control_flow_util

    was_v2 = control_flow_util.ENABLE_CONTROL_FLOW_V2
    tf.compat.v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            images = tf.compat.v1.placeholder(tf.string, [None], name="image_bytes")

            def one(b):
                img = tf.cast(tf.io.decode_jpeg(b, channels=3), tf.float32)
                return tf.image.resize(img, [20, 20])

            pixels = tf.map_fn(one, images, dtype=tf.float32)
            score = tf.reduce_mean(pixels, axis=[1, 2, 3], name="score")
            with tf.compat.v1.Session(graph=graph) as sess:
                builder = tf.compat.v1.saved_model.Builder(export_dir)
                sig = tf.compat.v1.saved_model.predict_signature_def({"image_bytes": images}, {"score": score})
                builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
                builder.save()
    finally:
        if was_v2:
            tf.compat.v1.enable_control_flow_v2()
    return export_dir


def example_with_image(export_dir) -> str:
    """A serialized tf.Example with an ``image/encoded`` JPEG feature, parsed then decoded
    (TF object detection API's ``tf_example`` input), plus a float feature."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            f = tf.io.parse_example(examples, {
                "image/encoded": tf.io.FixedLenFeature([], tf.string),
                "weight": tf.io.FixedLenFeature([1], tf.float32, default_value=[1.0])})
            images = tf.map_fn(lambda b: tf.image.resize(tf.io.decode_jpeg(b, channels=3), [14, 14]),
                               f["image/encoded"], fn_output_signature=tf.TensorSpec([14, 14, 3], tf.float32))
            return {"y": tf.reduce_mean(images, axis=[1, 2, 3]) * f["weight"][:, 0]}

    m = M()
    return _save(m, export_dir, m.serve)
