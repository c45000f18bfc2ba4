"""Graph analysis on real SavedModels: parse specs, value domains, stateful ops.

Every model is built here (small, module-scoped) and every synthesized batch
is run through the model the way TF Serving feeds it: a TF1 session over the
loaded MetaGraph, ``sess.run(outputs, {input_tensor: serialized_examples})``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfwarm_export import analysis as graph  # noqa: E402
from tfwarm_export.specs.example_spec import DenseFeature, ExampleSpec  # noqa: E402
from tfwarm_export.values.examples import synthesize_examples  # noqa: E402
from tfwarm_export.model.keras_flavor import write_archive  # noqa: E402
from tfwarm_export.model.signatures import read_signatures  # noqa: E402


# --------------------------------------------------------------------------- helpers
class Runner:
    """One TF1 session per export dir, fed exactly as TF Serving feeds a signature."""

    def __init__(self):
        self._sessions = {}

    def session(self, export_dir):
        export_dir = str(export_dir)
        if export_dir not in self._sessions:
            g = tf.Graph()
            sess = tf.compat.v1.Session(graph=g)
            with g.as_default():
                tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
            self._sessions[export_dir] = sess
        return self._sessions[export_dir]

    def run(self, export_dir, signature, feeds: dict):
        sig = read_signatures(str(export_dir)).get(signature)
        sess = self.session(export_dir)
        fetches = {a: o.name for a, o in sig.outputs.items()}
        return sess.run(fetches, {sig.inputs[a].name: v for a, v in feeds.items()})

    def close(self):
        for s in self._sessions.values():
            s.close()


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


def _batch(examples):
    arr = np.empty(len(examples), dtype=object)
    arr[:] = examples
    return arr


def _spec_and_domains(export_dir, signature, alias):
    model = read_signatures(str(export_dir))
    tensor = model.get(signature).inputs[alias].name
    spec = graph.find_example_spec(model.meta_graph, tensor)
    assert spec is not None, f"no parser found for {signature}/{alias}"
    domains = graph.find_value_domains(model.meta_graph, {alias: tensor}, spec, export_dir=str(export_dir))
    return model, spec, domains


def _required_features_present(spec: ExampleSpec, serialized: bytes) -> None:
    """Each synthesized record parses as its kind and carries every feature the parser
    requires (read with the protos, not with our own code)."""
    if spec.kind == "sequence_example":
        proto = tf.train.SequenceExample.FromString(serialized)
        present = set(proto.context.feature) | set(proto.feature_lists.feature_list)
    else:
        present = set(tf.train.Example.FromString(serialized).features.feature)
    required = {f.key for f in spec.dense if f.required}
    required |= {f.key for f in spec.feature_list_dense if f.required}
    assert required <= present, f"missing required features {sorted(required - present)}"


def _run_examples(runner, export_dir, signature, alias="ex", counts=(1, 2, 5), seed=0):
    """Synthesize with the recovered spec + domains and run the model on them: every record
    carries its required features, and a batch of ``count`` gives ``count`` results."""
    _, spec, domains = _spec_and_domains(export_dir, signature, alias)
    for count in counts:
        examples = synthesize_examples(spec, count, np.random.default_rng(seed + count), domains)
        assert len(examples) == count
        for e in examples:
            _required_features_present(spec, e)
        if spec.single:
            for e in examples:
                out = runner.run(export_dir, signature, {alias: np.array(e, dtype=object)})
                assert out and all(np.all(np.isfinite(v)) for v in out.values() if v.dtype.kind == "f")
        else:
            out = runner.run(export_dir, signature, {alias: _batch(examples)})
            batched = [v for v in out.values() if np.ndim(v) >= 1]
            assert batched and all(v.shape[0] == count for v in batched), {k: np.shape(v) for k, v in out.items()}
            assert all(np.all(np.isfinite(v)) for v in out.values() if v.dtype.kind == "f")
    return spec, domains


def _dense(spec: ExampleSpec) -> dict[str, DenseFeature]:
    return {f.key: f for f in spec.dense}


# --------------------------------------------------------------------------- TF2 tf.Module
@pytest.fixture(scope="module")
def tf2_model(tmp_path_factory):
    """A tf.Module with one signature per parser op and analysis case."""
    root = tmp_path_factory.mktemp("tf2")
    vocab = root / "src_vocab.txt"
    vocab.write_text("red\ngreen\nblue\n")

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.emb = tf.Variable(tf.random.normal([7, 3], seed=1), name="emb")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(["a", "b", "c"]),
                                                    tf.constant([0, 1, 2], tf.int64)), -1)
            self.vocab = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                              tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
            self.counter = tf.Variable(0, dtype=tf.int64, name="counter")
            self.w = tf.Variable(tf.ones([3]), name="w")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, ex):
            f = tf.io.parse_example(ex, {
                "x": tf.io.FixedLenFeature([2], tf.float32),
                "id": tf.io.FixedLenFeature([], tf.int64, default_value=0),
                "s": tf.io.VarLenFeature(tf.string),
                "r": tf.io.RaggedFeature(tf.int64),
                "q": tf.io.FixedLenSequenceFeature([2], tf.float32, allow_missing=True),
            })
            e = tf.gather(self.emb, f["id"])
            t = self.table.lookup(f["s"])
            t = tf.sparse.to_dense(t, default_value=0)
            # A lookup miss (-1) would index out of range: only table keys are valid.
            picked = tf.gather(self.w, tf.reshape(t, [-1]))
            return {"y": tf.reduce_sum(f["x"], 1) + tf.reduce_sum(e, 1),
                    "t": tf.reduce_sum(picked) + tf.cast(tf.reduce_sum(f["r"].flat_values), tf.float32),
                    "q": tf.reduce_sum(f["q"], [1, 2])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def count(self, x):
            self.counter.assign_add(1)
            return {"y": x + self.counter}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def pure(self, x):
            return {"y": x * 2 + tf.cast(tf.shape(self.emb)[0], tf.int64)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def asserted(self, x):
            tf.debugging.assert_less(x, tf.constant(10, tf.int64))
            tf.debugging.assert_non_negative(x)
            return {"y": x * 2}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)])
        def dynamic_gather(self, table, idx):
            # The table is an input: its row count is unknowable, so no domain.
            return {"y": tf.gather(table, idx)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def colors(self, c):
            ids = self.vocab.lookup(c)
            return {"y": tf.gather(self.w, ids)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def single(self, ex):
            f = tf.io.parse_single_example(ex, {"a": tf.io.FixedLenFeature([2], tf.int64),
                                                "b": tf.io.VarLenFeature(tf.float32)})
            return {"a": f["a"], "b": tf.sparse.reduce_sum(f["b"])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def seq(self, ex):
            c, fl, _ = tf.io.parse_sequence_example(
                ex,
                context_features={"cid": tf.io.FixedLenFeature([], tf.int64),
                                  "cs": tf.io.VarLenFeature(tf.string),
                                  "cd": tf.io.FixedLenFeature([2], tf.float32, default_value=[1.0, 2.0]),
                                  "cr": tf.io.RaggedFeature(tf.float32)},
                sequence_features={"tok": tf.io.FixedLenSequenceFeature([], tf.int64),
                                   "fv": tf.io.FixedLenSequenceFeature([3], tf.float32, allow_missing=True),
                                   "sp": tf.io.VarLenFeature(tf.float32),
                                   "rg": tf.io.RaggedFeature(tf.string)})
            emb = tf.gather(self.emb, fl["tok"])
            return {"a": tf.cast(c["cid"], tf.float32) + tf.reduce_sum(fl["fv"], [1, 2])
                    + tf.reduce_sum(emb, [1, 2]) + tf.reduce_sum(c["cd"], 1)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def single_seq(self, ex):
            c, fl = tf.io.parse_single_sequence_example(
                ex, context_features={"a": tf.io.FixedLenFeature([2], tf.int64)},
                sequence_features={"t": tf.io.FixedLenSequenceFeature([], tf.int64)})
            return {"a": c["a"], "t": tf.reduce_sum(fl["t"])}

        # Legacy parser ops, as old exports (and TF Serving's own testdata) contain them.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def raw_v1(self, ex):
            out = tf.raw_ops.ParseExample(
                serialized=ex, names=tf.constant([], tf.string),
                sparse_keys=[tf.constant("sp")], dense_keys=[tf.constant("d"), tf.constant("o")],
                dense_defaults=[tf.constant([], tf.float32), tf.constant([5], tf.int64)],
                sparse_types=[tf.string], dense_shapes=[[2], [1]])
            return {"d": out.dense_values[0], "o": out.dense_values[1]}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def raw_single(self, ex):
            out = tf.raw_ops.ParseSingleExample(
                serialized=ex, dense_defaults=[tf.constant([], tf.int64)], num_sparse=1,
                sparse_keys=["sp"], dense_keys=["d"], sparse_types=[tf.float32], dense_shapes=[[3]])
            return {"d": out.dense_values[0]}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def raw_seq_v1(self, ex):
            out = tf.raw_ops.ParseSequenceExample(
                serialized=ex, debug_name=tf.constant([], tf.string),
                context_dense_defaults=[tf.constant([], tf.float32)],
                feature_list_dense_missing_assumed_empty=["opt"],
                context_sparse_keys=["cs"], context_dense_keys=["cd"],
                feature_list_sparse_keys=[], feature_list_dense_keys=["req", "opt"],
                Ncontext_sparse=1, Ncontext_dense=1, Nfeature_list_sparse=0, Nfeature_list_dense=2,
                context_sparse_types=[tf.int64], feature_list_dense_types=[tf.int64, tf.float32],
                context_dense_shapes=[[1]], feature_list_sparse_types=[],
                feature_list_dense_shapes=[[], [2]])
            return {"cd": out.context_dense_values[0], "req": out.feature_list_dense_values[0]}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def raw_single_seq(self, ex):
            out = tf.raw_ops.ParseSingleSequenceExample(
                serialized=ex, feature_list_dense_missing_assumed_empty=tf.constant([], tf.string),
                context_sparse_keys=[], context_dense_keys=[tf.constant("cd")],
                feature_list_sparse_keys=[tf.constant("fs")], feature_list_dense_keys=[tf.constant("fd")],
                context_dense_defaults=[tf.constant([], tf.int64)], debug_name=tf.constant(""),
                context_sparse_types=[], feature_list_dense_types=[tf.float32],
                context_dense_shapes=[[2]], feature_list_sparse_types=[tf.string],
                feature_list_dense_shapes=[[1]])
            return {"cd": out.context_dense_values[0], "fd": out.feature_list_dense_values[0]}

    m = M()
    export_dir = root / "model"
    names = ["serve", "count", "pure", "asserted", "dynamic_gather", "colors", "single", "seq",
             "single_seq", "raw_v1", "raw_single", "raw_seq_v1", "raw_single_seq"]
    sigs = {n: getattr(m, n) for n in names}
    sigs["serving_default"] = sigs.pop("serve")
    tf.saved_model.save(m, str(export_dir), signatures=sigs)
    vocab.unlink()  # only the copy under assets/ remains, as on a serving host
    return export_dir


def test_tf2_parse_example_v2_in_nested_functions(tf2_model):
    model = read_signatures(str(tf2_model))
    spec = graph.find_example_spec(model.meta_graph, model.get("serving_default").inputs["ex"].name)
    assert spec.kind == "example" and spec.parser_op == "ParseExampleV2" and not spec.single
    assert spec.parser_nodes and spec.parser_nodes[0].startswith("__inference_")
    dense = _dense(spec)
    assert sorted(dense) == ["id", "q", "x"]
    assert dense["x"].required and dense["x"].shape == (2,) and dense["x"].dtype == tf.float32
    assert not dense["id"].required and dense["id"].default.tolist() == 0
    assert dense["q"].variable_length and dense["q"].allow_missing and dense["q"].inner_size == 2
    assert [(f.key, f.dtype) for f in spec.sparse] == [("s", tf.string)]
    assert [(f.key, f.dtype) for f in spec.ragged] == [("r", tf.int64)]
    assert spec.required_keys() == ["x"]
    assert spec.to_dict()["dense"][2]["required"] is True


def test_tf2_domains_gather_and_static_hash_table(tf2_model):
    model, spec, domains = _spec_and_domains(tf2_model, "serving_default", "ex")
    assert (domains["id"].low, domains["id"].high) == (0, 7)
    assert "emb" in domains["id"].source
    assert domains["s"].choices == ("a", "b", "c")
    assert set(domains) == {"id", "s"}  # nothing is guessed for x, q, r
    # The planner's call: no input names, only the spec.
    assert graph.find_value_domains(model.meta_graph, {}, spec, export_dir=str(tf2_model)) == domains


def test_tf2_examples_run_through_model(runner, tf2_model):
    _run_examples(runner, tf2_model, "serving_default")


def test_tf2_vocabulary_asset_domain(runner, tf2_model):
    model = read_signatures(str(tf2_model))
    inputs = {"c": model.get("colors").inputs["c"].name}
    assert graph.find_value_domains(model.meta_graph, inputs) == {}  # asset path needs export_dir
    d = graph.find_value_domains(model.meta_graph, inputs, export_dir=str(tf2_model))["c"]
    assert d.choices == ("red", "green", "blue") and "vocab" in d.source
    out = runner.run(tf2_model, "colors", {"c": np.array([c.encode() for c in d.choices], dtype=object)})
    assert out["y"].shape == (3,)


def test_tf2_assert_guarded_range(tf2_model):
    model = read_signatures(str(tf2_model))
    d = graph.find_value_domains(model.meta_graph, {"x": model.get("asserted").inputs["x"].name})["x"]
    assert (d.low, d.high) == (0, 10) and "Assert" in d.source


def test_no_domain_when_table_size_is_unknown(tf2_model):
    model = read_signatures(str(tf2_model))
    sig = model.get("dynamic_gather")
    assert graph.find_value_domains(model.meta_graph, {a: s.name for a, s in sig.inputs.items()}) == {}
    assert graph.find_value_domains(model.meta_graph, {"x": "no_such_tensor:0"}) == {}
    assert graph.find_example_spec(model.meta_graph, "no_such_tensor:0") is None
    assert graph.find_example_spec(model.meta_graph, model.get("pure").inputs["x"].name) is None


def test_stateful_signature_detected_and_pure_one_not(tf2_model):
    model = read_signatures(str(tf2_model))
    outputs = lambda name: [o.name for o in model.get(name).outputs.values()]  # noqa: E731
    stateful = graph.find_stateful_ops(model.meta_graph, outputs("count"))
    assert len(stateful) == 1 and stateful[0].startswith("AssignAddVariableOp at __inference_count")
    for name in ("pure", "serving_default", "colors", "seq", "asserted"):
        assert graph.find_stateful_ops(model.meta_graph, outputs(name)) == [], name
    # Restore functions do assign every variable; they are not reachable from outputs.
    assert any(n.op == "AssignVariableOp" for f in model.meta_graph.graph_def.library.function
               for n in f.node_def)


def test_parse_single_example_scalar_input(runner, tf2_model):
    spec, _ = _run_examples(runner, tf2_model, "single", counts=(3,))
    assert spec.single and spec.kind == "example"
    assert _dense(spec)["a"].shape == (2,) and _dense(spec)["a"].required
    assert [f.key for f in spec.sparse] == ["b"]


def test_parse_sequence_example(runner, tf2_model):
    spec, domains = _run_examples(runner, tf2_model, "seq")
    assert spec.kind == "sequence_example" and spec.parser_op == "ParseSequenceExampleV2"
    ctx = _dense(spec)
    assert ctx["cid"].required and not ctx["cd"].required
    assert ctx["cd"].default.tolist() == [1.0, 2.0]
    assert [f.key for f in spec.context_sparse] == ["cs"]
    assert [f.key for f in spec.context_ragged] == ["cr"]
    fl = {f.key: f for f in spec.feature_list_dense}
    assert fl["tok"].required and not fl["fv"].required and fl["fv"].shape == (3,)
    assert [f.key for f in spec.feature_list_sparse] == ["sp"]
    assert [(f.key, f.dtype) for f in spec.feature_list_ragged] == [("rg", tf.string)]
    assert (domains["tok"].low, domains["tok"].high) == (0, 7)
    assert spec.required_keys() == ["cid", "tok"]


def test_parse_single_sequence_example(runner, tf2_model):
    spec, _ = _run_examples(runner, tf2_model, "single_seq", counts=(3,))
    assert spec.single and spec.kind == "sequence_example"
    assert [f.key for f in spec.feature_list_dense] == ["t"]


@pytest.mark.parametrize("signature,parser_op,single", [
    ("raw_v1", "ParseExample", False),
    ("raw_single", "ParseSingleExample", True),
    ("raw_seq_v1", "ParseSequenceExample", False),
    ("raw_single_seq", "ParseSingleSequenceExample", True),
])
def test_legacy_parser_ops(runner, tf2_model, signature, parser_op, single):
    spec, _ = _run_examples(runner, tf2_model, signature, counts=(1, 4))
    assert spec.parser_op == parser_op and spec.single == single
    if signature == "raw_v1":
        assert _dense(spec)["d"].required and _dense(spec)["o"].default.tolist() == [5]
        assert [f.key for f in spec.sparse] == ["sp"]
    if signature == "raw_seq_v1":
        fl = {f.key: f for f in spec.feature_list_dense}
        assert fl["req"].required and fl["opt"].allow_missing
        assert [(f.key, f.dtype) for f in spec.sparse] == [("cs", tf.int64)]
    if signature == "raw_single_seq":
        assert [f.key for f in spec.feature_list_sparse] == ["fs"]
        assert _dense(spec)["cd"].required


# --------------------------------------------------------------------------- TF1 builder
@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory):
    """A TF1 Session/Builder export: classify + regress + a stateful predict signature."""
    from tensorflow.python.ops import lookup_ops

    root = tmp_path_factory.mktemp("tf1")
    vocab = root / "colors.txt"
    vocab.write_text("red\ngreen\nblue\n")
    g = tf.Graph()
    with g.as_default():
        ex = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        f = tf.io.parse_example(ex, {
            # "" is not in the vocabulary: -1 would break the embedding lookup, so
            # warmup must always send a color although the feature has a default.
            "color": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "n": tf.io.FixedLenFeature([1], tf.int64),
            "k": tf.io.FixedLenFeature([], tf.int64),
            "tags": tf.io.VarLenFeature(tf.string),
        })
        color_ids = lookup_ops.index_table_from_file(str(vocab)).lookup(f["color"])
        emb = tf.compat.v1.get_variable("emb", [3, 2])
        w = tf.compat.v1.get_variable("w", [5, 2], use_resource=False)  # VariableV2
        tag_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["x", "y"], tf.constant([0, 1], tf.int64)), -1)
        tag_ids = tf.sparse.to_dense(tag_table.lookup(f["tags"]), default_value=0)
        tag_w = tf.compat.v1.get_variable("tag_w", [2])
        check = tf.debugging.assert_less(f["k"], tf.constant(4, tf.int64))
        with tf.control_dependencies([check]):
            k = tf.identity(f["k"])
        score = (tf.reduce_sum(tf.nn.embedding_lookup(emb, color_ids), 1)
                 + tf.reduce_sum(tf.gather(w, f["n"][:, 0]), 1)
                 + tf.reduce_sum(tf.gather(tag_w, tag_ids), 1) + tf.cast(k, tf.float32))
        scores = tf.stack([score, -score], axis=1, name="scores")
        classes = tf.constant([["pos", "neg"]]) + tf.zeros_like(scores, tf.string)
        value = tf.reshape(score, [-1, 1], name="value")
        counter = tf.compat.v1.get_variable("counter", [], tf.int64, initializer=tf.zeros_initializer(),
                                            use_resource=False)
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        with tf.control_dependencies([tf.compat.v1.assign_add(counter, 1)]):
            counted = tf.identity(x * 2.0, name="counted")
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
            builder = tf.compat.v1.saved_model.Builder(str(root / "model"))
            sigs = {
                "classify": tf.compat.v1.saved_model.classification_signature_def(ex, classes, scores),
                "serving_default": tf.compat.v1.saved_model.regression_signature_def(ex, value),
                "count": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": counted}),
                "double": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": x * 2.0}),
            }
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map=sigs, main_op=tf.compat.v1.tables_initializer(),
                assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS))
            builder.save()
    vocab.unlink()  # the graph's Const still names it; only assets/colors.txt is left
    return root / "model"


def test_tf1_builder_classify_and_regress_specs(tf1_model):
    model = read_signatures(str(tf1_model))
    assert model.get("classify").inputs["inputs"].name == "tf_example:0"
    spec = graph.find_example_spec(model.meta_graph, "tf_example:0")
    assert spec.parser_op == "ParseExampleV2"
    dense = _dense(spec)
    assert not dense["color"].required and dense["n"].required and dense["n"].shape == (1,)
    assert [f.key for f in spec.sparse] == ["tags"]


def test_tf1_builder_domains(tf1_model):
    _, _, domains = _spec_and_domains(tf1_model, "classify", "inputs")
    assert domains["color"].choices == ("red", "green", "blue")  # from assets/, not the deleted source
    assert (domains["n"].low, domains["n"].high) == (0, 5) and "'w'" in domains["n"].source
    assert domains["tags"].choices == ("x", "y")
    assert domains["k"].high == 4 and domains["k"].low is None and "Assert" in domains["k"].source


@pytest.mark.parametrize("signature", ["classify", "serving_default"])
def test_tf1_builder_examples_run(runner, tf1_model, signature):
    _run_examples(runner, tf1_model, signature, alias="inputs", counts=(1, 2, 6))


def test_tf1_stateful_ops(tf1_model):
    model = read_signatures(str(tf1_model))
    assert graph.find_stateful_ops(model.meta_graph, ["counted:0"]) == ["AssignAdd at AssignAdd"]
    for name in ("classify", "serving_default", "double"):
        outs = [o.name for o in model.get(name).outputs.values()]
        assert graph.find_stateful_ops(model.meta_graph, outs) == [], name


# --------------------------------------------------------------------------- shared TF1 model
def test_half_plus_two_parse_example_v1(runner, half_plus_two_src):
    model = read_signatures(str(half_plus_two_src))
    spec = graph.find_example_spec(model.meta_graph, "tf_example:0")
    assert spec.parser_op == "ParseExample" and spec.kind == "example"
    dense = _dense(spec)
    assert dense["x"].dtype == tf.float32 and dense["x"].shape == (1,) and dense["x"].required
    assert dense["x2"].default.tolist() == [0.0] and not dense["x2"].required
    assert graph.find_example_spec(model.meta_graph, "x:0") is None  # x is parsed output
    assert graph.find_value_domains(model.meta_graph, {"inputs": "tf_example:0"}, spec) == {}
    for sig in ("classify_x_to_y", "regress_x_to_y", "regress_x_to_y2"):
        _run_examples(runner, half_plus_two_src, sig, alias="inputs", counts=(1, 3))
    examples = synthesize_examples(spec, 2, np.random.default_rng(0))
    y = runner.run(half_plus_two_src, "regress_x_to_y", {"inputs": _batch(examples)})["outputs"]
    x = [tf.train.Example.FromString(e).features.feature["x"].float_list.value[0] for e in examples]
    np.testing.assert_allclose(y[:, 0], 0.5 * np.array(x) + 2.0, rtol=1e-6)


def test_half_plus_two_is_read_only(half_plus_two_src):
    model = read_signatures(str(half_plus_two_src))
    assert any(n.op == "Assign" for n in model.meta_graph.graph_def.node)  # restore/init ops exist
    for sig in model.signatures.values():
        assert graph.find_stateful_ops(model.meta_graph, [o.name for o in sig.outputs.values()]) == []


# --------------------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    """Keras 3 preprocessing + embeddings, exported with tensor and tf.Example endpoints."""
    import keras

    text = keras.Input(shape=(), dtype="string", name="text")
    word = keras.Input(shape=(1,), dtype="string", name="word")
    ids = keras.Input(shape=(2,), dtype="int64", name="ids")
    tv = keras.layers.TextVectorization(output_mode="int", output_sequence_length=3,
                                        vocabulary=["the", "quick", "fox"])
    sl = keras.layers.StringLookup(vocabulary=["cat", "dog"])
    parts = [keras.layers.Embedding(5, 2)(tv(text)), keras.layers.Embedding(3, 2)(sl(word)),
             keras.layers.Embedding(11, 2)(ids)]
    out = keras.layers.Dense(1)(keras.layers.Concatenate(axis=1)(parts))
    model = keras.Model([text, word, ids], out)

    archive = keras.export.ExportArchive()
    archive.track(model)

    def parse(x):
        f = tf.io.parse_example(x, {"text": tf.io.FixedLenFeature([], tf.string),
                                    "word": tf.io.FixedLenFeature([1], tf.string),
                                    "ids": tf.io.FixedLenFeature([2], tf.int64)})
        return {"y": model([f["text"], f["word"], f["ids"]])}

    archive.add_endpoint("serving_default", parse, input_signature=[tf.TensorSpec([None], tf.string)])
    archive.add_endpoint("tensors", lambda t, w, i: {"y": model([t, w, i])}, input_signature=[
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None, 1], tf.string),
        tf.TensorSpec([None, 2], tf.int64)])
    export_dir = tmp_path_factory.mktemp("keras") / "model"
    write_archive(archive, str(export_dir), {})
    return export_dir


def test_keras_tensor_domains(keras_model):
    model = read_signatures(str(keras_model))
    sig = model.get("tensors")
    domains = graph.find_value_domains(model.meta_graph, {a: s.name for a, s in sig.inputs.items()},
                                       export_dir=str(keras_model))
    by_shape = {s.shape: a for a, s in sig.inputs.items()}  # ids (?, 2), word (?, 1), text (?,)
    assert (domains[by_shape[(None, 2)]].low, domains[by_shape[(None, 2)]].high) == (0, 11)
    # each vocabulary lands on the input that reaches its lookup, not just somewhere
    assert domains[by_shape[(None, 1)]].choices == ("cat", "dog")
    assert domains[by_shape[(None,)]].choices == ("the", "quick", "fox")
    assert graph.find_stateful_ops(model.meta_graph, [o.name for o in sig.outputs.values()]) == []


def test_keras_example_endpoint(runner, keras_model):
    spec, domains = _run_examples(runner, keras_model, "serving_default", alias="x")
    assert sorted(f.key for f in spec.dense) == ["ids", "text", "word"]
    assert (domains["ids"].low, domains["ids"].high) == (0, 11)
    assert domains["word"].choices == ("cat", "dog")
    assert domains["text"].choices == ("the", "quick", "fox")


# ---------------------------------------------------------------- end to end: add_warmup + check
def _warm_copy(src, tmp_path, **options):
    import shutil

    import tfwarm_export as tw

    dst = tmp_path / "copy" / "1"
    shutil.copytree(src, dst)
    report = tw.add_warmup(str(dst), **options)
    return tw, dst, report


def test_tf1_builder_end_to_end(tf1_model, tmp_path):
    tw, d, report = _warm_copy(tf1_model, tmp_path, batch_sizes=[1, 4], multi_inference=True,
                               model_name="m")
    assert report.ok
    kinds = {(r.signature, r.request_type) for r in report.plan.records}
    assert ("classify", "classify") in kinds and ("serving_default", "regress") in kinds
    assert "count" in report.plan.skipped  # stateful: skipped, with the reason
    assert tw.check(str(d)).ok


def test_tf2_all_parsers_end_to_end(tf2_model, tmp_path):
    tw, d, report = _warm_copy(tf2_model, tmp_path, batch_sizes=[1, 3])
    assert report.ok, report.summary()
    warmed = set(report.plan.signatures)
    assert warmed, report.plan.skipped
    assert all("mutates" in why for why in report.plan.skipped.values()), report.plan.skipped
    assert tw.check(str(d)).ok


# --------------------------------------------------------------------------- fallbacks say why


def test_fallbacks_log_what_they_fell_back_from(tmp_path, caplog):
    """Shape inference off, a composite spec dropped, a constant not folded: each is a
    debug line naming the cause, and only the expected errors are caught."""
    import logging

    from tensorflow.core.protobuf import meta_graph_pb2

    from tfwarm_export.analysis.index import MAIN, index_for
    from tfwarm_export.analysis.tensor_facts import graph_tensor

    caplog.set_level(logging.DEBUG, logger="tfwarm_export.analysis")
    # 1. a graph TF cannot import (an op this binary lacks): no inference, said at debug level
    mg = meta_graph_pb2.MetaGraphDef()
    node = mg.graph_def.node.add(name="x", op="NoSuchOpForTfwarm")
    assert graph_tensor(mg, "x:0") is None
    assert "shape inference off" in caplog.text and "NotFoundError" in caplog.text

    # 2. a constant that does not fold (reshape of 3 values into 2): None, and why
    caplog.clear()
    mg = meta_graph_pb2.MetaGraphDef()  # written by hand: TF's own builder refuses it
    for name, value in (("v", [1, 2, 3]), ("s", [2])):
        c = mg.graph_def.node.add(name=name, op="Const")
        c.attr["dtype"].type = tf.int32.as_datatype_enum
        c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array(value, np.int32)))
    r = mg.graph_def.node.add(name="bad", op="Reshape", input=["v", "s"])
    r.attr["T"].type = r.attr["Tshape"].type = tf.int32.as_datatype_enum
    assert index_for(mg).const_value((MAIN, "bad", 0)) is None
    assert "constant folding of bad (Reshape) stopped: ValueError" in caplog.text

    # 3. a ragged input whose dtype this TF does not know: a plain tensor, and why
    caplog.clear()

    class R(tf.Module):
        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int64)])
        def serve(self, x):
            return {"n": x.row_lengths()}

    m = R()
    d = str(tmp_path / "r" / "1")
    tf.saved_model.save(m, d, signatures={"serving_default": m.serve})
    model = read_signatures(d)
    mg = model.meta_graph
    for cf in mg.object_graph_def.concrete_functions.values():
        for v in cf.canonicalized_input_signature.tuple_value.values[0].tuple_value.values:
            if v.WhichOneof("kind") == "type_spec_value":
                v.type_spec_value.type_state.tuple_value.values[1].tensor_dtype_value = 999
    inputs = {a: (s.name, s.dtype) for a, s in model.signatures["serving_default"].inputs.items()}
    assert graph.find_composites(mg, inputs) == {}
    assert "composite input" in caplog.text and "TypeError" in caplog.text
    del node
