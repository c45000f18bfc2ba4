"""Real SavedModels of the kinds production servers carry (no mocks of TensorFlow).

Legacy TF1 builder exports with the shapes stripped from the SignatureDef, ragged
(ragged_rank 1 and 2), sparse and nested composite signatures, zero-input and
fully defaulted signatures, a stateful counter, and a TF Text tokenizer.
"""
from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2


def _edit_saved_model(export_dir: str, edit) -> None:
    """Rewrite saved_model.pb in place with ``edit(meta_graph)`` (what old exporters wrote)."""
    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for mg in proto.meta_graphs:
        edit(mg)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def strip_shapes(export_dir: str, signatures=None, aliases=None) -> None:
    """Remove ``tensor_shape`` from input TensorInfos, as old TF1 exports did."""
    def edit(mg):
        for name, sig in mg.signature_def.items():
            if signatures is not None and name not in signatures:
                continue
            for alias, info in sig.inputs.items():
                if aliases is None or alias in aliases:
                    info.ClearField("tensor_shape")
            for info in sig.outputs.values():
                info.ClearField("tensor_shape")
    _edit_saved_model(export_dir, edit)


def legacy_tf1(export_dir) -> str:
    """A TF1 builder export like TF Serving's half_plus_three, made worse on purpose.

    * ``serving_default``: ``x`` names an Identity of a parsed feature ([None, 1] in the
      graph), no tensor_shape in the SignatureDef;
    * ``tensorflow/serving/regress``: records DT_FLOAT for the string ``tf_example`` placeholder;
    * ``scores``: a [None, 3] float placeholder whose TensorInfo dtype is DT_INVALID.
    """
    export_dir = os.fspath(export_dir)
    g = tf.Graph()
    with g.as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        x = tf.identity(parsed["x"], name="x")
        a = tf.compat.v1.Variable(0.5, name="a")
        y = tf.add(tf.multiply(a, x), 3.0, name="y")
        feats = tf.compat.v1.placeholder(tf.float32, [None, 3], name="feats")
        total = tf.reduce_sum(feats * a, axis=1, name="total")
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            info = tf.compat.v1.saved_model.build_tensor_info
            sigs = {
                "serving_default": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
                "tensorflow/serving/regress": tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                    {"inputs": info(serialized)}, {"outputs": info(y)}, "tensorflow/serving/regress"),
                "scores": tf.compat.v1.saved_model.predict_signature_def({"feats": feats}, {"total": total}),
            }
            b = tf.compat.v1.saved_model.Builder(export_dir)
            b.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=sigs)
            b.save()

    def edit(mg):
        for sig in mg.signature_def.values():
            for info in list(sig.inputs.values()) + list(sig.outputs.values()):
                info.ClearField("tensor_shape")
        mg.signature_def["tensorflow/serving/regress"].inputs["inputs"].dtype = tf.float32.as_datatype_enum
        mg.signature_def["scores"].inputs["feats"].dtype = 0  # DT_INVALID
    _edit_saved_model(export_dir, edit)
    return export_dir


def counter_tf1(export_dir) -> str:
    """A stateful TF1 model like TF Serving's saved_model_counter: ``get_counter`` has no inputs."""
    export_dir = os.fspath(export_dir)
    g = tf.Graph()
    with g.as_default():
        counter = tf.compat.v1.Variable(7.0, name="counter", use_resource=False)
        read = tf.identity(counter, name="read")
        incr = tf.compat.v1.assign_add(counter, 1.0, name="incr")
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            info = tf.compat.v1.saved_model.build_tensor_info
            build = tf.compat.v1.saved_model.signature_def_utils.build_signature_def
            b = tf.compat.v1.saved_model.Builder(export_dir)
            b.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
                "get_counter": build({}, {"output": info(read)}, "tensorflow/serving/predict"),
                "incr_counter": build({}, {"output": info(incr)}, "tensorflow/serving/predict"),
            })
            b.save()
    return export_dir


def composites(export_dir) -> str:
    """Ragged (ragged_rank 1 and 2, ids into a 5-row embedding), sparse and nested signatures."""

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(tf.ones([5, 2]))

        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1)])
        def ragged1(self, ids):
            return {"pooled": tf.reduce_mean(tf.gather(self.table, ids), axis=1)}

        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None, None], tf.float32, ragged_rank=2)])
        def ragged2(self, x):
            return {"s": tf.reduce_sum(tf.reduce_sum(x, axis=2), axis=1)}

        @tf.function(input_signature=[tf.SparseTensorSpec([None, 6], tf.float32)])
        def sparse(self, sp):
            return {"dense": tf.sparse.to_dense(sp) @ tf.ones([6, 1])}

        @tf.function(input_signature=[{"a": tf.TensorSpec([None, 2], tf.float32),
                                       "words": tf.RaggedTensorSpec([None, None], tf.string)}])
        def nested(self, d):
            return {"o": tf.reduce_sum(d["a"], 1) + tf.cast(d["words"].row_lengths(), tf.float32)}

    m = M()
    tf.saved_model.save(m, os.fspath(export_dir), signatures={
        "ragged1": m.ragged1, "ragged2": m.ragged2, "sparse": m.sparse, "nested": m.nested})
    return os.fspath(export_dir)


def zero_and_defaulted(export_dir) -> str:
    """``labels`` (no inputs), ``serving_default`` (its only input defaulted, [None, 2]) and
    ``fixed_default`` (a defaulted [1] input, like TF Serving's half_plus_two_tf2_cpu)."""

    class M(tf.Module):
        @tf.function(input_signature=[])
        def labels(self):
            return {"labels": tf.constant(["cat", "dog", "bird"])}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def scale(self, x=tf.constant([[1.0, 2.0]])):
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="x")])
        def fixed(self, x=tf.constant([0.0])):
            return {"y": x * 0.5 + 2.0}

    m = M()
    tf.saved_model.save(m, os.fspath(export_dir), signatures={
        "labels": m.labels, "serving_default": m.scale, "fixed_default": m.fixed})
    return os.fspath(export_dir)


def text_tokenizer(export_dir) -> str:
    """A TF Text WhitespaceTokenizer model (op ``TFText>WhitespaceTokenizeWithOffsetsV2``)."""
    import tensorflow_text as text

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = text.WhitespaceTokenizer()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
        def serve(self, sentences):
            tokens = self.tokenizer.tokenize(sentences)
            return {"num_tokens": tokens.row_lengths(), "first": tokens.to_tensor(default_value="")[:, :1]}

    m = M()
    tf.saved_model.save(m, os.fspath(export_dir), signatures={"serving_default": m.serve})
    return os.fspath(export_dir)


def rename_op(export_dir: str, old: str, new: str) -> None:
    """Make the graph use an op type this process has not registered (``old`` renamed ``new``)."""
    def edit(mg):
        for node in mg.graph_def.node:
            if node.op == old:
                node.op = new
        for fn in mg.graph_def.library.function:
            for node in fn.node_def:
                if node.op == old:
                    node.op = new
    _edit_saved_model(export_dir, edit)
