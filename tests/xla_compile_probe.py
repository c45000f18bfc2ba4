"""Count the XLA compiles a held-out request stream pays after TF Serving-style warmup.

Run as a script in a fresh process (XLA's compile cache lives in the process): it loads
the SavedModel with the TF1 loader, replays every Predict record of the warmup file through
``Session.run`` (as TF Serving's warmup does, in the same session the requests then use),
then runs each held-out batch padded the way TF Serving's batching session pads it (to the
next allowed size, zeros below the real rows), and prints how many XLA compilations the
stream triggered, read from XLA's own log lines. Nothing from tfwarm_export is used.

    python tests/xla_compile_probe.py EXPORT_DIR WARMUP_FILE|- ALLOWED BATCH:LEN[,BATCH:LEN...]
"""
from __future__ import annotations

import os
import sys

COMPILE_LINE = "XlaCompiler::CompileFunction"


def main(export_dir: str, warmup: str, allowed: str, stream: str) -> None:
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    sizes = [int(s) for s in allowed.split(",")]
    sess = tf.compat.v1.Session(graph=tf.Graph())
    with sess.graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    if warmup != "-":
        for raw in tf.data.TFRecordDataset(warmup).as_numpy_iterator():
            req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
            sig = meta.signature_def[req.model_spec.signature_name or "serving_default"]
            sess.run([t.name for t in sig.outputs.values()],
                     {sig.inputs[k].name: tf.make_ndarray(v) for k, v in req.inputs.items()})
    sig = meta.signature_def["serving_default"]
    print("--- stream", file=sys.stderr, flush=True)
    for item in stream.split(","):
        batch, length = (int(x) for x in item.split(":"))
        padded = next(s for s in sizes if s >= batch)
        feeds = {sig.inputs["ids"].name: np.zeros((padded, length), np.int32),
                 sig.inputs["mask"].name: np.zeros((padded, length), bool)}
        sess.run([t.name for t in sig.outputs.values()], feeds)
    print("--- end", file=sys.stderr, flush=True)


def count_stream_compiles(stderr: str) -> int:
    """XLA compilations logged between the stream's start and end markers."""
    part = stderr.split("--- stream", 1)[-1].split("--- end", 1)[0]
    return part.count(COMPILE_LINE)


def probe_env() -> dict:
    """The environment that makes XLA log each compilation (and nothing else changed)."""
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="0", TF_CPP_VMODULE="xla_compiler=1")
    return env


if __name__ == "__main__":
    main(*sys.argv[1:5])
