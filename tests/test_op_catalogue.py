"""The op catalogue checked against the installed TensorFlow, and what the tool does with it.

- Every string-taking op of ``tf.raw_ops`` is classified, so a TF upgrade that adds
  one fails here instead of silently opening a gap.
- A string input that reaches an ``unsupported`` op is one clear plan error.
- A value that still fails names the op TensorFlow's error names, its kind, and
  only the inputs that reach it (real models, run through the CLI in-process).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402

import tfwarm_export as tw  # noqa: E402
from tfwarm_export import cli  # noqa: E402
from tfwarm_export.analysis import op_catalogue as oc  # noqa: E402
from tfwarm_export.analysis.op_catalogue_table import CATALOGUE  # noqa: E402
from tfwarm_export.errors import tf_error_node  # noqa: E402


def test_every_string_taking_op_of_this_tf_is_catalogued():
    names = oc.string_taking_ops()
    assert len(names) > 100  # the registry walk found TF's string ops, not an empty list
    assert oc.uncatalogued_ops() == [], (
        f"TensorFlow {tf.__version__} has string-taking ops the catalogue does not classify; add "
        "them to tfwarm_export/analysis/op_catalogue_table.py")
    counts = oc.counts_by_kind()
    assert sum(counts.values()) == len(names)
    assert all(counts[k] > 0 for k in oc.KINDS), counts
    print(f"TF {tf.__version__} string-taking ops by class: {counts}")


def test_catalogue_entries_name_real_string_inputs():
    """Per-input entries must name a string-carrying input of that op (no typos, no stale args)."""
    for op, (kind, why, args) in CATALOGUE.items():
        assert kind in oc.KINDS and why, op
        op_def = op_def_registry.get(op)
        if op_def is None:  # an op a newer/older TF dropped: harmless, but must stay well-formed
            continue
        strings = set(oc.string_args(op_def))
        for arg, (arg_kind, arg_why) in args.items():
            assert arg in strings, (op, arg, strings)
            assert arg_kind in oc.KINDS and arg_why, (op, arg)


@pytest.mark.parametrize("op, arg, kind", [
    ("DecodeJpeg", "", "decoder"), ("DecodeCSV", "records", "decoder"),
    ("DecodeCSV", "record_defaults", "format_free"), ("ParseExampleV2", "serialized", "decoder"),
    ("ParseExampleV2", "dense_keys", "unsupported"),
    # the four decoders issue 19 adds (written by analysis/decoders.py once they land)
    ("DecodeWav", "", "decoder"), ("DecodeCompressed", "", "decoder"), ("DecodeProtoV2", "", "decoder"),
    ("UnicodeDecode", "", "decoder"), ("UnicodeTranscode", "", "decoder"),
    ("StaticRegexFullMatch", "", "guard"), ("RegexFullMatch", "input", "guard"),
    ("RegexFullMatch", "pattern", "unsupported"), ("StringLength", "", "guard"),
    ("StringToHashBucketFast", "", "format_free"), ("StringJoin", "", "format_free"),
    ("LookupTableFindV2", "keys", "format_free"), ("Identity", "", "format_free"),
    ("ReadFile", "", "unsupported"), ("WriteFile", "filename", "unsupported"),
    ("WriteFile", "contents", "format_free"), ("QueueEnqueue", "handle", "unsupported"),
])
def test_classes(op, arg, kind):
    assert oc.classify(op, arg).kind == kind


# ------------------------------------------------------------------ models


class _ReadsFile(tf.Module):
    """A string input used as a path on the server: no written value can be known to work."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="path"),
                                  tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, path, x):
        return {"n": tf.strings.length(tf.io.read_file(path)) + tf.cast(tf.reduce_sum(x), tf.int32)}


class _DateGuard(tf.Module):
    """A date asserted with a regex before ``substr``/``to_number``, beside an unrelated float."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="date"),
                                  tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, date, x):
        ok = tf.strings.regex_full_match(date, r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(ok), [date])]):
            year = tf.strings.to_number(tf.strings.substr(date, 0, 4), tf.float32)
        return {"y": year + x}


def _save(module: tf.Module, path) -> str:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def _cli(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_input_reaching_an_unsupported_op_is_one_clear_error(tmp_path, capsys):
    model = _save(_ReadsFile(), tmp_path / "reads")
    uses = tw.analysis.find_string_uses(tw.read_signatures(model).meta_graph, "serving_default_path:0")
    assert [u.op for u in uses if u.kind == "unsupported"] == ["ReadFile"]
    rc, out, err = _cli(["add", model], capsys)
    assert rc == 2, out + err
    line = err.strip().splitlines()[-1]
    assert "input 'path' reaches ReadFile" in line and "unsupported" in line
    assert "filesystem" in line  # the reason from the catalogue
    assert "--value 'serving_default/path=" in line and "'x'" not in line
    assert not os.path.exists(os.path.join(model, "assets.extra"))
    # The override it names fixes it (the file exists where the model runs).
    target = tmp_path / "payload.txt"
    target.write_text("hello")
    rc, out, err = _cli(["add", model, "--value", f'serving_default/path=["{target}"]'], capsys)
    assert rc == 0, out + err


class _HashGuard(tf.Module):
    """A key asserted to land in one hash bucket: no value rule can satisfy it by design."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="key"),
                                  tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, key, x):
        bucket = tf.strings.to_hash_bucket_fast(key, 1000)
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(tf.equal(bucket, 7)), [key])]):
            return {"y": tf.cast(bucket, tf.float32) + x}


def test_failing_guard_names_the_op_and_only_the_inputs_that_reach_it(tmp_path, capsys):
    model = _save(_HashGuard(), tmp_path / "guard")
    rc, out, err = _cli(["add", model], capsys)
    assert rc != 0 and "failed replay" in err, out + err
    assert "rejected by Assert" in err and "guard on Equal" in err
    assert "input 'key'" in err and "--value 'serving_default/key=" in err
    assert "input 'x'" not in err  # x never reaches the Assert: no domain is asked for it
    valid = next(k for k in (f"k{i}" for i in range(100000))
                 if int(tf.strings.to_hash_bucket_fast(k, 1000)) == 7)
    rc, out, err = _cli(["add", model, "--value", f'serving_default/key=["{valid}"]'], capsys)
    assert rc == 0, out + err


def test_rejection_maps_the_node_to_its_op_and_inputs(tmp_path):
    model = _save(_DateGuard(), tmp_path / "guard")
    meta_graph = tw.read_signatures(model).meta_graph
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], model)
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            sess.run("StatefulPartitionedCall:0", {"serving_default_date:0": np.array([b"nope"], object),
                                                   "serving_default_x:0": np.zeros(1, np.float32)})
    where = tf_error_node(e.value)
    assert where is not None and where[1].endswith("Assert")
    r = tw.analysis.find_rejection(meta_graph, where[0], where[1],
                                   {"date": "serving_default_date:0", "x": "serving_default_x:0"})
    assert r.op == "Assert" and r.kind == "guard" and r.guards == ("StaticRegexFullMatch",)
    assert r.inputs == ("date",)


def test_tf_error_node_reads_function_traces():
    class E(Exception):
        message = ("assertion failed: [x]\n\t [[{{function_node __inference_f_1}}{{function_node "
                   "__inference_g_2}}{{node Assert/Assert}}]]\n\t [[StatefulPartitionedCall]]")
    assert tf_error_node(E()) == ("__inference_g_2", "Assert/Assert")
    assert tf_error_node(Exception("no node here")) is None


def test_every_decoder_in_the_catalogue_has_a_rule_that_writes_its_bytes():
    """``decoder`` is a promise: some analysis module must recognise the op and say what to write."""
    from tfwarm_export.analysis.decoders import DECODER_OPS
    from tfwarm_export.analysis.op_catalogue_table import CATALOGUE
    from tfwarm_export.analysis.parse_specs import PARSER_OPS

    promised = {op for op, (kind, _, args) in CATALOGUE.items()
                if kind == "decoder" or any(k == "decoder" for k, _ in args.values())}
    assert promised, "the catalogue lists no decoder at all"
    assert promised - DECODER_OPS - PARSER_OPS == set()
    assert DECODER_OPS - promised == set(), "a decoder rule for an op the catalogue does not call a decoder"


# ------------------------------------------------------------------ shape and relation rules (issue 26)


def test_ops_with_a_shape_or_relation_rule_each_have_a_test_model():
    """The solver's rules and the ops they read; a rule without a test model fails here
    (tests/test_constraints.py then checks each model's graph really runs those ops)."""
    import models_constraints
    from tfwarm_export.analysis.constraint_solver import RULES

    ops = sorted({op for rule_ops, _ in RULES.values() for op in rule_ops})
    print(f"ops with a shape or relation rule: {ops}")
    assert ops and all(op_def_registry.get(op) is not None for op in ops), ops
    missing = sorted(set(RULES) - set(models_constraints.RULE_MODELS))
    assert not missing, f"rules without a test model in tests/models_constraints.py: {missing}"
    for rule, (model, signature) in models_constraints.RULE_MODELS.items():
        assert rule in RULES, f"stale entry {rule!r}"
        assert hasattr(models_constraints.CLASSES[model], signature), (rule, model, signature)
