"""Keras callback: publish a warmed SavedModel version after every epoch.

    python examples/keras_callback.py [--out DIR]

``WarmupExport`` writes TF Serving's layout, DIR/<version>/, one version per
epoch here (``save_freq`` may also be a number of batches; ``save_best_only`` /
``monitor`` / ``mode`` work as in ``ModelCheckpoint``). Point TF Serving at DIR
(``--model_base_path=DIR``) and it picks up each version as it appears, already
warmed. Run it twice with the same --out: numbering continues where it stopped.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import numpy as np  # noqa: E402

import tfwarm_export  # noqa: E402

# tf.keras is the Keras TensorFlow routes to: Keras 3, or Keras 2 (tf_keras) under
# TF_USE_LEGACY_KERAS=1 (and on TF 2.15). tfwarm_export works with either.
keras = tf.keras
from tfwarm_export.keras import WarmupExport  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="model base path (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    base = args.out or os.path.join(tempfile.mkdtemp(prefix="tfwarm-callback-"), "model")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,), name="features"),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = np.random.rand(256, 8).astype("float32"), np.random.rand(256, 1).astype("float32")

    callback = WarmupExport(base, warmup=tfwarm_export.WarmupConfig(batch_sizes=[1, 8, 32]),
                            max_to_keep=5, verbose=1)
    model.fit(x, y, validation_split=0.25, epochs=args.epochs, batch_size=32, callbacks=[callback],
              verbose=0)

    print(f"\nversions in {base}: {callback.versions}")
    for version, report in sorted(callback.reports.items()):
        print(f"  {version}: {len(report.plan.records)} warmup records, replay "
              f"{'ok' if report.ok else 'FAILED'}, first runs {report.cold_ms:.1f} ms -> "
              f"second runs {report.warm_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
