"""Every signature TF Serving can serve: legacy TF1 exports, zero-input and defaulted
signatures, ragged/sparse inputs, op libraries; and never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import models_wild
import tfwarm_export as tw
from tfwarm_export.model import oplibs
from conftest import REPO, SHARED_TF_SERVING, copy_model
from tfwarm_export import cli
from tfwarm_export.api import build_logs
from tfwarm_export.serving.replay import Replayer
from tfwarm_export.model.signatures import read_signatures
from tfwarm_export.serving.warmup_file import parse_records, read_records, warmup_path


@pytest.fixture(scope="session")
def legacy_src(tmp_path_factory) -> str:
    return models_wild.legacy_tf1(tmp_path_factory.mktemp("legacy") / "1")


@pytest.fixture(scope="session")
def counter_src(tmp_path_factory) -> str:
    return models_wild.counter_tf1(tmp_path_factory.mktemp("counter") / "1")


@pytest.fixture(scope="session")
def composites_src(tmp_path_factory) -> str:
    return models_wild.composites(tmp_path_factory.mktemp("composites") / "1")


@pytest.fixture(scope="session")
def defaulted_src(tmp_path_factory) -> str:
    return models_wild.zero_and_defaulted(tmp_path_factory.mktemp("defaulted") / "1")


@pytest.fixture(scope="session")
def text_src(tmp_path_factory) -> str:
    pytest.importorskip("tensorflow_text", reason="tensorflow-text (test extra) is not installed")
    return models_wild.text_tokenizer(tmp_path_factory.mktemp("text") / "1")


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """The CLI in-process, as a user runs it; any traceback would fail the test."""
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


# ------------------------------------------------------------------ legacy SignatureDefs
def test_legacy_missing_shape_is_unknown_and_recovered_from_graph(legacy_src):
    model = read_signatures(legacy_src)
    x = model.get("serving_default").inputs["x"]
    assert x.shape == (None, 1)  # not () : the graph's Identity is [None, 1]
    assert "no tensor_shape" in x.recovered and "shape inference" in x.recovered
    regress = model.get("tensorflow/serving/regress").inputs["inputs"]
    assert regress.dtype == tf.string and "says float32" in regress.recovered
    feats = model.get("scores").inputs["feats"]
    assert feats.dtype == tf.float32 and feats.shape == (None, 3)
    assert "DT_INVALID" in feats.recovered and not feats.problem


def test_legacy_tf1_add_then_check(legacy_src, tmp_path, capsys):
    model_dir = copy_model(legacy_src, tmp_path)
    rc, out, err = run_cli(["add", model_dir], capsys)
    assert rc == 0, err
    assert "serving_default/x: no tensor_shape" in out
    assert "regress" in out and "Session.run only accepts string" in out
    rc, out, err = run_cli(["check", model_dir], capsys)
    assert rc == 0, out + err
    report = tw.check(model_dir)
    kinds = {r.signature: r.log_type for r in report.results}
    assert kinds == {"serving_default": "predict_log", "tensorflow/serving/regress": "regress_log",
                     "scores": "predict_log"}


def test_unrecoverable_dtype_is_a_visible_skip(legacy_src, tmp_path):
    model_dir = copy_model(legacy_src, tmp_path)

    def edit(mg):
        info = mg.signature_def["scores"].inputs["feats"]
        info.name = "no_such_tensor:0"
    models_wild._edit_saved_model(model_dir, edit)
    p = tw.plan(model_dir)
    assert "no valid dtype" in p.skipped["scores"] and "no_such_tensor" in p.skipped["scores"]
    assert "scores" not in p.signatures


# ------------------------------------------------------------------ zero-input / defaulted
def test_zero_input_and_defaulted_signatures_are_warmed(defaulted_src, tmp_path):
    model_dir = copy_model(defaulted_src, tmp_path)
    p = tw.plan(model_dir, batch_sizes=[1, 4])
    by_sig = {}
    for r in p.records:
        by_sig.setdefault(r.signature, []).append(r)
    assert [r.inputs for r in by_sig["labels"]] == [()]
    # The empty request (TF Serving feeds the default [1, 2]) and a fed batch of 4; a fed
    # batch of 1 would repeat the empty request's shapes, so it is not planned.
    sd = by_sig["serving_default"]
    assert sd[0].inputs == () and sd[0].batch_size == 1
    assert [r.inputs[0].shape for r in sd[1:]] == [(4, 2)]
    assert [r.inputs for r in by_sig["fixed_default"]] == [()]
    report = tw.add_warmup(model_dir, batch_sizes=[1, 4])
    assert report.ok and len(report.results) == 4
    assert tw.check(model_dir).ok


def test_zero_input_under_batching_is_skipped_with_tf_serving_reason(defaulted_src, tmp_path):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    p = tw.plan(defaulted_src, batching_parameters=str(cfg))
    assert "Batching Run() must have at least one input tensor" in p.skipped["labels"]
    # Defaults with a batch dimension go through the batching session like any request.
    assert any(r.signature == "serving_default" and r.inputs == () for r in p.records)
    # A batch fixed at 1 is padded to 4 by the batching session: TF Serving would fail it.
    assert "pads the defaults' batch 1 to 4" in p.skipped["fixed_default"]
    model_dir = copy_model(defaulted_src, tmp_path)
    assert tw.add_warmup(model_dir, batching_parameters=str(cfg)).ok
    assert tw.check(model_dir, batching_parameters=str(cfg)).ok


def test_counter_get_counter_warmed_and_state_unchanged(counter_src, tmp_path):
    model_dir = copy_model(counter_src, tmp_path)
    report = tw.add_warmup(model_dir)
    assert report.plan.signatures == ["get_counter"]
    assert "incr_counter" in report.plan.skipped
    logs = parse_records(read_records(warmup_path(model_dir)))
    with Replayer(model_dir) as replayer:
        before = replayer.session.run("read:0")
        results = replayer.replay(logs, iterations=3)
        after = replayer.session.run("read:0")
    assert all(r.ok for r in results) and before == after == 7.0


@pytest.mark.compat
@pytest.mark.parametrize("name", ["saved_model_half_plus_three", "saved_model_counter",
                                  "saved_model_half_plus_two_tf2_cpu"])
def test_tf_serving_testdata_add_then_check(name, tmp_path, capsys):
    src = SHARED_TF_SERVING / name / "00000123"
    if not (src / "saved_model.pb").exists():
        pytest.skip(f"shared TF Serving testdata not found at {src}")
    model_dir = copy_model(src, tmp_path)
    rc, out, err = run_cli(["add", model_dir], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["check", model_dir], capsys)
    assert rc == 0, out + err
    report = tw.check(model_dir)
    warmed = {r.signature for r in report.results}
    if name == "saved_model_counter":
        assert warmed == {"get_counter"}
        logs = parse_records(read_records(warmup_path(model_dir)))
        with Replayer(model_dir) as replayer:
            before = replayer.session.run("counter:0")
            assert all(r.ok for r in replayer.replay(logs))
            assert replayer.session.run("counter:0") == before
    elif name == "saved_model_half_plus_two_tf2_cpu":
        assert "serving_default" in warmed
    else:
        assert warmed == {"serving_default", "tensorflow/serving/regress"}


# ------------------------------------------------------------------ composites
def _values_by_record(p):
    out = []
    for r, lg in zip(p.records, build_logs(p)):
        req = lg.predict_log.request
        out.append((r, {a: tf.make_ndarray(t) for a, t in req.inputs.items()}))
    return out


def test_composite_aliases_are_recovered(composites_src):
    p = tw.plan(composites_src)
    parts = {(r.signature, i.alias): i.composite for r in p.records for i in r.inputs}
    assert parts[("ragged1", "ids")].role == "values" and parts[("ragged1", "ids_1")].role == "row_splits"
    assert [parts[("ragged2", a)].role for a in ("x", "x_1", "x_2")] == ["values", "row_splits", "row_splits"]
    assert [parts[("sparse", a)].role for a in ("sp", "sp_1", "sp_2")] == ["indices", "values", "dense_shape"]
    assert parts[("nested", "d")] is None and parts[("nested", "d_1")].spec.dtype == tf.string
    assert parts[("sparse", "sp")].confirmed_by  # the graph's sparse op consumes it


def test_composite_values_are_consistent_and_deterministic(composites_src):
    p = tw.plan(composites_src, batch_sizes=[1, 3])
    for record, values in _values_by_record(p):
        b = record.batch_size
        if record.signature == "ragged1":
            splits = values["ids_1"]
            assert splits[0] == 0 and len(splits) == b + 1 and np.all(np.diff(splits) >= 0)
            assert splits[-1] == len(values["ids"]) and values["ids"].max() < 5  # embedding rows
        if record.signature == "ragged2":
            outer, inner, flat = values["x_1"], values["x_2"], values["x"]
            assert len(outer) == b + 1 and outer[-1] == len(inner) - 1 and inner[-1] == len(flat)
            assert np.all(np.diff(outer) >= 0) and np.all(np.diff(inner) >= 0)
        if record.signature == "sparse":
            idx, vals, shape = values["sp"], values["sp_1"], values["sp_2"]
            assert list(shape) == [b, 6] and len(vals) == len(idx)
            assert np.all(idx >= 0) and np.all(idx < shape)
            flat = idx[:, 0] * shape[1] + idx[:, 1]
            assert np.all(np.diff(flat) > 0)  # sorted, unique
        if record.signature == "nested":
            assert values["d"].shape[0] == b and len(values["d_2"]) == b + 1
    again = [lg.SerializeToString(deterministic=True) for lg in build_logs(tw.plan(composites_src, batch_sizes=[1, 3]))]
    assert again == [lg.SerializeToString(deterministic=True) for lg in build_logs(p)]


def test_composites_add_then_check(composites_src, tmp_path, capsys):
    model_dir = copy_model(composites_src, tmp_path)
    rc, out, err = run_cli(["add", model_dir, "--batch-sizes", "1,3"], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["check", model_dir], capsys)
    assert rc == 0, out + err
    batches = sorted((r.signature, r.batch_size) for r in tw.check(model_dir).results)
    assert batches == sorted((s, b) for s in ("nested", "ragged1", "ragged2", "sparse") for b in (1, 3))


def test_composites_under_batching_are_skipped_with_reason(composites_src, tmp_path):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 8 }\n")
    with pytest.raises(tw.PlanError) as e:
        tw.plan(composites_src, batching_parameters=str(cfg))
    assert "equal 0th-dimension size" in str(e.value) and "sparse sp (sp, sp_1, sp_2)" in str(e.value)


# ------------------------------------------------------------------ op libraries
_FRESH_TEXT_SCRIPT = """
import sys
from tfwarm_export import cli
from tfwarm_export.model import oplibs
from tfwarm_export.model.signatures import read_signatures
text_dir, normalize_dir, so = sys.argv[1:4]
mg = read_signatures(text_dir).meta_graph
assert oplibs.unregistered_ops(mg) == ["TFText>WhitespaceTokenizeWithOffsetsV2"], oplibs.unregistered_ops(mg)
# 1. --op-library: the kernel library alone registers the op; tensorflow_text is not imported.
assert oplibs.ensure_ops(mg, [so]) == [so]
assert "tensorflow_text" not in sys.modules and not oplibs.unregistered_ops(mg)
# 2. An op TF Serving links (TF Text) that no library gave: the package is imported for it.
other = read_signatures(normalize_dir).meta_graph
assert oplibs.unregistered_ops(other) == ["NormalizeUTF8"]
assert oplibs.ensure_ops(other) == ["tensorflow_text"] and "tensorflow_text" in sys.modules
# 3. The tokenizer model through the CLI as a user runs it: add with no options, then check.
assert cli.main(["add", text_dir]) == 0
assert cli.main(["check", text_dir]) == 0
print("FRESH-OK")
"""


def _whitespace_kernel_library() -> str | None:
    import tensorflow_text

    root = os.path.dirname(tensorflow_text.__file__)
    return next((os.path.join(r, f) for r, _, fs in sorted(os.walk(root)) for f in sorted(fs)
                 if f.startswith("_whitespace_tokenizer_v2") and f.endswith(".so")), None)


def test_tf_text_model_in_a_fresh_process(text_src, tmp_path):
    """Nothing imported beforehand, as in a CI job: --op-library loads a kernel by itself,
    TF Text is imported when its ops are needed, and the model passes add and check."""
    so = _whitespace_kernel_library()
    if so is None:
        pytest.skip("this tensorflow-text build has no separate whitespace tokenizer kernel library")
    model_dir = copy_model(text_src, tmp_path)
    normalize_dir = copy_model(text_src, tmp_path / "n")
    models_wild.rename_op(normalize_dir, "TFText>WhitespaceTokenizeWithOffsetsV2", "NormalizeUTF8")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _FRESH_TEXT_SCRIPT, model_dir, normalize_dir, so],
                          env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "FRESH-OK" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert tw.check(model_dir).ok


@pytest.mark.parametrize("op, expect", [
    # A TF-DF training op: only TF-DF registers it, and no TF-DF wheel exists after TF 2.19.
    ("SimpleMLModelTrainer", ["TF Decision Forests", "pip install tensorflow-decision-forests"] +
     (["stock tensorflow_model_server links"] if oplibs.tf_release() <= (2, 19)
      else ["none is built for TensorFlow"])),
    ("MyTeamCustomKernel", ["custom ops", "--op-library PATH", "stock TF Serving model server cannot"]),
])
def test_missing_ops_are_one_clear_error(legacy_src, tmp_path, capsys, op, expect):
    model_dir = copy_model(legacy_src, tmp_path)
    tw.add_warmup(model_dir, replay=False)
    before = read_records(warmup_path(model_dir))
    models_wild.rename_op(model_dir, "Mul", op)
    for argv in (["add", model_dir, "--overwrite"], ["check", model_dir]):
        rc, out, err = run_cli(argv, capsys)
        assert rc == 2, out + err
        assert op in err
        for text in expect:
            assert text in err
    assert read_records(warmup_path(model_dir)) == before  # the existing file is kept


def test_bad_op_library_path_is_a_clear_error(legacy_src, tmp_path, capsys):
    model_dir = copy_model(legacy_src, tmp_path)
    rc, out, err = run_cli(["add", model_dir, "--op-library", str(tmp_path / "nope.so")], capsys)
    assert rc == 2 and "nope.so" in err and "does not exist" in err
    with pytest.raises(tw.OpLibraryError):
        tw.add_warmup(model_dir, op_libraries=[str(tmp_path / "nope.so")])



@pytest.mark.parametrize("privacy", ["rows", "shapes_only"])
def test_composites_from_a_dataset(composites_src, tmp_path, privacy):
    """A dataset yielding ragged rows / densified sparse rows feeds whole, consistent values."""
    rows = [[1, 2], [3], [0, 1, 4], [2]]
    ids = tf.data.Dataset.from_tensor_slices({"ids": tf.ragged.constant(rows, dtype=tf.int64)})
    dense = np.array([[0, 1.5, 0, 0, 0, 2], [0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]], np.float32)
    sp = tf.data.Dataset.from_tensor_slices({"sp": dense})
    model_dir = copy_model(composites_src, tmp_path)
    data = {"ragged1": ids, "sparse": sp}
    p = tw.plan(model_dir, dataset=data, batch_sizes=[1, 3], privacy=privacy)
    seen = {r.signature for r in p.records if r.source == "dataset"}
    assert seen == {"ragged1", "sparse"}
    nnz_per_row = {int(n) for n in np.count_nonzero(dense, axis=1)}
    for record, values in _values_by_record(p):
        if record.signature == "ragged1":
            lengths = np.diff(values["ids_1"])
            assert len(lengths) == record.batch_size and values["ids_1"][-1] == len(values["ids"])
            assert set(lengths) <= {len(r) for r in rows}  # the data's row lengths
            if privacy == "rows":
                splits = values["ids_1"]
                got = [list(values["ids"][a:b]) for a, b in zip(splits[:-1], splits[1:])]
                assert all(g in rows for g in got)  # whole sampled rows
        if record.signature == "sparse":
            idx, vals, shape = values["sp"], values["sp_1"], values["sp_2"]
            assert shape[0] == record.batch_size and shape[1] == 6 and len(vals) == len(idx)
            counts = np.bincount(idx[:, 0], minlength=shape[0]) if len(idx) else np.zeros(shape[0])
            assert set(int(c) for c in counts) <= nnz_per_row
            if privacy == "rows":
                assert set(vals.tolist()) <= {1.5, 2.0, 3.0}
            else:
                assert not set(vals.tolist()) & {1.5, 2.0, 3.0}  # no sampled value is copied
    report = tw.add_warmup(model_dir, dataset=data, batch_sizes=[1, 3], privacy=privacy)
    assert report.ok and tw.check(model_dir).ok
