"""End-to-end core behaviour on real SavedModels: plan, write, replay, check, determinism."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

from models import (ALL_DTYPES, dtype_module, keras_dict_model, scalar_module,
                    tf1_builder_model, unknown_rank_module)




# --------------------------------------------------------------------------- independent replay


def serving_replay(export_dir) -> list[tuple[str, dict, dict]]:
    """Replay the model's warmup file the way TF Serving does, without the tool's code.

    Records are read with ``tf.data.TFRecordDataset`` and parsed with the serving
    protos; the model is loaded with the TF1 loader into a fresh graph and Session;
    each request is fed through its SignatureDef (Predict: the request's tensors;
    Classify/Regress: the serialized tf.Examples). Returns, per record, the signature,
    the inputs as numpy and the outputs.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    raw = [r.numpy() for r in tf.data.TFRecordDataset(warmup_path(str(export_dir)))]
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in raw]
    out = []
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(export_dir))
        for log in logs:
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {a: tf.make_ndarray(t) for a, t in request.inputs.items()}
            else:
                request = getattr(log, kind).request
                examples = request.input.example_list.examples
                inputs = {"examples": list(examples)}
            name = request.model_spec.signature_name or "serving_default"
            sig = meta.signature_def[name]
            if kind == "predict_log":
                feeds = {sig.inputs[a].name: v for a, v in inputs.items()}
            else:
                (only,) = sig.inputs.values()
                feeds = {only.name: np.array([e.SerializeToString() for e in inputs["examples"]], object)}
            fetches = {a: t.name for a, t in sig.outputs.items()}
            out.append((name, inputs, sess.run(fetches, feeds)))
    return out


def test_reads_tf2_signatures(mixed_src):
    model = tw.read_signatures(mixed_src)
    assert sorted(model.signatures) == ["other", "serving_default"]
    sig = model.signatures["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert sig.inputs["ids"].shape == (None, None)
    assert sig.inputs["ids"].dtype == tf.int64
    assert set(sig.outputs) == {"y", "ids_sum"}


def test_add_warmup_writes_and_replays(mixed):
    report = tw.add_warmup(mixed, batch_sizes=[1, 8, 32])
    assert report.ok and report.replayed
    assert os.path.exists(warmup_path(mixed))
    logs = read_logs(warmup_path(mixed))
    assert len(logs) == 6
    seen = set()
    for log in logs:
        req = log.predict_log.request
        assert req.model_spec.signature_name in ("serving_default", "other")
        sizes = {tuple(d.size for d in t.tensor_shape.dim)[0] for t in req.inputs.values()}
        assert len(sizes) == 1
        seen.add((req.model_spec.signature_name, sizes.pop()))
    assert seen == {(s, b) for s in ("serving_default", "other") for b in (1, 8, 32)}
    assert all(r.first_ms is not None and r.second_ms is not None for r in report.results)
    # Graded independently: a TF Serving-style replay of the file, outputs against the
    # model's known function (y = dense @ ones(3, 2), ids_sum, strlen, half * 2).
    replayed = serving_replay(mixed)
    assert len(replayed) == 6
    for name, inputs, outputs in replayed:
        if name == "serving_default":
            row_sum = inputs["dense"].sum(axis=1, keepdims=True)
            np.testing.assert_allclose(outputs["y"], np.repeat(row_sum, 2, axis=1), rtol=1e-5)
            np.testing.assert_array_equal(outputs["ids_sum"], inputs["ids"].sum(axis=1))
        else:
            np.testing.assert_array_equal(outputs["length"], [len(t) for t in inputs["text"]])
            np.testing.assert_allclose(outputs["half2"], inputs["half"] * 2, rtol=1e-3)
    assert tw.check(mixed).ok


def test_input_dtypes_match_signature_exactly(mixed):
    tw.add_warmup(mixed, batch_sizes=[2])
    model = tw.read_signatures(mixed)
    for log in read_logs(warmup_path(mixed)):
        req = log.predict_log.request
        sig = model.signatures[req.model_spec.signature_name]
        assert set(req.inputs) == set(sig.inputs)  # aliases, not tensor names
        for alias, proto in req.inputs.items():
            assert tf.dtypes.as_dtype(proto.dtype) == sig.inputs[alias].dtype


def test_same_seed_byte_identical_other_seed_differs(mixed, tmp_path):
    tw.add_warmup(mixed, batch_sizes=[1, 4], seed=7)
    first = open(warmup_path(mixed), "rb").read()
    tw.add_warmup(mixed, batch_sizes=[1, 4], seed=7, overwrite=True)
    assert open(warmup_path(mixed), "rb").read() == first
    tw.add_warmup(mixed, batch_sizes=[1, 4], seed=8, overwrite=True)
    assert open(warmup_path(mixed), "rb").read() != first


def test_every_dtype(tmp_path):
    d = dtype_module(tmp_path / "dtypes" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 3])
    assert report.ok
    assert len(report.plan.records) == 2 * len(ALL_DTYPES)
    logs = read_logs(warmup_path(d))
    dtypes = {tf.dtypes.as_dtype(l.predict_log.request.inputs["x"].dtype) for l in logs}
    assert dtypes == set(ALL_DTYPES)
    for log in logs:
        value = tf.make_ndarray(log.predict_log.request.inputs["x"])
        if value.dtype != object and value.dtype != bool:
            assert np.all(np.isfinite(value.astype(np.complex128)))
            if np.issubdtype(value.dtype, np.integer):
                assert value.min() >= 0 and value.max() < 100
    assert tw.check(d).ok


@pytest.mark.compat
def test_keras_dict_model(tmp_path):
    d = keras_dict_model(tmp_path / "keras" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 16])
    assert report.ok
    assert "serving_default" in report.plan.signatures
    aliases = {i.alias for i in report.plan.records[0].inputs}
    assert aliases == {"age_income", "embedding_in"}
    assert tw.check(d).ok


def test_tf1_builder_model(tmp_path):
    d = tf1_builder_model(tmp_path / "tf1" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 5])
    assert report.ok and tw.check(d).ok


@pytest.mark.compat
def test_shared_half_plus_two_predict_and_regress_fallback(half_plus_two):
    report = tw.add_warmup(half_plus_two, batch_sizes=[1, 4])
    assert report.ok
    warmed = set(report.plan.signatures)
    assert "serving_default" in warmed
    # regress_x2_to_y3 has a float input: the Regress API can't feed it, Predict can.
    assert "regress_x2_to_y3" in warmed
    rec = next(r for r in report.plan.records if r.signature == "regress_x2_to_y3")
    assert rec.request_type == "predict"
    assert any("regress_x2_to_y3" in n for n in report.plan.notes)
    # TF Serving's half_plus_two: y = 0.5 x + 2, y2 = 0.5 x + 3, y3 = 0.5 x2 + 3, checked on
    # an independent replay of every record (Predict, Classify and Regress).
    replayed = serving_replay(half_plus_two)
    assert {name for name, _, _ in replayed} == warmed
    for name, inputs, outputs in replayed:
        if "examples" in inputs:
            x = np.array([e.features.feature["x"].float_list.value[0] for e in inputs["examples"]])
            (y,) = outputs.values()
            offset = 3.0 if name == "regress_x_to_y2" else 2.0
            np.testing.assert_allclose(np.ravel(y), 0.5 * x + offset, rtol=1e-6)
        else:
            ((alias, x),) = inputs.items()
            (y,) = outputs.values()
            offset = 3.0 if alias == "inputs" else 2.0  # regress_x2_to_y3 fed through Predict
            np.testing.assert_allclose(y, 0.5 * x + offset, rtol=1e-6)
    assert tw.check(half_plus_two).ok


def test_batching_parameters_file_sets_sizes(mixed, tmp_path):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 16 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8\n"
                   "allowed_batch_sizes: 16\n")
    report = tw.add_warmup(mixed, batching_parameters=str(cfg))
    assert report.plan.batch_sizes == (2, 8, 16)
    assert len(report.plan.records) == 6
    assert tw.check(mixed, batching_parameters=str(cfg)).ok


def test_shared_batching_config_uses_max(mixed, batching_config_path):
    p = tw.plan(mixed, batching_parameters=str(batching_config_path))
    assert p.batch_sizes == (128,)


def test_default_batch_size_is_one(mixed):
    p = tw.plan(mixed)
    assert p.batch_sizes == (1,)
    assert {r.batch_size for r in p.records} == {1}


def test_dim_sizes_warm_each_variant(mixed):
    report = tw.add_warmup(mixed, batch_sizes=[2], dim_sizes={"ids": {1: [3, 17]}},
                           signatures=["serving_default"])
    shapes = sorted(tuple(i.shape) for r in report.plan.records for i in r.inputs if i.alias == "ids")
    assert shapes == [(2, 3), (2, 17)]
    assert report.ok


def test_rank0_input_noted_and_skipped_under_batching(tmp_path):
    d = scalar_module(tmp_path / "scalar" / "1")
    p = tw.plan(d, batch_sizes=[1, 2])
    rec = p.records[0]
    assert {i.alias: i.shape for i in rec.inputs}["scale"] == ()
    assert any("rank 0" in n for n in p.notes)
    assert tw.add_warmup(d, batch_sizes=[1, 2]).ok
    with pytest.raises(tw.PlanError, match="rank 0"):
        tw.plan(d, batching_parameters=tw.parse_batching_parameters("max_batch_size { value: 4 }"))


def test_unknown_rank_needs_shape(tmp_path):
    d = unknown_rank_module(tmp_path / "ur" / "1")
    with pytest.raises(tw.PlanError, match=r"unknown rank.*shapes=\{'serving_default/x'"):
        tw.plan(d)
    report = tw.add_warmup(d, shapes={"x": (None, 5)}, batch_sizes=[2])
    assert report.ok
    assert report.plan.records[0].inputs[0].shape == (2, 5)


def test_model_name_and_signature_name_always_set(mixed):
    tw.add_warmup(mixed, model_name="ranker")
    for log in read_logs(warmup_path(mixed)):
        assert log.predict_log.request.model_spec.name == "ranker"
        assert log.predict_log.request.model_spec.signature_name


def test_plan_json_is_visible_before_writing(mixed):
    p = tw.plan(mixed, batch_sizes=[1, 2])
    d = p.to_dict()
    assert d["num_records"] == 4
    assert not os.path.exists(warmup_path(mixed))
    assert "serving_default" in p.summary()


def test_unbatched_output_warns_without_batching_fails_with_it(tmp_path):
    from models import unbatched_output_module

    d = unbatched_output_module(tmp_path / "ub" / "1")
    report = tw.add_warmup(d, batch_sizes=[1, 2])
    assert report.ok
    assert any("total" in w and "batching" in w for r in report.results for w in r.warnings)
    assert "warning" in report.summary()
    batching = tw.parse_batching_parameters("max_batch_size { value: 2 }\nallowed_batch_sizes: 2")
    with pytest.raises(tw.ReplayError, match="output serving_default/total"):
        tw.add_warmup(d, batching_parameters=batching, overwrite=True)


def test_too_small_default_dims_are_retried_larger(tmp_path):
    from models import conv_module

    d = conv_module(tmp_path / "conv" / "1")
    report = tw.add_warmup(d, batch_sizes=[2], signatures=["serving_default"])
    assert report.ok
    (record,) = report.plan.records
    assert record.inputs[0].shape == (2, 32, 32, 3)  # the plan reports what was written
    logged = read_logs(warmup_path(d))[0].predict_log.request.inputs["image"]
    assert [x.size for x in logged.tensor_shape.dim] == [2, 32, 32, 3]


def test_unknown_rank_signature_skipped_when_others_can_be_warmed(tmp_path):
    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def known(self, x):
            return {"y": x + 1.0}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
        def unknown(self, x):
            return {"y": x + 1.0}

    m = Two()
    d = str(tmp_path / "two" / "1")
    tf.saved_model.save(m, d, signatures={"serving_default": m.known, "legacy": m.unknown})
    report = tw.add_warmup(d)
    assert report.plan.signatures == ["serving_default"]
    assert "unknown rank" in report.plan.skipped["legacy"] and "--shape legacy/x=" in report.plan.skipped["legacy"]
    assert "legacy: SKIPPED" in report.summary()
    with pytest.raises(tw.SignatureError, match="unknown rank"):
        tw.plan(d, signatures=["legacy"])
