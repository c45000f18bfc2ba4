"""Keras 2 (``tf_keras``) beside Keras 3: ``save``, ``export`` and ``WarmupExport`` on real models.

A training script selects tf_keras with ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is
imported; that is only clean in a fresh process, so the first test runs one. The
others build ``tf_keras`` models directly in this process, beside whatever Keras
``tf.keras`` routes to here, which is how a model's own class decides.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.model.keras_flavor import keras_of
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None,
                       reason="tf_keras is not installed (pip install '.[test]' installs tf-keras)"),
]

REPO = pathlib.Path(__file__).resolve().parent.parent

LEGACY_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    import tfwarm_export as tw

    out = sys.argv[1]
    model = tf.keras.Sequential([tf.keras.Input((4,), name="features"), tf.keras.layers.Dense(3),
                                 tf.keras.layers.Dense(1, name="score")])
    model.compile("sgd", "mse")
    warm = tw.WarmupConfig(batch_sizes=[1, 4])
    saved = tw.save(model, os.path.join(out, "saved", "1"), warmup=warm)
    exported = tw.export(model, os.path.join(out, "exported", "1"), warmup=warm)
    callback = tw.WarmupExport(os.path.join(out, "trained"), warmup=warm, max_to_keep=2)
    x, y = np.zeros((16, 4), np.float32), np.zeros((16, 1), np.float32)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callback])
    print(json.dumps({
        "model_module": type(model).__module__,
        "callback_keras": callback.keras_module.__name__,
        "ok": [saved.ok, exported.ok, *(r.ok for r in callback.reports.values())],
        "versions": callback.versions,
        "signatures": sorted(exported.plan.signatures),
    }))
""")


@pytest.mark.skipif(tuple(int(p) for p in tf.__version__.split(".")[:2]) < (2, 15),
                    reason=f"TF {tf.__version__} does not read TF_USE_LEGACY_KERAS (2.15 is the first that "
                           "does); tf_keras is used there by importing it, as the tests below do")
def test_tf_keras_selected_by_env_through_save_export_and_callback(tmp_path):
    """``TF_USE_LEGACY_KERAS=1``: tf.keras is tf_keras; every entry point publishes a warmed model."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", LEGACY_SCRIPT, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Saved artifact at" not in proc.stdout  # Keras 2's export is kept quiet, as verbose=False in Keras 3
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model_module"].startswith("tf_keras.")
    assert result["callback_keras"] == "tf_keras"
    assert result["ok"] == [True] * 4  # save, export, and the two versions kept
    assert result["versions"] == [2, 3]  # one per epoch, max_to_keep=2
    assert "serving_default" in result["signatures"]
    # Replayed again here, independently of the process (and the Keras) that wrote them.
    for d in ("saved/1", "exported/1", "trained/2", "trained/3"):
        path = str(tmp_path / d)
        assert tw.check(path).ok, d
        logs = read_logs(warmup_path(path))
        names = [log.predict_log.request.model_spec.signature_name for log in logs]
        assert "serving_default" in names and len(logs) == 2 * len(set(names)), d  # batch sizes 1 and 4


def tf_keras_model():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((4,), name="features")
    model = tf_keras.Model(inp, tf_keras.layers.Dense(1, name="score")(inp))
    model.compile(tf_keras.optimizers.SGD(learning_rate=0.01), "mse")
    return model


def test_model_class_decides_the_callbacks_keras(tmp_path):
    """A callback built for tf.keras's Keras becomes a tf_keras Callback when fit() is tf_keras's."""
    import tf_keras

    model = tf_keras_model()
    callback = tw.WarmupExport(tmp_path / "base", warmup=tw.WarmupConfig(batch_sizes=[2]),
                               save_freq=2)
    rng = np.random.default_rng(0)
    model.fit(rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32),
              epochs=1, batch_size=4, verbose=0, callbacks=[callback])
    assert isinstance(callback, tf_keras.callbacks.Callback) and isinstance(callback, tw.WarmupExport)
    assert callback.keras_module is tf_keras and keras_of(model) is tf_keras
    assert callback.versions == [1, 2]  # 4 batches, save_freq=2
    assert all(tw.check(str(tmp_path / "base" / str(v))).ok for v in (1, 2))


def test_keras_module_argument_picks_the_base(tmp_path):
    import tf_keras

    callback = tw.WarmupExport(tmp_path, keras_module=tf_keras)
    assert isinstance(callback, tf_keras.callbacks.Callback) and callback.keras_module is tf_keras
    assert type(callback).__name__ == "WarmupExport"


def test_keras2_export_names_keywords_it_does_not_take(tmp_path):
    """Keras 2's ``Model.export`` takes only the path; a Keras 3 keyword is one clear line."""
    with pytest.raises(TypeError, match=r"Model.export of tf_keras .* does not take input_signature"):
        tw.export(tf_keras_model(), tmp_path / "m" / "1",
                  input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    assert not (tmp_path / "m" / "1").exists()
    assert os.listdir(tmp_path / "m") == []  # the staging copy is gone too


def test_tf_keras_export_archive(tmp_path):
    """tf_keras's own ExportArchive, with a custom endpoint, published with its warmup file."""
    import tf_keras

    model = tf_keras_model()
    archive = tf_keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False),
                         input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    report = tw.export(archive, tmp_path / "a" / "1", warmup=tw.WarmupConfig(batch_sizes=[3]))
    assert report.ok and "serving_default" in report.plan.signatures
    assert tw.check(str(tmp_path / "a" / "1")).ok
