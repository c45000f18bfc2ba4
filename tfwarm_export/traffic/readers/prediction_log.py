"""``PredictionLog`` TFRecords: TF Serving's request logs (``logging_config``) and
warmup files (``assets.extra/tf_serving_warmup_requests`` of any version).

Predict, Classify, Regress and MultiInference logs are read; tensors are decoded
with ``tf.make_ndarray`` and must carry the signature's dtype exactly (TF
Serving feeds them as they are). ``ExampleListWithContext`` inputs are merged
as TF Serving merges them. ``session_run_log`` and ``predict_streamed_log``
records cannot be replayed and are dropped with that reason.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export.traffic.validate import (
    Dropped,
    LoggedRequest,
    TrafficSpec,
    check_method,
    check_predict,
    example_alias,
    merge_context,
)

LOG_TYPES = ("predict_log", "classify_log", "regress_log", "multi_inference_log")


def is_prediction_log(record: bytes) -> bool:
    """True when a TFRecord record parses as a PredictionLog with a log type set.

    A serialized tf.Example also parses (field 1 is a message in both), but it
    never sets one of the ``log_type`` fields."""
    try:
        log = prediction_log_pb2.PredictionLog.FromString(record)
    except pb_message.DecodeError:
        return False
    return log.WhichOneof("log_type") is not None


def _examples(request_input, what: str) -> np.ndarray:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        raw = [e.SerializeToString(deterministic=True) for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        lst = request_input.example_list_with_context
        raw = merge_context(lst.context.SerializeToString(deterministic=True),
                            [e.SerializeToString(deterministic=True) for e in lst.examples])
    else:
        raise Dropped(f"{what} request has no examples")
    if not raw:
        raise Dropped(f"{what} request has no examples")
    arr = np.empty(len(raw), dtype=object)
    arr[:] = raw
    return arr


def decode_log(record: bytes | prediction_log_pb2.PredictionLog, spec: TrafficSpec) -> list[LoggedRequest]:
    """One PredictionLog as the request(s) it makes of each signature."""
    if isinstance(record, prediction_log_pb2.PredictionLog):
        log = record
    else:
        try:
            log = prediction_log_pb2.PredictionLog.FromString(record)
        except pb_message.DecodeError:
            raise Dropped("a record is not a PredictionLog") from None
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        req = log.predict_log.request
        sig = spec.signature(req.model_spec.signature_name)
        check_method(sig, "predict")
        for alias in sorted(req.inputs):
            if alias not in sig.inputs:
                raise Dropped(f"input {alias!r} is not in signature {sig.name!r}")
        dtypes = {a: tf.as_dtype(t.dtype) for a, t in req.inputs.items()}
        check_predict(sig, {a: _shape_only(t) for a, t in req.inputs.items()}, dtypes)
        try:
            inputs = {a: tf.make_ndarray(t) for a, t in req.inputs.items()}
        except (TypeError, ValueError) as e:
            raise Dropped(f"a tensor of signature {sig.name!r} cannot be decoded ({type(e).__name__})") from None
        for a, arr in inputs.items():
            if arr.dtype.kind == "S":  # make_ndarray gives fixed-width bytes: NULs would be lost
                inputs[a] = np.array(list(req.inputs[a].string_val), dtype=object).reshape(arr.shape)
        return [LoggedRequest(sig.name, "predict", inputs)]
    if kind in ("classify_log", "regress_log"):
        what = kind.split("_")[0]
        req = getattr(log, kind).request
        sig = spec.signature(req.model_spec.signature_name)
        check_method(sig, what)
        return [LoggedRequest(sig.name, what, {example_alias(sig): _examples(req.input, what)})]
    if kind == "multi_inference_log":
        req = log.multi_inference_log.request
        if not req.tasks:
            raise Dropped("multi_inference request has no tasks")
        arr = _examples(req.input, "multi_inference")
        out = []
        for task in req.tasks:
            sig = spec.signature(task.model_spec.signature_name)
            what = {"tensorflow/serving/classify": "classify",
                    "tensorflow/serving/regress": "regress"}.get(task.method_name)
            if what is None:
                raise Dropped(f"multi_inference task method {task.method_name!r} is not classify/regress")
            check_method(sig, what)
            out.append(LoggedRequest(sig.name, "multi_inference", {example_alias(sig): arr}))
        return out
    if kind in ("session_run_log", "predict_streamed_log"):
        raise Dropped(f"{kind} records cannot be replayed (TF Serving fails the load on them)")
    raise Dropped("a PredictionLog has no log type")


def _shape_only(t) -> tuple[int, ...]:
    return tuple(int(d.size) for d in t.tensor_shape.dim)
