"""Models exported the way production teams export them today, warmed with no options.

A YDF model (``ydf`` + ``ydf-tf``: the SimpleML ops TF-DF used, the only provider for
TensorFlow >= 2.20), a SentencePiece tokenizer (``sentencepiece`` + TF Text) and a Keras 3
model exported on the JAX backend (``XlaCallModule``).
Each is built in its own process (Keras picks its backend at import), warmed by
``tfwarm add DIR`` in a fresh process, and its file is replayed independently
(``tests/serving_replay.py``): every signature must be covered, with no traceback.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tfwarm_export as tw  # noqa: E402
from tfwarm_export.model import oplibs  # noqa: E402
from serving_replay import replay_signatures, signature_names  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]

_YDF_SCRIPT = """
import sys
import numpy as np
import ydf
rng = np.random.default_rng(0)
n = 120
data = {"f1": rng.normal(size=n).astype(np.float32), "f2": rng.integers(0, 5, size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n), "label": rng.integers(0, 2, size=n)}
model = ydf.RandomForestLearner(label="label", num_trees=3, max_depth=3).train(data)
model.to_tensorflow_saved_model(sys.argv[1], mode="tf")
"""

_SENTENCEPIECE_SCRIPT = """
import io, sys
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tft
lines = ["the quick brown fox jumps over the lazy dog", "serving models warm up fast",
         "tokens and pieces make words", "a small vocabulary is enough here"] * 20
buf = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=40,
                               model_type="unigram", minloglevel=2)

class Tokenize(tf.Module):
    def __init__(self):
        self.tok = tft.SentencepieceTokenizer(model=buf.getvalue())

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids = self.tok.tokenize(text)
        return {"ids": ids.to_tensor(default_value=0), "n": ids.row_lengths()}

m = Tokenize()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.serve})
"""

_KERAS_JAX_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras
assert keras.backend.backend() == "jax"
tokens = keras.Input((None, 4), name="tokens")
y = keras.layers.Dense(3)(tokens)
y = keras.layers.GlobalAveragePooling1D()(y)
keras.Model(tokens, y).export(sys.argv[1], format="tf_saved_model")
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")


def _build(script: str, out: pathlib.Path, extra_env: dict | None = None) -> str:
    env = dict(_env(), **(extra_env or {}))
    proc = subprocess.run([sys.executable, "-c", script, str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return str(out)


def _tfwarm(*argv: str) -> subprocess.CompletedProcess:
    """``tfwarm ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tfwarm_export.cli", *argv], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ydf_model(tmp_path_factory) -> str:
    pytest.importorskip("ydf")
    pytest.importorskip("ydf_tf")
    return _build(_YDF_SCRIPT, tmp_path_factory.mktemp("ydf") / "model")


@pytest.fixture(scope="module")
def keras_jax_model(tmp_path_factory) -> str:
    pytest.importorskip("jax")
    return _build(_KERAS_JAX_SCRIPT, tmp_path_factory.mktemp("kjax") / "model", {"KERAS_BACKEND": "jax"})


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory) -> str:
    pytest.importorskip("sentencepiece")
    pytest.importorskip("tensorflow_text")
    return _build(_SENTENCEPIECE_SCRIPT, tmp_path_factory.mktemp("sp") / "model")


def test_sentencepiece_model_warms_with_no_options(sentencepiece_model):
    import tensorflow_text  # noqa: F401  (the replay below needs the SentencePiece kernels)

    ops = oplibs.unregistered_ops(tw.read_signatures(sentencepiece_model).meta_graph)
    assert not ops or all(oplibs.providers_of(op)[0].title == "TF Text" for op in ops)
    proc = _tfwarm("add", sentencepiece_model)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert replay_signatures(sentencepiece_model) == signature_names(sentencepiece_model) == {"serving_default"}


def test_ydf_model_warms_with_no_options(ydf_model):
    import ydf_tf  # noqa: F401  (the replay below loads the model: its kernels must be registered)

    ops = oplibs.graph_ops(tw.read_signatures(ydf_model).meta_graph)
    assert {"SimpleMLInferenceOpWithHandle", "SimpleMLCreateModelResource"} <= ops
    proc = _tfwarm("add", ydf_model)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr == ""  # ydf-tf's kernels log INFO lines at load: captured, not shown
    assert replay_signatures(ydf_model) == signature_names(ydf_model) == {"serving_default"}


_NO_PROVIDER_SCRIPT = """
import sys
for name in ("ydf_tf", "tensorflow_decision_forests"):
    sys.modules[name] = None  # as on a machine where neither is installed
from tfwarm_export import cli
sys.exit(cli.main(["add", sys.argv[1]]))
"""


def test_ydf_model_without_a_provider_names_the_one_for_this_tf(ydf_model):
    proc = subprocess.run([sys.executable, "-c", _NO_PROVIDER_SCRIPT, ydf_model], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "SimpleMLInferenceOpWithHandle" in proc.stderr
    fitting = [p for p in oplibs.providers_of("SimpleMLInferenceOpWithHandle") if p.exists_for(oplibs.tf_release())]
    assert fitting and f"pip install {fitting[0].pip}" in proc.stderr
    if oplibs.tf_release() >= (2, 20):  # no TF-DF wheel: the error must not send users there
        assert "pip install ydf ydf-tf" in proc.stderr
        assert "pip install tensorflow-decision-forests" not in proc.stderr


def test_keras_on_jax_warms_and_every_door_flags_xla(keras_jax_model):
    ops = oplibs.graph_ops(tw.read_signatures(keras_jax_model).meta_graph)
    assert "XlaCallModule" in ops
    proc = _tfwarm("add", keras_jax_model)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    sigs = signature_names(keras_jax_model)
    assert replay_signatures(keras_jax_model) == sigs and sigs
    # The plan, the report and check flag XlaCallModule as they flag jit_compile.
    warmup_plan = tw.plan(keras_jax_model)
    assert set(warmup_plan.xla) == sigs
    assert all(any(w.startswith("XlaCallModule at ") for w in where) for where in warmup_plan.xla.values())
    for sig in sigs:
        assert f"{sig}: WARNING - compiles with XLA (XlaCallModule" in proc.stdout
    report = tw.check(keras_jax_model)
    assert report.ok
    assert sum("compiles with XLA (XlaCallModule" in w for w in report.warnings) == len(sigs)
    proc = _tfwarm("check", keras_jax_model)
    assert proc.returncode == 0 and "compiles with XLA (XlaCallModule" in proc.stdout, proc.stdout + proc.stderr


def test_xla_ops_cover_tf2xla_and_call_module():
    from tfwarm_export.analysis.xla import is_xla_op

    for op in ("XlaCallModule", "XlaLaunch", "XlaLaunchV2", "_XlaCompile", "_XlaRun", "XlaDot", "XlaGather"):
        assert is_xla_op(op), op
    for op in ("MatMul", "PartitionedCall", "StatefulPartitionedCall"):
        assert not is_xla_op(op), op


@pytest.mark.parametrize("version, installed, expect, absent", [
    # No TF-DF wheel exists for TF 2.20+: the SimpleML ops come from ydf-tf there.
    ("2.21.0", [], "pip install ydf ydf-tf", "pip install tensorflow-decision-forests"),
    ("2.16.1", [], "pip install tensorflow-decision-forests", "pip install ydf ydf-tf"),
    ("2.19.0", [], "pip install ydf ydf-tf", "none is built"),
    ("2.21.0", ["ydf_tf"], "is installed but did not register them", "none is built"),
])
def test_missing_simpleml_ops_name_the_provider_for_this_tf(version, installed, expect, absent):
    msg = oplibs.missing_message(["SimpleMLInferenceOpWithHandle"], "DIR", tf_version=version,
                                 installed=installed)
    assert expect in msg and absent not in msg, msg
    assert "TF Serving" in msg


def test_ops_only_an_old_provider_has_say_so():
    msg = oplibs.missing_message(["SimpleMLModelTrainer"], tf_version="2.21.0", installed=[])
    assert "TF Decision Forests" in msg and "none is built for TensorFlow 2.21.0" in msg
    assert "--op-library PATH" in msg
    msg = oplibs.missing_message(["Scann>ScannSearchBatched", "MyKernel"], tf_version="2.21.0", installed=[])
    assert "pip install scann" in msg and "does not link ScaNN" in msg
    assert "['MyKernel'] are custom ops" in msg


def test_tf1_jit_scope_is_flagged(tmp_path):
    """``tf.xla.experimental.jit_scope`` marks nodes ``_XlaCompile``: XLA clusters them per shape."""
    import tensorflow as tf

    export_dir = str(tmp_path / "jit")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        x = tf.compat.v1.placeholder(tf.float32, [None, None], name="x")
        with tf.xla.experimental.jit_scope():
            y = tf.reduce_sum(x * 2.0, axis=1, name="y")
        builder = tf.compat.v1.saved_model.Builder(export_dir)
        sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
        builder.save()
    warmup_plan = tw.plan(export_dir)
    assert any(w.startswith("jit_scope node ") for w in warmup_plan.xla["serving_default"])
    assert not tw.plan(export_dir, dim_sizes={"serving_default/x": {1: [8, 32]}}).xla  # sizes given
