"""Turn planned values into ``PredictionLog`` protos, the records of the file.

Only the four log types TF Serving replays are ever built. ``signature_name`` is
always set (an empty one silently means ``serving_default``), input keys are
signature aliases, and tensors go through ``tf.make_tensor_proto`` with the dtype
exactly as the signature's TensorInfo declares it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, inference_pb2, input_pb2, model_pb2,
                                     predict_pb2, prediction_log_pb2, regression_pb2)

from tfwarm_export.planning.records import PlannedRecord
from tfwarm_export.specs.request_kinds import CLASSIFY, MULTI_INFERENCE, PREDICT, REGRESS


def _model_spec(name: str, signature: str) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=name, signature_name=signature)


def _example_input(serialized: np.ndarray) -> input_pb2.Input:
    examples = [tf.train.Example.FromString(bytes(b)) for b in np.asarray(serialized).reshape(-1)]
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))


def build_log(record: PlannedRecord, values: Mapping[str, np.ndarray],
              model_name: str = "") -> prediction_log_pb2.PredictionLog:
    """One PredictionLog for ``record`` filled with ``values`` (alias -> array)."""
    if record.request_type == PREDICT:
        request = predict_pb2.PredictRequest(model_spec=_model_spec(model_name, record.signature))
        for inp in record.inputs:
            request.inputs[inp.alias].CopyFrom(tf.make_tensor_proto(values[inp.alias], dtype=inp.dtype))
        return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    (inp,) = record.inputs
    if record.request_type == CLASSIFY:
        request = classification_pb2.ClassificationRequest(
            model_spec=_model_spec(model_name, record.signature), input=_example_input(values[inp.alias]))
        return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    if record.request_type == REGRESS:
        request = regression_pb2.RegressionRequest(
            model_spec=_model_spec(model_name, record.signature), input=_example_input(values[inp.alias]))
        return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))
    if record.request_type == MULTI_INFERENCE:
        request = inference_pb2.MultiInferenceRequest(input=_example_input(values[inp.alias]))
        for sig, method in record.tasks:
            request.tasks.add(model_spec=_model_spec(model_name, sig), method_name=method)
        return prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=request))
    raise ValueError(f"unknown request type {record.request_type!r}")

