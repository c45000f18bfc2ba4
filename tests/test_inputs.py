"""Inputs a model accepts: tf.Example requests, value domains, overrides, fallback, stateful skips."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

from models import lookup_embedding_module, parse_example_module, picky_module, stateful_module


def test_shared_model_classify_regress_multi_inference(half_plus_two):
    report = tw.add_warmup(half_plus_two, batch_sizes=[1, 3], multi_inference=True, model_name="hp2")
    assert report.ok
    types = {(r.signature, r.request_type) for r in report.plan.records}
    assert ("classify_x_to_y", "classify") in types
    assert ("regress_x_to_y", "regress") in types
    assert ("regress_x_to_y2", "regress") in types
    assert ("serving_default", "predict") in types
    assert any(t == "multi_inference" for _, t in types)
    logs = read_logs(warmup_path(half_plus_two))
    classify = [l for l in logs if l.WhichOneof("log_type") == "classify_log"]
    assert {len(l.classify_log.request.input.example_list.examples) for l in classify} == {1, 3}
    for ex in classify[1].classify_log.request.input.example_list.examples:
        assert len(ex.features.feature["x"].float_list.value) == 1  # required feature, right length
    multi = [l for l in logs if l.WhichOneof("log_type") == "multi_inference_log"]
    assert all(len({t.model_spec.name for t in l.multi_inference_log.request.tasks}) == 1 for l in multi)
    assert tw.check(half_plus_two).ok


def test_multi_inference_needs_model_name(half_plus_two):
    with pytest.raises(tw.PlanError, match="model name"):
        tw.plan(half_plus_two, multi_inference=True)


def test_tf2_parse_example_model_predict_with_examples(tmp_path):
    d = parse_example_module(tmp_path / "pe" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 4])
    assert report.ok
    (inp,) = report.plan.records[0].inputs
    assert inp.kind == "examples"
    assert {f.key for f in inp.example_spec.context_features()} == {"age", "bucket", "tags"}
    assert inp.feature_domains["bucket"].high == 10  # bounded by the embedding table
    logs = read_logs(warmup_path(d))
    serialized = tf.make_ndarray(logs[1].predict_log.request.inputs["examples"])
    examples = [tf.train.Example.FromString(b) for b in serialized]
    assert any("bucket" not in e.features.feature for e in examples)  # defaults path warmed
    assert {len(e.features.feature["tags"].bytes_list.value) for e in examples} >= {0}
    assert tw.check(d).ok


def test_domains_from_lookup_table_and_embedding(tmp_path):
    d = lookup_embedding_module(tmp_path / "le" / "1")
    report = tw.add_warmup(d, batch_sizes=[8, 32])
    assert report.ok
    inputs = {i.alias: i for i in report.plan.records[0].inputs}
    assert set(inputs["color"].domain.choices) == {"red", "green", "blue"}
    assert (inputs["item"].domain.low, inputs["item"].domain.high) == (0, 5)
    for log in read_logs(warmup_path(d)):
        colors = set(tf.make_ndarray(log.predict_log.request.inputs["color"]).tolist())
        items = tf.make_ndarray(log.predict_log.request.inputs["item"])
        assert colors <= {b"red", b"green", b"blue"}
        assert items.min() >= 0 and items.max() < 5


def test_user_overrides_constant_range_choices_callable(tmp_path):
    d = lookup_embedding_module(tmp_path / "le" / "1")
    report = tw.add_warmup(d, batch_sizes=[4], overrides={
        "color": ["blue"],
        "serving_default/item": lambda rng, shape: np.full(shape, 3, np.int64)})
    log = read_logs(warmup_path(d))[0]
    assert set(tf.make_ndarray(log.predict_log.request.inputs["color"]).tolist()) == {b"blue"}
    assert set(tf.make_ndarray(log.predict_log.request.inputs["item"]).tolist()) == {3}
    assert report.ok
    p = tw.plan(d, overrides={"item": (1, 2), "color": "red"})
    inputs = {i.alias: i for i in p.records[0].inputs}
    assert inputs["item"].domain.low == 1 and inputs["color"].domain.constant == "red"


def test_feature_override_inside_examples(tmp_path):
    d = parse_example_module(tmp_path / "pe" / "1")
    tw.add_warmup(d, batch_sizes=[4], overrides={"tags": ["alpha"]})
    serialized = tf.make_ndarray(read_logs(warmup_path(d))[0].predict_log.request.inputs["examples"])
    examples = [tf.train.Example.FromString(b) for b in serialized]
    assert len(examples) == 4
    # the (variable-length) feature is written, and holds only the override's value
    values = [v for e in examples for v in e.features.feature["tags"].bytes_list.value]
    assert values and set(values) == {b"alpha"}


def test_safe_retry_when_random_values_fail(tmp_path):
    d = picky_module(tmp_path / "p" / "1")
    report = tw.add_warmup(d, batch_sizes=[2])
    assert report.ok
    (result,) = report.results
    assert result.inputs["x"].startswith("safe")
    value = tf.make_ndarray(read_logs(warmup_path(d))[0].predict_log.request.inputs["x"])
    assert not value.any()


def test_failure_error_names_input_and_override(tmp_path):
    d = picky_module(tmp_path / "p" / "1", target=7.25)
    with pytest.raises(tw.ReplayError, match=r"retried with safe values.*input 'x' has no known value "
                                             r"domain: overrides=\{'serving_default/x'"):
        tw.add_warmup(d)


def test_failing_user_override_is_named(tmp_path):
    d = picky_module(tmp_path / "p" / "1")
    with pytest.raises(tw.ReplayError, match=r"uses your override \(constant 1.0"):
        tw.add_warmup(d, overrides={"x": 1.0})


def test_stateful_signature_skipped_by_default_and_state_unchanged(tmp_path):
    d = stateful_module(tmp_path / "s" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 2])
    assert "counted" in report.plan.skipped and "AssignAddVariableOp" in report.plan.skipped["counted"]
    assert report.plan.signatures == ["serving_default"]
    # Replay the file as TF Serving would, then call `counted` once: it must see the counter at 0.
    assert _counted_after_replay(d) == 1.0


def _counted_after_replay(d) -> float:
    from tfwarm_export.serving.replay import Replayer

    with Replayer(d) as r:
        r.replay(read_logs(warmup_path(d)))
        sig = r.meta_graph.signature_def["counted"]
        y = r.session.run(sig.outputs["y"].name, {sig.inputs["x"].name: np.ones((1, 2), np.float32)})
    return float(y[0, 0])


def test_stateful_opt_in(tmp_path):
    d = stateful_module(tmp_path / "s" / "1")
    report = tw.add_warmup(d, include_stateful=True)
    assert set(report.plan.signatures) == {"counted", "serving_default"}
    assert report.ok
    assert _counted_after_replay(d) > 1.0  # the opt-in really does change state at load


def test_user_domain_is_kept_on_safe_retry():
    """A Domain the user builds (own source, fn only) is the user's: the safe retry keeps it."""
    import numpy as np
    import tensorflow as tf

    from tfwarm_export.specs.domains import Domain
    from tfwarm_export.values.synth import safe_domain

    def ids(rng, shape):
        return np.full(shape, 7, dtype=np.int64)

    user = Domain.from_user(Domain(fn=ids, source="my ids"))
    assert user.user and user.source == "my ids"
    assert safe_domain(tf.int64, user) is user
    inferred = Domain(low=3, high=9, source="Gather on 'emb'")
    assert safe_domain(tf.int64, inferred).constant == 3
    decoder = Domain(fn=ids, source="decoder", safe=Domain(constant=b"0", source="decoder: smallest"))
    assert safe_domain(tf.string, decoder).constant == b"0"
