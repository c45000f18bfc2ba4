"""``check``: validate any warmup file against TF Serving's rules, then replay it.

Whatever wrote the file (us, a hand-written script, another tool), this reports
one line per broken rule: framing, record cap, record types, signatures, aliases,
dtypes, shapes, batching limits and allowed-batch-size coverage.
"""
from __future__ import annotations

import os
from typing import Sequence

from tfwarm_export import analysis
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.errors import WarmupFileError
from tfwarm_export.specs.limits import MAX_RECORDS
from tfwarm_export.serving.replay import (PreparedRun, Replayer, RecordProblem, RecordResult, signature_name,
                                  prepare)
from tfwarm_export.report import CheckReport
from tfwarm_export.serving.coverage import measure_coverage, traffic_classes
from tfwarm_export.serving.load_cost import load_cost
from tfwarm_export.specs.request_class import class_of_log
from tfwarm_export.traffic import TrafficSelection, sample_traffic, traffic_plan
from tfwarm_export.serving.serving_config import resolve_server
from tfwarm_export.model.signatures import DEFAULT_TAGS, ModelSignatures, read_signatures, tensor_spec_from_info
from tfwarm_export.serving.warmup_file import parse_records, read_records, warmup_path


def check_warmup_file(export_dir: str, *, path: str | None = None,
                      batching_parameters: str | BatchingConfig | None = None,
                      tags: Sequence[str] = DEFAULT_TAGS, replay: bool = True,
                      platform_config=None, ignore_per_model_batching: bool = False,
                      op_libraries: Sequence[str] = (), traffic=None) -> CheckReport:
    """Check ``path`` (default: the model's own warmup file) against ``export_dir``.

    ``traffic``: any traffic source ``add`` reads (paths/globs of REST JSON, PredictionLog or
    tf.Example files, or a ``TrafficSelection``): the report then says what share of its
    requests the file warms (``serving.coverage``), per signature and in total.

    Runs under the configuration TF Serving would use: ``batching_parameters``,
    ``platform_config`` and the version directory's ``batching_params.pbtxt``
    (unless ``ignore_per_model_batching``), resolved by ``serving_config.resolve_server``.
    """
    export_dir = os.fspath(export_dir)
    path = os.fspath(path) if path else warmup_path(export_dir)
    server = resolve_server(export_dir, platform_config=platform_config,
                            batching_parameters=batching_parameters,
                            ignore_per_model_batching=ignore_per_model_batching)
    batching = server.batching
    if server.tags and tuple(tags) == tuple(DEFAULT_TAGS):
        tags = server.tags
    model = read_signatures(export_dir, tags)
    report = CheckReport(export_dir=export_dir, path=path, server=server, warnings=list(server.warnings))
    try:
        records = read_records(path)
        logs = parse_records(records, path)
    except WarmupFileError as e:
        report.problems.append(str(e))
        return report
    report.num_records = len(logs)
    if not logs:
        report.problems.append(f"{path} holds no records; it warms nothing.")
    if len(logs) > MAX_RECORDS:
        report.problems.append(f"{len(logs)} records exceed TF Serving's limit of {MAX_RECORDS}; "
                               f"record {MAX_RECORDS + 1} fails the model load. Warm fewer "
                               "signatures, batch sizes or shape variants.")
    prepared = {}
    for i, log in enumerate(logs):
        try:
            prepared[i] = prepare(log, model.meta_graph, batching)
        except RecordProblem as e:
            sig = signature_name(log)
            report.problems.append(f"record {i}" + (f" ({sig})" if sig else "") + f": {e}")
            report.results.append(RecordResult(i, sig, log.WhichOneof("log_type") or "unset",
                                               None, False, str(e)))
    for run in prepared.values():
        if run.log_type != "multi_inference_log":
            report.batch_sizes.setdefault(run.signature, [])
            size = run.padded_to or run.batch_size
            if size is not None and size not in report.batch_sizes[run.signature]:
                report.batch_sizes[run.signature].append(size)
    for sig in report.batch_sizes:
        report.batch_sizes[sig].sort()
    if batching is not None and batching.allowed_batch_sizes:
        for sig, sizes in sorted(report.batch_sizes.items()):
            missing = [s for s in batching.allowed_batch_sizes if s not in sizes]
            if missing:
                report.problems.append(
                    f"signature {sig!r}: allowed batch sizes {missing} are not warmed; the first "
                    f"request padded to each of them stays cold. Add records of those sizes "
                    f"(tfwarm add --batching-parameters {batching.source or 'FILE'} --overwrite).")
    xla = _xla_single_size(model, prepared)
    if replay and prepared:
        # As the server: num_request_iterations runs per record on num_model_warmup_threads
        # threads; twice at least when an XLA compile cost is to be measured.
        runs = max(server.num_request_iterations, 2 if xla else 1)
        with Replayer(export_dir, tags, batching, session_config=server.session_config,
                      op_libraries=op_libraries) as replayer:
            report.replayed = True
            for result in replayer.run_all(sorted(prepared.items()), iterations=runs,
                                           threads=server.num_model_warmup_threads):
                if not result.ok:
                    report.problems.append(f"record {result.index} ({result.signature}): replay "
                                           f"failed: {result.error}")
                report.results.append(result)
        report.results.sort(key=lambda r: r.index)
    if report.replayed:
        pad = batching.padded_size if batching is not None else None
        report.load_cost = load_cost([r for r in report.results if r.index in prepared],
                                     [class_of_log(logs[i], pad) for i in sorted(prepared)],
                                     server.num_model_warmup_threads, server.num_request_iterations)
    if traffic is not None:
        report.coverage = traffic_coverage(model, logs, batching, traffic)
    for sig, (where, size) in sorted(xla.items()):
        costs = sorted(r.first_ms - r.second_ms for r in report.results if r.signature == sig and r.ok
                       and r.first_ms is not None and r.second_ms is not None)
        ms = costs[len(costs) // 2] if costs else None
        report.warnings.append(f"signature {sig!r}: " + analysis.xla_shape_warning(where, size, ms))
    return report


def traffic_coverage(model: ModelSignatures, logs, batching: BatchingConfig | None, traffic):
    """What share of ``traffic``'s requests the records ``logs`` warm (``serving.coverage``)."""
    if isinstance(traffic, TrafficSelection):
        selection = traffic
    else:
        files, spec, source = traffic_plan(dict(model.signatures), sorted(model.signatures),
                                           batching.allowed_batch_sizes if batching else (), traffic,
                                           None, k=1, seed=0)
        selection = sample_traffic(files, spec, source)
    pad = batching.padded_size if batching is not None else None
    return measure_coverage([class_of_log(lg, pad) for lg in logs], traffic_classes(selection.samples),
                            selection.source, selection.dropped)


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
