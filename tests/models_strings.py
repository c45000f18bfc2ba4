"""Real SavedModels for issue 19's string decoders, guards and consumer shapes.

Built the way such serving code is written: ``tf.map_fn`` over WAV bytes,
``tf.io.decode_compressed`` in front of another decoder, ``tf.io.decode_proto``
against a descriptor set carried in the graph, strict ``tf.strings.unicode_*``,
``tf.debugging.Assert`` on a date regex, and TF1 builder exports whose
placeholders have no shape at all.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2


def _save(module: tf.Module, export_dir, fns) -> str:
    export_dir = os.fspath(export_dir)
    tf.saved_model.save(module, export_dir, signatures=fns)
    return export_dir


def _dense(n_in: int, n_out: int, seed: int) -> tf.Variable:
    return tf.Variable(np.random.default_rng(seed).normal(size=(n_in, n_out)).astype("float32"))


def wav_classifier(export_dir) -> str:
    """WAV bytes [batch] -> decode_wav(desired_channels=1) in map_fn -> reshape [1600] -> dense;
    a second signature decodes stereo at desired_samples=800."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(1600, 3, 0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="audio")])
        def serve(self, audio):
            def one(b):
                wav, _ = tf.audio.decode_wav(b, desired_channels=1)
                return tf.reshape(wav, [1600])

            x = tf.map_fn(one, audio, fn_output_signature=tf.TensorSpec([1600], tf.float32))
            return {"logits": tf.matmul(x, self.w)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="clip")])
        def stereo(self, clip):
            wav, rate = tf.audio.decode_wav(clip, desired_channels=2, desired_samples=800)
            return {"energy": tf.reduce_mean(tf.square(wav), axis=0), "rate": rate}

    m = M()
    return _save(m, export_dir, {"serving_default": m.serve, "stereo": m.stereo})


def compressed_chains(export_dir) -> str:
    """Five signatures, one per chain: ZLIB -> decode_raw + reshape, GZIP -> CSV,
    ZLIB -> JSON tf.Example, GZIP -> PNG, uncompressed ("") -> parse_tensor."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(8, 2, 1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="payload")])
        def raw(self, payload):
            floats = tf.io.decode_raw(tf.io.decode_compressed(payload, "ZLIB"), tf.float32)
            return {"y": tf.matmul(tf.reshape(floats, [-1, 8]), self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")])
        def csv(self, lines):
            a, b, c = tf.io.decode_csv(tf.io.decode_compressed(lines, "GZIP"),
                                       record_defaults=[[0.0], [0], [""]])
            return {"y": a + tf.cast(b, tf.float32) + tf.cast(tf.strings.length(c), tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="json")])
        def json(self, json):
            ex = tf.io.decode_json_example(tf.io.decode_compressed(json, "ZLIB"))
            f = tf.io.parse_example(ex, {"age": tf.io.FixedLenFeature([], tf.int64),
                                         "score": tf.io.FixedLenFeature([2], tf.float32)})
            return {"y": tf.cast(f["age"], tf.float32) + tf.reduce_sum(f["score"], axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def image(self, image):
            def one(b):
                img = tf.io.decode_png(tf.io.decode_compressed(b, "GZIP"), channels=3)
                return tf.image.resize(tf.cast(img, tf.float32), [8, 8])

            imgs = tf.map_fn(one, image, fn_output_signature=tf.TensorSpec([8, 8, 3], tf.float32))
            return {"y": tf.reduce_mean(imgs, axis=[1, 2, 3])}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="tensor")])
        def tensor(self, tensor):
            t = tf.io.parse_tensor(tf.io.decode_compressed(tensor, ""), tf.float32)
            return {"y": tf.matmul(tf.reshape(t, [1, 8]), self.w)}

    m = M()
    return _save(m, export_dir, {"serving_default": m.raw, "csv": m.csv, "json": m.json,
                                 "image": m.image, "tensor": m.tensor})


def descriptor_set() -> bytes:
    """A FileDescriptorSet for ``tfwarm.test.Reading {int32 id; float value; string unit;
    repeated int64 tags; Inner inner}`` with ``Inner {bool ok}``."""
    fd = descriptor_pb2.FileDescriptorProto(name="reading.proto", package="tfwarm.test", syntax="proto3")
    inner = fd.message_type.add(name="Inner")
    inner.field.add(name="ok", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg = fd.message_type.add(name="Reading")
    F = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    msg.field.add(name="value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
    msg.field.add(name="unit", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="tags", number=4, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    msg.field.add(name="inner", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".tfwarm.test.Inner")
    return descriptor_pb2.FileDescriptorSet(file=[fd]).SerializeToString()


def proto_reader(export_dir) -> str:
    """Serialized ``tfwarm.test.Reading`` [batch] -> decode_proto (bytes:// descriptor) -> sums;
    a second signature reads ``tensorflow.TensorShapeProto`` from the local pool."""
    source = b"bytes://" + descriptor_set()

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="reading")])
        def serve(self, reading):
            sizes, (ids, values, units, tags, inner) = tf.io.decode_proto(
                reading, "tfwarm.test.Reading", ["id", "value", "unit", "tags", "inner"],
                [tf.int32, tf.float32, tf.string, tf.int64, tf.string], descriptor_source=source)
            return {"y": tf.cast(tf.reduce_sum(ids, 1), tf.float32) + tf.reduce_sum(values, 1),
                    "n": tf.reduce_sum(sizes, 1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="shape_proto")])
        def shape(self, shape_proto):
            sizes, (dims, unknown) = tf.io.decode_proto(
                shape_proto, "tensorflow.TensorShapeProto", ["dim", "unknown_rank"], [tf.string, tf.bool])
            return {"n": tf.reduce_sum(sizes, 1)}

    m = M()
    return _save(m, export_dir, {"serving_default": m.serve, "shape": m.shape})


def unicode_strict(export_dir) -> str:
    """Strict UTF-16-BE decode (code points summed), strict Latin-1 -> UTF-8 transcode feeding
    to_number, and strict UTF-8 decode with offsets."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            cps = tf.strings.unicode_decode(text, "UTF-16-BE", errors="strict")
            return {"y": tf.reduce_sum(cps, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="latin")])
        def transcode(self, latin):
            utf8 = tf.strings.unicode_transcode(latin, "ISO-8859-1", "UTF-8", errors="strict")
            return {"y": tf.strings.to_number(utf8, tf.float32) * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="utf8")])
        def offsets(self, utf8):
            cps, offs = tf.strings.unicode_decode_with_offsets(utf8, "UTF-8", errors="strict")
            return {"n": cps.row_lengths(), "last": tf.reduce_max(offs, axis=1)}

    m = M()
    return _save(m, export_dir, {"serving_default": m.serve, "transcode": m.transcode,
                                 "offsets": m.offsets})


DATE_PATTERN = r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"


def guarded_date(export_dir) -> str:
    """A date asserted with regex_full_match before substr/to_number, beside an unrelated float;
    a product code whose length is asserted to be 6; a country that must be in a constant set
    (reduce_any of equal); a tier picked by tf.where from a pattern match."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="date"),
                                      tf.TensorSpec([None], tf.float32, name="amount"),
                                      tf.TensorSpec([None], tf.string, name="code"),
                                      tf.TensorSpec([None], tf.string, name="country")])
        def serve(self, date, amount, code, country):
            ok = tf.strings.regex_full_match(date, DATE_PATTERN)
            checks = [
                tf.debugging.Assert(tf.reduce_all(ok), [date]),
                tf.debugging.assert_equal(tf.strings.length(code), 6, message="code has 6 chars"),
                tf.debugging.Assert(tf.reduce_all(tf.reduce_any(
                    tf.equal(country[:, None], tf.constant(["US", "DE", "JP"])), axis=1)), [country]),
            ]
            with tf.control_dependencies(checks):
                year = tf.strings.to_number(tf.strings.substr(date, 0, 4), tf.int32)
                month = tf.strings.to_number(tf.strings.substr(date, 5, 2), tf.int32)
                day = tf.strings.to_number(tf.strings.substr(date, 8, 2), tf.int32)
                bucket = tf.strings.to_hash_bucket_fast(code, 100)
            return {"y": tf.cast(year * 400 + month * 31 + day, tf.float32) + amount
                    + tf.cast(bucket, tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sku"),
                                      tf.TensorSpec([None], tf.float32, name="qty")])
        def sku(self, sku, qty):
            def one(s):  # the valid path parses the number; anything else is -1
                return tf.cond(tf.strings.regex_full_match(s, r"[A-Z]{3}-\d{2}"),
                               lambda: tf.strings.to_number(tf.strings.substr(s, 4, 2)),
                               lambda: tf.constant(-1.0))

            n = tf.map_fn(one, sku, fn_output_signature=tf.TensorSpec([], tf.float32))
            return {"y": n + tf.where(qty > 2.5, tf.math.log(qty), tf.zeros_like(qty))}

    m = M()
    return _save(m, export_dir, {"serving_default": m.serve, "sku": m.sku})


def tf1_guarded(export_dir) -> str:
    """TF1 builder: a string asserted (graph-mode Assert) to match ``[a-f0-9]{8}`` before
    ``string_to_hash_bucket``, and to be no longer than 8 bytes."""

    def build():
        s = tf.compat.v1.placeholder(tf.string, shape=[None], name="token")
        ok = tf.compat.v1.debugging.Assert(tf.reduce_all(tf.strings.regex_full_match(s, "[a-f0-9]{8}")), [s])
        short = tf.compat.v1.assert_less_equal(tf.strings.length(s), 8)
        with tf.control_dependencies([ok, short]):
            h = tf.strings.to_hash_bucket_fast(s, 10)
        return {"token": s}, {"h": h}

    return tf1_builder(export_dir, build)


def tf1_builder(export_dir, build) -> str:
    export_dir = os.fspath(export_dir)
    g = tf.Graph()
    with g.as_default():
        inputs, outputs = build()
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(export_dir)
            sig = tf.compat.v1.saved_model.predict_signature_def(inputs, outputs)
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
    return export_dir


def tf1_unknown_rank_matmul(export_dir) -> str:
    """TF1: placeholder(float32, shape=None) -> reshape [-1, 8] -> matmul with an [8, 4] variable."""

    def build():
        x = tf.compat.v1.placeholder(tf.float32, shape=None, name="x")
        w = tf.compat.v1.get_variable("w", initializer=np.ones((8, 4), np.float32))
        return {"x": x}, {"y": tf.matmul(tf.reshape(x, [-1, 8]), w)}

    return tf1_builder(export_dir, build)


def tf1_unknown_rank_conv(export_dir) -> str:
    """TF1: an image placeholder of unknown rank -> Conv2D (3x3, 3 -> 2 channels, VALID) -> mean;
    a second input of shape [None, None] broadcast-added to a [5] bias."""

    def build():
        img = tf.compat.v1.placeholder(tf.float32, shape=None, name="image")
        feats = tf.compat.v1.placeholder(tf.float32, shape=[None, None], name="feats")
        k = tf.compat.v1.get_variable("k", initializer=np.full((3, 3, 3, 2), 0.1, np.float32))
        b = tf.compat.v1.get_variable("b", initializer=np.zeros((5,), np.float32))
        conv = tf.nn.conv2d(img, k, strides=1, padding="VALID")
        return ({"image": img, "feats": feats},
                {"y": tf.reduce_mean(conv, axis=[1, 2, 3]), "z": tf.reduce_sum(feats + b, axis=1)})

    return tf1_builder(export_dir, build)


def tf2_unknown_dims(export_dir) -> str:
    """tf.Module inputs with unknown non-batch dims (and one of unknown rank) whose consumers
    fix them: Reshape to [-1, 2, 4], MatMul with a [4, 3] variable, ConcatV2 on axis 1 with a
    fixed [?, 2, 5] part, ExpandDims then a matmul with a [1, 3] constant."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = _dense(4, 3, 2)
            self.part = tf.Variable(np.ones((2, 5), np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="a"),
                                      tf.TensorSpec([None, None], tf.float32, name="b"),
                                      tf.TensorSpec([None, None, None], tf.float32, name="c"),
                                      tf.TensorSpec(None, tf.float32, name="d")])
        def serve(self, a, b, c, d):
            fixed = tf.reshape(self.part, [1, 2, 5])
            return {"r": tf.reduce_sum(tf.reshape(a, [-1, 2, 4]), axis=[1, 2]),
                    "m": tf.matmul(b, self.w),
                    "cc": tf.reduce_sum(tf.concat([c, tf.tile(fixed, [tf.shape(c)[0], 1, 1])], axis=2),
                                        axis=[1, 2]),
                    "e": tf.matmul(tf.expand_dims(d, -1), tf.ones([1, 3]))}

    m = M()
    return _save(m, export_dir, {"serving_default": m.serve})


ALL = {
    "wav": wav_classifier,
    "compressed": compressed_chains,
    "proto": proto_reader,
    "unicode": unicode_strict,
    "guarded_date": guarded_date,
    "tf1_guarded": tf1_guarded,
    "tf1_matmul": tf1_unknown_rank_matmul,
    "tf1_conv": tf1_unknown_rank_conv,
    "tf2_dims": tf2_unknown_dims,
}
