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

The package: ``command`` (this driver and the CLI), ``worker`` (the measuring process),
``statistics`` (rows, medians, the table) and ``plot``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

from tfwarm_export.bench.plot import plot, require_matplotlib
from tfwarm_export.bench.statistics import (DEFAULT_IDLE_MS, BenchReport, BenchRow, add_error,
                                            add_samples, finish_row, fmt_ms)
from tfwarm_export.bench.worker import run_worker, write_blobs

WARMUP_SOURCES = ("auto", "existing", "planned")
DEFAULT_ITERATIONS = 20
FRESH_SEED_OFFSET = 1
"""The bench request for a row uses ``plan.seed + 1``: same shape, values not in the file."""


def request_key(log_proto, batching) -> tuple:
    """A record's class (``specs.request_class``) under ``batching``: same class, same caches."""
    from tfwarm_export.specs.request_class import class_of_log

    return class_of_log(log_proto, batching.padded_size if batching is not None else None)



# --------------------------------------------------------------------------- driver


def bench_requests(warmup_plan) -> list:
    """One request per planned row: same shapes as its warmup record, values from another seed.

    Timing a warmup record again would flatter the warmup (identical bytes, identical
    feeds); real traffic brings new values.
    """
    from tfwarm_export.api import build_logs

    return build_logs(dataclasses.replace(warmup_plan, seed=warmup_plan.seed + FRESH_SEED_OFFSET))


def _warmup_source(export_dir: str, warmup: str, warmup_plan) -> tuple[str, str | None, list, list]:
    """``(source, path, records, logs)`` of the warmup to replay: the model's file or the planned records."""
    from tfwarm_export.api import build_logs
    from tfwarm_export.errors import WarmupFileError
    from tfwarm_export.serving.warmup_file import parse_records, read_records, serialize_logs, warmup_path

    path = warmup_path(export_dir)
    import tensorflow as tf

    has_file = tf.io.gfile.exists(path)
    if warmup == "existing" and not has_file:
        raise WarmupFileError(f"no warmup file at {path}; create one with `tfwarm add` or use "
                              "--warmup planned.")
    if warmup == "existing" or (warmup == "auto" and has_file):
        records = read_records(path)
        return "existing", path, records, parse_records(records, path)
    logs = [lg for lg in build_logs(warmup_plan) for _ in range(warmup_plan.copies)]
    return "planned", None, serialize_logs(logs), logs


def _add_rows(report: BenchReport, warmup_plan, warmup_logs: list, request_logs: list,
              rows: Sequence[int] | None) -> None:
    """One row per planned record (``rows``: only those), marked covered when a warmup record
    has its request's class."""
    batching = warmup_plan.batching
    covered_keys = {request_key(lg, batching) for lg in warmup_logs}
    for sig, why in sorted(warmup_plan.skipped.items()):
        report.notes.append(f"{sig}: not benchmarked ({why})")
    for i, (record, req) in enumerate(zip(warmup_plan.records, request_logs)):
        report.rows.append(BenchRow(
            index=i, key=record.key, signature=record.signature, request_type=record.request_type,
            batch_size=record.batch_size, variant=record.variant,
            shapes={inp.alias: list(inp.shape) for inp in record.inputs},
            covered=request_key(req, batching) in covered_keys))
    if rows is not None:
        unknown = sorted(set(rows) - {r.index for r in report.rows})
        if unknown:
            raise ValueError(f"rows {unknown} not in the plan (rows 0-{len(report.rows) - 1})")
        report.rows = [r for r in report.rows if r.index in set(rows)]


def _write_job(tmp: str, report: BenchReport, warmup_plan, config, warmup_records: list,
               request_logs: list) -> str:
    """The workers' job file (model, tags, batching, server settings, the two record files) in ``tmp``."""
    from tfwarm_export.serving.warmup_file import serialize_logs

    batching = warmup_plan.batching
    warmup_file = os.path.join(tmp, "warmup.bin")
    requests_file = os.path.join(tmp, "requests.bin")
    write_blobs(warmup_file, warmup_records)
    write_blobs(requests_file, serialize_logs(request_logs))
    job = {"export_dir": report.export_dir, "tags": list(warmup_plan.tags),
           "op_libraries": list(config.op_libraries),
           "batching": dataclasses.asdict(batching) if batching else None,
           "warmup_file": warmup_file, "requests_file": requests_file, "iterations": report.iterations,
           "idle_ms": report.idle_ms}
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
    return job_path


def _measure_rows(report: BenchReport, job_path: str, tmp: str, say: Callable[[str], None], *,
                  cold: bool, timeout_s: float, python: str | None) -> None:
    """Run each row's cold and warmed worker processes, one at a time, and fill in its latencies."""
    from tfwarm_export._support import progress as bars

    name = _model_name(report.export_dir)
    for k, row in enumerate(bars.bar(report.rows, desc="bench rows", unit="row")):
        say(f"[bench] {name} ({k + 1}/{len(report.rows)}) row {row.index} {row.label}: "
            f"{report.repeats} cold + {report.repeats} warmed process(es)")
        for rep_i in range(report.repeats):
            for mode in (("cold", "warm") if cold else ("warm",)):
                try:
                    result = run_worker(job_path, row.index, mode, tmp, timeout_s, python)
                except RuntimeError as e:
                    add_error(row, f"{mode} worker (repeat {rep_i + 1}): {e}")
                    continue
                add_samples(row, mode, result, rep_i)
        finish_row(row)
        say(f"[bench]   cold {fmt_ms(row.cold_first_ms, '.2f')} ms, warmed {fmt_ms(row.warmed_first_ms, '.2f')} "
            f"ms, steady {fmt_ms(row.steady_ms, '.2f')} ms (b2b {fmt_ms(row.steady_hot_ms, '.2f')} ms)")


def _trace_worst_row(report: BenchReport, job_path: str, tmp: str, say: Callable[[str], None], *,
                     timeout_s: float, python: str | None) -> None:
    """Trace the row with the worst warmed/steady ratio, warmed and cold, with TF step stats."""
    measured = [r for r in report.rows if r.warmed_over_steady is not None]
    if not measured:
        return
    worst = max(measured, key=lambda r: r.warmed_over_steady)
    say(f"[bench] {_model_name(report.export_dir)} tracing row {worst.index} ({worst.label}) with step stats, "
        "warmed and cold")
    for mode, attr in (("trace", "trace"), ("trace_cold", "cold_trace")):
        try:
            setattr(worst, attr, run_worker(job_path, worst.index, mode, tmp, timeout_s, python))
        except RuntimeError as e:
            setattr(worst, attr, {"error": str(e)})


def _model_name(export_dir: str) -> str:
    """``model/version``: the last two parts of the export path, for progress lines."""
    return os.path.join(*os.path.normpath(export_dir).split(os.sep)[-2:])


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
    from tfwarm_export.api import plan_context
    from tfwarm_export.config import resolve_config
    from tfwarm_export.context import resolve

    if warmup not in WARMUP_SOURCES:
        raise ValueError(f"warmup must be one of {WARMUP_SOURCES}, got {warmup!r}")
    if iterations < 1 or repeats < 1 or idle_ms < 0:
        raise ValueError(f"need iterations >= 1, repeats >= 1, idle_ms >= 0; got {iterations}, "
                         f"{repeats}, {idle_ms}")
    start = time.perf_counter()
    export_dir = os.fspath(export_dir)
    config = resolve_config(config, **options)
    context = resolve(config, export_dir)  # the server, once
    warmup_plan = plan_context(context)
    batching = warmup_plan.batching

    source, path, warmup_records, warmup_logs = _warmup_source(export_dir, warmup, warmup_plan)
    request_logs = bench_requests(warmup_plan)
    report = BenchReport(export_dir=export_dir, warmup_source=source, warmup_path=path,
                         num_warmup_records=len(warmup_records), iterations=iterations,
                         batching=batching.to_dict() if batching else None,
                         idle_ms=idle_ms, repeats=repeats, notes=list(warmup_plan.notes))
    _add_rows(report, warmup_plan, warmup_logs, request_logs, rows)

    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="tfwarm-bench-") as tmp:
        job_path = _write_job(tmp, report, warmup_plan, config, warmup_records, request_logs)
        _measure_rows(report, job_path, tmp, say, cold=cold, timeout_s=timeout_s, python=python)
        if trace:
            _trace_worst_row(report, job_path, tmp, say, timeout_s=timeout_s, python=python)
    report.wall_s = time.perf_counter() - start
    return report



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
    from tfwarm_export._support import progress as bars

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
    """``python -m tfwarm_export.bench.command DIR ...``: the same as ``tfwarm bench``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="tfwarm")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench"] + argv)
    from tfwarm_export._cli import cli_args

    cli_args.setup_output(args)
    return run_cli(args)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
