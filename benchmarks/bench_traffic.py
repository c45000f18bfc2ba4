"""Benchmark: traffic selection against plain reads, on one machine and on Beam.

All ratios are measured side by side in one run (interleaved best-of-N, so a
burst of load on shared CPUs hits both sides alike):

* **Local selection vs plain read** (throughput ratio, higher is better):
  - request logs: ``sample_traffic`` over a PredictionLog TFRecord vs reading
    it with ``tf.data`` and parsing every record (``PredictionLog.FromString``);
    two more rows split the selection's cost: the ``tf.data`` read alone and the
    C++ batch decode alone (``prediction_log_batch.predecode``);
  - REST JSON: ``sample_traffic`` over a JSONL file vs reading every line and
    ``json.loads`` it;
  - dataset path: ``sample_dataset`` over tf.Example TFRecords vs a batched
    ``tf.data.TFRecordDataset`` read (the same selection code, vectorised).
  Every selection includes its fixed start-up (reading the signatures, listing
  and classifying the files); that cost, measured on a 10-record file, is shown
  on its own line.
* **Beam selection vs Beam read-and-count**: ``ReadTraffic | SelectWarmupRequests``
  vs ``ReadTraffic | Count.Globally()`` over the same files, same DirectRunner
  options (``in_memory``: one process, so worker start-up is not in either), at a
  small and a large size (the first is bound by pipeline start-up).
* **Peak memory across a 10x larger log**: each pass in a fresh process, peak RSS
  during the pass minus RSS before it (``VmHWM`` reset via ``/proc/self/clear_refs``).

* **Dask** (``--dask``, a section of its own): the local path vs the DirectRunner vs
  Beam's DaskRunner on a 2-process ``LocalCluster``, at 20,000 and 200,000 requests,
  with the bytes the workers sent each other (pre-combined accumulators vs rows).

Run: ``python benchmarks/bench_traffic.py``. Writes the ``traffic`` section of
``benchmarks/RESULTS.md`` and copies its ``readme-traffic`` block into the README
(``--no-write`` to only print); ``--dask`` writes only the ``traffic-dask`` section.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: E402

import results_doc  # noqa: E402



# --------------------------------------------------------------------------- data


def write_traffic(tmp: str, n: int, seed: int, tag: str) -> tuple[str, str]:
    """``n`` predict requests (batch 1-4, variable-length ids, string tags) written
    both as a PredictionLog TFRecord and as REST JSON lines."""
    rng = np.random.default_rng(seed)
    logs, lines = os.path.join(tmp, f"{tag}.tfrecord"), os.path.join(tmp, f"{tag}.jsonl")
    with tf.io.TFRecordWriter(logs) as w, open(lines, "w") as jf:
        for _ in range(n):
            b, length = int(rng.integers(1, 5)), int(rng.integers(1, 20))
            x = rng.standard_normal((b, 3)).astype(np.float32)
            ids = rng.integers(0, 1000, (b, length))
            tags = [f"t{int(t)}" for t in rng.integers(0, 100, b)]
            req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="serving_default"))
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
            req.inputs["ids"].CopyFrom(tf.make_tensor_proto(ids))
            req.inputs["tag"].CopyFrom(tf.make_tensor_proto(np.array([t.encode() for t in tags], object)))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())
            jf.write(json.dumps({"instances": [{"x": x[j].tolist(), "ids": ids[j].tolist(), "tag": tags[j]}
                                               for j in range(b)]}) + "\n")
    return logs, lines


def write_examples(path: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as w:
        for i in range(n):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "age": tf.train.Feature(float_list=tf.train.FloatList(value=[rng.uniform(18, 90)])),
                "uid": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                "tokens": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[b"w%d" % j for j in rng.integers(0, 500, size=int(rng.integers(1, 20)))])),
            })).SerializeToString())


# --------------------------------------------------------------------------- passes


def plain_logs(path: str) -> int:
    n = 0
    for batch in tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(1024).as_numpy_iterator():
        for rec in batch:
            prediction_log_pb2.PredictionLog.FromString(rec)
            n += 1
    return n


def read_only(path: str) -> int:
    """The ``tf.data`` read a log selection starts from, without parsing a record."""
    return sum(len(b) for b in tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(4096)
               .as_numpy_iterator())


def decode_only(path: str) -> int:
    """The C++ batch decode (``predecode``) alone, over batches read beforehand."""
    from tfwarm_export.traffic.readers.prediction_log_batch import predecode

    return sum(len(predecode(b)) for b in _batches(path))


_BATCHES: dict[str, list] = {}


def _batches(path: str) -> list:
    if path not in _BATCHES:
        _BATCHES[path] = list(tf.data.TFRecordDataset(path).batch(4096).as_numpy_iterator())
    return _BATCHES[path]


def plain_jsonl(path: str) -> int:
    n = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        for line in f:
            json.loads(line)
            n += 1
    return n


def plain_examples(path: str) -> int:
    return sum(len(b) for b in tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(1024).as_numpy_iterator())


def select(model_dir: str, path: str, k: int = 256):
    import tfwarm_export as tw
    from tfwarm_export.traffic import sample_traffic, traffic_plan

    model = tw.read_signatures(model_dir)
    files, spec, source = traffic_plan(model.signatures, sorted(model.signatures), (), path, None, k=k, seed=0)
    return sample_traffic(files, spec, source)


def select_examples(path: str, k: int = 256):
    from tfwarm_export.model.signatures import SignatureInfo, TensorSpec
    from tfwarm_export.traffic import sample_dataset

    sig = SignatureInfo("serving_default", "tensorflow/serving/predict",
                        {"examples": TensorSpec("examples", "ex:0", tf.string, (None,))}, {})
    return sample_dataset(path, sig, k=k, seed=0)


def interleaved(a, b, repeats: int) -> tuple[float, float]:
    ta = tb = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a()
        ta = min(ta, time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb = min(tb, time.perf_counter() - t)
    return ta, tb


def beam_passes(model_dir: str, path: str, repeats: int) -> tuple[float, float]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfwarm_export.beam import ReadTraffic, SelectWarmupRequests
    from tfwarm_export.traffic import traffic_files

    files = traffic_files(path)
    opts = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])

    def count():
        with beam.Pipeline(options=opts) as p:
            _ = p | ReadTraffic(files) | beam.combiners.Count.Globally() | beam.Map(lambda n: None)

    def sel():
        with beam.Pipeline(options=opts) as p:
            _ = p | ReadTraffic(files) | SelectWarmupRequests(model_dir) | beam.Map(lambda s: None)

    t_count, t_sel = interleaved(count, sel, repeats)
    return t_count, t_sel


# --------------------------------------------------------------------------- memory (child)


def _kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def child(args) -> None:
    import gc

    select(args.model, args.warm, args.k)  # imports, kernels, allocator set-up: not charged to the pass
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before, method = _kib("VmRSS"), "VmHWM"
    except OSError:
        import resource

        before, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    sel = select(args.model, args.path, args.k)
    if method == "VmHWM":
        after = _kib("VmHWM")
    else:
        import resource

        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"delta_kib": after - before, "method": method, "records": sel.records}))


def peak(model: str, path: str, warm: str, k: int) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--model", model,
                          "--path", path, "--warm", warm, "--k", str(k)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- Dask (--dask)


class ReadTasks:
    """A ``distributed.WorkerPlugin`` (duck-typed: setup/name) recording, per worker,
    which task opened which traffic file (an audit hook in the worker process)."""

    name = "bench-read-tasks"

    def __init__(self, root: str):
        self.root, self.opened = root, []

    def setup(self, worker):
        from distributed.worker import thread_state

        root, opened = self.root, self.opened
        sys.addaudithook(lambda event, a: opened.append((str(getattr(thread_state, "key", None)), a[0]))
                         if event == "open" and isinstance(a[0], str) and a[0].startswith(root) else None)


class RowCombineFn:
    """The selection as a plain ``CombineGlobally`` over rows: what ran before the
    per-bundle pre-combine. Dask's overrides do not lift combiners, so every row
    is shuffled; kept here only to measure that."""

    def __new__(cls, combiner):
        import apache_beam as beam

        class _Rows(beam.CombineFn):
            def create_accumulator(self):
                return combiner.create_accumulator()

            def add_input(self, acc, element):
                acc.add(element)
                return acc

            def merge_accumulators(self, accs):
                return combiner.merge_accumulators(accs)

            def extract_output(self, acc):
                return combiner.extract_output(acc)

        return _Rows()


def _worker_sent(client) -> int:
    """Bytes the workers sent each other so far (dask.distributed's own counter)."""
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


def _rows_shuffled_run(model: str, pattern: str, address: str) -> None:
    import apache_beam as beam
    from apache_beam.runners.runner import create_runner

    import tfwarm_export as tw
    from tfwarm_export.beam import DASK_RUNNER, ReadTraffic, pipeline_options, traffic_shards
    from tfwarm_export.traffic import SelectionCombiner, traffic_plan

    sigs = tw.read_signatures(model).signatures
    files, spec, source = traffic_plan(sigs, sorted(sigs), (), pattern, None, k=256, seed=0)
    shards = traffic_shards(files)
    opts = pipeline_options(DASK_RUNNER, [f"dask_client_address={address}"], {"dask_npartitions": len(shards)})
    p = beam.Pipeline(runner=create_runner(DASK_RUNNER), options=opts)
    _ = (p | ReadTraffic(shards=shards)
         | beam.CombineGlobally(RowCombineFn(SelectionCombiner(spec, source)))
         | beam.Map(lambda selection: selection.records))
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()


def _same(a, b) -> bool:
    return (a.records == b.records and a.dropped == b.dropped and sorted(a.samples) == sorted(b.samples)
            and all(a.samples[n].to_dict() == b.samples[n].to_dict() for n in a.samples))


def dask_size(client, address: str, model: str, tmp: str, n: int, files: int, repeats: int) -> dict:
    """One size: local vs DirectRunner vs Dask (2 workers) timings, bytes shuffled, spread."""
    from tfwarm_export.beam import run_selection, traffic_shards
    from tfwarm_export.traffic import traffic_files

    d = os.path.join(tmp, f"dask{n}")
    os.makedirs(d)
    for f in range(files):
        write_traffic(d, n // files, 100 + f, f"part{f:02d}")
    pattern = os.path.join(d, "*.tfrecord")
    runs = {"local": lambda: select(model, pattern),
            "direct": lambda: run_selection(model, traffic=pattern, runner="DirectRunner"),
            "dask": lambda: run_selection(model, traffic=pattern, runner="DaskRunner",
                                          beam_args=[f"dask_client_address={address}"])}
    out = {name: fn() for name, fn in runs.items()}  # warm-up (workers import TF on first use)
    same = _same(out["local"], out["direct"]) and _same(out["local"], out["dask"])
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
        print(f"dask {n}: " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()), flush=True)
    client.run(lambda dask_worker: dask_worker.plugins[ReadTasks.name].opened.clear())
    before = _worker_sent(client)
    runs["dask"]()
    sent = _worker_sent(client) - before
    opened = client.run(lambda dask_worker: list(dask_worker.plugins[ReadTasks.name].opened))
    before = _worker_sent(client)
    _rows_shuffled_run(model, pattern, address)
    rows_sent = _worker_sent(client) - before
    print(f"dask {n}: workers sent {sent} B (pre-combined) vs {rows_sent} B (rows)", flush=True)
    return {"n": n, "files": files, "best_s": best, "same_selection": same,
            "partitions": len(traffic_shards(traffic_files(pattern))),
            "read_tasks": sorted(len({k for k, _ in got}) for got in opened.values()),
            "sent_bytes": sent, "rows_sent_bytes": rows_sent,
            "input_bytes": sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))}


def dask_main(args) -> None:
    from distributed import Client, LocalCluster

    from models_traffic import traffic_model

    t0 = time.perf_counter()
    facts_start = results_doc.machine_facts()
    with tempfile.TemporaryDirectory(prefix="bench_dask_") as tmp, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        import distributed

        client.register_plugin(type("Plugin", (ReadTasks, distributed.WorkerPlugin), {})(tmp))
        model = traffic_model(os.path.join(tmp, "model", "7"), 7)
        sizes = [dask_size(client, cluster.scheduler_address, model, tmp, n, args.dask_files, args.dask_repeats)
                 for n in args.dask_n]
    data = {"section": "traffic-dask", "args": {"dask_n": args.dask_n, "dask_files": args.dask_files,
                                                "dask_repeats": args.dask_repeats},
            "sizes": sizes, "wall_s": time.perf_counter() - t0, "facts_start": facts_start,
            "facts_end": results_doc.machine_facts(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.no_write:
        print("\n" + render(json.loads(json.dumps(data))))
    else:
        print("\n" + results_doc.publish("traffic-dask", data, render))


def _mib(b: int) -> str:
    return f"{b / 1024:.0f} KiB" if b < 1 << 20 else f"{b / (1 << 20):.1f} MiB"


def render_dask(data: dict) -> str:
    """The ``traffic-dask`` section of RESULTS.md, from the stored numbers."""
    a = data["args"]
    cmd = "python benchmarks/bench_traffic.py --dask"
    if a["dask_n"] != [20_000, 200_000]:
        cmd += " --dask-n " + " ".join(map(str, a["dask_n"]))
    cmd += "".join(f" --{k.replace('_', '-')} {a[k]}" for k, v in (("dask_files", 8), ("dask_repeats", 2))
                   if a[k] != v)
    table = ["| requests (files) | local path | DirectRunner | Dask, 2 workers | throughput vs local "
             "(Direct / Dask) | sent between workers: pre-combined / rows | read tasks per worker | "
             "same selection |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in data["sizes"]:
        b = s["best_s"]
        table.append(f"| {s['n']} ({s['files']}, {_mib(s['input_bytes'])}) | {b['local']:.2f} s "
                     f"({s['n'] / b['local']:,.0f}/s) | {b['direct']:.2f} s | {b['dask']:.2f} s | "
                     f"{b['local'] / b['direct']:.2f} / {b['local'] / b['dask']:.2f} | "
                     f"{_mib(s['sent_bytes'])} / {_mib(s['rows_sent_bytes'])} | "
                     f"{' + '.join(map(str, s['read_tasks']))} of {s['partitions']} partitions | "
                     f"{'yes' if s['same_selection'] else 'NO'} |")
    facts = data["facts_start"]
    parts = sorted({s["partitions"] for s in data["sizes"]})
    lines = [
        "## Traffic selection on Dask (`benchmarks/bench_traffic.py --dask`)", "",
        f"Generated by `{cmd}` on {data['date']} in {data['wall_s']:.0f} s. "
        + results_doc.machine_sentence(facts, data["facts_end"]), "",
        *table, "",
        "PredictionLog TFRecords split over the files named; the same 256-row selection each way. "
        "Times are the best of "
        f"{a['dask_repeats']} interleaved runs after a warm-up run of each, and include everything a "
        "user waits for (reading the signatures, listing files, building and running the pipeline, "
        "the result coming back); throughput vs local is local time / runner time (higher is better). "
        "DirectRunner is Beam's default (in-process) mode; Dask is a `LocalCluster` of 2 worker "
        "processes with one thread each on 127.0.0.1, reached through `--beam-arg "
        "dask_client_address`. \"Sent between workers\" is dask.distributed's own count of bytes "
        "workers sent each other (`transfer_outgoing_bytes_total`) during one run: with the per-bundle "
        "pre-combine only selection accumulators travel; \"rows\" is the same pipeline with a plain "
        "`CombineGlobally` over rows, which Dask does not lift. \"Read tasks per worker\" counts, per "
        "worker process, the tasks that opened a traffic file (an audit hook in each worker).", "",
        f"Scaling past 2 workers cannot be measured here: this machine has {facts['usable_cpus']} usable "
        f"CPUs, so 2 single-threaded workers already use all of them (and the client and scheduler share "
        f"them too). The work is split into {', '.join(map(str, parts))} partition(s) here (one per input "
        "file; uncompressed JSONL files over 64 MiB add one per byte range), and tests/test_dask.py "
        "saw 5 partitions for its 5 files, spread over both workers; more workers than partitions "
        "would sit idle.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="requests in the throughput files")
    ap.add_argument("--dataset-n", type=int, default=500_000, help="tf.Example records for the dataset path")
    ap.add_argument("--mem-n", type=int, default=20_000,
                    help="requests in the small memory file (large: 10x); enough to fill the scan's "
                         "bounded buffers, so both passes are in the steady state")
    ap.add_argument("--mem-k", type=int, default=32,
                    help="rows kept per stratum in the memory passes (small enough that the small "
                         "log already fills every stratum: memory is O(k x strata), then flat)")
    ap.add_argument("--beam-n", type=int, nargs=2, default=[1_000, 20_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--k", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--dask", action="store_true",
                    help="only the Dask section: local vs DirectRunner vs a 2-worker Dask cluster")
    ap.add_argument("--dask-n", type=int, nargs="+", default=[20_000, 200_000], metavar="N")
    ap.add_argument("--dask-files", type=int, default=8, help="files the Dask section's traffic is split into")
    ap.add_argument("--dask-repeats", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--warm", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.dask:
        dask_main(args)
        return
    from models_traffic import traffic_model

    t0 = time.perf_counter()
    facts_start = results_doc.machine_facts()
    with tempfile.TemporaryDirectory(prefix="bench_traffic_") as tmp:
        model = traffic_model(os.path.join(tmp, "model", "7"), 7)
        logs, lines = write_traffic(tmp, args.n, 1, "thr")
        tiny_logs, tiny_lines = write_traffic(tmp, 10, 7, "tiny")
        examples = os.path.join(tmp, "examples.tfrecord")
        write_examples(examples, args.dataset_n, 2)
        sel_log = lambda p: select(model, p)  # noqa: E731
        rows = []
        for label, plain, sel_fn, path, n in (
                ("request log (PredictionLog TFRecord)", plain_logs, sel_log, logs, args.n),
                ("REST JSON (JSONL)", plain_jsonl, sel_log, lines, args.n),
                ("dataset path (tf.Example TFRecord)", plain_examples, select_examples, examples,
                 args.dataset_n)):
            sel_fn(path), plain(path)  # warm up
            t_plain, t_sel = interleaved(lambda: plain(path), lambda: sel_fn(path), args.repeats)
            rows.append((label, n, t_plain, t_sel))
            print(f"{label}: plain {t_plain:.2f}s, selection {t_sel:.2f}s, ratio {t_plain / t_sel:.2f}",
                  flush=True)
        _batches(logs)
        t_read, t_decode = interleaved(lambda: read_only(logs), lambda: decode_only(logs), args.repeats)
        t_fixed = interleaved(lambda: select(model, tiny_logs), lambda: select(model, tiny_lines),
                              args.repeats)
        print(f"request log split: tf.data read {t_read:.2f}s, C++ decode {t_decode:.2f}s; "
              f"fixed start-up {t_fixed[0] * 1e3:.0f} ms (log), {t_fixed[1] * 1e3:.0f} ms (JSONL)", flush=True)

        beam = []
        for i, bn in enumerate(args.beam_n):
            b_logs, _ = write_traffic(tmp, bn, 3 + 10 * i, f"beam{i}")
            t_count, t_bsel = beam_passes(model, b_logs, max(1, args.repeats - 1))
            beam.append((bn, t_count, t_bsel))
            print(f"beam {bn}: read+count {t_count:.2f}s, selection {t_bsel:.2f}s, "
                  f"ratio {t_count / t_bsel:.2f}", flush=True)

        warm, _ = write_traffic(tmp, 200, 4, "warm")
        small, _ = write_traffic(tmp, args.mem_n, 5, "small")
        large, _ = write_traffic(tmp, 10 * args.mem_n, 6, "large")
        mem = {name: peak(model, path, warm, args.mem_k) for name, path in (("small", small), ("large", large))}
        print(f"memory: peak +{mem['small']['delta_kib']} KiB ({args.mem_n} requests) vs "
              f"+{mem['large']['delta_kib']} KiB ({10 * args.mem_n})", flush=True)

    data = {"args": {k: getattr(args, k) for k in ("n", "dataset_n", "mem_n", "mem_k", "repeats", "beam_n")},
            "rows": rows, "split": [t_read, t_decode, list(t_fixed)], "beam": beam, "mem": mem,
            "wall_s": time.perf_counter() - t0, "facts_start": facts_start, "facts_end": results_doc.machine_facts(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.no_write:
        print("\n" + render(json.loads(json.dumps(data))))
    else:
        print("\n" + results_doc.publish("traffic", data, render))
        print(f"wrote {results_doc.RESULTS}; copied {results_doc.sync_readme()} into {results_doc.README}")


def render(data: dict) -> str:
    """The ``traffic`` section of RESULTS.md, with the README's block, from the stored numbers
    (or the ``traffic-dask`` section, for numbers stored by ``--dask``)."""
    if data.get("section") == "traffic-dask":
        return render_dask(data)
    args = argparse.Namespace(**data["args"])
    rows, beam, mem, wall = data["rows"], data["beam"], data["mem"], data["wall_s"]
    facts_start, facts_end = data["facts_start"], data["facts_end"]
    t_read, t_decode, t_fixed = data["split"]
    defaults = {"n": 50_000, "dataset_n": 500_000, "mem_n": 20_000, "mem_k": 32, "repeats": 5}
    cmd = "python benchmarks/bench_traffic.py" + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}" for k, v in defaults.items() if getattr(args, k) != v)
    if list(args.beam_n) != [1_000, 20_000]:
        cmd += f" --beam-n {args.beam_n[0]} {args.beam_n[1]}"
    table = ["| measurement | records | baseline | selection | µs/record (baseline / selection) | ratio | target |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    verdict = []
    for label, n, t_plain, t_sel in rows:
        ratio = t_plain / t_sel
        table.append(f"| local: {label} | {n} | plain read {t_plain:.2f} s | {t_sel:.2f} s | "
                     f"{t_plain / n * 1e6:.1f} / {t_sel / n * 1e6:.1f} | {ratio:.2f} | >= 0.8 |")
        verdict.append((f"local {label.split(' (')[0]}", ratio, 0.8))
    for bn, t_count, t_bsel in beam:
        ratio = t_count / t_bsel
        table.append(f"| Beam DirectRunner (in_memory) | {bn} | read+count {t_count:.2f} s | {t_bsel:.2f} s | "
                     f"{t_count / bn * 1e6:.0f} / {t_bsel / bn * 1e6:.0f} | {ratio:.2f} | >= 0.7 |")
        verdict.append((f"Beam, {bn} requests", ratio, 0.7))
    ratio = mem["large"]["delta_kib"] / max(mem["small"]["delta_kib"], 1)
    table.append(f"| peak memory, 10x larger log (k={args.mem_k}) | {args.mem_n} / {10 * args.mem_n} | "
                 f"+{mem['small']['delta_kib'] / 1024:.1f} MiB | +{mem['large']['delta_kib'] / 1024:.1f} MiB | "
                 f"| {ratio:.2f} | ~1 |")
    met = [f"{name} {r:.2f}" for name, r, goal in verdict if r >= goal]
    missed = [f"{name} {r:.2f} (goal {goal})" for name, r, goal in verdict if r < goal]
    mem_ok = ratio <= 1.25
    (met if mem_ok else missed).append(f"peak memory {ratio:.2f}" + ("" if mem_ok else " (goal ~1)"))
    n_log = rows[0][1]
    begin, end = results_doc.markers("readme-traffic")
    lines = [
        "## Traffic selection (`benchmarks/bench_traffic.py`)", "",
        f"Generated by `{cmd}` on {data['date']} in {wall:.0f} s. "
        + results_doc.machine_sentence(facts_start, facts_end), "",
        begin,
        *table, "",
        f"**Goals met:** {', '.join(met) or 'none'}. **Missed:** {', '.join(missed) or 'none'}.", "",
        f"Where a request log's time goes ({n_log} records, µs per record): the plain read is "
        f"{rows[0][2] / n_log * 1e6:.1f} (a `tf.data` read alone {t_read / n_log * 1e6:.1f}, then "
        f"`PredictionLog.FromString`); the selection's C++ batch decode alone is "
        f"{t_decode / n_log * 1e6:.1f}, and the whole selection {rows[0][3] / n_log * 1e6:.1f}. "
        "The REST JSON baseline parses each line with the stdlib `json`; the selection reads 1 MiB "
        "blocks and parses with `orjson` (a dependency), which is where most of its margin comes from. "
        f"Fixed start-up of a selection (signatures, file listing and classifying), measured on a "
        f"10-request file: {t_fixed[0] * 1e3:.0f} ms for a log, {t_fixed[1] * 1e3:.0f} ms for JSONL. "
        f"Best of {args.repeats} interleaved runs.",
        end, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
