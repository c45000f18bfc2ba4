"""Beam's DaskRunner on a real 2-process ``dask.distributed`` cluster on 127.0.0.1.

`tfwarm add --runner DaskRunner` (the short name) against the cluster's scheduler
writes the local path's file byte for byte, and both worker processes read
traffic files: an audit hook installed in each worker by a worker plugin records
every traffic file it opens and the task that opened it (so the proof is what
the workers did, not how the graph was built). A bad ``dask_*`` value is one
line and exit 2, before anything runs.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, copy_model

pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install '.[beam]')")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                                        "(pip install '.[beam]')")

import tfwarm_export as tw  # noqa: E402
from tfwarm_export.serving.warmup_file import warmup_path  # noqa: E402

from dask_audit import TrafficOpens  # noqa: E402  (its own module: workers unpickle it by name)

CLUSTER_START_S = 60
"""Most seconds the cluster may take to start (else the tests skip, saying why)."""
RUN_S = 240
"""Most seconds one CLI run may take."""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _tfwarm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfwarm_export.cli", *args], capture_output=True,
                          text=True, env=_env(), timeout=RUN_S)


@pytest.fixture(scope="module")
def v7(tmp_path_factory) -> str:
    from models_traffic import traffic_model

    return traffic_model(tmp_path_factory.mktemp("dask") / "7", 7)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> str:
    """5 files: 3 JSONL of REST bodies for two signatures (one GZIP), a one-body .json
    and a PredictionLog TFRecord; 1,000 requests in all."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    d = tmp_path_factory.mktemp("dask-logs")
    for f in range(3):
        name = str(d / f"req-{f}.jsonl") + (".gz" if f == 2 else "")
        with (gzip.open(name, "wt") if f == 2 else open(name, "w")) as out:
            for i in range(f * 300, f * 300 + 300):
                body = ({"instances": [{"x": [i, f, 0.5], "ids": list(range(1 + i % 5)), "tag": f"t{i % 9}"}
                                       for _ in range(1 + i % 3)]} if i % 4 else
                        {"signature_name": "score", "inputs": [[i, 1, 2]] * (1 + i % 4)})
                out.write(json.dumps(body) + "\n")
    (d / "body.json").write_text(json.dumps({"instances": [{"x": [1, 2, 3], "ids": [4], "tag": "z"}]}))
    with tf.io.TFRecordWriter(str(d / "log.tfrecord")) as w:
        for i in range(99):
            req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="score"))
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.full((1 + i % 3, 3), i, np.float32)))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())
    return str(d)


@pytest.fixture(scope="module")
def cluster(logs):
    """A 2-process LocalCluster on 127.0.0.1 (one thread each), always closed."""
    from contextlib import ExitStack

    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        try:
            lc = stack.enter_context(LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, timeout=CLUSTER_START_S))
            client = stack.enter_context(Client(lc, timeout=CLUSTER_START_S))
            client.wait_for_workers(2, timeout=CLUSTER_START_S)
        except Exception as e:  # no sockets, no processes, a timeout: say so, do not fail
            pytest.skip(f"dask.distributed could not start a 2-process LocalCluster on 127.0.0.1: "
                        f"{type(e).__name__}: {e}")
        client.register_plugin(TrafficOpens(logs))
        yield client, lc.scheduler_address


def _opens(client) -> dict[str, list[tuple[str, str]]]:
    return client.run(lambda dask_worker: list(dask_worker.plugins[TrafficOpens.name].opened))


def test_cli_dask_short_name_spreads_and_writes_the_local_file(v7, logs, cluster, tmp_path):
    client, address = cluster
    model = copy_model(v7, tmp_path / "dask")
    pattern = os.path.join(logs, "*")
    proc = _tfwarm("add", model, "--traffic", pattern, "--runner", "DaskRunner", "--no-replay",
                   "--seed", "3", "--sample-size", "8", "--batch-sizes", "1,4",
                   "--beam-arg", f"dask_client_address={address}")
    assert proc.returncode == 0, proc.stderr
    assert "Discarding unparseable args" not in proc.stderr and "Traceback" not in proc.stderr
    local = copy_model(v7, tmp_path / "local")
    tw.add_warmup(local, traffic=pattern, replay=False, seed=3, dataset_sample_size=8, batch_sizes=[1, 4])
    with open(warmup_path(model), "rb") as a, open(warmup_path(local), "rb") as b:
        assert a.read() == b.read()
    # both worker processes read traffic files; together they read every one, each once
    opens = _opens(client)
    assert len(opens) == 2 and all(opens.values()), opens
    files = sorted(p for got in opens.values() for _, p in got)
    assert files == sorted(os.path.join(logs, n) for n in os.listdir(logs))
    tasks = {key for got in opens.values() for key, _ in got}
    assert len(tasks) == 5, tasks  # one partition (task) per file: dask_npartitions from the inputs


def test_python_api_runner_dask_equals_local_selection(v7, logs, cluster):
    _, address = cluster
    from tfwarm_export.beam import run_selection
    from tfwarm_export.traffic import sample_traffic, traffic_plan

    pattern = os.path.join(logs, "req-*.jsonl*")
    model = tw.read_signatures(v7)
    files, spec, source = traffic_plan(model.signatures, sorted(model.signatures), (), pattern, None,
                                       k=5, seed=1)
    local = sample_traffic(files, spec, source)
    on_dask = run_selection(v7, traffic=pattern, dataset_sample_size=5, seed=1, runner="DaskRunner",
                            beam_args=[f"dask_client_address={address}"])
    assert on_dask.records == local.records == 900 and on_dask.dropped == local.dropped
    assert sorted(on_dask.samples) == sorted(local.samples)
    for name, s in local.samples.items():
        assert on_dask.samples[name].to_dict() == s.to_dict()
        for a, b in zip(on_dask.samples[name].rows, s.rows):
            assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_dask_option_is_one_line_before_anything_runs(v7, logs, tmp_path, capfd):
    from tfwarm_export.cli import main

    model = copy_model(v7, tmp_path)
    code = main(["add", model, "--traffic", os.path.join(logs, "*.jsonl"), "--runner", "DaskRunner",
                 "--beam-arg", "dask_npartitions=abc"])
    err = capfd.readouterr().err
    assert code == 2
    assert 1 <= len(err.strip().splitlines()) <= 3, err
    assert "--dask_npartitions" in err and "'abc'" in err and "Discarding" not in err
    assert not os.path.exists(warmup_path(model))
    # a misspelt option is an error too, not Beam's "Discarding unparseable args" and a run without it
    code = main(["add", model, "--traffic", os.path.join(logs, "*.jsonl"), "--runner", "DaskRunner",
                 "--beam-arg", "dask_npartition=3"])
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "unknown Beam pipeline option(s) for DaskRunner: --dask_npartition=3" in err
    assert not os.path.exists(warmup_path(model))
