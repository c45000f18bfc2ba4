"""Training-script wrappers: export a Keras model and a tf.Module with their warmup files.

    python examples/train_and_export.py [--out DIR]

``export`` and ``save`` replace Keras ``model.export`` / ``tf.saved_model.save``:
the model is written to a hidden staging directory, warmed and replayed there,
and published at DIR/<name>/<version> only if every warmup record passed.
Everything is built here from random data; it runs in a few seconds on a CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfwarm_export  # noqa: E402

# tf.keras is the Keras TensorFlow routes to: Keras 3, or Keras 2 (tf_keras) under
# TF_USE_LEGACY_KERAS=1 (and on TF 2.15). tfwarm_export works with either.
keras = tf.keras
from tfwarm_export import export, save  # noqa: E402


class Scorer(tf.Module):
    """A hand-written tf.Module with two signatures, as a custom serving model would have."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.normal([8, 1], seed=1))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="features")])
    def score(self, features):
        return {"score": tf.matmul(features, self.w)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def length(self, text):
        return {"length": tf.strings.length(text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output base directory (default: a temp dir)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="tfwarm-example-")

    # 1. Keras: fit briefly on random data, then export version 1 with warmup.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,), name="features"),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = np.random.rand(256, 8).astype("float32"), np.random.rand(256, 1).astype("float32")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    warmup = tfwarm_export.WarmupConfig(batch_sizes=[1, 8, 32])
    report = export(model, os.path.join(out, "keras_model", "1"), warmup=warmup)
    print(report.summary(), "\n")

    # 2. tf.Module: same arguments as tf.saved_model.save, plus warmup=.
    scorer = Scorer()
    report = save(scorer, os.path.join(out, "scorer", "1"),
                  signatures={"serving_default": scorer.score, "length": scorer.length},
                  warmup=warmup)
    print(report.summary(), "\n")

    # 3. A failing warmup publishes nothing: the error says which record failed and why.
    try:
        save(scorer, os.path.join(out, "scorer", "2"), signatures={"serving_default": scorer.score},
             warmup=warmup.replace(signatures=["no_such_signature"]))
    except tfwarm_export.TfwarmError as e:
        print(f"expected failure: {type(e).__name__}: {str(e).splitlines()[0]}")
    print("versions of scorer:", sorted(os.listdir(os.path.join(out, "scorer"))))
    print(f"\nmodels under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
