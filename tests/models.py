"""Builders of small real SavedModels for the tests (no mocks of TensorFlow)."""
from __future__ import annotations

import os

import tensorflow as tf

from tfwarm_export.model.keras_flavor import export_model, write_archive

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
    export_model(model, os.fspath(export_dir), "tf_saved_model", {})  # Keras 3 or TF 2.15's Keras 2
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


def lookup_embedding_module(export_dir) -> str:
    """A string lookup into a vocabulary, then an embedding; int ids into a small table.

    Out-of-vocabulary strings raise (the lookup's default is -1 and the gather fails),
    and ids past the 5-row table fail the gather: random values would break replay.
    """

    class L(tf.Module):
        def __init__(self):
            super().__init__()
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(["red", "green", "blue"]), tf.constant([0, 1, 2], tf.int64))
            self.table = tf.lookup.StaticHashTable(init, default_value=-1)
            self.color_emb = tf.Variable(tf.ones([3, 2]))
            self.id_emb = tf.Variable(tf.ones([5, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="color"),
                                      tf.TensorSpec([None], tf.int64, name="item")])
        def serve(self, color, item):
            idx = self.table.lookup(color)
            with tf.control_dependencies([tf.debugging.assert_non_negative(idx, message="OOV color")]):
                c = tf.gather(self.color_emb, idx)
            i = tf.gather(self.id_emb, item)
            return {"y": tf.reduce_sum(c + i, axis=1)}

    m = L()
    return save_module(m, export_dir, {"serving_default": m.serve})


def stateful_module(export_dir) -> str:
    """One pure signature and one that counts its calls (state changes at every request)."""

    class C(tf.Module):
        def __init__(self):
            super().__init__()
            self.calls = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def pure(self, x):
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def counted(self, x):
            n = self.calls.assign_add(1)
            return {"y": x * tf.cast(n, tf.float32)}

    m = C()
    return save_module(m, export_dir, {"serving_default": m.pure, "counted": m.counted})


def picky_module(export_dir, target: float = 0.0) -> str:
    """Accepts only rows whose |x| sums to ``target`` (an undetectable domain).

    With target 0, random values fail and safe (zero) values pass."""

    class P(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            total = tf.reduce_sum(tf.abs(x))
            with tf.control_dependencies([tf.debugging.assert_equal(total, target, message="bad sum")]):
                return {"y": tf.identity(x)}

    m = P()
    return save_module(m, export_dir, {"serving_default": m.serve})


def parse_example_module(export_dir) -> str:
    """TF2 serving function that parses tf.Examples (dense required + optional, sparse, string vocab)."""

    class E(tf.Module):
        def __init__(self):
            super().__init__()
            self.emb = tf.Variable(tf.ones([10, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            f = tf.io.parse_example(examples, {
                "age": tf.io.FixedLenFeature([1], tf.float32),
                "bucket": tf.io.FixedLenFeature([], tf.int64, default_value=0),
                "tags": tf.io.VarLenFeature(tf.string),
            })
            e = tf.gather(self.emb, f["bucket"])
            n = tf.cast(tf.sparse.to_dense(tf.sparse.map_values(tf.strings.length, f["tags"])), tf.float32)
            return {"score": f["age"][:, 0] + tf.reduce_sum(e, axis=1) + tf.reduce_sum(n, axis=1)}

    m = E()
    return save_module(m, export_dir, {"serving_default": m.serve})


def unbatched_output_module(export_dir) -> str:
    """An output without a batch dimension: fine for Predict, fatal under TF Serving batching."""

    class O(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * 2.0, "total": tf.reduce_sum(x)}

    m = O()
    return save_module(m, export_dir, {"serving_default": m.serve})


def sequence_model(export_dir, jit_compile: bool = False) -> str:
    """A Keras token model with a variable sequence length; optionally an XLA endpoint.

    Keras 3 ``model.export(jit_compile=True)`` drops XLA, so the XLA variant is exported
    through ``ExportArchive.add_endpoint`` with a ``tf.function(jit_compile=True)``.
    """
    import keras

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 8)(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(tokens, out)
    archive = keras.export.ExportArchive()
    archive.track(model)
    fn = tf.function(lambda t: {"logits": model(t)}, jit_compile=jit_compile)
    archive.add_endpoint("serving_default", fn,
                         input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
    write_archive(archive, os.fspath(export_dir), {})
    return os.fspath(export_dir)


def half_plus_two_examples(directory, values) -> list[str]:
    """Two TFRecord files (plain and GZIP) of tf.Examples with feature x, for the shared model."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, options in (("a.tfrecord", None), ("b.tfrecord.gz", "GZIP")):
        path = os.path.join(os.fspath(directory), name)
        with tf.io.TFRecordWriter(path, options=options) as w:
            for v in values:
                ex = tf.train.Example(features=tf.train.Features(
                    feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}))
                w.write(ex.SerializeToString())
        paths.append(path)
    return paths


def conv_module(export_dir) -> str:
    """A fully convolutional Keras model on images of unknown size: 4x4 is too small for it."""
    import keras

    img = keras.Input(shape=(None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="valid")(img)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="valid")(x)
    out = keras.layers.GlobalAveragePooling2D(name="features")(x)
    export_model(keras.Model(img, out), os.fspath(export_dir), "tf_saved_model", {})
    return os.fspath(export_dir)
