"""An independent TF Serving-style replay of a warmup file, for tests.

Uses nothing from tfwarm_export: the file is read with ``tf.data.TFRecordDataset``
and the serving protos, the model with the TF1 loader, and each record is fed to
``Session.run`` the way TF Serving's warmup does (Predict: the request tensors by
signature alias; Classify/Regress: the serialized examples as a 1-D string tensor).
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _examples(inp) -> np.ndarray:
    which = inp.WhichOneof("kind")
    if which == "example_list":
        rows = [e.SerializeToString() for e in inp.example_list.examples]
    else:
        ctx = inp.example_list_with_context.context
        rows = []
        for e in inp.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(ctx)
            merged.MergeFrom(e)
            rows.append(merged.SerializeToString())
    return np.array(rows, dtype=object)


def replay_signatures(export_dir: str, tags=("serve",)) -> set[str]:
    """Run every record of ``export_dir``'s warmup file; the signature names it covered.

    Raises whatever TensorFlow raises for a record TF Serving would fail on.
    """
    path = os.path.join(export_dir, WARMUP)
    logs = [prediction_log_pb2.PredictionLog.FromString(r)
            for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    assert logs, f"{path} has no records"
    covered = set()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, list(tags), export_dir)
        for log in logs:
            kind = log.WhichOneof("log_type")
            req = getattr(log, kind).request
            name = req.model_spec.signature_name or "serving_default"
            sig = meta.signature_def[name]
            fetches = [t.name for t in sig.outputs.values()]
            if kind == "predict_log":
                assert set(req.inputs) <= set(sig.inputs), (name, set(req.inputs), set(sig.inputs))
                feeds = {sig.inputs[k].name: tf.make_ndarray(v) for k, v in req.inputs.items()}
                missing = set(sig.inputs) - set(req.inputs) - set(sig.defaults)
                assert not missing, f"{name}: request lacks {missing}"
            elif kind in ("classify_log", "regress_log"):
                feeds = {sig.inputs["inputs"].name: _examples(req.input)}
            else:
                raise AssertionError(f"record type {kind} is not replayed here")
            sess.run(fetches, feeds)
            covered.add(name)
    return covered


def signature_names(export_dir: str, tags=("serve",)) -> set[str]:
    """The SignatureDef names of the MetaGraph TF Serving loads."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    mg = next(m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags))
    return {k for k in mg.signature_def if not k.startswith("__")}


def cold_batches(export_dir: str, allowed: tuple[int, ...]) -> list[str]:
    """Batches TF Serving's batching session would run cold with this file: written here from
    the server's rule, with nothing from tfwarm_export.

    The batching session merges concurrent requests of one input shape and pads the merged
    batch up to the next allowed size, so a shape warmed at batch b also runs at every allowed
    size above b; and a lone request pads to any allowed size, so each is warmed somewhere.
    """
    path = os.path.join(export_dir, WARMUP)
    seen: dict[tuple, set[int]] = {}
    per_sig: dict[str, set[int]] = {}
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
        name = req.model_spec.signature_name or "serving_default"
        dims = {k: [d.size for d in v.tensor_shape.dim] for k, v in sorted(req.inputs.items())}
        batch = next(iter(dims.values()))[0]
        padded = next(s for s in allowed if s >= batch)
        key = (name, tuple((k, tuple(d[1:])) for k, d in dims.items()))
        seen.setdefault(key, set()).add(padded)
        per_sig.setdefault(name, set()).add(padded)
    out = [f"{name}: batch {s} never warmed" for name, sizes in sorted(per_sig.items())
           for s in allowed if s not in sizes]
    for (name, shape), sizes in sorted(seen.items()):
        out += [f"{name} {shape}: merged batch {s} cold" for s in allowed if s > min(sizes) and s not in sizes]
    return out
