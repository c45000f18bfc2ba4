"""Bad input gets a clear error naming the input; nothing is half-written."""
from __future__ import annotations

import gzip
import os
import stat

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import tfwarm_export as tw
from tfwarm_export.serving.warmup_file import serialize_logs, warmup_path

from models import guarded_module


@pytest.fixture
def model(mixed) -> str:
    return mixed


def _good_logs(model, **options):
    return tw.build_logs(tw.plan(model, **options))


def _write(path, logs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for raw in serialize_logs(logs):
            w.write(raw)


def _check_file(model, logs, **kwargs):
    _write(warmup_path(model), logs)
    return tw.check(model, **kwargs)


def _problems(model, logs=None, **kwargs):
    if logs is not None:
        _write(warmup_path(model), logs)
    report = tw.check(model, **kwargs)
    assert not report.ok
    return "\n".join(report.problems)


# --- bad SavedModels / options ------------------------------------------------------------

def test_missing_savedmodel(tmp_path):
    with pytest.raises(tw.SavedModelError, match="does not exist"):
        tw.plan(tmp_path / "nope")


def test_base_path_instead_of_version(model):
    base = os.path.dirname(model)
    with pytest.raises(tw.SavedModelError, match=r"version directory such as .*/1"):
        tw.plan(base)


def test_corrupt_savedmodel(tmp_path):
    d = tmp_path / "bad" / "1"
    d.mkdir(parents=True)
    (d / "saved_model.pb").write_bytes(b"\x0a\xff\xff garbage")
    with pytest.raises(tw.SavedModelError, match="corrupt"):
        tw.plan(d)


def test_wrong_tags(model):
    with pytest.raises(tw.SavedModelError, match=r"no MetaGraph with tags \['gpu'\].*\['serve'\]"):
        tw.plan(model, tags=("gpu",))


def test_unknown_signature(model):
    with pytest.raises(tw.SignatureError, match=r"'nope' not found.*available: \['other', 'serving_default'\]"):
        tw.plan(model, signatures=["nope"])


@pytest.mark.parametrize("sizes,match", [([], "empty"), ([0, 2], ">= 1")])
def test_impossible_batch_sizes(model, sizes, match):
    with pytest.raises(tw.BatchingError, match=match):
        tw.plan(model, batch_sizes=sizes)


def test_batch_size_over_max(model, tmp_path):
    cfg = tmp_path / "b.txt"
    cfg.write_text("max_batch_size { value: 8 }")
    with pytest.raises(tw.BatchingError, match=r"\[16\] exceed max_batch_size 8"):
        tw.plan(model, batch_sizes=[1, 16], batching_parameters=str(cfg))


@pytest.mark.parametrize("text,match", [
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8", "increasing"),
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4", "must equal max_batch_size"),
    ("allowed_batch_sizes: 2", "max_batch_size is not set"),
    ("max_batch_size: 8", "not a text-format BatchingParameters"),
])
def test_invalid_batching_file(tmp_path, text, match):
    cfg = tmp_path / "b.txt"
    cfg.write_text(text)
    with pytest.raises(tw.BatchingError, match=match) as e:
        tw.load_batching_parameters(cfg)
    assert str(cfg) in str(e.value)


def test_more_than_1000_planned_records(model):
    with pytest.raises(tw.PlanError, match=r"1002 records, over TF Serving's limit of 1000.*fewer"):
        tw.plan(model, batch_sizes=list(range(1, 502)))


def test_existing_file_kept_without_overwrite(model):
    tw.add_warmup(model)
    before = open(warmup_path(model), "rb").read()
    with pytest.raises(tw.WarmupFileError, match="overwrite"):
        tw.add_warmup(model, batch_sizes=[2])
    assert open(warmup_path(model), "rb").read() == before


def test_bad_override_shape_is_a_clear_error(model):
    bad = lambda rng, shape: np.zeros((shape[0], shape[1] + 1))  # noqa: E731
    with pytest.raises(tw.PlanError, match=r"returned shape \[1, 4\], expected \[1, 3\]"):
        tw.add_warmup(model, overrides={"serving_default/dense": bad})
    assert not os.path.exists(os.path.join(model, "assets.extra"))


def test_replay_failure_writes_nothing_and_keeps_old_file(tmp_path):
    d = guarded_module(tmp_path / "g" / "1")
    tw.add_warmup(d)
    before = open(warmup_path(d), "rb").read()
    with pytest.raises(tw.ReplayError, match=r"record 0 \(signature 'serving_default'.*x too big") as e:
        tw.add_warmup(d, overwrite=True, overrides={"x": 1000.0})
    assert e.value.report is not None and not e.value.report.ok
    assert open(warmup_path(d), "rb").read() == before
    assert [f for f in os.listdir(os.path.dirname(warmup_path(d))) if f.startswith(".")] == []


def test_replay_failure_leaves_no_assets_extra(tmp_path):
    d = guarded_module(tmp_path / "g" / "1")
    with pytest.raises(tw.ReplayError):
        tw.add_warmup(d, overrides={"x": 1000.0})
    assert not os.path.exists(os.path.join(d, "assets.extra"))


@pytest.mark.skipif(os.geteuid() == 0 and not os.environ.get("TFWARM_TEST_READONLY_AS_ROOT"),
                    reason="root ignores directory permissions; read-only is tested via a file "
                           "in place of assets.extra below")
def test_read_only_directory(model):
    os.chmod(model, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(tw.WarmupFileError, match="writable"):
            tw.add_warmup(model)
    finally:
        os.chmod(model, 0o755)


def test_unwritable_assets_extra(model):
    # A plain file where the directory should be: unwritable even for root.
    open(os.path.join(model, "assets.extra"), "w").close()
    with pytest.raises(tw.WarmupFileError, match=r"cannot write the warmup file.*writable"):
        tw.add_warmup(model)
    assert os.path.isfile(os.path.join(model, "assets.extra"))


# --- check: one clear line per broken rule ------------------------------------------------

def test_check_accepts_good_file(model):
    tw.add_warmup(model, batch_sizes=[1, 2])
    assert tw.check(model).ok


def test_check_rejects_gzip(model):
    tw.add_warmup(model)
    path = warmup_path(model)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(gzip.compress(data))
    assert "GZIP" in _problems(model)


def test_check_rejects_raw_proto_without_framing(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    os.makedirs(os.path.dirname(warmup_path(model)), exist_ok=True)
    with open(warmup_path(model), "wb") as f:
        f.write(log.SerializeToString())
    assert "not a TFRecord" in _problems(model)


def test_check_rejects_session_run_log(model):
    log = prediction_log_pb2.PredictionLog()
    log.session_run_log.request.feed.add()
    assert "session_run_log" in _problems(model, [log])


def test_check_rejects_predict_streamed_log(model):
    log = prediction_log_pb2.PredictionLog()
    log.predict_streamed_log.request.add()
    assert "predict_streamed_log" in _problems(model, [log])


def test_check_rejects_unknown_signature(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    log.predict_log.request.model_spec.signature_name = "gone"
    assert '"gone" not found' in _problems(model, [log])


def test_check_rejects_missing_alias(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    del log.predict_log.request.inputs["ids"]
    assert "missing ['ids']" in _problems(model, [log])


def test_check_rejects_extra_alias_and_tensor_names(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    req = log.predict_log.request
    req.inputs["serve_dense:0"].CopyFrom(req.inputs["dense"])
    assert "extra ['serve_dense:0']" in _problems(model, [log])


def test_check_rejects_wrong_dtype(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    log.predict_log.request.inputs["dense"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3), np.float64)))
    assert "dtype float64, the signature expects float32" in _problems(model, [log])


def test_check_rejects_incompatible_shape(model):
    (log,) = _good_logs(model, signatures=["serving_default"])
    log.predict_log.request.inputs["dense"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 4), np.float32)))
    assert "shape [1, 4], incompatible with the signature's (?, 3)" in _problems(model, [log])


def test_check_rejects_batch_dim_disagreement(model, tmp_path):
    (log,) = _good_logs(model, signatures=["serving_default"])
    log.predict_log.request.inputs["dense"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 3), np.float32)))
    cfg = tmp_path / "b.txt"
    cfg.write_text("max_batch_size { value: 8 }")
    assert "disagree on the batch" in _problems(model, [log], batching_parameters=str(cfg))


def test_check_rejects_batch_over_max(model, tmp_path):
    logs = _good_logs(model, signatures=["serving_default"], batch_sizes=[16])
    cfg = tmp_path / "b.txt"
    cfg.write_text("max_batch_size { value: 8 }")
    assert "exceeds max_batch_size 8" in _problems(model, logs, batching_parameters=str(cfg))


def test_check_rejects_unwarmed_allowed_sizes(model, tmp_path):
    logs = _good_logs(model, signatures=["serving_default"], batch_sizes=[4])
    cfg = tmp_path / "b.txt"
    cfg.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8")
    assert "allowed batch sizes [8] are not warmed" in _problems(model, logs, batching_parameters=str(cfg))


def test_check_rejects_more_than_1000_records(model):
    logs = _good_logs(model, signatures=["serving_default"], batch_sizes=[1])
    assert "1001 records exceed" in _problems(model, logs * 1001, replay=False)


def test_check_reports_replay_failure(tmp_path):
    """A record every static rule accepts, which the graph rejects when run: only replay sees it."""
    d = guarded_module(tmp_path / "g" / "1")
    logs = tw.build_logs(tw.plan(d, overrides={"x": 1000.0}))  # the graph asserts x < 100
    static = _check_file(d, logs, replay=False)
    assert static.ok and not static.replayed  # nothing wrong before running it
    report = tw.check(d)
    assert not report.ok and report.replayed
    (problem,) = report.problems
    assert problem.startswith("record 0 (serving_default): replay failed:") and "x too big" in problem
    assert [r.ok for r in report.results] == [False]