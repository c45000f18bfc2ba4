"""Issue 21: a warmup file that pays for itself. Coverage of real traffic, cost at load, and
a load-time budget, on an XLA sequence model.

The model is a small attention block under ``tf.function(jit_compile=True)`` over a
``[batch, length]`` int32 input, served with batching (allowed sizes 2/4/8), so XLA
compiles once per (padded batch, length). Traffic: ``TRAFFIC_REQUESTS`` REST JSON requests
over ``len(BATCHES) x len(LENGTHS)`` raw (batch, length) pairs with Zipf-skewed frequencies
(``CLASSES`` classes after padding), written as a ``.jsonl`` file the tool reads.

Files compared, each loaded in a fresh process (``Replayer``, TF Serving's load path):
  none       no warmup file;
  full       ``tfwarm add --traffic`` (every exact class, most frequent first);
  budget P%  ``tfwarm add --traffic --load-budget`` at P% of the full file's replay time
             (as ``add`` measured it);
  shape cut  the full file's records in shape order (batch, then length), kept while their
             replay (full run's costs) fits the 25% file's load time: a cut by hand;
  plan cut   the same, in the full file's (plan) order.
Per file: the load time (the replay's wall time, measured in the worker), the share of the
traffic covered (``tfwarm check --traffic``), and the cold hits among the first 50 and 500
requests of a fresh stream drawn from the traffic's class frequencies (new values). A cold
hit takes over ``COLD_FACTOR``x its class's steady time and over ``COLD_MS`` more (compile
scale). Rewrites the "budget" section of benchmarks/RESULTS.md.

Run from the repository root:  python benchmarks/bench_budget.py
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
import results_doc  # noqa: E402

BATCHES = (1, 2, 3, 4, 6, 8)
LENGTHS = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80)
ALLOWED = (2, 4, 8)
BATCHING = "max_batch_size { value: 8 }\n" + "".join(f"allowed_batch_sizes: {s}\n" for s in ALLOWED)
TRAFFIC_REQUESTS = 2000
STREAM = 500
WINDOWS = (50, 500)
BUDGETS = (10, 25, 50, 100)
CUT_AT = 25  # the hand cuts get the load time of this budget's file
ZIPF = 1.3
SEED = 21
COLD_FACTOR = 3.0
COLD_MS = 20.0
IDLE_MS = 2.0
STEADY_RUNS = 3
COMMAND = "python benchmarks/bench_budget.py"


def log(msg: str) -> None:
    print(msg, flush=True)


def padded(n: int) -> int:
    return next(s for s in ALLOWED if s >= n)


def class_weights() -> dict[tuple[int, int], float]:
    """Zipf weights over the raw (batch, length) pairs, in a seeded order."""
    import numpy as np

    pairs = [(b, n) for b in BATCHES for n in LENGTHS]
    order = np.random.default_rng(SEED).permutation(len(pairs))
    return {pairs[i]: 1.0 / (rank + 1) ** ZIPF for rank, i in enumerate(order)}


def draw(n: int, seed: int) -> list[tuple[int, int]]:
    import numpy as np

    w = class_weights()
    pairs = sorted(w)
    p = np.array([w[k] for k in pairs])
    idx = np.random.default_rng(seed).choice(len(pairs), size=n, p=p / p.sum())
    return [pairs[i] for i in idx]


def export_model(path: str) -> None:
    """A small attention block, jit-compiled, over [batch, length] token ids."""
    import numpy as np
    import tensorflow as tf

    class Seq(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.emb = tf.Variable(rng.normal(size=(1000, 64)).astype("float32"))
            self.w1 = tf.Variable((rng.normal(size=(64, 128)) * 0.1).astype("float32"))
            self.w2 = tf.Variable((rng.normal(size=(128, 64)) * 0.1).astype("float32"))
            self.out = tf.Variable((rng.normal(size=(64, 4)) * 0.1).astype("float32"))

        @tf.function(jit_compile=True)
        def encode(self, tokens):
            h = tf.gather(self.emb, tokens)
            for _ in range(1):
                att = tf.nn.softmax(tf.matmul(h, h, transpose_b=True) / 8.0)
                h = h + tf.matmul(att, h)
                h = h + tf.matmul(tf.nn.relu(tf.matmul(h, self.w1)), self.w2)
                h = (h - tf.reduce_mean(h, -1, keepdims=True)) * tf.math.rsqrt(
                    tf.math.reduce_variance(h, -1, keepdims=True) + 1e-5)
            return tf.matmul(tf.reduce_mean(h, 1), self.out)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
        def serve(self, tokens):
            return {"logits": self.encode(tokens)}

    m = Seq()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


def write_traffic(path: str) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    with open(path, "w") as f:
        for b, n in draw(TRAFFIC_REQUESTS, SEED + 2):
            f.write(json.dumps({"instances": rng.integers(0, 1000, size=(b, n)).tolist()}) + "\n")


def worker(export_dir: str, batching_path: str, warmup: str, out: str) -> int:
    """Fresh process: load like TF Serving, replay ``warmup`` (timed), send the fresh stream."""
    import gc

    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfwarm_export.serving.batching import load_batching_parameters
    from tfwarm_export.serving.replay import Replayer, prepare
    from tfwarm_export.serving.warmup_file import parse_records, read_records

    gc.disable()  # TF Serving has no GC; see tfwarm_export/bench/worker.py
    batching = load_batching_parameters(batching_path)
    result = {"warmup": warmup, "replay_ms": 0.0, "records": 0}
    with Replayer(export_dir, ("serve",), batching) as replayer:
        if warmup != "none":
            logs = parse_records(read_records(warmup), warmup)
            t0 = time.perf_counter()
            replayed = replayer.replay(logs, iterations=1)
            result["replay_ms"] = (time.perf_counter() - t0) * 1000
            result["records"] = len(logs)
            result["failures"] = [r.error for r in replayed if not r.ok]
        rng = np.random.default_rng(SEED + 3)

        def request(batch: int, length: int):
            lg = prediction_log_pb2.PredictionLog()
            req = lg.predict_log.request
            req.model_spec.signature_name = "serving_default"
            req.inputs["tokens"].CopyFrom(tf.make_tensor_proto(
                rng.integers(0, 1000, size=(batch, length)).astype(np.int32)))
            return prepare(lg, replayer.meta_graph, batching)

        def timed(prepared) -> float:
            time.sleep(IDLE_MS / 1000)
            return replayer.run(prepared)[1]

        timings = [{"cls": [padded(b), n], "ms": timed(request(b, n))} for b, n in draw(STREAM, SEED + 4)]
        steady = {}
        for b, n in sorted({tuple(t["cls"]) for t in timings}):
            steady[f"{b}x{n}"] = statistics.median(timed(request(b, n)) for _ in range(STEADY_RUNS))
        result["timings"], result["steady"] = timings, steady
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


def run_worker(export_dir: str, batching_path: str, warmup: str, tmp: str, tag: str) -> dict:
    """This script's ``_worker`` in a fresh process (``fresh_process.run_worker``)."""
    return fresh_process.run_worker(__file__, export_dir, batching_path, warmup, tmp, tag)


def cold_hits(result: dict) -> dict[int, int]:
    hits = []
    for t in result["timings"]:
        steady = result["steady"][f"{t['cls'][0]}x{t['cls'][1]}"]
        hits.append(t["ms"] > COLD_FACTOR * steady and t["ms"] - steady > COLD_MS)
    return {n: sum(hits[:n]) for n in WINDOWS}


def write_file(path: str, records: list[bytes]) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)


def cut_by_hand(records: list[bytes], costs: list[float], order: list[int], load_ms: float) -> list[bytes]:
    """Records taken in ``order`` while their summed cost fits ``load_ms``; file order kept."""
    kept, total = [], 0.0
    for i in order:
        if total + costs[i] <= load_ms:
            kept.append(i)
            total += costs[i]
    return [records[i] for i in sorted(kept)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=results_doc.RESULTS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    facts_start = results_doc.machine_facts()

    import tfwarm_export as tw
    from tfwarm_export.serving.warmup_file import read_records, warmup_path

    rows = []
    with tempfile.TemporaryDirectory(prefix="tfwarm-budget-") as tmp:
        export_dir = os.path.join(tmp, "seq", "1")
        export_model(export_dir)
        batching = os.path.join(tmp, "batching.txt")
        with open(batching, "w") as f:
            f.write(BATCHING)
        traffic = os.path.join(tmp, "traffic.jsonl")
        write_traffic(traffic)
        opts = dict(traffic=[traffic], batching_parameters=batching, overwrite=True)
        files: dict[str, str] = {}
        reports = {}
        log("[budget] full file: tfwarm add --traffic")
        full = tw.add_warmup(export_dir, **opts)
        files["full"] = os.path.join(tmp, "full.tfrecord")
        os.replace(warmup_path(export_dir), files["full"])
        full_ms = full.load_cost["total_ms"]
        classes = full.plan.classes()
        for pct in BUDGETS[:-1]:
            budget_s = full_ms * pct / 100 / 1000
            log(f"[budget] {pct}%: tfwarm add --load-budget {budget_s * 1000:.0f}ms")
            reports[pct] = tw.add_warmup(export_dir, load_budget=budget_s, **opts)
            files[f"budget {pct}%"] = os.path.join(tmp, f"budget{pct}.tfrecord")
            os.replace(warmup_path(export_dir), files[f"budget {pct}%"])
        records = read_records(files["full"])
        # the hand cuts use the costs the 25% run measured for the full plan, as its own choice did
        cut_ms, costs = reports[CUT_AT].budget.kept_ms, reports[CUT_AT].budget.costs_ms
        shape_order = sorted(range(len(records)), key=lambda i: (classes[i].batch_size, classes[i].shape))
        for name, order in (("shape cut", shape_order), ("plan cut", list(range(len(records))))):
            files[name] = os.path.join(tmp, name.replace(" ", "_") + ".tfrecord")
            write_file(files[name], cut_by_hand(records, costs, order, cut_ms))
        names = ["none", "full"] + [f"budget {p}%" for p in BUDGETS[:-1]] + ["shape cut", "plan cut"]
        for name in names:
            covered = None
            if name != "none":
                chk = tw.check(export_dir, path=files[name], batching_parameters=batching,
                               traffic=[traffic], replay=False)
                covered = chk.coverage.fraction
            res = run_worker(export_dir, batching, files.get(name, "none"), tmp, name.replace(" ", "_"))
            hits = cold_hits(res)
            budget = None
            if name.startswith("budget"):
                budget = reports[int(name.split()[1].rstrip("%"))].budget.budget_ms
            rows.append({"name": name, "records": res["records"], "load_ms": res["replay_ms"],
                         "budget_ms": budget, "covered": covered, "hits": hits,
                         "failures": res.get("failures", [])})
            log(f"[budget] {name}: {res['records']} records, load {res['replay_ms']:.0f} ms, covered "
                f"{'-' if covered is None else f'{100 * covered:.1f}%'}, cold hits {hits}")
        n_classes = len({(padded(b), n) for b, n in draw(TRAFFIC_REQUESTS, SEED + 2)})
    data = {"command": COMMAND, "wall_s": round(time.perf_counter() - start),
            "machine_start": facts_start, "machine_end": results_doc.machine_facts(),
            "allowed": list(ALLOWED), "requests": TRAFFIC_REQUESTS, "pairs": len(BATCHES) * len(LENGTHS),
            "classes": n_classes, "zipf": ZIPF, "full_ms": round(full_ms), "cut_at": CUT_AT, "stream": STREAM,
            "idle_ms": IDLE_MS, "cold_factor": COLD_FACTOR, "cold_ms": COLD_MS, "steady_runs": STEADY_RUNS,
            "rows": [{"name": r["name"], "records": r["records"],
                      "budget_ms": None if r["budget_ms"] is None else round(r["budget_ms"]),
                      "load_ms": round(r["load_ms"]),
                      "covered": None if r["covered"] is None else round(r["covered"], 4),
                      "cold_50": r["hits"][50], "cold_500": r["hits"][500],
                      "failed": len(r["failures"])} for r in rows]}
    md = results_doc.publish("budget", data, render, args.results)
    print(md)
    log(f"[budget] wrote section 'budget' of {args.results}")
    return 0


def render(d: dict) -> str:
    """The RESULTS.md section from the numbers a run stored (``benchmarks/results/budget.json``)."""
    lines = ["## Load budget and traffic coverage (issue 21)", "",
             f"Generated by `{d['command']}` in {d['wall_s']:.0f} s. "
             f"{results_doc.machine_sentence(d['machine_start'], d['machine_end'])}", "",
             f"An XLA (jit_compile) attention block over `[batch, length]` tokens, batching with allowed "
             f"sizes {d['allowed']}. Traffic: {d['requests']} REST JSON requests over "
             f"{d['pairs']} (batch, length) pairs = {d['classes']} classes after padding, "
             f"Zipf({d['zipf']:g}) frequencies. The full file's replay, as `add` measured it: "
             f"{d['full_ms']:.0f} ms. Budgets are shares of that; the hand cuts keep the full file's records "
             f"in shape order (batch, length) or in plan order while their measured costs fit the "
             f"{d['cut_at']}% file's load time. Each row: one fresh process (load, replay the file, then the "
             f"first {d['stream']} requests of a fresh stream drawn from the traffic's class frequencies, "
             f"{d['idle_ms']:g} ms apart). Load = that replay's wall time. A cold hit takes over "
             f"{d['cold_factor']:g}x its class's steady time (median of {d['steady_runs']} later runs) and over "
             f"{d['cold_ms']:g} ms more. Covered = `tfwarm check --traffic` on the traffic file.", "",
             "| file | records | budget ms | load ms | traffic covered | cold hits, first 50 | "
             "cold hits, first 500 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in d["rows"]:
        cov = "-" if r["covered"] is None else f"{100 * r['covered']:.1f}%"
        budget = "-" if r["budget_ms"] is None else f"{r['budget_ms']:.0f}"
        fail = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(f"| {r['name']}{fail} | {r['records']} | {budget} | {r['load_ms']:.0f} | {cov} | "
                     f"{r['cold_50']} | {r['cold_500']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        sys.exit(worker(*sys.argv[2:6]))
    sys.exit(main())
