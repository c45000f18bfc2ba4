"""One batching model (``specs.batching``): padding, merged batches, sizes above the largest
allowed one; and the XLA case of issue 25, where ``add`` once wrote a file its own ``check``
(and TF Serving's merged batches) rejected."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export import cli
from tfwarm_export.serving.batching import parse_batching_parameters
from tfwarm_export.serving.coverage import measure_coverage
from tfwarm_export.specs.request_class import RequestClass
from tfwarm_export.serving.warmup_file import warmup_path
from tfwarm_export.specs.batching import BatchRule
from tfwarm_export.traffic.validate import TrafficSpec

sys.path.insert(0, os.path.dirname(__file__))
from serving_replay import cold_batches, replay_signatures  # noqa: E402
from xla_compile_probe import count_stream_compiles, probe_env  # noqa: E402

BATCHING = "max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
LENGTHS = (3, 5, 7)


def test_one_rule_pads_merges_and_refuses_above_the_largest_size():
    rule = parse_batching_parameters(BATCHING).rule
    assert [rule.padded(n) for n in (1, 4, 5, 8)] == [4, 4, 8, 8]
    assert rule.runs_at(2) == (4, 8) and rule.runs_at(6) == (8,)  # merged: every size upward
    assert rule.rejects(9) and rule.runs_at(9) == () and not rule.rejects(8)
    # traffic validation asks the same rule (it once answered allowed[-1] where batching said n)
    spec = TrafficSpec(signatures={}, allowed_batch_sizes=(4, 8), rule=rule)
    assert [spec.padded(n) for n in (1, 5)] == [4, 8] and "max_batch_size 8" in spec.rejected(9)
    # large batch splitting: tasks up to max_batch_size run in pieces of the last allowed size
    split = parse_batching_parameters("max_batch_size { value: 32 } enable_large_batch_splitting "
                                      "{ value: true } max_execution_batch_size { value: 8 } "
                                      "allowed_batch_sizes: 4 allowed_batch_sizes: 8").rule
    assert split.padded(20) == 8 and split.runs_at(20) == (4, 8) and split.rejects(33)
    assert BatchRule().runs_at(3) == (3,) and BatchRule().padded(3) == 3


def test_coverage_counts_every_merged_batch_a_request_runs_in():
    rule = BatchRule((4, 8), 8)
    logged = {RequestClass("s", "predict", 4, (("x", (4, 3)),)): 10}
    warmed4 = [RequestClass("s", "predict", 4, (("x", (4, 3)),))]
    part = measure_coverage(warmed4, logged, rule=rule)
    assert part.fraction == 0.0 and [rc.batch_size for rc, _ in part.uncovered] == [8]
    assert "(0.0%)" in part.summary_lines()[0]
    full = measure_coverage(warmed4 + [RequestClass("s", "predict", 8, (("x", (8, 3)),))], logged, rule=rule)
    assert full.fraction == 1.0 and not full.uncovered


def _xla_model(path: str) -> str:
    class M(tf.Module):
        @tf.function(jit_compile=True)
        def encode(self, ids, mask):
            return tf.reduce_sum(tf.cast(ids, tf.float32) * tf.cast(mask, tf.float32), axis=1)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                      tf.TensorSpec([None, None], tf.bool, name="mask")])
        def serve(self, ids, mask):
            return {"score": self.encode(ids, mask)}

    m = M()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
    return path


def _request_log(path: str, n: int = 150) -> None:
    """A TF Serving request log: PredictionLogs of batch 1-3 at three lengths."""
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(path) as w:
        for i in range(n):
            b, length = int(rng.integers(1, 4)), LENGTHS[i % len(LENGTHS)]
            log = prediction_log_pb2.PredictionLog()
            req = log.predict_log.request
            req.model_spec.signature_name = "serving_default"
            req.inputs["ids"].CopyFrom(tf.make_tensor_proto(rng.integers(0, 9, (b, length)).astype(np.int32)))
            req.inputs["mask"].CopyFrom(tf.make_tensor_proto(np.ones((b, length), bool)))
            w.write(log.SerializeToString())


@pytest.fixture(scope="module")
def xla_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("xla25")
    export_dir = _xla_model(str(root / "m" / "1"))
    batching = str(root / "b.txt")
    with open(batching, "w") as f:
        f.write(BATCHING)
    log = str(root / "log.tfrecord")
    _request_log(log)
    return export_dir, batching, log


def _batches(path: str) -> set[tuple[int, int]]:
    out = set()
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        dims = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request.inputs["ids"].tensor_shape.dim
        out.add((dims[0].size, dims[1].size))
    return out


def test_xla_traffic_under_batching_warms_every_merged_batch(xla_case, tmp_path, capsys):
    export_dir, batching, log = xla_case
    assert cli.main(["add", export_dir, "--traffic", log, "--batching-parameters", batching,
                     "--overwrite", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert _batches(warmup_path(export_dir)) == {(b, n) for b in (4, 8) for n in LENGTHS}
    assert report["coverage"]["fraction"] == 1.0
    assert cli.main(["check", export_dir, "--batching-parameters", batching]) == 0
    capsys.readouterr()
    assert replay_signatures(export_dir) == {"serving_default"}
    assert cold_batches(export_dir, (4, 8)) == []

    # a copy without the size-8 records: check says so, and coverage is not full
    cut = str(tmp_path / "cut.tfrecord")
    with tf.io.TFRecordWriter(cut) as w:
        for raw in tf.data.TFRecordDataset(warmup_path(export_dir)).as_numpy_iterator():
            req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
            if req.inputs["ids"].tensor_shape.dim[0].size == 4:
                w.write(raw)
    assert cli.main(["check", export_dir, "--file", cut, "--batching-parameters", batching,
                     "--traffic", log, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["coverage"]["fraction"] < 1.0 and out["coverage"]["covered"] == 0
    assert any("[8] are not warmed" in p for p in out["problems"])
    shutil.copy(cut, warmup_path(export_dir))  # the independent replay's rule agrees
    cold = cold_batches(export_dir, (4, 8))
    assert cold[0] == "serving_default: batch 8 never warmed" and len(cold) == 1 + len(LENGTHS)


def _stream_compiles(export_dir: str, warmup: str, stream: list[tuple[int, int]]) -> int:
    """XLA compiles a held-out stream pays after replaying ``warmup`` ("-": no warmup), in a
    fresh process with nothing from tfwarm_export (tests/xla_compile_probe.py)."""
    probe = os.path.join(os.path.dirname(__file__), "xla_compile_probe.py")
    out = subprocess.run([sys.executable, probe, export_dir, warmup, "4,8",
                          ",".join(f"{b}:{n}" for b, n in stream)],
                         capture_output=True, text=True, env=probe_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return count_stream_compiles(out.stderr)


def test_held_out_stream_hits_no_compile_after_the_warmup_add_writes(xla_case, tmp_path):
    """Requests of batch 1-8 (5 and 7 too, which no logged request had) at the logged lengths,
    padded as the batching session pads them, compile nothing once the file is replayed; the
    same stream compiles without warmup, and with the file cut to its batch-4 records."""
    export_dir, batching, log = xla_case
    assert cli.main(["add", export_dir, "--traffic", log, "--batching-parameters", batching,
                     "--overwrite"]) == 0
    stream = [(b, n) for n in LENGTHS for b in (1, 2, 3, 5, 7, 8)]
    assert _stream_compiles(export_dir, warmup_path(export_dir), stream) == 0
    assert _stream_compiles(export_dir, "-", stream) == 2 * len(LENGTHS)  # the probe can see compiles
    cut = str(tmp_path / "cut.tfrecord")
    with tf.io.TFRecordWriter(cut) as w:
        for raw in tf.data.TFRecordDataset(warmup_path(export_dir)).as_numpy_iterator():
            if prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request.inputs[
                    "ids"].tensor_shape.dim[0].size == 4:
                w.write(raw)
    assert _stream_compiles(export_dir, cut, stream) == len(LENGTHS)  # batch 8 at each length


def test_check_names_a_shape_left_cold_above_its_warmed_batch(xla_case, tmp_path):
    """Every size is warmed somewhere, but one length lacks batch 8: merged batches of that
    length still compile at request time, and check says where."""
    import tfwarm_export as tw

    export_dir, batching, log = xla_case
    tw.add_warmup(export_dir, traffic=[log], batching_parameters=batching, overwrite=True, replay=False)
    cut = str(tmp_path / "one_cold.tfrecord")
    with tf.io.TFRecordWriter(cut) as w:
        for raw in tf.data.TFRecordDataset(warmup_path(export_dir)).as_numpy_iterator():
            dims = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request.inputs["ids"].tensor_shape.dim
            if (dims[0].size, dims[1].size) != (8, 5):
                w.write(raw)
    report = tw.check(export_dir, path=cut, batching_parameters=batching, replay=False)
    assert report.problems == [p for p in report.problems if "ids[5] mask[5]" in p] and len(report.problems) == 1
    assert "allowed batch sizes [8] are not warmed" in report.problems[0]


def test_load_budget_cut_keeps_a_file_check_accepts(xla_case, capsys, monkeypatch):
    """A load budget that forces a cut under batching keeps whole merged-batch chains, so the
    kept file passes ``tfwarm check`` with the same batching parameters (issue 25). The
    measured costs are replaced by fixed ones (batch 4: 10 ms, batch 8: 20 ms), so the cut is
    the same on every run (in one process XLA's cache makes a second run's costs drift);
    replay, cut, write and check are real."""
    from tfwarm_export import api

    def fixed(results, iterations):
        return [10.0 if (r.padded_to or r.batch_size) == 4 else 20.0 for r in results]

    monkeypatch.setattr(api, "record_costs", fixed)
    export_dir, batching, log = xla_case
    # 3 lengths x (4, 8) = 90 ms; 65 ms holds two chains. Blind to merged batches, the cheapest
    # records first would keep all three batch-4 records and one batch 8: a file check rejects
    assert cli.main(["add", export_dir, "--traffic", log, "--batching-parameters", batching, "--overwrite",
                     "--json", "--load-budget", "65ms"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget"]["applied"] and out["ok"] and out["budget"]["kept_ms"] == 60.0
    kept = _batches(warmup_path(export_dir))
    lengths = {n for _, n in kept}
    assert kept == {(b, n) for b in (4, 8) for n in lengths} and len(lengths) == 2
    assert cli.main(["check", export_dir, "--batching-parameters", batching, "--no-replay"]) == 0
    capsys.readouterr()


def test_add_refuses_a_cut_that_check_would_reject(xla_case, monkeypatch):
    """Whatever chose the records (here the budget as it was before issue 25, blind to merged
    batches), ``add`` runs check's rules on the bytes it would write and keeps the old file."""
    import tfwarm_export as tw
    from tfwarm_export import api
    from tfwarm_export.errors import PlanError
    from tfwarm_export.planning import budget

    export_dir, batching, log = xla_case
    tw.add_warmup(export_dir, traffic=[log], batching_parameters=batching, overwrite=True, replay=False)
    with open(warmup_path(export_dir), "rb") as f:
        before = f.read()

    def blind(classes, costs, weights, budget_ms, threads=1, labels=(), rule=None):
        fixed = [10.0 if c.batch_size == 8 else 20.0 for c in classes]  # the 8s first: no 4 kept
        return budget.choose_within_budget(classes, fixed, weights, 35.0, threads, labels)

    monkeypatch.setattr(api, "choose_within_budget", blind)
    with pytest.raises(PlanError, match=r"break rules `tfwarm check` enforces.*\n.*allowed batch sizes \[4\]"):
        tw.add_warmup(export_dir, traffic=[log], batching_parameters=batching, overwrite=True, load_budget="1h")
    with open(warmup_path(export_dir), "rb") as f:
        assert f.read() == before
