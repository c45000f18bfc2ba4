"""``tfwarm bench``: structure of the report, never timing (machines are noisy).

One bench run on a tiny tf.Module (3 planned rows, 5 iterations) is shared by
the structural tests; each row costs two fresh worker processes.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.bench import command as tb
from tfwarm_export.bench import plot as bplot
from tfwarm_export.bench import statistics as bs
from tfwarm_export.serving.warmup_file import warmup_path

from models import save_module

BATCH_SIZES = [1, 2]


def tiny_module(export_dir) -> str:
    """Two predict signatures, one with a fixed batch of 1 (so the plan is not a full product)."""

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.matmul(x, self.w)}

        @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int64, name="ids")])
        def count(self, ids):
            return {"total": tf.reduce_sum(ids, axis=1)}

    m = Tiny()
    return save_module(m, export_dir, {"serving_default": m.serve, "count": m.count})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return tiny_module(tmp_path_factory.mktemp("tiny") / "1")


@pytest.fixture(scope="module")
def report(tiny) -> bs.BenchReport:
    return tb.bench(tiny, iterations=5, batch_sizes=BATCH_SIZES, idle_ms=1, trace=True)


def test_one_row_per_planned_signature_and_batch(tiny, report):
    plan = tw.plan(tiny, batch_sizes=BATCH_SIZES)
    expected = {(r.signature, r.batch_size) for r in plan.records}
    assert expected == {("count", 1), ("serving_default", 1), ("serving_default", 2)}
    assert [(r.signature, r.batch_size) for r in report.rows] == [(r.signature, r.batch_size)
                                                                 for r in plan.records]
    assert report.ok, report.summary()
    assert report.warmup_source == "planned" and report.warmup_path is None
    assert report.num_warmup_records == len(plan.records)
    assert not os.path.exists(warmup_path(tiny)), "bench must not write into the model"


def test_latencies_positive_and_ratios_consistent(report):
    for r in report.rows:
        assert r.covered
        assert not r.error and not r.replay_failures
        for v in (r.cold_first_ms, r.warmed_first_ms, r.steady_ms, r.steady_hot_ms, r.replay_ms,
                  r.cold_load_ms, r.warm_load_ms):
            assert v is not None and v > 0
        assert len(r.cold_first_samples) == len(r.warmed_first_samples) == 1
        assert len(r.steady_samples) == len(r.hot_samples) == 5
        assert r.steady_ms == pytest.approx(float(np.median(r.steady_samples)), abs=1e-3)
        assert r.warmed_over_steady == pytest.approx(r.warmed_first_ms / r.steady_ms)
        assert r.cold_over_steady == pytest.approx(r.cold_first_ms / r.steady_ms)
        assert 0 <= r.warmed_first_percentile <= 100
    assert report.worst_warmed_over_steady == max(r.warmed_over_steady for r in report.rows)


def test_trace_of_worst_row(report):
    traced = [r for r in report.rows if r.trace]
    assert len(traced) == 1
    assert traced[0].warmed_over_steady == report.worst_warmed_over_steady
    for t in (traced[0].trace, traced[0].cold_trace):
        assert not t.get("error"), t
        assert t["first_wall_ms"] > 0 and t["num_ops"] > 0 and t["top_deltas"]
    assert "op time" in bs.describe_trace(traced[0].trace)
    assert "inside ops" in bs.describe_trace(traced[0].cold_trace, cold=True)
    assert "traced cold" in report.summary()


def test_json_and_table(report):
    data = json.loads(report.to_json())
    assert data["ok"] is True and len(data["rows"]) == len(report.rows)
    row = data["rows"][0]
    for key in ("cold_first_ms", "warmed_first_ms", "steady_ms", "warmed_over_steady",
                "cold_over_steady", "signature", "batch_size", "shapes", "covered"):
        assert key in row
    assert row["warmed_over_steady"] == pytest.approx(row["warmed_first_ms"] / row["steady_ms"], rel=1e-2)
    text = report.summary()
    assert "warm/steady" in text and "cold/steady" in text
    assert len(report.table()) == len(report.rows) + 1


def test_plot_written(report, tmp_path):
    pytest.importorskip("matplotlib")
    out = bplot.plot(report, tmp_path / "bench.png", titles=["tiny"])
    assert os.path.getsize(out) > 1000


def test_bench_requests_are_fresh_values_same_shapes(tiny):
    """The timed request is new data of the warmup record's shape, never the record itself."""
    plan = tw.plan(tiny, batch_sizes=[1])
    for warm, fresh in zip(tw.build_logs(plan), tb.bench_requests(plan)):
        assert warm.SerializeToString(deterministic=True) != fresh.SerializeToString(deterministic=True)
        assert tb.request_key(warm, None) == tb.request_key(fresh, None)


def test_request_key_notices_missing_shapes(tiny):
    one = tw.build_logs(tw.plan(tiny, batch_sizes=[1], signatures=["serving_default"]))
    two = tw.build_logs(tw.plan(tiny, batch_sizes=[2], signatures=["serving_default"]))
    assert {tb.request_key(lg, None) for lg in one}.isdisjoint(tb.request_key(lg, None) for lg in two)


def test_existing_warmup_required_when_asked(tiny):
    with pytest.raises(tw.WarmupFileError, match="no warmup file"):
        tb.bench(tiny, warmup="existing")
    with pytest.raises(ValueError):
        tb.bench(tiny, warmup="sometimes")


@pytest.mark.compat
def test_cli_json_uses_existing_file(tiny, tmp_path, capsys):
    """`tfwarm bench --json` on a model that ships a file replays that file."""
    import shutil

    model = tmp_path / "m" / "1"
    shutil.copytree(tiny, model)
    tw.add_warmup(str(model), batch_sizes=[1], signatures=["serving_default"], replay=False)
    parser = argparse.ArgumentParser(prog="tfwarm")
    tb.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", str(model), "--signatures", "serving_default", "--batch-sizes", "1",
                              "--iterations", "2", "--idle-ms", "1", "--json"])
    assert tb.run_cli(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["warmup_source"] == "existing" and data["num_warmup_records"] == 1
    assert [(r["signature"], r["batch_size"], r["covered"]) for r in data["rows"]] == [("serving_default", 1, True)]


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(tw.TfwarmError, match="pip install"):
        bplot.require_matplotlib()
