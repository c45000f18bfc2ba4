"""``save``/``export``: all-or-nothing publishing of real SavedModels (local, ram://, XLA)."""
from __future__ import annotations

import os
import uuid

import keras
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tfwarm_export as tw
from tfwarm_export.saving import export, save
from tfwarm_export.serving.warmup_file import read_logs, warmup_path


class Guarded(tf.Module):
    """A model with a runtime check: inputs >= 1e6 fail, as a real input validation would."""

    def __init__(self, name_in: str = "x"):
        super().__init__()
        self.w = tf.Variable(tf.ones([3, 2]))
        self.serve = tf.function(self._serve,
                                 input_signature=[tf.TensorSpec([None, 3], tf.float32, name=name_in)])

    def _serve(self, x):
        tf.debugging.assert_less(x, 1e6, message="input out of range")
        return {"y": tf.matmul(x, self.w)}


def tiny_keras(n_in: int = 4) -> keras.Model:
    inp = keras.Input((n_in,), name="features")
    return keras.Model(inp, keras.layers.Dense(1, name="score")(keras.layers.Dense(3)(inp)))


def entries(path) -> list[str]:
    return sorted(tf.io.gfile.listdir(os.fspath(path)))


@pytest.mark.compat
def test_save_tf_module_publishes_warmed_model(tmp_path):
    m = Guarded()
    dst = tmp_path / "model" / "1"
    report = tw_save(m, dst, batch_sizes=[1, 4])
    assert report.ok and report.replayed
    assert report.export_dir == str(dst) and report.plan.export_dir == str(dst)
    assert report.path == warmup_path(str(dst)) and os.path.exists(report.path)
    assert len(read_logs(report.path)) == 2
    assert entries(tmp_path / "model") == ["1"]  # no staging dir left behind
    assert tw.check(str(dst)).ok


def tw_save(module, dst, **warmup):
    return save(module, dst, signatures={"serving_default": module.serve},
                   warmup=tw.WarmupConfig(**warmup))


@pytest.mark.compat
def test_export_keras_model(tmp_path):
    report = export(tiny_keras(), tmp_path / "k" / "1", warmup=tw.WarmupConfig(batch_sizes=[2]))
    assert report.ok
    assert "serving_default" in report.plan.signatures
    assert entries(tmp_path / "k") == ["1"]
    assert tw.check(str(tmp_path / "k" / "1")).ok
    with pytest.raises(ValueError, match="tf_saved_model"):
        export(tiny_keras(), tmp_path / "k" / "2", format="onnx")


def test_failed_replay_leaves_no_partial_model(tmp_path):
    dst = tmp_path / "model" / "1"
    with pytest.raises(tw.ReplayError) as err:
        tw_save(Guarded(), dst, overrides={"x": 1e9})
    msg = str(err.value)
    assert f"exporting {dst} failed while adding and replaying" in msg
    assert "nothing was created there" in msg and "input out of range" in msg
    assert ".tmp-" not in msg  # the staging path is not what the user asked for
    assert err.value.report is not None and not err.value.report.ok
    assert err.value.report.export_dir == str(dst)
    assert entries(tmp_path / "model") == []


def test_failed_reexport_keeps_previous_model(tmp_path):
    dst = tmp_path / "model" / "1"
    tw_save(Guarded(), dst, batch_sizes=[1])
    files = ("saved_model.pb", "assets.extra/tf_serving_warmup_requests")
    before = {p: (dst / p).read_bytes() for p in files}
    with pytest.raises(tw.SignatureError, match="left as it was") as err:
        tw_save(Guarded(), dst, signatures=["nope"])
    assert "'nope'" in str(err.value)
    after = {p: (dst / p).read_bytes() for p in files}
    assert after == before
    assert entries(tmp_path / "model") == ["1"]


def test_reexport_replaces_stale_warmup_file(tmp_path):
    dst = tmp_path / "model" / "1"
    tw_save(Guarded("x"), dst, batch_sizes=[1])
    # Plain tf.saved_model.save into the same dir keeps assets.extra/ (the bug we avoid):
    plain = Guarded("z")
    tf.saved_model.save(plain, str(dst), signatures={"serving_default": plain.serve})
    assert set(read_logs(warmup_path(str(dst)))[0].predict_log.request.inputs) == {"x"}
    # tfwarm_export.save replaces the directory wholesale: the file matches the new model.
    report = tw_save(Guarded("z"), dst, batch_sizes=[1, 2])
    logs = read_logs(warmup_path(str(dst)))
    assert report.ok and len(logs) == 2
    assert all(set(l.predict_log.request.inputs) == {"z"} for l in logs)
    assert entries(tmp_path / "model") == ["1"]  # the old copy set aside was deleted
    assert tw.check(str(dst)).ok


def test_refuses_to_replace_a_directory_that_is_not_a_savedmodel(tmp_path):
    dst = tmp_path / "work"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a SavedModel"):
        tw_save(Guarded(), dst)
    assert (dst / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert tw_save(Guarded(), empty, batch_sizes=[1]).ok


def test_ram_filesystem_export_copies_saved_model_pb_last(tmp_path, monkeypatch):
    base = f"ram://tfwarm-{uuid.uuid4().hex[:8]}/model"
    dst = f"{base}/1"
    copied: list[str] = []
    real_copy = tf.io.gfile.copy

    def spy(src, target, overwrite=False):
        copied.append(target)
        return real_copy(src, target, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", spy)
    report = export(tiny_keras(), dst, warmup=tw.WarmupConfig(batch_sizes=[1, 3]))
    monkeypatch.undo()
    assert report.ok and report.path == f"{dst}/assets.extra/tf_serving_warmup_requests"
    assert copied[-1] == f"{dst}/saved_model.pb"
    assert f"{dst}/variables/variables.index" in copied
    assert tf.io.gfile.exists(report.path) and len(read_logs(report.path)) == 4
    assert [n.rstrip("/") for n in tf.io.gfile.listdir(base)] == ["1"]  # staged locally, not in base
    assert tw.check(dst).ok  # the TF1 loader replays straight from ram://

    # Re-export a different model: old files (and its warmup file) are gone.
    report2 = export(tiny_keras(6), dst, warmup=tw.WarmupConfig(batch_sizes=[2]))
    logs = read_logs(report2.path)
    assert len(logs) == 2
    shapes = {tuple(d.size for d in t.tensor_shape.dim) for l in logs
              for t in l.predict_log.request.inputs.values()}
    assert shapes == {(2, 6)}

    # A failure publishes nothing and keeps the model already there.
    with pytest.raises(tw.SignatureError):
        export(tiny_keras(), f"{base}/2", warmup=tw.WarmupConfig(signatures=["nope"]))
    assert not tf.io.gfile.exists(f"{base}/2")
    assert tw.check(dst).ok


@pytest.mark.compat
def test_xla_endpoint_via_export_archive(tmp_path):
    """``model.export(jit_compile=True)`` drops XLA; an ExportArchive endpoint keeps it and is warmed."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", tf.function(lambda x: model(x, training=False), jit_compile=True),
                         input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    dst = tmp_path / "xla" / "1"
    report = export(archive, dst, warmup=tw.WarmupConfig(batch_sizes=[1, 8]))
    assert report.ok
    serve = [r for r in report.results if r.signature == "serve"]
    assert sorted(r.batch_size for r in serve) == [1, 8] and all(r.ok for r in serve)

    sm = saved_model_pb2.SavedModel()
    with open(dst / "saved_model.pb", "rb") as f:
        sm.ParseFromString(f.read())
    xla = [fn.signature.name for fn in sm.meta_graphs[0].graph_def.library.function
           if "_XlaMustCompile" in fn.attr and fn.attr["_XlaMustCompile"].b]
    assert xla, "the exported serve function lost its jit_compile=True"
    assert tw.check(str(dst)).ok


def run_example(name: str, *args: str) -> int:
    """Run examples/<name>.py's main() in-process (the examples must keep working)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(args))


@pytest.mark.compat
def test_example_train_and_export(tmp_path, capsys):
    assert run_example("train_and_export", "--out", str(tmp_path)) == 0
    assert "expected failure: SignatureError" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "scorer")) == ["1"]
    assert tw.check(str(tmp_path / "keras_model" / "1")).ok


@pytest.mark.skipif(not keras.__version__.startswith("3"), reason="Keras 3 only: Keras 2 models save restorably")
def test_save_of_a_keras3_model_that_tf_serving_cannot_restore_says_why(tmp_path):
    """TF Serving's loader never restores a Keras 3 model's variables under tf.saved_model.save
    (keras-team/keras#19274): the error blames the export, not the warmup records."""
    model = tiny_keras()
    target = tmp_path / "m" / "1"
    with pytest.raises(tw.ReplayError) as e:
        save(model, str(target), warmup=tw.WarmupConfig(batch_sizes=[1]))
    msg = str(e.value)
    assert "cannot serve any request" in msg and "Could not find variable" in msg
    assert "model.export(DIR)" in msg and "score/" in msg.split("variable(s)")[1].split(",")[0]
    assert not target.exists()  # all or nothing: nothing published
