"""Nothing silently dropped: strict batching files, visible substitutions, honest reports.

Covers issue 13: a misspelt batching field is refused as TF Serving refuses it; a
padded batch size is a plan note; ``tfwarm bench`` keeps every repeat's failures
and aggregates load/replay times; ``report.ok`` needs a replay; and under
``privacy="shapes_only"`` no sampled value reaches the file, the report, the
component's JSON or a log line, except values the learned domain cannot avoid,
which the report flags.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.bench import statistics as bs
from tfwarm_export.cli import main
from tfwarm_export.components import REPORT_NAME, run_warmup_component
from tfwarm_export.serving.text_proto import parse_text_proto
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

from models import save_module

UNIQUE = 98765.4321  # occurs in exactly one row of the dataset below


# --------------------------------------------------------------------------- batching files


@pytest.mark.parametrize("text,line,what", [
    ("max_batch_size { value: 8 }\nalowed_batch_sizes: 4\n", 2, "alowed_batch_sizes"),
    ("max_batch_size { valu: 8 }\n", 1, "valu"),
    ("max_batch_size { value: 8 }\nmax_batch_size { value: 4 }\n", 2, "max_batch_size"),
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: eight\n", 2, "eight"),
])
def test_batching_file_is_parsed_strictly(tmp_path, text, line, what):
    """What TF Serving's ParseProtoTextFile refuses, we refuse, naming the line."""
    cfg = tmp_path / "batching.txt"
    cfg.write_text(text)
    with pytest.raises(tw.BatchingError) as e:
        tw.load_batching_parameters(cfg)
    msg = str(e.value)
    assert f"{cfg}:{line}:" in msg and f"(line {line}:" in msg and what in msg and "refuses to start" in msg


def test_misspelt_batching_field_cli_exit_2_no_traceback(mixed, tmp_path):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 8 }\nalowed_batch_sizes: 4\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "tfwarm_export.cli", "add", mixed,
                           "--batching-parameters", str(cfg)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "(line 2:" in proc.stderr
    assert "alowed_batch_sizes" in proc.stderr
    assert not os.path.exists(warmup_path(mixed))


def test_parse_text_proto_is_reusable_for_other_configs():
    """Issue 14 reuses the strict parser for other TF Serving text protos."""
    from tensorflow.core.protobuf import config_pb2

    msg = parse_text_proto("intra_op_parallelism_threads: 2\n", config_pb2.ConfigProto())
    assert msg.intra_op_parallelism_threads == 2
    with pytest.raises(tw.TfwarmError, match=r"cfg:1:1 \(line 1: .*intra_op_paralelism"):
        parse_text_proto("intra_op_paralelism_threads: 2\n", config_pb2.ConfigProto(), "cfg")


def test_padded_batch_sizes_are_a_plan_note(mixed, tmp_path):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    p = tw.plan(mixed, batch_sizes=[3, 4, 5], batching_parameters=str(cfg))
    assert p.batch_sizes == (4, 8)
    note = [n for n in p.notes if "padded" in n]
    assert note and "3 -> 4" in note[0] and "5 -> 8" in note[0] and "4 -> 4" not in note[0]
    assert note[0] in p.to_dict()["notes"] and note[0] in p.summary()
    unpadded = tw.plan(mixed, batch_sizes=[4, 8], batching_parameters=str(cfg))
    assert not [n for n in unpadded.notes if "padded" in n]


# --------------------------------------------------------------------------- reports


def test_report_not_ok_without_replay(mixed, capsys):
    report = tw.add_warmup(mixed, replay=False)
    assert os.path.exists(warmup_path(mixed)) and report.path
    assert report.ok is False and report.to_dict()["ok"] is False
    assert "wrote" in report.summary() and "nothing is verified" in report.summary()
    # the CLI still exits 0: the user asked for no replay and the file was written
    assert main(["add", mixed, "--no-replay", "--overwrite"]) == 0
    assert "nothing is verified" in capsys.readouterr().out
    assert tw.add_warmup(mixed, overwrite=True).ok


def _row(index=0) -> bs.BenchRow:
    return bs.BenchRow(index=index, key="k", signature="s", request_type="predict", batch_size=1,
                       variant=0, shapes={"x": [1, 3]})


def test_bench_keeps_failures_of_every_repeat_and_aggregates():
    row = _row()
    bs.add_samples(row, "cold", {"first_ms": 10.0, "load_ms": 100.0}, 0)
    bs.add_samples(row, "warm", {"first_ms": 1.0, "load_ms": 110.0, "replay_ms": 50.0,
                            "replay_failures": ["record 2 (s): boom"], "steady_ms": [1.0]}, 0)
    bs.add_samples(row, "cold", {"first_ms": 12.0, "load_ms": 300.0}, 1)
    bs.add_samples(row, "warm", {"first_ms": 1.2, "load_ms": 130.0, "replay_ms": 70.0,
                            "replay_failures": [], "steady_ms": [1.1]}, 1)
    bs.add_samples(row, "warm", {"first_ms": 1.1, "load_ms": 120.0, "replay_ms": 90.0,
                            "error": "worker died", "steady_ms": [1.2]}, 2)
    bs.finish_row(row)
    assert row.replay_failures == ["repeat 1: record 2 (s): boom"]
    assert "repeat 3" in row.error and "worker died" in row.error
    assert row.replay_ms == 70.0 and row.replay_samples == [50.0, 70.0, 90.0]
    assert row.cold_load_ms == 200.0 and row.warm_load_ms == 120.0
    report = bs.BenchReport(export_dir="d", warmup_source="planned", warmup_path=None,
                            num_warmup_records=3, iterations=1, batching=None, rows=[row])
    assert not report.ok and "boom" in report.summary()
    assert report.load_ms == 120.0  # median of all five processes' loads
    assert report.replay_ms == 70.0


# --------------------------------------------------------------------------- shapes_only


def _constant_module(export_dir) -> str:
    """Two float inputs: ``x`` with a spread of values, ``c`` always 7.5 in the data."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                      tf.TensorSpec([None, 1], tf.float32, name="c")])
        def serve(self, x, c):
            return {"y": tf.reduce_sum(x, axis=1, keepdims=True) + c}

    m = M()
    return save_module(m, export_dir, {"serving_default": m.serve})


@pytest.fixture(scope="module")
def constant_src(tmp_path_factory) -> str:
    return _constant_module(tmp_path_factory.mktemp("const") / "1")


def _data(n=300):
    rng = np.random.default_rng(5)
    x = rng.uniform(-50.0, 50.0, size=(n, 3)).astype(np.float32)
    x[137, 1] = UNIQUE  # the single row holding the unique value, the data's max
    return {"x": x, "c": np.full((n, 1), 7.5, np.float32)}


def _spellings(v: float) -> list[str]:
    f32 = float(np.float32(v))
    return sorted({repr(v), repr(f32), f"{v:.2f}", f"{f32:.6g}", str(np.float32(v)), "98765.4"})


def test_shapes_only_leaks_no_sampled_value(constant_src, tmp_path, caplog):
    from conftest import copy_model

    data = _data()
    src = copy_model(constant_src, tmp_path / "src")
    out = tmp_path / "pushed"
    with caplog.at_level(logging.DEBUG, logger="tfwarm_export"):
        report = run_warmup_component(src, str(out), dataset=data, privacy="shapes_only",
                                      batch_sizes=[1, 8], version=1)
    assert report.ok
    # the file: neither the unique value's float32 bytes nor any sampled x value
    raw = open(warmup_path(report.export_dir), "rb").read()
    assert struct.pack("<f", UNIQUE) not in raw
    seen_x = set(data["x"].ravel().tolist())
    for lg in read_logs(warmup_path(report.export_dir)):
        got = tf.make_ndarray(lg.predict_log.request.inputs["x"])
        assert not seen_x & set(got.ravel().tolist())
        assert float(got.max()) < float(np.float32(UNIQUE))  # in range, never the max itself
    # the report, its JSON, the component's tfwarm_report.json and every log line
    component_json = (out / REPORT_NAME).read_text()
    texts = {"summary": report.summary(), "json": report.to_json(), "component": component_json,
             "plan": report.plan.to_json(), "logs": "\n".join(r.getMessage() for r in caplog.records)}
    for name, text in texts.items():
        for s in _spellings(UNIQUE):
            assert s not in text, (name, s)
    # c is constant in the data: its only value cannot be avoided, and the report says so
    flags = json.loads(component_json)["data_source"]["serving_default"]["sampled_values_in_file"]
    assert any("'c'" in f and "no other value" in f for f in flags), flags
    assert not any("'x'" in f for f in flags), flags
    assert "input 'c'" in report.privacy and "occur in the data" in report.privacy
    assert any("'c'" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for lg in read_logs(warmup_path(report.export_dir)):
        assert set(tf.make_ndarray(lg.predict_log.request.inputs["c"]).ravel().tolist()) == {7.5}


def test_shapes_only_tf_example_features_avoid_the_range_ends(tmp_path):
    """tf.Example features are drawn from per-feature ranges; the ends are never emitted."""
    from tfwarm_export.traffic.stats import ValueStats

    stats = ValueStats.for_dtype(tf.int64)
    stats.update(np.array([10, 11, 12]))
    out = stats.draw((200,), np.int64, np.random.default_rng(0))
    assert set(out.tolist()) == {11} and stats.sampled_emitted == 0  # the ends are never drawn
    out = stats.draw((200,), np.int64, np.random.default_rng(0), avoid=np.array([10, 11, 12]))
    assert stats.sampled_emitted == 200  # every value of the range was seen: flagged, not hidden
    wide = ValueStats.for_dtype(tf.int64)
    wide.update(np.array([0, 5_000_000]))
    drawn = wide.draw((500,), np.int64, np.random.default_rng(1))
    assert not {0, 5_000_000} & set(drawn.tolist()) and wide.sampled_emitted == 0
    text = ValueStats.for_dtype(tf.string)
    text.update(np.array([b"a", b"b", b"c"], object))  # each seen once: no vocabulary
    got = text.draw((300,), object, np.random.default_rng(2))
    assert not {b"a", b"b", b"c"} & set(got.tolist())


def test_warmup_file_cleanup_failure_is_logged(tmp_path, caplog):
    from tfwarm_export.serving import warmup_file

    stuck = tmp_path / ".tmp-dir"
    (stuck / "inner").mkdir(parents=True)  # a non-empty directory: remove() fails
    with caplog.at_level(logging.WARNING, logger="tfwarm_export"):
        warmup_file._cleanup(str(stuck), None)
    assert any("could not remove" in r.getMessage() and str(stuck) in r.getMessage()
               for r in caplog.records)


# --------------------------------------------------------------------------- user domains


def test_users_fn_domain_with_own_source_is_kept_end_to_end(tmp_path):
    """A Domain the user builds (own source, fn only) stays the user's through the safe retry:
    the failure names it, instead of zeros silently replacing it and the file passing."""
    from models import guarded_module

    d = guarded_module(tmp_path / "g" / "1")

    def too_big(rng, shape):
        return np.full(shape, 1000.0, np.float32)  # the graph asserts x < 100

    with pytest.raises(tw.ReplayError) as e:
        tw.add_warmup(d, overrides={"x": tw.Domain(fn=too_big, source="my big xs")})
    msg = str(e.value)
    assert "your override" in msg and "my big xs" in msg and "user override" not in msg
    assert "x too big" in msg and not os.path.exists(warmup_path(d))
    rec = e.value.report.plan.records[0]
    assert rec.inputs[0].domain.user and rec.inputs[0].domain.source == "my big xs"
