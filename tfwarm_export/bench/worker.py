"""The worker process of ``tfwarm bench``: load like TF Serving, maybe replay the file, time one row.

Each measurement runs in a brand-new interpreter (``run_worker`` starts it with
``python -m tfwarm_export.bench.worker``), so no earlier row has paid any
process-wide or per-shape cost. Records travel through a plain length-prefixed file,
so nothing runs a TF op (not even tf.data) in a worker before the model load.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from typing import Any, Sequence


def write_blobs(path: str, blobs: Sequence[bytes]) -> None:
    """Length-prefixed records: readable in a worker without running any TF op."""
    with open(path, "wb") as f:
        for b in blobs:
            f.write(struct.pack("<Q", len(b)))
            f.write(b)


def read_blobs(path: str) -> list[bytes]:
    out = []
    with open(path, "rb") as f:
        while head := f.read(8):
            (n,) = struct.unpack("<Q", head)
            out.append(f.read(n))
    return out



def package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_worker(job_path: str, row: int, mode: str, tmp: str, timeout_s: float,
                python: str | None) -> dict:
    """One measurement in a brand-new interpreter; its result comes back through a file."""
    out = os.path.join(tmp, f"result-{row}-{mode}.json")
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([package_root()] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [python or sys.executable, "-m", "tfwarm_export.bench.worker", job_path, str(row), mode, out]
    try:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, text=True)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise RuntimeError(f"exit status {proc.returncode}: " + " | ".join(tail))
    with open(out) as f:
        return json.load(f)



def measure(job_path: str, row: int, mode: str, out_path: str) -> int:
    """Runs in a fresh process: load like TF Serving, (maybe) warm up, time one row."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfwarm_export.serving.batching import BatchingConfig
    from tfwarm_export.serving.replay import RecordProblem, Replayer, prepare

    # TF Serving has no garbage collector. Off for the whole (short) worker, not collected
    # before the timed request: a full collection walks the heap and leaves the CPU caches
    # cold, which measurably slows the request after it (a cost serving never pays).
    gc.disable()
    with open(job_path) as f:
        job = json.load(f)
    batching = None
    if job["batching"]:
        b = dict(job["batching"])
        b["allowed_batch_sizes"] = tuple(b.get("allowed_batch_sizes") or ())
        batching = BatchingConfig(**b)
    request = prediction_log_pb2.PredictionLog.FromString(read_blobs(job["requests_file"])[row])
    warmup_logs = []
    if mode in ("warm", "trace"):
        warmup_logs = [prediction_log_pb2.PredictionLog.FromString(b)
                       for b in read_blobs(job["warmup_file"])]
    result: dict[str, Any] = {"mode": mode, "row": row}
    session_config = None
    if job.get("session_config") is not None:
        from tensorflow.core.protobuf import config_pb2

        session_config = config_pb2.ConfigProto.FromString(bytes.fromhex(job["session_config"]))
    try:
        with Replayer(job["export_dir"], job["tags"], batching, session_config=session_config,
                      op_libraries=job.get("op_libraries", ())) as replayer:
            result["load_ms"] = replayer.load_ms
            if mode in ("warm", "trace"):
                t0 = time.perf_counter()
                # TF Serving's num_request_iterations (default once each) and warmup threads
                replayed = replayer.replay(warmup_logs, iterations=int(job.get("warmup_iterations", 1)),
                                           threads=int(job.get("warmup_threads", 1)))
                result["replay_ms"] = (time.perf_counter() - t0) * 1000
                result["replay_failures"] = [f"record {r.index} ({r.signature}): {r.error}"
                                             for r in replayed if not r.ok]
            prepared = prepare(request, replayer.meta_graph, batching)
            idle_s = float(job["idle_ms"]) / 1000

            def timed() -> float:
                time.sleep(idle_s)  # the same pause before every timed request, see module doc
                return replayer.run(prepared)[1]

            n = int(job["iterations"])
            if mode in ("trace", "trace_cold"):
                result.update(_traced_runs(replayer, prepared, idle_s, n))
            else:
                result["first_ms"] = timed()
            if mode == "warm":
                result["steady_ms"] = [timed() for _ in range(n)]
                result["hot_ms"] = [replayer.run(prepared)[1] for _ in range(n)]
    except RecordProblem as e:
        result["error"] = f"request rejected: {e}"
    except Exception as e:  # report, do not hide: the parent shows it per row
        result["error"] = f"{type(e).__name__}: {e}"
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


def _traced_runs(replayer, prepared, idle_s: float, n: int) -> dict:
    """First vs later warmed requests under FULL_TRACE: per-op time, to find a leftover cold cost."""
    import tensorflow as tf

    keys = sorted(prepared.fetches)
    fetches = [prepared.fetches[k] for k in keys]
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    runs = []
    for _ in range(1 + max(2, n)):
        time.sleep(idle_s)
        meta = tf.compat.v1.RunMetadata()
        start = time.perf_counter()
        replayer.session.run(fetches, feed_dict=prepared.feeds, options=options, run_metadata=meta)
        wall = (time.perf_counter() - start) * 1000
        per_op: dict[str, float] = {}
        for dev in meta.step_stats.dev_stats:
            for node in dev.node_stats:
                name = node.node_name.split(":")[0]
                per_op[name] = per_op.get(name, 0.0) + node.all_end_rel_micros / 1000
        runs.append((wall, per_op))
    first, later = runs[0], runs[1:]
    ops = set(first[1]).union(*(r[1] for r in later))
    later_med = {op: statistics.median(r[1].get(op, 0.0) for r in later) for op in ops}
    deltas = sorted(((first[1].get(op, 0.0) - later_med[op], op) for op in ops), reverse=True)
    return {
        "first_wall_ms": first[0],
        "later_wall_ms": statistics.median(r[0] for r in later),
        "first_op_ms": sum(first[1].values()),
        "later_op_ms": statistics.median(sum(r[1].values()) for r in later),
        "num_ops": len(ops),
        "top_deltas": [{"op": op, "first_ms": round(first[1].get(op, 0.0), 4),
                        "later_ms": round(later_med[op], 4)} for d, op in deltas[:5]],
    }



def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tfwarm_export.bench.worker JOB ROW MODE OUT``: one measurement."""
    job, row, mode, out = list(sys.argv[1:] if argv is None else argv)[:4]
    return measure(job, int(row), mode, out)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
