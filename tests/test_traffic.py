"""Warming from logged traffic: REST JSON and PredictionLog sources, validation with
drop counts, deterministic stratified selection, previous versions, privacy."""
from __future__ import annotations

import base64
import gzip
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_model
from tensorflow_serving.apis import (classification_pb2, inference_pb2, input_pb2, model_pb2,
                                     predict_pb2, prediction_log_pb2, regression_pb2)

import tfwarm_export as tw
from tfwarm_export.errors import DatasetError
from tfwarm_export.model.signatures import SignatureInfo, TensorSpec
from tfwarm_export.traffic import sample_traffic, traffic_files, traffic_plan, traffic_spec
from tfwarm_export.traffic.readers.rest_json import decode_body
from tfwarm_export.traffic.validate import Dropped
from tfwarm_export.serving.warmup_file import read_logs, warmup_path


def spec_of(**inputs) -> SignatureInfo:
    specs = {a: TensorSpec(a, f"{a}:0", dt, shape) for a, (dt, shape) in inputs.items()}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", specs, {})


def decode(body, sig):
    return decode_body(json.dumps(body), traffic_spec({sig.name: sig}))


def dropped(body, sig) -> str:
    with pytest.raises(Dropped) as e:
        decode(body, sig)
    return str(e.value)


def b64(raw: bytes) -> dict:
    return {"b64": base64.b64encode(raw).decode()}


# --------------------------------------------------------------------------- REST JSON rules


def test_rest_json_row_and_columnar_formats_decode_like_tf_serving():
    sig = spec_of(x=(tf.float32, (None, 3)), ids=(tf.int64, (None, None)), tag=(tf.string, (None,)))
    (req,) = decode({"instances": [{"x": [1, 2.5, 3], "ids": [1, 2], "tag": b64(b"\x00a\xff")},
                                   {"x": [4, 5, 6], "ids": [3, 4], "tag": "é"}]}, sig)
    assert req.signature == "serving_default" and req.request_type == "predict"
    assert req.inputs["x"].dtype == np.float32 and req.inputs["x"].shape == (2, 3)
    assert req.inputs["ids"].dtype == np.int64 and req.inputs["ids"].tolist() == [[1, 2], [3, 4]]
    assert req.inputs["tag"].tolist() == [b"\x00a\xff", "é".encode()]
    (col,) = decode({"inputs": {"x": [[1, 2, 3]], "ids": [[7]], "tag": ["t"], "ignored": 1}}, sig)
    assert col.inputs["x"].shape == (1, 3) and col.inputs["ids"].tolist() == [[7]]
    one = spec_of(x=(tf.float32, (None, 3)))
    assert decode({"instances": [[1, 2, 3]]}, one)[0].inputs["x"].shape == (1, 3)
    assert decode({"inputs": [[1, 2, 3], [4, 5, 6]]}, one)[0].inputs["x"].shape == (2, 3)
    nan = decode({"instances": [[float("nan"), float("inf"), 1]]}, one)[0].inputs["x"]
    assert np.isnan(nan[0, 0]) and np.isinf(nan[0, 1])


def test_rest_json_type_rules_match_json_tensor_cc():
    ints = spec_of(i=(tf.int32, (None,)))
    assert "JSON Number is not of expected type int32" in dropped({"instances": [1.0]}, ints)
    assert "JSON True is not of expected type int32" in dropped({"instances": [True]}, ints)
    assert "not of expected type int32" in dropped({"instances": [2**31]}, ints)
    assert "JSON Object is not of expected type int32" in dropped({"instances": [b64(b"1")]}, ints)
    u8 = spec_of(i=(tf.uint8, (None,)))
    assert decode({"instances": [300]}, u8)[0].inputs["i"].tolist() == [44]  # int_val cast wraps
    f32 = spec_of(f=(tf.float32, (None,)))
    assert "without loss of precision" in dropped({"instances": [2**24 + 1]}, f32)
    assert decode({"instances": [2**24 - 1]}, f32)[0].inputs["f"].dtype == np.float32
    assert "without loss of precision" in dropped({"instances": [1e39]}, f32)
    f64 = spec_of(f=(tf.float64, (None,)))
    assert decode({"instances": [1e39]}, f64)[0].inputs["f"].tolist() == [1e39]
    b = spec_of(b=(tf.bool, (None,)))
    assert "JSON Number is not of expected type bool" in dropped({"instances": [1]}, b)
    s = spec_of(s=(tf.string, (None,)))
    assert "not of expected type string" in dropped({"instances": [1]}, s)
    assert "base64" in dropped({"instances": [{"b64": "%%%"}]}, s)
    h = spec_of(h=(tf.float16, (None,)))
    assert "no JSON conversion to float16" in dropped({"instances": [1.0]}, h)


def test_rest_json_structure_rules():
    two = spec_of(x=(tf.float32, (None, 2)), y=(tf.float32, (None,)))
    assert "plain list" in dropped({"instances": [[1, 2]]}, two)
    assert "input 'age' is not in signature 'serving_default'" == dropped(
        {"instances": [{"x": [1, 2], "y": 1, "age": 3}]}, two)
    assert "input 'y' is missing" in dropped({"instances": [{"x": [1, 2]}]}, two)
    assert "input 'y' of signature 'serving_default' is missing from 'inputs'" == dropped(
        {"inputs": {"x": [[1, 2]]}}, two)
    assert "different shapes" in dropped({"instances": [{"x": [1, 2], "y": 1}, {"x": [1, 2, 3], "y": 1}]}, two)
    assert "ragged" in dropped({"inputs": {"x": [[1, 2], [3]], "y": [1, 2]}}, two)
    assert "ragged" in dropped({"inputs": {"x": [[1, 2], 3], "y": [1, 2]}}, two)
    assert "nested deeper" in dropped({"inputs": {"x": [[1, [2]]], "y": [1]}}, two)
    assert "different shapes" in dropped({"instances": [{"x": [1, 2], "y": 1}, {"x": [1, 2], "y": [1]}]}, two)
    assert "not both" in dropped({"instances": [], "inputs": []}, two)
    assert "no values" in dropped({"instances": []}, two)
    assert "missing 'inputs' or 'instances'" in dropped({"signature_name": "serving_default"}, two)
    assert "signature 'nope' is not in the model" == dropped({"signature_name": "nope", "inputs": {}}, two)
    assert "axis 1 is 3" in dropped({"inputs": {"x": [[1, 2, 3]], "y": [1]}}, two)
    assert "disagree on the batch size" in dropped({"inputs": {"x": [[1, 2]], "y": [1, 2]}}, two)
    with pytest.raises(Dropped, match="not valid JSON"):
        decode_body("{nope", traffic_spec({"serving_default": two}))


def test_rest_json_classify_body_merges_context_into_examples():
    sig = SignatureInfo("cls", "tensorflow/serving/classify",
                        {"inputs": TensorSpec("inputs", "in:0", tf.string, (None,))}, {})
    (req,) = decode({"signature_name": "cls", "context": {"country": "de", "w": 0.5},
                     "examples": [{"x": [1, 2], "ok": True, "raw": b64(b"\x01")}, {"x": 3.5}]}, sig)
    assert req.request_type == "classify"
    exs = [tf.train.Example.FromString(r) for r in req.inputs["inputs"]]
    assert exs[0].features.feature["x"].int64_list.value == [1, 2]
    assert exs[0].features.feature["ok"].int64_list.value == [1]
    assert exs[0].features.feature["raw"].bytes_list.value == [b"\x01"]
    assert exs[1].features.feature["x"].float_list.value == [3.5]
    assert all(e.features.feature["country"].bytes_list.value == [b"de"] for e in exs)
    assert "mixes value types" in dropped({"signature_name": "cls", "examples": [{"x": [1, "a"]}]}, sig)
    predict = spec_of(x=(tf.float32, (None,)))
    assert "Classify/Regress body" in dropped({"examples": [{"x": 1}]}, predict)


# --------------------------------------------------------------------------- models and files


@pytest.fixture(scope="session")
def v7_src(tmp_path_factory) -> str:
    from models_traffic import traffic_model

    return traffic_model(tmp_path_factory.mktemp("traffic") / "7", 7)


@pytest.fixture(scope="session")
def v8_src(tmp_path_factory) -> str:
    from models_traffic import traffic_model

    return traffic_model(tmp_path_factory.mktemp("traffic") / "8", 8)


def rest_lines(n: int = 30) -> list[dict]:
    """Row and columnar bodies with b64 strings, variable ``ids`` lengths, and bad ones."""
    out = []
    for i in range(n):
        out.append({"instances": [{"x": [i, 0.5, 1], "ids": list(range(1 + i % 3)),
                                   "tag": b64(b"t%d" % i)}]})
        out.append({"signature_name": "serving_default",
                    "inputs": {"x": [[i, 1, 1], [2, 2, i]], "ids": [[i, 1, 2, 3], [4, 5, 6, 7]],
                               "tag": ["a", "b"]}})
        if i % 3 == 0:
            out.append({"signature_name": "score", "instances": [[i, 2, 3], [4, 5, 6], [7, 8, 9]]})
    out += [{"instances": [{"x": [1, 2, 3], "ids": [1], "tag": "a", "age": 3}]}] * 4
    out += [{"instances": [{"x": [1, 2, 3], "ids": [1.5], "tag": "a"}]}] * 2
    return out


def write_jsonl(path, bodies, gz: bool = False) -> str:
    text = "".join(json.dumps(b) + "\n" for b in bodies) + "\n{not json\n"
    data = gzip.compress(text.encode()) if gz else text.encode()
    path.write_bytes(data)
    return str(path)


@pytest.mark.compat
def test_jsonl_both_formats_with_b64_end_to_end(v7_src, tmp_path):
    model = copy_model(v7_src, tmp_path)
    write_jsonl(tmp_path / "a.jsonl", rest_lines()[:40])
    write_jsonl(tmp_path / "b.jsonl.gz", rest_lines()[40:], gz=True)
    report = tw.add_warmup(model, traffic=str(tmp_path / "*.jsonl*"), batch_sizes=[1, 4])
    assert report.ok and set(report.plan.samples) == {"serving_default", "score"}
    notes = "\n".join(report.plan.notes)
    assert "4 request(s) from" in notes and "dropped: input 'age' is not in signature 'serving_default'" in notes
    assert "2 request(s) from" in notes and "dropped: input 'ids': JSON Number is not of expected type int64" in notes
    assert "2 request(s) from" in notes and "dropped: not valid JSON" in notes  # one per file
    sample = report.plan.samples["serving_default"]
    assert sample.requests == 60 and sample.scanned == 90
    kinds = {st[:2] for st in sample.row_strata}
    assert kinds == {("predict", 1), ("predict", 2)}
    # buckets of ids come from the traffic (lengths 1, 2, 3 and 4), values from the rows
    assert sorted({r.bucket for r in report.plan.records if r.signature == "serving_default"}) == [
        ((("ids", 1), n),) for n in (1, 2, 3, 4)]
    tags = {v for log in read_logs(warmup_path(model)) if log.predict_log.request.model_spec.signature_name
            == "serving_default" for v in tf.make_ndarray(log.predict_log.request.inputs["tag"]).ravel()}
    assert tags <= {b"a", b"b"} | {b"t%d" % i for i in range(30)}
    assert "/*.jsonl*" in report.privacy and "copied" in report.privacy


def predict_log(sig: str, **inputs) -> prediction_log_pb2.PredictionLog:
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=sig))
    for alias, value in inputs.items():
        req.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))


def test_prediction_log_layout_memo_changes_no_verdict():
    """decode_log remembers validation per layout (signature, aliases, dtypes, shapes):
    every repeat of a layout must get the verdict a fresh decode gives, and values
    are still decoded per request."""
    from tfwarm_export.traffic.readers.prediction_log import decode_log

    sig = spec_of(x=(tf.float32, (None, 2)), tag=(tf.string, (None,)))
    spec = traffic_spec({sig.name: sig})
    logs = [predict_log("", x=np.array([[1, 2]], np.float32), tag=np.array([b"a"], object)),
            predict_log("", x=np.array([[3, 4]], np.float32), tag=np.array([b"b"], object)),
            predict_log("", x=np.array([[1, 2]], np.float64), tag=np.array([b"a"], object)),
            predict_log("", x=np.array([[1, 2, 3]], np.float32), tag=np.array([b"a"], object)),
            predict_log("nope", x=np.array([[1, 2]], np.float32), tag=np.array([b"a"], object)),
            predict_log("", x=np.array([[5, 6]], np.float32), tag=np.array([b"c"], object))]

    def verdicts(memo):
        out = []
        for log in logs * 2:
            try:
                req, = decode_log(log.SerializeToString(), spec, memo)
                out.append({a: v.tolist() for a, v in req.inputs.items()})
            except Dropped as why:
                out.append(str(why))
        return out

    memo: dict = {}
    got = verdicts(memo)
    assert got == verdicts(None)
    assert len(memo) == 4  # four layouts among twelve requests
    assert got[1] == {"x": [[3.0, 4.0]], "tag": [b"b"]} and got[5]["tag"] == [b"c"]
    assert "is float64" in got[2] and "axis 1 is 3" in got[3] and "'nope'" in got[4]


def example(**features) -> tf.train.Example:
    ex = tf.train.Example()
    for k, v in features.items():
        ex.features.feature[k].float_list.value.extend(v)
    return ex


def half_plus_two_logs() -> list[prediction_log_pb2.PredictionLog]:
    """All four replayable log types, plus records that must be dropped."""
    logs = [predict_log("serving_default", x=np.array([[1.0], [2.0]], np.float32)),
            predict_log("", x=np.array([[3.0]], np.float32))]
    ctx = input_pb2.Input(example_list_with_context=input_pb2.ExampleListWithContext(
        context=example(unused=[7.0]), examples=[example(x=[4.0]), example(x=[5.0])]))
    logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(signature_name="classify_x_to_y"), input=ctx))))
    plain = input_pb2.Input(example_list=input_pb2.ExampleList(examples=[example(x=[6.0])]))
    logs.append(prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
        request=regression_pb2.RegressionRequest(
            model_spec=model_pb2.ModelSpec(signature_name="regress_x_to_y"), input=plain))))
    multi = inference_pb2.MultiInferenceRequest(input=input_pb2.Input(
        example_list=input_pb2.ExampleList(examples=[example(x=[8.0]), example(x=[9.0])])))
    for sig, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                        ("regress_x_to_y", "tensorflow/serving/regress")):
        multi.tasks.add(model_spec=model_pb2.ModelSpec(signature_name=sig), method_name=method)
    logs.append(prediction_log_pb2.PredictionLog(
        multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)))
    # dropped: wrong dtype, classify against a predict signature, a session_run_log
    logs.append(predict_log("serving_default", x=np.array([[1.0]], np.float64)))
    logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(signature_name="serving_default"), input=plain))))
    logs.append(prediction_log_pb2.PredictionLog(session_run_log=prediction_log_pb2.SessionRunLog()))
    return logs


def write_logs(path, logs, gz: bool = False) -> str:
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gz else "")
    with tf.io.TFRecordWriter(str(path), opts) as w:
        for log in logs:
            w.write(log.SerializeToString())
    return str(path)


@pytest.mark.compat
def test_request_logs_with_all_four_log_types(half_plus_two, tmp_path):
    path = write_logs(tmp_path / "requests.tfrecord.gz", half_plus_two_logs(), gz=True)
    report = tw.add_warmup(half_plus_two, traffic=path, batch_sizes=[1, 2], multi_inference=True,
                           model_name="half_plus_two", overwrite=True)
    samples = report.plan.samples
    assert {st[0] for st in samples["classify_x_to_y"].row_strata} == {"classify", "multi_inference"}
    assert {st[0] for st in samples["regress_x_to_y"].row_strata} == {"regress", "multi_inference"}
    assert samples["serving_default"].requests == 2 and samples["serving_default"].scanned == 3
    notes = "\n".join(report.plan.notes)
    assert "dropped: input 'x' is float64, signature 'serving_default' needs float32" in notes
    assert "dropped: classify request for signature 'serving_default'" in notes
    assert "dropped: session_run_log records cannot be replayed" in notes
    assert "regress_x_to_y2: no request from" in notes and "values are synthesised" in notes
    logs = read_logs(warmup_path(half_plus_two))
    assert {l.WhichOneof("log_type") for l in logs} == {"predict_log", "classify_log", "regress_log",
                                                       "multi_inference_log"}
    cls = [e for l in logs if l.HasField("classify_log")
           for e in l.classify_log.request.input.example_list.examples]
    assert {v for e in cls for v in e.features.feature["x"].float_list.value} <= {4.0, 5.0, 8.0, 9.0}
    kept = [tf.train.Example.FromString(r["inputs"].item()) for r in samples["classify_x_to_y"].rows]
    merged = [e for e in kept if e.features.feature["unused"].float_list.value == [7.0]]
    assert sorted(e.features.feature["x"].float_list.value[0] for e in merged) == [4.0, 5.0]  # context
    xs = {float(v) for l in logs if l.HasField("predict_log") and
          l.predict_log.request.model_spec.signature_name == "serving_default"
          for v in tf.make_ndarray(l.predict_log.request.inputs["x"]).ravel()}
    assert xs <= {1.0, 2.0, 3.0}
    assert tw.check(half_plus_two).ok


def test_a_truncated_request_log_is_one_clear_error(half_plus_two, tmp_path):
    path = write_logs(tmp_path / "requests.tfrecord", half_plus_two_logs())
    with open(path, "ab") as f:
        f.write(b"\x05\x00\x00\x00\x00\x00\x00\x00junk")  # a record header, cut short
    with pytest.raises(DatasetError) as e:
        tw.plan(half_plus_two, traffic=path, batch_sizes=[1])
    msg = str(e.value)
    assert f"traffic file {path} cannot be read past some record (corrupted record at" in msg
    assert "function_node" not in msg and "[Op:" not in msg and "complete TFRecord file" in msg


def test_mixed_glob_of_every_source_kind(half_plus_two, tmp_path):
    d = tmp_path / "traffic"
    d.mkdir()
    (d / "one.json").write_text(json.dumps({"instances": [[1.5], [2.5]]}, indent=2))
    write_jsonl(d / "more.jsonl.gz", [{"signature_name": "classify_x_to_y", "context": {"unused": 1.0},
                                       "examples": [{"x": 3.5}, {"x": 4.5}]}], gz=True)
    write_logs(d / "logs.tfrecord.gz", half_plus_two_logs()[:2], gz=True)
    with tf.io.TFRecordWriter(str(d / "examples.tfrecord")) as w:
        w.write(example(x=[5.5]).SerializeToString())
    files = traffic_files(str(d / "*"))
    assert [(f.path.rsplit("/", 1)[1], f.kind, f.compression) for f in files] == [
        ("examples.tfrecord", "tf_example", ""), ("logs.tfrecord.gz", "prediction_log", "GZIP"),
        ("more.jsonl.gz", "rest_json", "GZIP"), ("one.json", "rest_json", "")]
    report = tw.add_warmup(half_plus_two, traffic=str(d / "*"), overwrite=True)
    s = report.plan.samples
    assert s["serving_default"].scanned == 5      # 2 from one.json + 3 from the log
    assert s["classify_x_to_y"].scanned == 3      # 2 REST examples + 1 tf.Example record
    assert s["regress_x_to_y2"].scanned == 1      # the tf.Example record feeds every examples input
    assert "4 file(s)" in s["serving_default"].source
    assert [f.path for f in traffic_files(str(d))] == [f.path for f in files]  # a directory: same files


def test_selection_is_independent_of_file_order_and_sharding(v7_src, tmp_path):
    bodies = rest_lines(40)
    one = write_jsonl(tmp_path / "all.jsonl", bodies)
    shards = [write_jsonl(tmp_path / f"part-{i}.jsonl", bodies[i::5]) for i in range(5)]
    model = tw.read_signatures(v7_src)

    def run(paths, k=8):
        files, spec, _ = traffic_plan(model.signatures, sorted(model.signatures), (1, 4), paths, None,
                                      k=k, seed=3)
        return sample_traffic(files, spec, "logs")

    a, b, c = run([one]), run(shards), run(list(reversed(shards)))
    for sel in (b, c):
        assert sel.dropped == {k: v * (5 if k == "not valid JSON" else 1) for k, v in a.dropped.items()}
        for name, sa in a.samples.items():
            sb = sel.samples[name]
            assert sb.row_strata == sa.row_strata and sb.size_counts == sa.size_counts
            assert sb.to_dict() == sa.to_dict()
            for ra, rb in zip(sa.rows, sb.rows):
                assert all(np.array_equal(ra[k], rb[k]) for k in ra)
    assert 0 < a.samples["serving_default"].sample_size <= 8 * a.samples["serving_default"].strata
    assert [r["x"].tolist() for r in run([one], k=8).samples["score"].rows] != \
        [r["x"].tolist() for r in run([one], k=2).samples["score"].rows]


def test_previous_version_across_a_signature_change(v7_src, v8_src, tmp_path):
    v7 = copy_model(v7_src, tmp_path / "a")
    v8 = copy_model(v8_src, tmp_path / "b")
    write_jsonl(tmp_path / "r.jsonl", rest_lines(20))
    tw.add_warmup(v7, traffic=str(tmp_path / "r.jsonl"), batch_sizes=[1, 4])
    old = {l.predict_log.request.model_spec.signature_name for l in read_logs(warmup_path(v7))}
    assert old == {"serving_default", "score"}
    report = tw.add_warmup(v8, previous_version=v7, batch_sizes=[1, 4])
    assert set(report.plan.samples) == {"score"}  # the only signature whose records still fit
    notes = "\n".join(report.plan.notes)
    assert "dropped: input 'tag' is not in signature 'serving_default'" in notes
    assert "rank: no request from previous version" in notes
    assert "serving_default: no request from previous version" in notes
    old_x = {tuple(r) for l in read_logs(warmup_path(v7)) if l.predict_log.request.model_spec.signature_name
             == "score" for r in tf.make_ndarray(l.predict_log.request.inputs["x"]).tolist()}
    new_x = {tuple(r) for l in read_logs(warmup_path(v8)) if l.predict_log.request.model_spec.signature_name
             == "score" for r in tf.make_ndarray(l.predict_log.request.inputs["x"]).tolist()}
    assert new_x <= old_x
    assert {l.predict_log.request.model_spec.signature_name for l in read_logs(warmup_path(v8))} == {
        "serving_default", "score", "rank"}
    assert "previous version" in report.privacy


def test_shapes_only_traffic_copies_no_value_and_names_the_source(v7_src, tmp_path):
    model = copy_model(v7_src, tmp_path)
    write_jsonl(tmp_path / "r.jsonl", rest_lines(20))
    report = tw.add_warmup(model, traffic=str(tmp_path / "r.jsonl"), privacy="shapes_only")
    assert "shapes_only" in report.privacy and "r.jsonl" in report.privacy
    seen = {float(v) for b in rest_lines(20) for v in np.ravel(
        b["instances"][0]["x"] if "instances" in b and isinstance(b["instances"][0], dict)
        else b.get("inputs", {}).get("x", []))}
    logs = read_logs(warmup_path(model))
    got = {float(v) for l in logs for v in tf.make_ndarray(l.predict_log.request.inputs["x"]).ravel()}
    assert got and not (got & seen - {0.0})


def test_nothing_fits_is_an_error_naming_the_reasons(v8_src, tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [{"instances": [{"x": [1, 2, 3], "ids": [1], "tag": "a"}]}] * 3)
    with pytest.raises(DatasetError, match=r"no request in .* fits the model.*\n.*3 request\(s\).*'tag'"):
        tw.plan(v8_src, traffic=path)
    with pytest.raises(DatasetError, match="no traffic files match"):
        tw.plan(v8_src, traffic=str(tmp_path / "none-*.jsonl"))
    with pytest.raises(DatasetError, match="has no warmup file"):
        tw.plan(v8_src, previous_version=str(tmp_path))


def test_cli_traffic_and_from_version(v7_src, v8_src, tmp_path, capsys):
    from tfwarm_export.cli import main

    v7 = copy_model(v7_src, tmp_path / "a")
    v8 = copy_model(v8_src, tmp_path / "b")
    write_jsonl(tmp_path / "r.jsonl", rest_lines(10))
    assert main(["add", v7, "--traffic", str(tmp_path / "*.jsonl"), "--batch-sizes", "1,4"]) == 0
    assert "dropped: input 'age' is not in signature 'serving_default'" in capsys.readouterr().out
    assert main(["add", v8, "--from-version", v7, "--batch-sizes", "1,4"]) == 0
    assert "dropped: input 'tag' is not in signature 'serving_default'" in capsys.readouterr().out
    assert main(["check", v8]) == 0
    capsys.readouterr()
    assert main(["add", v8, "--traffic", str(tmp_path / "nothing-*.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no traffic files match" in err and "Traceback" not in err


def test_example_record_batches_equal_the_one_record_path():
    from tfwarm_export.traffic.readers.tfexample import decode_example_record, decode_example_records
    from tfwarm_export.traffic.validate import decode_each

    records = [example(x=[float(i)]).SerializeToString() for i in range(7)]
    takes = SignatureInfo("parse", "tensorflow/serving/predict",
                          {"examples": TensorSpec("examples", "e:0", tf.string, (None,))}, {})
    other = spec_of(x=(tf.float32, (None, 3)))
    for sigs in ({"parse": takes, "serving_default": other}, {"serving_default": other}):
        spec = traffic_spec(sigs)
        want, want_dropped = decode_each(decode_example_record, records, spec, {})
        got, got_dropped = decode_example_records(np.array(records, dtype=object), spec, {})
        assert got_dropped == want_dropped
        assert [(g.signature, g.request_type, g.batch, g.requests, g.inputs["examples"].tolist())
                for g in got] == [(g.signature, g.request_type, g.batch, g.requests,
                                   g.inputs["examples"].tolist()) for g in want]


def test_traffic_files_are_classified_from_their_first_record(tmp_path):
    """Plain and GZIP request logs are recognised from the first record's framing; a file
    that is no TFRecord (text, a cut-short record, a broken GZIP stream) is one clear error."""
    from tfwarm_export.traffic.readers.files import PREDICTION_LOG, TF_EXAMPLE, classify_file

    logs = half_plus_two_logs()
    plain = write_logs(tmp_path / "a.tfrecord", logs)
    assert classify_file(plain).kind == PREDICTION_LOG
    assert classify_file(write_logs(tmp_path / "b.tfrecord.gz", logs, gz=True)).compression == "GZIP"
    examples = tmp_path / "c.tfrecord"
    with tf.io.TFRecordWriter(str(examples)) as w:
        w.write(example(x=[1.0]).SerializeToString())
    assert classify_file(str(examples)).kind == TF_EXAMPLE
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    assert classify_file(str(tmp_path / "empty.tfrecord")).kind == PREDICTION_LOG
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(open(plain, "rb").read()[:20])
    text = tmp_path / "notes.tfrecord"
    text.write_text("# not a record\n" * 4)
    broken = tmp_path / "broken.tfrecord"
    broken.write_bytes(b"\x1f\x8b" + b"garbage" * 4)
    for path, why in ((cut, "the first record is cut short"), (text, "no TFRecord length header"),
                      (broken, "BadGzipFile")):
        with pytest.raises(DatasetError) as e:
            classify_file(str(path))
        assert "neither REST JSON" in str(e.value) and why in str(e.value)
