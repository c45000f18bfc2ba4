"""Apache Beam: the selection on the DirectRunner (multi-process, many files) is the
local path's selection, record for record."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_model

beam = pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install '.[beam]')")

import tfwarm_export as tw  # noqa: E402
from tfwarm_export.beam import SelectWarmupRequests, run_selection  # noqa: E402
from tfwarm_export.traffic import sample_traffic, traffic_plan  # noqa: E402
from tfwarm_export.serving.warmup_file import read_records, warmup_path  # noqa: E402


@pytest.fixture(scope="module")
def v7_src(tmp_path_factory) -> str:
    from models_traffic import traffic_model

    return traffic_model(tmp_path_factory.mktemp("beam") / "7", 7)


def bodies(i: int) -> list[dict]:
    return [{"instances": [{"x": [i, j, 0.5], "ids": list(range(1 + i % 4)), "tag": f"t{j}"}
                           for j in range(1 + i % 3)]},
            {"signature_name": "score", "inputs": [[i, 1, 2]] * (1 + i % 5)},
            {"instances": [{"x": [1, 2, 3], "ids": [1], "tag": "a", "age": i}]}]


def predict_log_bytes(i: int) -> bytes:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="score"))
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.full((2, 3), i, np.float32)))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()


@pytest.fixture(scope="module")
def traffic_dir(tmp_path_factory):
    """24 small files of three kinds, some GZIP: JSONL, one-body .json, PredictionLog TFRecords."""
    d = tmp_path_factory.mktemp("logs")
    for f in range(12):
        text = "".join(json.dumps(b) + "\n" for i in range(f * 5, f * 5 + 5) for b in bodies(i))
        (d / f"req-{f:02d}.jsonl").write_text(text + "\n")
    for f in range(6):
        (d / f"body-{f}.json").write_text(json.dumps(bodies(100 + f)[0], indent=1))
    for f in range(6):
        opts = tf.io.TFRecordOptions(compression_type="GZIP" if f % 2 else "")
        with tf.io.TFRecordWriter(str(d / f"log-{f}.tfrecord"), opts) as w:
            for i in range(4):
                w.write(predict_log_bytes(f * 4 + i))
    return d


def assert_same_selection(a, b) -> None:
    assert a.records == b.records and a.dropped == b.dropped and a.source == b.source
    assert sorted(a.samples) == sorted(b.samples)
    for name, sa in a.samples.items():
        sb = b.samples[name]
        assert sa.to_dict() == sb.to_dict()
        assert sa.row_strata == sb.row_strata and len(sa.rows) == len(sb.rows)
        for ra, rb in zip(sa.rows, sb.rows):
            assert sorted(ra) == sorted(rb) and all(np.array_equal(ra[k], rb[k]) for k in ra)


def test_directrunner_multiprocess_selection_equals_local(v7_src, traffic_dir, tmp_path, capfd):
    pattern = str(traffic_dir / "*")
    model = tw.read_signatures(v7_src)
    files, spec, source = traffic_plan(model.signatures, sorted(model.signatures), (), pattern, None,
                                       k=6, seed=11)
    assert len(files) == 24
    local = sample_traffic(files, spec, source)
    on_beam = run_selection(v7_src, traffic=pattern, dataset_sample_size=6, seed=11,
                            runner="DirectRunner",
                            beam_args=["direct_running_mode=multi_processing", "direct_num_workers=2"])
    # the worker processes' harness logging stays out of the user's stderr
    assert "sdk_worker" not in capfd.readouterr().err
    assert_same_selection(local, on_beam)
    assert on_beam.dropped == {"input 'age' is not in signature 'serving_default'": 60}
    assert on_beam.samples["serving_default"].strata > 1
    # ...so the warmup files are byte-identical
    a, b = copy_model(v7_src, tmp_path / "a"), copy_model(v7_src, tmp_path / "b")
    tw.add_warmup(a, traffic=on_beam, batch_sizes=[1, 4], seed=11, dataset_sample_size=6)
    tw.add_warmup(b, traffic=pattern, batch_sizes=[1, 4], seed=11, dataset_sample_size=6, replay=False)
    assert read_records(warmup_path(a)) == read_records(warmup_path(b))


def test_select_warmup_requests_ptransform_takes_requests(v7_src, traffic_dir):
    from apache_beam.testing.util import assert_that

    from tfwarm_export.traffic import TrafficFile

    elements = [json.dumps(b) for i in range(8) for b in bodies(i)] + [predict_log_bytes(i) for i in range(3)]
    model = tw.read_signatures(v7_src)
    _, spec, _ = traffic_plan(model.signatures, sorted(model.signatures), (), str(traffic_dir / "*.json"),
                              None, k=4, seed=0)
    local_files = []
    for n, el in enumerate(elements):  # the same requests through the local path, one file each
        kind = "rest_json" if isinstance(el, str) else "prediction_log"
        path = str(traffic_dir.parent / f"single-{n}.{'jsonl' if kind == 'rest_json' else 'tfrecord'}")
        if kind == "rest_json":
            with open(path, "w") as f:
                f.write(el + "\n")
        else:
            with tf.io.TFRecordWriter(path) as w:
                w.write(el)
        local_files.append(TrafficFile(path, kind, "", "requests"))
    local = sample_traffic(local_files, spec, "a Beam PCollection")

    def check(outputs):
        (sel,) = outputs
        assert_same_selection(local, sel)

    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(
            ["--runner=DirectRunner", "--direct_running_mode=in_memory"])) as p:
        out = (p | beam.Create(elements)
               | SelectWarmupRequests(v7_src, tw.WarmupConfig(dataset_sample_size=4, seed=0)))
        assert_that(out, check)


def test_cli_runner_and_beam_errors_are_clean(v7_src, traffic_dir, tmp_path, capsys):
    from tfwarm_export.cli import main

    model = copy_model(v7_src, tmp_path)
    args = ["add", model, "--traffic", str(traffic_dir / "req-0*.jsonl"), "--runner", "DirectRunner",
            "--beam-arg", "direct_running_mode=in_memory"]
    assert main(args) == 0
    assert "dropped: input 'age' is not in signature 'serving_default'" in capsys.readouterr().out
    assert main(["inspect", model, "--traffic", str(traffic_dir / "req-0*.jsonl"),
                 "--runner", "NoSuchRunner"]) == 2
    err = capsys.readouterr().err
    assert "NoSuchRunner" in err and "Traceback" not in err
    # a bad option value is one line naming it, not Beam's whole argparse usage
    assert main(["inspect", model, "--traffic", str(traffic_dir / "req-0*.jsonl"), "--runner",
                 "DirectRunner", "--beam-arg", "direct_running_mode=bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--direct_running_mode: invalid choice: 'bogus'" in err


def test_large_jsonl_is_read_in_byte_ranges_that_cover_every_line_once(v7_src, traffic_dir, tmp_path):
    from tfwarm_export.beam import ReadTraffic, traffic_shards

    big = tmp_path / "big.jsonl"
    with open(big, "w") as f:  # lines of many lengths, so range ends fall inside lines
        for i in range(400):
            f.write(json.dumps(bodies(i)[i % 3]) + ("\n\n" if i % 7 == 0 else "\n"))
    model = tw.read_signatures(v7_src)
    files, spec, source = traffic_plan(model.signatures, sorted(model.signatures), (), str(big), None,
                                       k=7, seed=2)
    shards = traffic_shards(files, shard_bytes=997)
    assert len(shards) > 20 and shards[0].start == 0 and shards[-1].end == big.stat().st_size
    assert all(a.end == b.start for a, b in zip(shards, shards[1:]))
    local = sample_traffic(files, spec, source)
    opts = beam.options.pipeline_options.PipelineOptions(
        ["--runner=DirectRunner", "--direct_running_mode=in_memory"])

    def check(outputs):
        (on_beam,) = outputs
        assert on_beam.records == local.records == 400
        assert_same_selection(local, on_beam)

    from apache_beam.testing.util import assert_that

    with beam.Pipeline(options=opts) as p:
        assert_that(p | ReadTraffic(shards=shards) | SelectWarmupRequests(v7_src, source=source, spec=spec),
                    check)


def test_result_location_is_checked_before_a_pipeline_starts(v7_src, traffic_dir):
    from tfwarm_export.errors import PlanError

    pattern = str(traffic_dir / "req-0*.jsonl")
    # a runner that is not local: the selection needs a place every worker and this machine reach
    # (the job endpoint below is never contacted: the check comes first)
    with pytest.raises(PlanError, match="temp_location=PATH that every worker and this machine"):
        run_selection(v7_src, traffic=pattern, runner="PortableRunner", beam_args=["job_endpoint=localhost:1"])
    with pytest.raises(PlanError, match="temp_location '/proc/no/such' is not writable from this machine"):
        run_selection(v7_src, traffic=pattern, runner="PortableRunner",
                      beam_args=["job_endpoint=localhost:1", "temp_location=/proc/no/such"])
