"""Quickstart: build a small Keras model, export it, add warmup, replay it, check it.

    python examples/quickstart.py [--out DIR]

Everything is built here (no downloads): a two-input Keras model trained for one
epoch on random data, exported the way TF Serving expects (DIR/<version>/).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfwarm_export._support.startup import import_tensorflow_quietly, init_devices_quietly  # noqa: E402

import_tensorflow_quietly()  # TensorFlow's start-up lines are noise in a quickstart
init_devices_quietly()

import tensorflow as tf  # noqa: E402
import numpy as np  # noqa: E402

import tfwarm_export  # noqa: E402

# tf.keras is the Keras TensorFlow routes to: Keras 3, or Keras 2 (tf_keras) under
# TF_USE_LEGACY_KERAS=1 (and on TF 2.15). tfwarm_export works with either.
keras = tf.keras


def build_model():
    features = keras.Input(shape=(8,), name="features")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    emb = keras.layers.Embedding(100, 4)(tokens)
    pooled = keras.layers.GlobalAveragePooling1D()(emb)
    x = keras.layers.Concatenate()([keras.layers.Dense(16, activation="relu")(features), pooled])
    out = keras.layers.Dense(1, activation="sigmoid", name="prob")(x)
    model = keras.Model({"features": features, "tokens": tokens}, out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x_train = {"features": rng.normal(size=(256, 8)).astype("float32"),
               "tokens": rng.integers(0, 100, size=(256, 12)).astype("int32")}
    model.fit(x_train, rng.integers(0, 2, size=(256, 1)), epochs=1, verbose=0)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="model base path (default: a temp dir)")
    args = parser.parse_args(argv)
    base = args.out or tempfile.mkdtemp(prefix="tfwarm_quickstart_")
    export_dir = os.path.join(base, "1")
    if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        print(f"{export_dir} already holds a model; pass another --out", file=sys.stderr)
        return 2

    model = build_model()
    if hasattr(keras, "version"):  # Keras 3
        model.export(export_dir, format="tf_saved_model", verbose=False)
    else:  # Keras 2 has no format= (it always writes a SavedModel)
        model.export(export_dir)

    # The batching file TF Serving would be started with (--enable_batching).
    batching = os.path.join(base, "batching_parameters.txt")
    with open(batching, "w") as f:
        f.write("max_batch_size { value: 32 }\n"
                "allowed_batch_sizes: 1\nallowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
                "batch_timeout_micros { value: 1000 }\n")

    print(tfwarm_export.plan(export_dir, batching_parameters=batching,
                             dim_sizes={"tokens": {1: [12, 48]}}).summary())
    print()
    report = tfwarm_export.add_warmup(export_dir, batching_parameters=batching,
                                      dim_sizes={"tokens": {1: [12, 48]}})
    print(report.summary())
    print()
    check = tfwarm_export.check(export_dir, batching_parameters=batching)
    print(check.summary())
    print(f"\nServe it with: tensorflow_model_server --model_base_path={base} "
          f"--enable_batching --batching_parameters_file={batching}")
    return 0 if (report.ok and check.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
