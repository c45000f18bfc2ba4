"""Issue 14: XLA shape coverage under traffic. Does the warmup file cover the shapes real
requests bring to an XLA-compiled sequence model served with batching?

The suite's ``xla_seq`` model (a small transformer over variable-length token ids,
``tf.function(jit_compile=True)``) is served under batching with allowed batch sizes
4 and 8. After the model load (and the warmup replay, if any), a seeded stream of
requests at lengths 5/9/13 and batches 1-5 (padded to 4 or 8 by the batching rules)
is sent with an idle gap between requests. A request is a *cold hit* when it takes
more than 3x the steady time of its (padded batch, length) shape (median of later
runs of that shape in the same process). Three warmup files, each in fresh processes:

  none     no warmup file;
  default  ``tfwarm add`` with only the batching file: length 4 (DEFAULT_DIM_SIZE);
  data     ``tfwarm add`` with a dataset of sequences at lengths 5/9/13 (the plan
           learns those lengths as buckets).

Side by side in one run; the conditions are interleaved per repeat. Rewrites the
section "xla-traffic" of benchmarks/RESULTS.md (numbers stored in
benchmarks/results/xla-traffic.json; ``render`` writes the text from them).

Run from the repository root:  python benchmarks/bench_xla_traffic.py [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import fresh_process  # noqa: E402

LENGTHS = (5, 9, 13)
BATCHES = (1, 2, 3, 4, 5)
N_REQUESTS = 90
COLD_FACTOR = 3.0
COMPILE_FACTOR = 10.0  # a second, noise-proof count: over 10x steady and over COMPILE_MS
COMPILE_MS = 50.0
IDLE_MS = 20.0
STEADY_RUNS = 5
SEED = 1234
BATCHING = "max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
CONDITIONS = ("none", "default", "data")
COMMAND = "python benchmarks/bench_xla_traffic.py"
SECTION = "xla-traffic"


def log(msg: str) -> None:
    print(msg, flush=True)


def stream(seed: int = SEED) -> list[tuple[int, int]]:
    """The seeded request stream: (batch, length) per request."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(int(rng.choice(BATCHES)), int(rng.choice(LENGTHS))) for _ in range(N_REQUESTS)]


def worker(export_dir: str, batching_path: str, warmup: str, out: str) -> int:
    """Fresh process: load like TF Serving, replay ``warmup`` (if any), send the stream."""
    import gc

    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfwarm_export.serving.batching import load_batching_parameters
    from tfwarm_export.serving.replay import Replayer, prepare
    from tfwarm_export.serving.warmup_file import parse_records, read_records

    gc.disable()  # TF Serving has no GC; see tfwarm_export/bench/worker.py
    batching = load_batching_parameters(batching_path)
    result = {"warmup": warmup}
    with Replayer(export_dir, ("serve",), batching) as replayer:
        result["load_ms"] = replayer.load_ms
        if warmup != "none":
            logs = parse_records(read_records(warmup), warmup)
            t0 = time.perf_counter()
            replayed = replayer.replay(logs, iterations=1)
            result["replay_ms"] = (time.perf_counter() - t0) * 1000
            result["records"] = len(logs)
            result["replay_failures"] = [r.error for r in replayed if not r.ok]
        rng = np.random.default_rng(SEED + 1)

        def request(batch: int, length: int):
            log = prediction_log_pb2.PredictionLog()
            req = log.predict_log.request
            req.model_spec.signature_name = "serving_default"
            ids = rng.integers(0, 2000, size=(batch, length)).astype(np.int32)
            req.inputs["tokens"].CopyFrom(tf.make_tensor_proto(ids))
            return prepare(log, replayer.meta_graph, batching)

        def timed(prepared) -> float:
            time.sleep(IDLE_MS / 1000)
            return replayer.run(prepared)[1]

        timings = []
        for batch, length in stream():
            prepared = request(batch, length)
            timings.append({"batch": batch, "padded": prepared.padded_to, "length": length,
                            "ms": timed(prepared)})
        steady = {}
        for padded, length in sorted({(t["padded"], t["length"]) for t in timings}):
            prepared = request(padded, length)
            steady[f"{padded}x{length}"] = statistics.median(timed(prepared) for _ in range(STEADY_RUNS))
        result["timings"], result["steady"] = timings, steady
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


def run_worker(export_dir: str, batching_path: str, warmup: str, tmp: str, tag: str) -> dict:
    """This script's ``_worker`` in a fresh process (``fresh_process.run_worker``)."""
    return fresh_process.run_worker(__file__, export_dir, batching_path, warmup, tmp, tag)


def summarize(result: dict) -> dict:
    hits, big, worst = [], [], 0.0
    for t in result["timings"]:
        steady = result["steady"][f"{t['padded']}x{t['length']}"]
        worst = max(worst, t["ms"])
        if t["ms"] > COLD_FACTOR * steady:
            hits.append(t)
        if t["ms"] > COMPILE_FACTOR * steady and t["ms"] > COMPILE_MS:
            big.append(t)
    return {"hits": len(hits), "big": len(big), "worst_ms": worst,
            "median_ms": statistics.median(t["ms"] for t in result["timings"]),
            "hit_shapes": sorted({f"b{t['padded']}xL{t['length']}" for t in big}),
            "replay_ms": result.get("replay_ms"), "records": result.get("records", 0),
            "failures": result.get("replay_failures", [])}


def render(data: dict) -> str:
    """The RESULTS.md section, from the stored numbers alone (``main`` measures them)."""
    u = data["setup"]
    n = u["n_requests"]
    lines = ["## XLA traffic (`benchmarks/bench_xla_traffic.py`)", "",
             f"Generated by `{data['command']}` on {data['date']} in {data['wall_s']:.0f} s. "
             + results_doc_machine(data), "",
             f"The suite's `xla_seq` model (jit_compile) under batching (allowed sizes 4 and 8). After "
             f"load and warmup replay, {n} seeded requests (lengths {u['lengths']}, batches "
             f"{u['batches']}, {u['idle_ms']:g} ms idle gap) are sent; a cold hit takes more than "
             f"{u['cold_factor']:g}x the steady time of its padded shape (median of {u['steady_runs']} later "
             f"runs); when other work shares the CPUs a {u['cold_factor']:g}x excursion of a ~3 ms request "
             f"is also plain noise, so *compile-scale* hits (over {u['compile_factor']:g}x steady and over "
             f"{u['compile_ms']:g} ms: a compile or a new executor) are counted too. Each row is one fresh "
             "process; conditions interleaved.", "",
             "| warmup file | warmed shapes (tokens) | records | repeat | cold hits (>3x) | compile-scale "
             "hits | worst ms | median ms | load replay ms | shapes hit at compile scale |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in CONDITIONS:
        for i, s in enumerate(data["results"][c]):
            warmed = ", ".join(str(list(x)) for x in data["shapes"].get(c, [])) or "-"
            replay = "-" if s["replay_ms"] is None else f"{s['replay_ms']:.0f}"
            lines.append(f"| {c} | {warmed} | {s['records']} | {i + 1} | {s['hits']} / {n} | "
                         f"{s['big']} | {s['worst_ms']:.1f} | {s['median_ms']:.2f} | {replay} | "
                         f"{', '.join(s['hit_shapes']) or '-'} |")
    lines += ["", "What `tfwarm inspect` says for the default plan: "
              + (f"`{data['xla_flag']}`" if data["xla_flag"] else "(no XLA flag)")]
    return "\n".join(lines)


def results_doc_machine(data: dict) -> str:
    import results_doc

    return results_doc.machine_sentence(data["facts_start"], data["facts_end"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per condition (default 2)")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    import results_doc

    facts_start = results_doc.machine_facts()

    import numpy as np
    import tensorflow as tf

    import results_doc
    import run_suite
    import tfwarm_export as tw
    from tfwarm_export.serving.warmup_file import warmup_path

    out: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory(prefix="tfwarm-xla-traffic-") as tmp:
        export_dir = os.path.join(tmp, "xla_seq", "1")
        log("[xla-traffic] building and exporting the suite's xla_seq model")
        run_suite.xla_export(run_suite.build_xla_seq(), export_dir)
        batching_path = os.path.join(tmp, "batching.txt")
        with open(batching_path, "w") as f:
            f.write(BATCHING)
        files = {}
        default = tw.add_warmup(export_dir, batching_parameters=batching_path)
        files["default"] = os.path.join(tmp, "default.tfrecord")
        os.replace(warmup_path(export_dir), files["default"])
        plan_text = default.plan.summary()
        rng = np.random.default_rng(0)
        rows = [rng.integers(0, 2000, size=n).astype(np.int32) for n in LENGTHS for _ in range(20)]
        data = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
        data_report = tw.add_warmup(export_dir, batching_parameters=batching_path, dataset=data)
        files["data"] = os.path.join(tmp, "data.tfrecord")
        os.replace(warmup_path(export_dir), files["data"])
        shapes = {c: sorted({tuple(i.shape) for r in rep.plan.records for i in r.inputs})
                  for c, rep in (("default", default), ("data", data_report))}
        for r in range(args.repeats):
            for c in CONDITIONS:
                res = run_worker(export_dir, batching_path, files.get(c, "none"), tmp, f"{c}-{r}")
                s = summarize(res)
                out[c].append(s)
                log(f"[xla-traffic] repeat {r + 1} {c}: {s['hits']} cold hits ({s['big']} compile-scale) "
                    f"of {N_REQUESTS}, worst "
                    f"{s['worst_ms']:.1f} ms, median {s['median_ms']:.2f} ms")
    flag = [ln.strip() for ln in plan_text.splitlines() if "compiles once per shape" in ln]
    data = {"command": f"{COMMAND} --repeats {args.repeats}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wall_s": time.perf_counter() - start, "facts_start": facts_start,
            "facts_end": results_doc.machine_facts(), "results": out,
            "shapes": {c: [list(x) for x in v] for c, v in shapes.items()}, "xla_flag": flag[0] if flag else None,
            "setup": {"n_requests": N_REQUESTS, "lengths": list(LENGTHS), "batches": list(BATCHES),
                      "idle_ms": IDLE_MS, "cold_factor": COLD_FACTOR, "steady_runs": STEADY_RUNS,
                      "compile_factor": COMPILE_FACTOR, "compile_ms": COMPILE_MS}}
    text = results_doc.publish(SECTION, data, render, args.results)
    print(text)
    log(f"[xla-traffic] wrote section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        sys.exit(worker(*sys.argv[2:6]))
    sys.exit(main())
