"""``tfwarm bench``: measure what a warmup file buys, the way TF Serving pays for it.

For every planned (signature, batch size[, shape variant]) *row*:

  cold first    the first request after the model load, with no warmup, in a fresh
                process of its own (so no earlier row has already paid process-wide
                or per-shape costs);
  warmed first  the first request of that row after replaying the warmup file the way
                TF Serving does at load (every record, once each), in another fresh
                process. The request is a NEW request of the same shape with fresh
                values (the plan's seed + 1), never a warmup record replayed again;
  steady        the median of ``iterations`` further runs of that same request.

Both processes load the model along TF Serving's path (``Replayer``: the TF1 loader
into a fresh graph and Session, feeding signature tensor names, through the
batching rules when a batching file is given). Only ``Session.run`` is timed;
request parsing (``prepare``) is not, for all three numbers alike. Python's cyclic
GC is off in workers because TF Serving has no GC to pay for.

Every timed request (cold first, warmed first, each steady one) follows the same
idle gap (``idle_ms``, default 50 ms), as requests in real traffic do. Without it
the comparison is rigged against the first request: back-to-back runs find TF's
intra-op threads still spinning, while any request after a pause pays their
wake-up (0.3-1 ms on a small model, more than the model itself). The back-to-back
median is reported too, as ``steady_hot_ms`` ("b2b" in the table).

What is measured against what (decided here, so every report says it):
  * Rows always come from the plan (``tfwarm_export.plan`` with the given options):
    they are the traffic shapes you expect to serve.
  * The replayed warmup file is, with ``warmup="auto"`` (default), the model's
    existing ``assets.extra/tf_serving_warmup_requests`` if there is one, because
    that is what TF Serving will replay; otherwise the records ``tfwarm add`` would
    write with the same options (``build_logs``), built in memory, never written to
    the model. ``"existing"``/``"planned"`` force one or the other. A row whose
    exact request shape is not in the replayed file is flagged ``covered=False``.

Workers get their records through a plain length-prefixed file, so nothing runs a
TF op (not even tf.data) in a worker before the model load.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

WARMUP_SOURCES = ("auto", "existing", "planned")
DEFAULT_ITERATIONS = 20
DEFAULT_IDLE_MS = 50.0
FRESH_SEED_OFFSET = 1
"""The bench request for a row uses ``plan.seed + 1``: same shape, values not in the file."""


# --------------------------------------------------------------------------- results


@dataclass
class BenchRow:
    """One (signature, batch size, shape variant): its three latencies, in ms."""

    index: int
    key: str
    signature: str
    request_type: str
    batch_size: int | None
    variant: int
    shapes: dict[str, list[int]]
    covered: bool = True
    cold_first_ms: float | None = None
    warmed_first_ms: float | None = None
    steady_ms: float | None = None
    steady_p90_ms: float | None = None
    steady_hot_ms: float | None = None
    replay_ms: float | None = None
    cold_load_ms: float | None = None
    warm_load_ms: float | None = None
    cold_first_samples: list[float] = field(default_factory=list)
    warmed_first_samples: list[float] = field(default_factory=list)
    steady_samples: list[float] = field(default_factory=list)
    hot_samples: list[float] = field(default_factory=list)
    replay_samples: list[float] = field(default_factory=list)
    cold_load_samples: list[float] = field(default_factory=list)
    warm_load_samples: list[float] = field(default_factory=list)
    replay_failures: list[str] = field(default_factory=list)  # from every repeat, never overwritten
    trace: dict | None = None
    cold_trace: dict | None = None
    error: str = ""

    @property
    def warmed_over_steady(self) -> float | None:
        return _ratio(self.warmed_first_ms, self.steady_ms)

    @property
    def cold_over_steady(self) -> float | None:
        return _ratio(self.cold_first_ms, self.steady_ms)

    @property
    def warmed_first_percentile(self) -> float | None:
        """Where the warmed first requests fall among the steady ones (0-100; ~50 = no different)."""
        if not self.warmed_first_samples or not self.steady_samples:
            return None
        n = len(self.steady_samples)
        ranks = [sum(s < v for s in self.steady_samples) / n for v in self.warmed_first_samples]
        return 100 * sum(ranks) / len(ranks)

    @property
    def label(self) -> str:
        shapes = " ".join(f"{a}{v}" for a, v in sorted(self.shapes.items()))
        return f"{self.signature} b{self.batch_size} {shapes}".strip()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["label"] = self.label
        d["warmed_over_steady"] = _round(self.warmed_over_steady)
        d["cold_over_steady"] = _round(self.cold_over_steady)
        d["warmed_first_percentile"] = _round(self.warmed_first_percentile, 1)
        return d


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)


@dataclass
class BenchReport:
    """The rows of one ``bench`` run plus what was replayed and how."""

    export_dir: str
    warmup_source: str
    warmup_path: str | None
    num_warmup_records: int
    iterations: int
    batching: dict | None
    idle_ms: float = DEFAULT_IDLE_MS
    repeats: int = 1
    warmup_iterations: int = 1  # the server's num_request_iterations
    warmup_threads: int = 1  # the server's num_model_warmup_threads
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(not r.error and not r.replay_failures for r in self.rows)

    @property
    def replay_ms(self) -> float | None:
        """Median replay time of the whole file over every warmed process of every row."""
        values = [v for r in self.rows for v in r.replay_samples]
        return statistics.median(values) if values else None

    @property
    def load_ms(self) -> float | None:
        """Median model load time over every cold and warmed process of every row."""
        values = [v for r in self.rows for v in r.cold_load_samples + r.warm_load_samples]
        return statistics.median(values) if values else None

    @property
    def worst_warmed_over_steady(self) -> float | None:
        values = [r.warmed_over_steady for r in self.rows if r.warmed_over_steady is not None]
        return max(values) if values else None

    def to_dict(self) -> dict:
        return {
            "export_dir": self.export_dir,
            "ok": self.ok,
            "warmup_source": self.warmup_source,
            "warmup_path": self.warmup_path,
            "num_warmup_records": self.num_warmup_records,
            "iterations": self.iterations,
            "idle_ms": self.idle_ms,
            "repeats": self.repeats,
            "warmup_iterations": self.warmup_iterations,
            "warmup_threads": self.warmup_threads,
            "batching": self.batching,
            "replay_ms": _round(self.replay_ms),
            "load_ms": _round(self.load_ms),
            "worst_warmed_over_steady": _round(self.worst_warmed_over_steady),
            "wall_s": round(self.wall_s, 3),
            "notes": self.notes,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def table(self) -> list[str]:
        return format_table(self.rows)

    def summary(self) -> str:
        src = (f"existing file {self.warmup_path}" if self.warmup_source == "existing"
               else "planned records (in memory, not written)")
        lines = [f"tfwarm bench {self.export_dir}: {len(self.rows)} row(s); warmup replayed: {src}, "
                 f"{self.num_warmup_records} record(s), "
                 + ("once each" if self.warmup_iterations == 1 else f"{self.warmup_iterations} times each")
                 + (f" on {self.warmup_threads} threads" if self.warmup_threads > 1 else ""),
                 f"  model load ~{_fmt(self.load_ms)} ms; replaying the file took ~{_fmt(self.replay_ms)} ms "
                 f"(paid at load); steady = median of {self.iterations} runs per warmed process, b2b = the same "
                 "back to back",
                 f"  every timed request follows a {self.idle_ms:g} ms idle gap; each cold and each warmed "
                 f"measurement ran in its own fresh process ({self.repeats} of each per row)", ""]
        lines += self.table()
        uncovered = [r for r in self.rows if not r.covered]
        if uncovered:
            lines.append(f"  * {len(uncovered)} row(s) have no record of their exact shape in the replayed "
                         "file; their warmed first request pays the cold cost.")
        for r in self.rows:
            if r.trace:
                lines.append(f"  row {r.index} traced after warmup: {describe_trace(r.trace)}")
            if r.cold_trace:
                lines.append(f"  row {r.index} traced cold: {describe_trace(r.cold_trace, cold=True)}")
        for r in self.rows:
            if r.error:
                lines.append(f"  row {r.index} ({r.label}): ERROR {r.error}")
            for f in r.replay_failures[:3]:
                lines.append(f"  row {r.index}: warmup record failed replay: {f}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def describe_trace(trace: dict, cold: bool = False) -> str:
    """One line from a step-stats trace: first request vs later ones, inside and outside ops."""
    if trace.get("error"):
        return f"trace failed: {trace['error']}"
    top = trace.get("top_deltas") or []
    worst = ", ".join(f"{t['op'].rsplit('/', 1)[-1]} {t['first_ms']:.3f} vs {t['later_ms']:.3f} ms"
                      for t in top[:2])
    if cold:
        outside = trace["first_wall_ms"] - trace["first_op_ms"]
        split = (f"~{outside:.1f} ms outside them" if outside >= 0 else
                 "ops overlapped on several threads, so their sum exceeds wall time")
        return (f"first request {trace['first_wall_ms']:.1f} ms wall, {trace['first_op_ms']:.1f} ms inside "
                f"ops (summed), {split}; later requests "
                f"{trace['later_wall_ms']:.2f} / {trace['later_op_ms']:.2f} ms (FULL_TRACE, "
                f"{trace['num_ops']} ops); largest per-op first-use cost: {worst or '-'}")
    return (f"first warmed request {trace['first_wall_ms']:.2f} ms wall / {trace['first_op_ms']:.2f} ms "
            f"op time, later ones {trace['later_wall_ms']:.2f} / {trace['later_op_ms']:.2f} ms "
            f"(FULL_TRACE, {trace['num_ops']} ops); largest per-op excess: {worst or '-'}")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: Sequence[BenchRow]) -> list[str]:
    """The per-row table: three latencies and the two ratios against steady."""
    head = (f"  {'#':>3}  {'signature':<22} {'batch':>5} {'shape':<24} {'cold 1st':>9} {'warm 1st':>9} "
            f"{'steady':>8} {'b2b':>7} {'warm/steady':>11} {'cold/steady':>11}")
    lines = [head + "   (ms)"]
    for r in rows:
        shapes = " ".join(f"{a}{v}" for a, v in sorted(r.shapes.items()))
        mark = "" if r.covered else " *"
        lines.append(f"  {r.index:>3}  {r.signature[:22]:<22} {str(r.batch_size):>5} {shapes[:24]:<24} "
                     f"{_fmt(r.cold_first_ms, '.2f'):>9} {_fmt(r.warmed_first_ms, '.2f'):>9} "
                     f"{_fmt(r.steady_ms, '.2f'):>8} {_fmt(r.steady_hot_ms, '.2f'):>7} "
                     f"{_fmt(r.warmed_over_steady, '.2f'):>11} "
                     f"{_fmt(r.cold_over_steady, '.1f'):>11}{mark}")
    return lines


# --------------------------------------------------------------------------- worker I/O


def _write_blobs(path: str, blobs: Sequence[bytes]) -> None:
    """Length-prefixed records: readable in a worker without running any TF op."""
    with open(path, "wb") as f:
        for b in blobs:
            f.write(struct.pack("<Q", len(b)))
            f.write(b)


def _read_blobs(path: str) -> list[bytes]:
    out = []
    with open(path, "rb") as f:
        while head := f.read(8):
            (n,) = struct.unpack("<Q", head)
            out.append(f.read(n))
    return out


def _request_key(log_proto, batching) -> tuple:
    """What makes two requests the same to TF Serving's caches: signature, type, padded shapes."""
    from tfwarm_export.serving.replay import _signature_name

    log_type = log_proto.WhichOneof("log_type")
    pad = batching.padded_size if batching is not None else (lambda n: n)
    if log_type == "predict_log":
        shapes = []
        for alias, proto in sorted(log_proto.predict_log.request.inputs.items()):
            dims = [d.size for d in proto.tensor_shape.dim]
            if dims and batching is not None:
                dims[0] = pad(dims[0])
            shapes.append((alias, tuple(dims)))
        return (_signature_name(log_proto), log_type, tuple(shapes))
    if log_type in ("classify_log", "regress_log", "multi_inference_log"):
        inp = getattr(log_proto, log_type).request.input
        kind = inp.WhichOneof("kind")
        n = len(getattr(inp, kind).examples) if kind else 0
        return (_signature_name(log_proto), log_type, pad(n))
    return (_signature_name(log_proto), str(log_type))


# --------------------------------------------------------------------------- driver


def bench_requests(warmup_plan) -> list:
    """One request per planned row: same shapes as its warmup record, values from another seed.

    Timing a warmup record again would flatter the warmup (identical bytes, identical
    feeds); real traffic brings new values.
    """
    from tfwarm_export.api import build_logs

    return build_logs(dataclasses.replace(warmup_plan, seed=warmup_plan.seed + FRESH_SEED_OFFSET))


def bench(export_dir: str | os.PathLike, config=None, *, iterations: int = DEFAULT_ITERATIONS,
          warmup: str = "auto", idle_ms: float = DEFAULT_IDLE_MS, repeats: int = 1,
          timeout_s: float = 600.0, progress: Callable[[str], None] | None = None,
          python: str | None = None, trace: bool = False, rows: Sequence[int] | None = None,
          cold: bool = True, **options: Any) -> BenchReport:
    """Measure cold-first, warmed-first and steady latency per planned row.

    ``config``/``options`` are ``WarmupConfig`` fields and decide the rows (and,
    without an existing file, the warmup records). Each row runs ``repeats`` cold
    and ``repeats`` warmed worker processes, one at a time so measurements never
    overlap; first-request numbers are the median over those processes.

    ``trace=True`` adds, for the row with the worst warmed/steady ratio, one warmed
    and one cold process that run with TF step stats (FULL_TRACE) and record, per
    op, how much longer the first request took than later ones: in the cold one
    that splits the first-request cost into time inside ops (kernel first use, XLA
    compile) and outside them (executor creation: pruning, Grappler, kernel
    instantiation); in the warmed one it shows where a leftover cost would sit.
    Traced runs are slower; only traced is compared with traced.
    ``rows`` limits the run to those row indices of the plan (e.g. to re-measure one).
    ``cold=False`` skips the cold processes (when comparing several warmup files
    against one cold measurement).
    """
    from tfwarm_export.api import build_logs, plan as make_plan
    from tfwarm_export.config import resolve_config
    from tfwarm_export.errors import WarmupFileError
    from tfwarm_export.serving.warmup_file import parse_records, read_records, serialize_logs, warmup_path

    if warmup not in WARMUP_SOURCES:
        raise ValueError(f"warmup must be one of {WARMUP_SOURCES}, got {warmup!r}")
    if iterations < 1 or repeats < 1 or idle_ms < 0:
        raise ValueError(f"need iterations >= 1, repeats >= 1, idle_ms >= 0; got {iterations}, "
                         f"{repeats}, {idle_ms}")
    start = time.perf_counter()
    export_dir = os.fspath(export_dir)
    config = resolve_config(config, **options)
    warmup_plan = make_plan(export_dir, config)
    batching = warmup_plan.batching

    path = warmup_path(export_dir)
    import tensorflow as tf

    has_file = tf.io.gfile.exists(path)
    if warmup == "existing" and not has_file:
        raise WarmupFileError(f"no warmup file at {path}; create one with `tfwarm add` or use "
                              "--warmup planned.")
    if warmup == "existing" or (warmup == "auto" and has_file):
        source, warmup_records = "existing", read_records(path)
        warmup_logs = parse_records(warmup_records, path)
    else:
        source, path = "planned", None
        warmup_logs = [lg for lg in build_logs(warmup_plan) for _ in range(warmup_plan.copies)]
        warmup_records = serialize_logs(warmup_logs)
    request_logs = bench_requests(warmup_plan)
    covered_keys = {_request_key(lg, batching) for lg in warmup_logs}

    report = BenchReport(export_dir=export_dir, warmup_source=source, warmup_path=path,
                         num_warmup_records=len(warmup_records), iterations=iterations,
                         batching=batching.to_dict() if batching else None,
                         idle_ms=idle_ms, repeats=repeats, notes=list(warmup_plan.notes))
    for sig, why in sorted(warmup_plan.skipped.items()):
        report.notes.append(f"{sig}: not benchmarked ({why})")
    for i, (record, req) in enumerate(zip(warmup_plan.records, request_logs)):
        report.rows.append(BenchRow(
            index=i, key=record.key, signature=record.signature, request_type=record.request_type,
            batch_size=record.batch_size, variant=record.variant,
            shapes={inp.alias: list(inp.shape) for inp in record.inputs},
            covered=_request_key(req, batching) in covered_keys))
    if rows is not None:
        unknown = sorted(set(rows) - {r.index for r in report.rows})
        if unknown:
            raise ValueError(f"rows {unknown} not in the plan (rows 0-{len(report.rows) - 1})")
        report.rows = [r for r in report.rows if r.index in set(rows)]

    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="tfwarm-bench-") as tmp:
        warmup_file = os.path.join(tmp, "warmup.bin")
        requests_file = os.path.join(tmp, "requests.bin")
        _write_blobs(warmup_file, warmup_records)
        _write_blobs(requests_file, serialize_logs(request_logs))
        job = {"export_dir": export_dir, "tags": list(warmup_plan.tags),
               "op_libraries": list(config.op_libraries),
               "batching": dataclasses.asdict(batching) if batching else None,
               "warmup_file": warmup_file, "requests_file": requests_file, "iterations": iterations,
               "idle_ms": idle_ms}
        server = warmup_plan.server
        if server is not None:  # replay the file the way the configured server will
            report.warmup_iterations = server.num_request_iterations
            report.warmup_threads = server.num_model_warmup_threads
            job.update(session_config=server.session_config.SerializeToString().hex(),
                       warmup_iterations=server.num_request_iterations,
                       warmup_threads=server.num_model_warmup_threads)
        job_path = os.path.join(tmp, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        name = os.path.join(*os.path.normpath(export_dir).split(os.sep)[-2:])
        from tfwarm_export._cli import progress as bars

        for k, row in enumerate(bars.bar(report.rows, desc="bench rows", unit="row")):
            say(f"[bench] {name} ({k + 1}/{len(report.rows)}) row {row.index} {row.label}: "
                f"{repeats} cold + {repeats} warmed process(es)")
            for rep_i in range(repeats):
                for mode in (("cold", "warm") if cold else ("warm",)):
                    try:
                        result = _run_worker(job_path, row.index, mode, tmp, timeout_s, python)
                    except RuntimeError as e:
                        _add_error(row, f"{mode} worker (repeat {rep_i + 1}): {e}")
                        continue
                    _apply(row, mode, result, rep_i)
            _finish(row)
            say(f"[bench]   cold {_fmt(row.cold_first_ms, '.2f')} ms, warmed {_fmt(row.warmed_first_ms, '.2f')} "
                f"ms, steady {_fmt(row.steady_ms, '.2f')} ms (b2b {_fmt(row.steady_hot_ms, '.2f')} ms)")
        measured = [r for r in report.rows if r.warmed_over_steady is not None]
        if trace and measured:
            worst = max(measured, key=lambda r: r.warmed_over_steady)
            say(f"[bench] {name} tracing row {worst.index} ({worst.label}) with step stats, warmed and cold")
            for mode, attr in (("trace", "trace"), ("trace_cold", "cold_trace")):
                try:
                    setattr(worst, attr, _run_worker(job_path, worst.index, mode, tmp, timeout_s, python))
                except RuntimeError as e:
                    setattr(worst, attr, {"error": str(e)})
    report.wall_s = time.perf_counter() - start
    return report


def _add_error(row: BenchRow, error: str) -> None:
    """Keep every worker's error: a failure in one repeat must not vanish in the next."""
    row.error = f"{row.error}; {error}" if row.error else error


def _apply(row: BenchRow, mode: str, result: dict, repeat: int = 0) -> None:
    """Add one worker's samples to its row (``_finish`` turns them into medians)."""
    if result.get("error"):
        _add_error(row, f"{mode} worker (repeat {repeat + 1}): {result['error']}")
    if mode == "cold":
        if result.get("first_ms") is not None:
            row.cold_first_samples.append(round(result["first_ms"], 4))
        if result.get("load_ms") is not None:
            row.cold_load_samples.append(round(result["load_ms"], 4))
        return
    if result.get("load_ms") is not None:
        row.warm_load_samples.append(round(result["load_ms"], 4))
    if result.get("replay_ms") is not None:
        row.replay_samples.append(round(result["replay_ms"], 4))
    for failure in result.get("replay_failures") or []:
        failure = f"repeat {repeat + 1}: {failure}"
        if failure not in row.replay_failures:
            row.replay_failures.append(failure)
    if result.get("first_ms") is not None:
        row.warmed_first_samples.append(round(result["first_ms"], 4))
    row.steady_samples += [round(v, 4) for v in result.get("steady_ms") or []]
    row.hot_samples += [round(v, 4) for v in result.get("hot_ms") or []]


def _finish(row: BenchRow) -> None:
    """Medians over every repeat's samples: first requests, steady, load and replay times."""
    def med(values: list[float]) -> float | None:
        return _round(statistics.median(values), 4) if values else None

    row.cold_first_ms = med(row.cold_first_samples)
    row.warmed_first_ms = med(row.warmed_first_samples)
    row.steady_ms = med(row.steady_samples)
    row.steady_hot_ms = med(row.hot_samples)
    row.replay_ms = med(row.replay_samples)
    row.cold_load_ms = med(row.cold_load_samples)
    row.warm_load_ms = med(row.warm_load_samples)
    if row.steady_samples:
        ordered = sorted(row.steady_samples)
        row.steady_p90_ms = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_worker(job_path: str, row: int, mode: str, tmp: str, timeout_s: float,
                python: str | None) -> dict:
    """One measurement in a brand-new interpreter; its result comes back through a file."""
    out = os.path.join(tmp, f"result-{row}-{mode}.json")
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([_package_root()] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [python or sys.executable, "-m", "tfwarm_export.bench.command", "_worker", job_path, str(row), mode, out]
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


# --------------------------------------------------------------------------- worker


def _worker(job_path: str, row: int, mode: str, out_path: str) -> int:
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
    request = prediction_log_pb2.PredictionLog.FromString(_read_blobs(job["requests_file"])[row])
    warmup_logs = []
    if mode in ("warm", "trace"):
        warmup_logs = [prediction_log_pb2.PredictionLog.FromString(b)
                       for b in _read_blobs(job["warmup_file"])]
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


# --------------------------------------------------------------------------- plot


def require_matplotlib():
    """matplotlib is an optional extra; say how to get it instead of a bare ImportError."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from tfwarm_export.errors import TfwarmError

        raise TfwarmError("--plot needs matplotlib, an optional extra: pip install 'tfwarm_export[plot]' "
                          "(or pip install matplotlib).") from None
    return plt


def plot(reports: BenchReport | Sequence[BenchReport], path: str | os.PathLike,
         titles: Sequence[str] | None = None) -> str:
    """Bar chart, log scale: cold first / warmed first / steady per row, one panel per report."""
    plt = require_matplotlib()
    if isinstance(reports, BenchReport):
        reports = [reports]
    titles = list(titles) if titles else [r.export_dir for r in reports]
    n = len(reports)
    widths = [max(2, len(r.rows)) for r in reports]
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 1.1 * sum(widths) + 1.5 * n), 5.2), squeeze=False,
                             sharey=True, gridspec_kw={"width_ratios": widths})
    series = (("cold first", "cold_first_ms", "#d62728"), ("warmed first", "warmed_first_ms", "#2ca02c"),
              ("steady (median)", "steady_ms", "#1f77b4"))
    for ax, report, title in zip(axes[0], reports, titles):
        xs = list(range(len(report.rows)))
        w = 0.27
        for k, (name, attr, color) in enumerate(series):
            vals = [getattr(r, attr) or float("nan") for r in report.rows]
            bars = ax.bar([x + (k - 1) * w for x in xs], vals, w, label=name, color=color)
            for bar, v in zip(bars, vals):
                if v == v:  # not NaN
                    ax.annotate(f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                                va="bottom", fontsize=6, xytext=(0, 1), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        many = len({r.signature for r in report.rows}) > 1
        ax.set_xticklabels([_short_label(r, many) for r in report.rows], rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    from matplotlib.ticker import FuncFormatter

    axes[0][0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0][0].set_ylabel("latency (ms, log scale)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short_label(row: BenchRow, with_signature: bool = True) -> str:
    dims = [v for _, v in sorted(row.shapes.items())]
    extra = ""
    if dims and len(dims[0]) > 1:
        extra = "x" + "x".join(str(d) for d in dims[0][1:])
    head = f"{row.signature[:16]} " if with_signature else ""
    return f"{head}b{row.batch_size}{extra}"


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``tfwarm bench`` on the CLI's subparsers (same plan options as ``add``)."""
    from tfwarm_export._cli import cli_args

    p = subparsers.add_parser(
        "bench", help="measure first-request latency: cold, after warmup, and steady",
        description="For every planned (signature, batch size), time the first request with no "
                    "warmup, the first new request after replaying the warmup file, and the "
                    "steady state. Each cold and warmed measurement runs in a fresh process.")
    cli_args.add_model_args(p)
    cli_args.add_plan_args(p)
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                   help=f"steady-state runs per row; the median is reported (default {DEFAULT_ITERATIONS})")
    p.add_argument("--warmup", choices=WARMUP_SOURCES, default="auto",
                   help="warmup file to replay: the model's existing one, the planned records, or "
                        "auto = existing if present else planned (default)")
    p.add_argument("--idle-ms", type=float, default=DEFAULT_IDLE_MS,
                   help=f"pause before every timed request, as between real requests (default {DEFAULT_IDLE_MS:g})")
    p.add_argument("--repeats", type=int, default=1,
                   help="fresh cold and warmed processes per row; first-request medians over them (default 1)")
    p.add_argument("--plot", metavar="PNG", help="write a bar chart (log scale) of the three latencies")
    p.add_argument("--rows", type=cli_args.int_list, metavar="I,J",
                   help="only these row indices of the plan (as numbered in the table)")
    p.add_argument("--trace", action="store_true",
                   help="also trace the worst row's first vs later warmed requests with TF step stats")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per worker process")
    return p


def run_cli(args: argparse.Namespace) -> int:
    """``tfwarm bench``: 0 measured every row, 1 a row or warmup record failed, 2 bad input."""
    from tfwarm_export._cli import cli_args
    from tfwarm_export._cli import progress as bars

    try:
        if args.plot:
            require_matplotlib()  # fail before minutes of measuring, not after
        report = bench(args.export_dir, cli_args.config_from_args(args), iterations=args.iterations,
                       warmup=args.warmup, idle_ms=args.idle_ms, repeats=args.repeats,
                       timeout_s=args.timeout, trace=args.trace, rows=args.rows,
                       progress=bars.write)
        if args.plot:
            plot(report, args.plot, titles=[os.path.basename(os.path.normpath(args.export_dir))])
    except cli_args.INPUT_ERRORS as e:
        return cli_args.report_error("bench", e, args.json)
    print(report.to_json() if args.json else report.summary())
    if args.plot and not args.json:
        print(f"plot written to {args.plot}")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tfwarm_export.bench.command DIR ...`` (same as ``tfwarm bench``), or the worker."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        job, row, mode, out = argv[1:5]
        return _worker(job, int(row), mode, out)
    parser = argparse.ArgumentParser(prog="tfwarm")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench"] + argv)
    from tfwarm_export._cli import cli_args

    cli_args.setup_output(args)
    return run_cli(args)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
