"""The C++ batch decoder of PredictionLogs gives exactly what the one-record path gives.

Hypothesis draws batches mixing every layout a request log holds: predict logs in
the raw ``tensor_content`` layout and in ``*_val`` layouts, string tensors, rank-0
inputs, wrong dtypes/aliases/signatures, repeated map keys, classify/regress/
multi-inference and streamed logs, and bytes that are no proto at all.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import tensorflow as tf
from conftest import group_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (classification_pb2, model_pb2, predict_pb2, prediction_log_pb2,
                                     regression_pb2)

from tfwarm_export.model.signatures import SignatureInfo, TensorSpec
from tfwarm_export.traffic import traffic_spec
from tfwarm_export.traffic.readers.prediction_log import decode_log
from tfwarm_export.traffic.readers.prediction_log_batch import decode_logs, predecode
from tfwarm_export.traffic.validate import decode_each


def _sig(name: str, method: str = "tensorflow/serving/predict", **inputs) -> SignatureInfo:
    specs = {a: TensorSpec(a, f"{a}:0", dt, shape) for a, (dt, shape) in inputs.items()}
    return SignatureInfo(name, method, specs, {})


SPEC = traffic_spec({
    "serving_default": _sig("serving_default", x=(tf.float32, (None, 3)), ids=(tf.int64, (None, None)),
                            tag=(tf.string, (None,))),
    "score": _sig("score", x=(tf.float32, (None, 3))),
    "scalar": _sig("scalar", k=(tf.int32, ()), v=(tf.float32, (None,))),
    "classify": _sig("classify", "tensorflow/serving/classify", inputs=(tf.string, (None,))),
}, known=["serving_default", "score", "scalar", "classify", "gone"], allowed_batch_sizes=(2, 4))


def _tensor(draw, dtype: tf.DType, shape: tuple[int, ...], layout: str) -> tensor_pb2.TensorProto:
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == tf.string:
        vals = np.array([bytes(draw(st.binary(max_size=4))) for _ in range(n)], dtype=object).reshape(shape)
    elif dtype.is_floating:
        vals = np.array(draw(st.lists(st.floats(-1e3, 1e3, width=32), min_size=n, max_size=n)),
                        dtype=dtype.as_numpy_dtype).reshape(shape)
    else:
        vals = np.array(draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n)),
                        dtype=dtype.as_numpy_dtype).reshape(shape)
    t = tf.make_tensor_proto(vals, dtype=dtype)
    if layout == "vals" and dtype != tf.string and t.tensor_content:  # the *_val layout
        t = tensor_pb2.TensorProto(dtype=t.dtype, tensor_shape=t.tensor_shape)
        field = {tf.float32: "float_val", tf.float64: "double_val", tf.int64: "int64_val"}.get(dtype, "int_val")
        getattr(t, field).extend(vals.ravel().tolist())
    return t


@st.composite
def records(draw) -> bytes:
    kind = draw(st.sampled_from(["predict"] * 8 + ["classify", "regress", "multi", "streamed", "junk",
                                                    "empty", "odd"]))
    if kind == "odd":  # what no TensorFlow writer emits: unknown dtype, -1 dims, unknown or huge rank
        req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="score"))
        t = req.inputs["x"]
        t.dtype, dims, t.tensor_shape.unknown_rank = draw(st.sampled_from([
            (999, (1, 3), False), (0, (1, 3), False), (1, (-1, 3), False), (1, (), True), (1, (1,) * 40, False)]))
        for d in dims:
            t.tensor_shape.dim.add(size=d)
        t.tensor_content = b"\0" * 12
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()
    if kind == "junk":
        return b"\xff\xfe not a proto"
    if kind == "empty":
        return prediction_log_pb2.PredictionLog().SerializeToString()
    if kind == "streamed":
        return prediction_log_pb2.PredictionLog(
            predict_streamed_log=prediction_log_pb2.PredictStreamedLog()).SerializeToString()
    if kind in ("classify", "regress", "multi"):
        ex = tf.train.Example(features=tf.train.Features(feature={
            "a": tf.train.Feature(float_list=tf.train.FloatList(value=[draw(st.floats(0, 1))]))}))
        name = draw(st.sampled_from(["classify", "score"]))
        if kind == "classify":
            req = classification_pb2.ClassificationRequest(model_spec=model_pb2.ModelSpec(signature_name=name))
            req.input.example_list.examples.add().CopyFrom(ex)
            log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=req))
        else:
            req = regression_pb2.RegressionRequest(model_spec=model_pb2.ModelSpec(signature_name=name))
            req.input.example_list.examples.add().CopyFrom(ex)
            log = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=req))
        return log.SerializeToString()
    sig = draw(st.sampled_from(["", "serving_default", "score", "scalar", "gone", "missing"]))
    b = draw(st.integers(0, 3))
    length = draw(st.integers(0, 3))
    layout = draw(st.sampled_from(["content", "content", "vals"]))
    inputs: dict[str, tensor_pb2.TensorProto] = {}
    if sig in ("", "serving_default", "gone", "missing"):
        inputs["x"] = _tensor(draw, draw(st.sampled_from([tf.float32, tf.float32, tf.float64])), (b, 3), layout)
        inputs["ids"] = _tensor(draw, tf.int64, (b, length), layout)
        if draw(st.booleans()) or b == 0:
            inputs["tag"] = _tensor(draw, tf.string, (b,), layout)
        if draw(st.integers(0, 9)) == 0:
            inputs["extra"] = _tensor(draw, tf.int32, (b,), layout)
    elif sig == "score":
        inputs["x"] = _tensor(draw, tf.float32, (b, draw(st.sampled_from([3, 3, 2]))), layout)
    else:
        inputs["k"] = _tensor(draw, tf.int32, (), layout)
        inputs["v"] = _tensor(draw, tf.float32, (b,), layout)
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=sig))
    for alias, t in inputs.items():
        req.inputs[alias].CopyFrom(t)
    raw = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()
    if inputs and draw(st.integers(0, 19)) == 0:  # a map key repeated on the wire: the last one wins
        alias = sorted(inputs)[0]
        dup = predict_pb2.PredictRequest()
        dup.inputs[alias].CopyFrom(_tensor(draw, tf.int32, (b,), "content"))
        raw += prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=dup)).SerializeToString()
    return raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=40))
def test_batch_decoder_equals_the_one_record_path(batch):
    want_groups, want_dropped = decode_each(decode_log, batch, SPEC, {})
    got_groups, got_dropped = decode_logs(batch, SPEC, {})
    assert got_dropped == want_dropped
    assert group_rows(got_groups) == group_rows(want_groups)
    assert sum(g.requests for g in got_groups) == sum(g.requests for g in want_groups)


def test_common_layouts_take_the_fast_path():
    """Raw ``tensor_content`` and ``string_val`` tensors never go record by record."""
    import tfwarm_export.traffic.readers.prediction_log_batch as plb

    logs = []
    for i in range(50):
        req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="serving_default"))
        req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.full((2, 3), i, np.float32)))
        req.inputs["ids"].CopyFrom(tf.make_tensor_proto(np.arange(2 * (i % 3 + 2)).reshape(2, -1)))
        req.inputs["tag"].CopyFrom(tf.make_tensor_proto(np.array([b"a", b"b%d" % i], object)))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())
    seen: list[int] = []
    original = plb.decode_each
    try:
        plb.decode_each = lambda *a: (seen.append(len(a[1])), original(*a))[1]
        groups, dropped = decode_logs(predecode(logs), SPEC, {})
    finally:
        plb.decode_each = original
    assert not seen and not dropped
    assert sorted((g.batch, g.requests, g.inputs["ids"].shape[1]) for g in groups) == [
        (2, 16, 4), (2, 17, 2), (2, 17, 3)]
    assert Counter(t for g in groups for t in g.inputs["tag"].tolist())[b"a"] == 50


def test_scan_leaves_the_gc_as_it_found_it():
    """A batch freezes older objects out of the cyclic GC and unfreezes them after; a
    process that froze objects itself keeps them frozen."""
    import gc

    from tfwarm_export.traffic.combine import TrafficScan

    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="score"))
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 3), np.float32)))
    record = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()
    scan = TrafficScan(SPEC)
    scan.add_batch("prediction_log", [record])
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        scan.add_batch("prediction_log", [record])
        # Still frozen (an unfreeze empties the permanent generation) and not frozen again on top.
        # Equality would be flaky: a frozen object freed by another thread meanwhile lowers the count.
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
    assert scan.finish("test").samples["score"].scanned == 4
