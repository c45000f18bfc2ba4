"""``PredictionLog`` TFRecords: TF Serving's request logs (``logging_config``) and
warmup files (``assets.extra/tf_serving_warmup_requests`` of any version).

Predict, Classify, Regress and MultiInference logs are read; tensors are decoded
with ``tf.make_ndarray`` and must carry the signature's dtype exactly (TF
Serving feeds them as they are). ``ExampleListWithContext`` inputs are merged
as TF Serving merges them. ``session_run_log`` and ``predict_streamed_log``
records cannot be replayed and are dropped with that reason.
"""
from __future__ import annotations

import math

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

MAX_RANK = 32  # numpy's limit is 64; no served signature input comes near either
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


def check_inputs(req, spec: TrafficSpec) -> tuple[str, dict[str, tuple]]:
    """Signature, method, aliases, dtypes and shapes of a PredictRequest, from the
    tensors' metadata only (no value is decoded): the signature's name and each
    input's (shape, size, numpy dtype of a raw layout), or ``Dropped``."""
    sig = spec.signature(req.model_spec.signature_name)
    check_method(sig, "predict")
    for alias in sorted(req.inputs):
        if alias not in sig.inputs:
            raise Dropped(f"input {alias!r} is not in signature {sig.name!r}")
    dtypes = {}
    for alias, t in sorted(req.inputs.items()):
        try:
            dtypes[alias] = tf.as_dtype(t.dtype)
        except TypeError:
            raise Dropped(f"input {alias!r} has dtype enum {t.dtype}, which is no TensorFlow dtype") from None
    shapes = {a: _shape_only(t) for a, t in req.inputs.items()}
    for alias in sorted(shapes):
        if any(d < 0 for d in shapes[alias]) or req.inputs[alias].tensor_shape.unknown_rank:
            raise Dropped(f"input {alias!r} has an unknown dimension or rank in its tensor_shape; "
                          "TF Serving cannot build a tensor from it")
        if len(shapes[alias]) > MAX_RANK:
            raise Dropped(f"input {alias!r} has rank {len(shapes[alias])}, more than a tensor can "
                          f"have here ({MAX_RANK})")
    check_predict(sig, shapes, dtypes)
    return sig.name, {a: (shape, math.prod(shape), _NUMERIC.get(req.inputs[a].dtype))
                      for a, shape in shapes.items()}


_MEMO_CAP = 4096  # distinct (signature, aliases, dtypes, shapes) layouts remembered


def remember(memo: dict, key, verdict) -> None:
    """Keep a layout's verdict; a log with more layouts than ``_MEMO_CAP`` starts over."""
    if len(memo) >= _MEMO_CAP:
        memo.clear()
    memo[key] = verdict


def decode_log(record: bytes | prediction_log_pb2.PredictionLog, spec: TrafficSpec,
               memo: dict | None = None) -> list[LoggedRequest]:
    """One PredictionLog as the request(s) it makes of each signature.

    ``memo`` (owned by the caller, one per scan) remembers the verdict of the
    validation per request *layout* (signature name, and each input's alias,
    dtype enum and serialized shape): a log repeats a handful of layouts, so
    most requests are validated by one dict lookup. The verdict is a function
    of the layout alone, so a memo changes no result."""
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
        items = sorted(req.inputs.items())
        if memo is None:
            verdict = None
        else:
            layout = (req.model_spec.signature_name,
                      tuple((a, t.dtype, t.tensor_shape.SerializeToString()) for a, t in items))
            verdict = memo.get(layout)
        if verdict is None:
            try:
                verdict = check_inputs(req, spec)
            except Dropped as why:
                verdict = why
            if memo is not None:
                remember(memo, layout, verdict)
        if isinstance(verdict, Dropped):
            raise Dropped(str(verdict))
        name, layout = verdict
        try:
            inputs = {}
            for a, t in items:
                shape, size, np_dtype = layout[a]
                content = t.tensor_content if np_dtype is not None else b""
                inputs[a] = (np.frombuffer(content, np_dtype).reshape(shape)
                             if content and np_dtype.itemsize * size == len(content)
                             else _ndarray(t, shape, size, np_dtype))
        except (TypeError, ValueError) as e:
            raise Dropped(f"a tensor of signature {name!r} cannot be decoded ({type(e).__name__})") from None
        return [LoggedRequest(name, "predict", inputs)]
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


_NUMERIC = {int(d.as_datatype_enum): np.dtype(d.as_numpy_dtype).newbyteorder("<")
            for d in (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int8, tf.int16, tf.int32,
                      tf.int64, tf.uint8, tf.uint16, tf.uint32, tf.uint64, tf.bool,
                      tf.complex64, tf.complex128)}
STRING_ENUM = int(tf.string.as_datatype_enum)


def _ndarray(t, shape: tuple[int, ...], size: int, np_dtype: np.dtype | None) -> np.ndarray:
    """``tf.make_ndarray``, with the two layouts ``tf.make_tensor_proto`` writes taken
    in one numpy call: raw ``tensor_content`` (little-endian, as TensorFlow defines it)
    and ``string_val`` (kept as ``bytes`` objects: fixed-width numpy bytes would drop
    trailing NULs). Every other layout goes through ``tf.make_ndarray``; a request log
    has millions of tensors, and make_ndarray's Python set-up would dominate the scan."""
    if np_dtype is not None:
        content = t.tensor_content
        if content and np_dtype.itemsize * size == len(content):
            return np.frombuffer(content, np_dtype).reshape(shape)
    if t.dtype == STRING_ENUM and len(t.string_val) == size:
        arr = np.empty(size, dtype=object)
        arr[:] = list(t.string_val)
        return arr.reshape(shape)
    arr = tf.make_ndarray(t)
    if arr.dtype.kind == "S":
        arr = np.array(arr.tolist(), dtype=object).reshape(arr.shape)
    return arr


def _shape_only(t) -> tuple[int, ...]:
    return tuple(int(d.size) for d in t.tensor_shape.dim)
