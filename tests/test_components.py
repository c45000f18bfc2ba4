"""Pipeline components: the plain executor function, and a real KFP v2 local run (if kfp is installed).

No ``from __future__ import annotations``: KFP reads the pipeline function's annotations as types.
"""

import json
import os
import pathlib
import shutil

import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export import components as comp
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

REPO = pathlib.Path(__file__).resolve().parent.parent


class Parser(tf.Module):
    """A TFX-style model: one string input of serialized tf.Examples, with an input range check."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([3, 1]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        f = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([3], tf.float32)})
        return {"y": tf.matmul(f["x"], self.w)}


class Dense(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([3, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x):
        tf.debugging.assert_less(x, 1e6, message="input out of range")
        return {"y": tf.matmul(x, self.w)}


def save(module, path) -> str:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


@pytest.fixture(scope="module")
def dense_src(tmp_path_factory) -> str:
    return save(Dense(), tmp_path_factory.mktemp("src") / "dense")


def read_report(out) -> dict:
    return json.loads((pathlib.Path(out) / comp.REPORT_NAME).read_text())


@pytest.mark.compat
def test_executor_serving_layout(dense_src, tmp_path):
    out = tmp_path / "out"
    report = comp.run_warmup_component(dense_src, str(out), version=7, batch_sizes=[1, 4])
    assert report.ok and report.export_dir == str(out / "7")
    assert sorted(os.listdir(out)) == ["7", comp.REPORT_NAME]
    assert len(read_logs(warmup_path(str(out / "7")))) == 2
    assert tw.check(str(out / "7")).ok
    saved = read_report(out)
    assert saved["ok"] and saved["num_records"] == 2 and saved["source_model"] == dense_src
    assert not os.path.exists(os.path.join(dense_src, "assets.extra"))  # the input is untouched

    # Run again on the warmed output (a TF Serving base path): its newest version is the input,
    # and the warmup file already in it is regenerated.
    again = comp.run_warmup_component(str(out), str(tmp_path / "out2"), version=8, batch_sizes=[2])
    assert again.ok and len(read_logs(warmup_path(str(tmp_path / "out2" / "8")))) == 1


def test_executor_tfx_layout(dense_src, tmp_path):
    trainer_out = tmp_path / "Trainer" / "model" / "5"
    shutil.copytree(dense_src, trainer_out / comp.TFX_SERVING_DIR)
    out = tmp_path / "Warmup" / "warmed_model" / "6"
    report = comp.run_warmup_component(str(trainer_out), str(out), layout="tfx")
    assert report.ok
    assert sorted(os.listdir(out)) == [comp.TFX_SERVING_DIR, comp.REPORT_NAME]
    assert tw.check(str(out / comp.TFX_SERVING_DIR)).ok


def test_executor_failure_writes_report_and_raises(dense_src, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(tw.ReplayError, match="input out of range") as err:
        comp.run_warmup_component(dense_src, str(out), version=1, overrides={"x": 1e9})
    assert err.value.report is not None
    assert os.listdir(out) == [comp.REPORT_NAME]  # no model, but the reason is on record
    saved = read_report(out)
    assert saved["ok"] is False and "input out of range" in saved["error"]
    assert saved["results"] and not saved["results"][0]["ok"]

    with pytest.raises(tw.SavedModelError, match="no SavedModel found"):
        comp.run_warmup_component(str(tmp_path / "nothing"), str(tmp_path / "o2"))


def test_examples_uri_resolution_and_run(tmp_path):
    src = save(Parser(), tmp_path / "parser")
    split = tmp_path / "Examples" / "Split-train"
    split.mkdir(parents=True)
    (tmp_path / "Examples" / "Split-eval").mkdir()
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as w:
        for i in range(8):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[i, i + 1.0, i + 2.0]))}))
            w.write(ex.SerializeToString())
    files = comp.resolve_examples(str(tmp_path / "Examples"))
    assert files == [str(split / "data_tfrecord-00000-of-00001.gz")]
    assert comp.resolve_examples(files[0]) == files
    with pytest.raises(tw.TfwarmError, match="Split-eval"):
        comp.resolve_examples(str(tmp_path / "Examples"), split="test")

    report = comp.run_warmup_component(src, str(tmp_path / "out"), version=1,
                                       examples_uri=str(tmp_path / "Examples"), batch_sizes=[2])
    assert report.ok
    assert tw.check(str(tmp_path / "out" / "1")).ok


def test_tfx_component_is_optional():
    try:
        import tfx  # noqa: F401
    except ImportError:
        assert comp.TfxWarmup is None
    else:  # pragma: no cover - tfx is not a test dependency
        assert comp.TfxWarmup is not None


def test_kfp_local_pipeline(dense_src, tmp_path, monkeypatch):
    kfp = pytest.importorskip("kfp", reason="kfp is not installed (pip install 'tfwarm_export[kfp]'); "
                                            "skipping the Kubeflow Pipelines local run")
    from kfp import dsl, local

    # The SubprocessRunner runs the component in this interpreter; make the checkout importable.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(tmp_path)
    warm = comp.kfp_warmup_component()

    @dsl.pipeline(name="warmup-test")
    def pipeline(model_uri: str):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
        warm(model=model.output, batch_sizes=[1, 3], version=2)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline(model_uri=dense_src)
    reports = list((tmp_path / "root").rglob(comp.REPORT_NAME))
    assert len(reports) == 1, f"kfp {kfp.__version__} wrote no report under {tmp_path / 'root'}"
    out = reports[0].parent
    assert sorted(os.listdir(out)) == ["2", comp.REPORT_NAME]
    assert json.loads(reports[0].read_text())["ok"]
    assert tw.check(str(out / "2")).ok


def test_example_kfp_pipeline(tmp_path, monkeypatch, capsys):
    pytest.importorskip("kfp", reason="kfp is not installed; the example would only print a skip message")
    from test_export import run_example

    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # the example extends it
    monkeypatch.chdir(tmp_path)
    assert run_example("kfp_pipeline", "--out", str(tmp_path)) == 0
    assert "warmed model base path" in capsys.readouterr().out
    assert len(list((tmp_path / "pipeline_root").rglob("1/saved_model.pb"))) == 1
