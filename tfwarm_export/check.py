"""``check``: validate any warmup file against TF Serving's rules, then replay it.

Whatever wrote the file (us, a hand-written script, another tool), this reports
one line per broken rule: framing, record cap, record types, signatures, aliases,
dtypes, shapes, batching limits and allowed-batch-size coverage.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tfwarm_export import analysis
from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.context import Context, resolve
from tfwarm_export.errors import WarmupFileError
from tfwarm_export.planning.plan import traffic_scan
from tfwarm_export.specs.limits import MAX_RECORDS
from tfwarm_export.serving.replay import (PreparedRun, RecordProblem, RecordResult, Replayer, prepare,
                                          signature_name)
from tfwarm_export.report import CheckReport
from tfwarm_export.serving.coverage import measure_coverage, traffic_classes, unwarmed_sizes
from tfwarm_export.serving.load_cost import compile_ms, load_cost
from tfwarm_export.specs.request_class import RequestClass, class_of_log
from tfwarm_export.traffic import TrafficSelection, sample_traffic
from tfwarm_export.model.signatures import ModelSignatures, tensor_spec_from_info
from tfwarm_export.serving.warmup_file import parse_records, read_records, warmup_path


def check_warmup_file(export_dir: str | os.PathLike, config: WarmupConfig | None = None, *,
                      path: str | os.PathLike | None = None, context: Context | None = None,
                      **options: Any) -> CheckReport:
    """Check ``path`` (default: the model's own warmup file) against ``export_dir``.

    ``config``/``options`` are ``WarmupConfig`` fields (``batching_parameters``, ``tags``,
    ``platform_config``, ``ignore_per_model_batching``, ``op_libraries``, ``replay``,
    ``traffic``); ``context`` is one already resolved (``context.resolve``). The check runs
    under the configuration TF Serving would use, resolved once. With ``traffic`` (any
    source ``add`` reads, or a ``TrafficSelection``) the report also says what share of its
    requests the file warms (``serving.coverage``), per signature and in total.
    """
    if context is None:
        context = resolve(resolve_config(config, **options), export_dir)
    server = context.server
    path = os.fspath(path) if path else warmup_path(context.export_dir)
    report = CheckReport(export_dir=context.export_dir, path=path, server=server,
                         warnings=list(server.warnings))
    try:
        logs = parse_records(read_records(path), path)
    except WarmupFileError as e:
        report.problems.append(str(e))
        return report
    report.num_records = len(logs)
    rules = rules_stage(context, logs, path)
    report.problems += rules.problems
    report.results += rules.failed
    report.batch_sizes = rules.batch_sizes
    xla = _xla_single_size(context.model, rules.prepared)
    if context.config.replay and rules.prepared:
        runs, threads = replay_settings(context)
        with context.replayer() as replayer:
            report.replayed = True
            results = replay_stage(replayer, rules.prepared, runs, threads)
        report.problems += [f"record {r.index} ({r.signature}): replay failed: {r.error}" for r in results if not r.ok]
        report.results = sorted(report.results + results, key=lambda r: r.index)
        report.load_cost = load_cost([r for r in report.results if r.index in rules.prepared], rules.classes,
                                     threads, server.num_request_iterations)
    if context.config.traffic is not None:
        report.coverage = traffic_coverage(context, logs, context.config.traffic)
    for sig, (where, size) in sorted(xla.items()):
        report.warnings.append(f"signature {sig!r}: "
                               + analysis.xla_shape_warning(where, size, compile_ms(report.results, sig)))
    return report


def _file_problems(path: str, logs: list) -> list[str]:
    """The file-level rules: not empty, within TF Serving's record cap."""
    out = []
    if not logs:
        out.append(f"{path} holds no records; it warms nothing.")
    if len(logs) > MAX_RECORDS:
        out.append(f"{len(logs)} records exceed TF Serving's limit of {MAX_RECORDS}; "
                   f"record {MAX_RECORDS + 1} fails the model load. Warm fewer "
                   "signatures, batch sizes or shape variants.")
    return out


@dataclass
class RuleCheck:
    """What TF Serving's static rules say about a file's records, before any replay."""

    problems: list[str]
    prepared: dict[int, PreparedRun]  # record index -> the feeds TF Serving would run
    failed: list[RecordResult]  # records no session would run (a broken rule each)
    batch_sizes: dict[str, list[int]]  # signature -> the (padded) batch sizes it runs at
    classes: list[RequestClass]  # the request class of each prepared record, in file order


def rules_stage(context: Context, logs: list, path: str) -> RuleCheck:
    """Every rule short of replay: the file's (not empty, record cap), each record's (as TF
    Serving prepares it) and batching's (``batching_problems``). ``check`` reports them; ``add``
    refuses to keep a file that breaks one, so it never writes what ``check`` rejects."""
    problems = _file_problems(path, logs)
    prepared, failed = {}, []
    for i, log in enumerate(logs):
        try:
            prepared[i] = prepare(log, context.model.meta_graph, context.batching)
        except RecordProblem as e:
            sig = signature_name(log)
            problems.append(f"record {i}" + (f" ({sig})" if sig else "") + f": {e}")
            failed.append(RecordResult(i, sig, log.WhichOneof("log_type") or "unset", None, False, str(e)))
    sizes = batch_sizes_of(prepared)
    pad = context.batching.padded_size if context.batching else None
    classes = [class_of_log(logs[i], pad) for i in sorted(prepared)]
    problems += batching_problems(context, sizes, classes)
    return RuleCheck(problems, prepared, failed, sizes, classes)


def replay_settings(context: Context, copies: int = 1) -> tuple[int, int]:
    """(runs per record, threads) of a replay as TF Serving's load: each record ``copies`` x
    ``num_request_iterations`` times (at least twice, for first/second-run timings), on
    ``num_model_warmup_threads`` threads. ``add`` and ``check`` both replay so."""
    server = context.server
    return max(2, copies * server.num_request_iterations), server.num_model_warmup_threads


def replay_stage(replayer: Replayer, prepared: dict[int, PreparedRun], runs: int,
                 threads: int) -> list[RecordResult]:
    """Run prepared records in a model loaded by ``Context.replayer()``, in file order."""
    return replayer.run_all(sorted(prepared.items()), iterations=runs, threads=threads)


def batch_sizes_of(prepared: dict[int, PreparedRun]) -> dict[str, list[int]]:
    """Per signature, the (padded) batch sizes the records run at (multi-inference aside)."""
    out: dict[str, list[int]] = {}
    for run in prepared.values():
        if run.log_type != "multi_inference_log":
            sizes = out.setdefault(run.signature, [])
            size = run.padded_to or run.batch_size
            if size is not None and size not in sizes:
                sizes.append(size)
    return {sig: sorted(v) for sig, v in out.items()}


def batching_problems(context: Context, batch_sizes: dict[str, list[int]],
                      classes: list[RequestClass]) -> list[str]:
    """Allowed batch sizes the file leaves cold: per signature (a lone request pads to each),
    and per warmed shape (concurrent requests of that shape merge into every larger one,
    ``specs.batching``). ``add`` applies the same rule to what it writes."""
    batching = context.batching
    if batching is None or not batching.allowed_batch_sizes:
        return []
    fix = f"(tfwarm add --batching-parameters {batching.source or 'FILE'} --overwrite)"
    out = []
    for sig, sizes in sorted(batch_sizes.items()):
        missing = [s for s in batching.allowed_batch_sizes if s not in sizes]
        if missing:
            out.append(f"signature {sig!r}: allowed batch sizes {missing} are not warmed; the first "
                       f"request padded to each of them stays cold. Add records of those sizes {fix}.")
    for rc, missing in unwarmed_sizes(classes, batching.rule):
        missing = [s for s in missing if s in batch_sizes.get(rc.signature, ())]  # others: said above
        if not missing:
            continue
        shape = " ".join(f"{a}[{','.join(map(str, d[1:]))}]" for a, d in rc.shape) or rc.request_type
        out.append(f"signature {rc.signature!r}: at shape {shape} (warmed at batch {rc.batch_size}), "
                   f"allowed batch sizes {missing} are not warmed; TF Serving merges concurrent "
                   "requests of one shape and pads the batch to an allowed size, so the first such "
                   f"batch stays cold. Warm every allowed size at each shape {fix}.")
    return out


def traffic_coverage(context: Context, logs, traffic):
    """What share of ``traffic``'s requests the records ``logs`` warm (``serving.coverage``)."""
    batching = context.batching
    if isinstance(traffic, TrafficSelection):
        selection = traffic
    else:
        files, spec, source = traffic_scan(context.model, sorted(context.model.signatures),
                                           context.config.replace(traffic=traffic, previous_version=None,
                                                                  dataset_sample_size=1, seed=0), batching)
        selection = sample_traffic(files, spec, source)
    pad = batching.padded_size if batching is not None else None
    return measure_coverage([class_of_log(lg, pad) for lg in logs], traffic_classes(selection.samples),
                            selection.source, selection.dropped, batching.rule if batching else None)


def _xla_single_size(model: ModelSignatures, prepared: dict[int, PreparedRun]
                     ) -> dict[str, tuple[list[str], int]]:
    """XLA signatures whose unknown non-batch dims the file warms at one size only: sig -> (where, size)."""
    sizes: dict[str, set[int]] = {}
    for run in prepared.values():
        if run.log_type != "predict_log":
            continue
        sig = model.meta_graph.signature_def[run.signature]
        for alias, info in sig.inputs.items():
            spec = tensor_spec_from_info(alias, info)
            value = run.feeds.get(spec.name)
            if value is None or spec.shape is None:
                continue
            for axis, d in enumerate(spec.shape):
                if axis >= 1 and d is None and axis < value.ndim:
                    sizes.setdefault(run.signature, set()).add(int(value.shape[axis]))
    out = {}
    for name, seen in sorted(sizes.items()):
        if len(seen) != 1:
            continue
        where = analysis.find_xla_compilation(model.meta_graph,
                                              [t.name for t in model.meta_graph.signature_def[name].outputs.values()])
        if where:
            out[name] = (where, seen.pop())
    return out
