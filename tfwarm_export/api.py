"""The public entry points: ``plan``, ``build_logs``, ``add_warmup``, ``check``.

Flow, one way only: signatures -> plan -> values -> requests -> file -> replay
report. Each step lives in its own module; this one only wires them together.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export import analysis
from tfwarm_export.check import check_warmup_file
from tfwarm_export.config import DEFAULT_DIM_SIZE, RETRY_DIM_SIZE, WarmupConfig, resolve_config
from tfwarm_export.errors import PlanError, ReplayError, WarmupFileError, unrestored_variable
from tfwarm_export.model.oplibs import ensure_ops
from tfwarm_export.planning.budget import choose_within_budget, parse_duration
from tfwarm_export.planning.plan import make_plan
from tfwarm_export.planning.records import PlannedRecord, WarmupPlan
from tfwarm_export.planning.tensor_inputs import solve_failed_record
from tfwarm_export.serving.coverage import measure_coverage, traffic_classes
from tfwarm_export.serving.load_cost import load_cost, record_costs
from tfwarm_export.serving.replay import RecordResult, Replayer
from tfwarm_export.report import CheckReport, WarmupReport, results_table
from tfwarm_export.planning.requests import build_log
from tfwarm_export.serving.serving_config import resolve_server
from tfwarm_export.model.signatures import DEFAULT_TAGS, read_signatures
from tfwarm_export.values.synth import PLANNED, SAFE, record_values
from tfwarm_export.traffic import TrafficSelection
from tfwarm_export.serving.warmup_file import parse_records, read_records, serialize_logs, staged_write, warmup_path

log = logging.getLogger("tfwarm_export")


def plan(export_dir: str | os.PathLike, config: WarmupConfig | None = None, **options: Any) -> WarmupPlan:
    """What ``add_warmup`` would write, without writing anything."""
    config = resolve_config(config, **options)
    export_dir = os.fspath(export_dir)
    server = resolve_server(export_dir, platform_config=config.platform_config,
                            batching_parameters=config.batching_parameters,
                            ignore_per_model_batching=config.ignore_per_model_batching)
    # The platform config's saved_model_tags pick the MetaGraph unless tags were given.
    tags = server.tags if server.tags and tuple(config.tags) == tuple(DEFAULT_TAGS) else config.tags
    model = read_signatures(export_dir, tags)
    if ensure_ops(model.meta_graph, config.op_libraries, export_dir):
        model = read_signatures(export_dir, tags)  # graph inference sees the new ops
    if config.runner and (config.traffic is not None or config.previous_version is not None) \
            and not isinstance(config.traffic, TrafficSelection):
        try:
            from tfwarm_export.beam import run_selection  # the [beam] extra, only when asked for
        except ImportError as e:
            raise PlanError(f"runner={config.runner!r}: {e}") from None

        config = config.replace(traffic=run_selection(export_dir, config), previous_version=None)
    return make_plan(model, config, server)


def build_logs(warmup_plan: WarmupPlan, strategy: str = PLANNED) -> list[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records for a plan (values derive from ``plan.seed``)."""
    return [build_log(r, _values(warmup_plan, r, strategy)[0], warmup_plan.model_name)
            for r in warmup_plan.records]


def _values(warmup_plan: WarmupPlan, record: PlannedRecord, strategy: str = PLANNED):
    return record_values(record, warmup_plan.seed, strategy, warmup_plan.samples.get(record.signature),
                         warmup_plan.privacy)


_VARIABLE_OPS = frozenset({"ReadVariableOp", "VarHandleOp", "VariableV2", "VarIsInitializedOp"})
"""Ops that fail on the model's own state (an unrestored variable), never on a fed value."""
_STRING_CHOICES = '["valid", ...]'
_NUMBER_RANGE = '{"range": [low, high]}'


def _cli_value(key: str, example: str) -> str:
    return f"CLI --value '{key}={example}'"


def _fix_hint(record: PlannedRecord, rejection: analysis.Rejection | None = None) -> str:
    """Name the op that rejected the value, the inputs that reach it, and the override for each.

    With a ``rejection`` whose node some inputs reach, only those inputs are named:
    an input that played no part in the failure needs no domain.
    """
    hints = []
    inputs = list(record.inputs)
    if rejection is not None:
        hints.append(rejection.describe())
        if rejection.op in _VARIABLE_OPS:  # reads model state only: no request value changes that
            return "; ".join(hints + ["it reads a variable, not a request value: no override helps"])
        if rejection.inputs:
            inputs = [i for i in inputs if i.alias in rejection.inputs]
    for inp in inputs:
        key = f"{record.signature}/{inp.alias}"
        if inp.kind == "examples":
            unknown = [k for k in inp.example_spec.required_keys() if k not in inp.feature_domains]
            if unknown:
                hints.append(f"tf.Example features {unknown} of {inp.alias!r} have no known value domain: "
                             f"overrides={{'{record.signature}/{unknown[0]}': [valid, values]}} "
                             f"({_cli_value(f'{record.signature}/{unknown[0]}', '[...]')})")
        if inp.defaulted_axes:
            axis = inp.defaulted_axes[0]
            hints.append(f"input {inp.alias!r} axes {list(inp.defaulted_axes)} had no known size (tried "
                         f"{DEFAULT_DIM_SIZE} and {RETRY_DIM_SIZE}): dim_sizes={{'{key}': {{{axis}: N}}}} "
                         f"(CLI --dim {key}:{axis}=N)")
        if inp.kind == "tensor" and inp.domain is None:
            if inp.dtype == tf.string:
                hints.append(f"input {inp.alias!r} has no known value domain: give values the graph "
                             f"accepts with overrides={{'{key}': [b'valid', ...]}} "
                             f"({_cli_value(key, _STRING_CHOICES)})")
            else:
                hints.append(f"input {inp.alias!r} has no known value domain: overrides={{'{key}': "
                             f"(low, high)}} or a list of valid values "
                             f"({_cli_value(key, _NUMBER_RANGE)})")
        elif inp.kind == "tensor" and inp.domain.encoding is not None:
            size = (f", or another image size: image_size={{'{key}': (h, w)}} (CLI --image-size {key}=HxW)"
                    if hasattr(inp.domain.encoding, "height") else "")
            hints.append(f"input {inp.alias!r} feeds {inp.domain.source.removeprefix('decoded: ')}: give "
                         f"values it accepts with overrides={{'{key}': [b'<encoded value>', ...]}}{size}")
        elif inp.kind == "tensor" and inp.domain.user:
            hints.append(f"input {inp.alias!r} uses your override ({inp.domain.describe()}), kept in "
                         f"the retry: change overrides['{key}']")
    return "; ".join(hints)


def _rejection(replayer: Replayer, record: PlannedRecord,
               failed: RecordResult) -> analysis.Rejection | None:
    """The op TensorFlow's error named for a failed record, via the loaded graph."""
    if not failed.failed_node:
        return None
    return analysis.find_rejection(replayer.meta_graph, failed.failed_function, failed.failed_node,
                                   {i.alias: i.tensor for i in record.inputs})


def _with_retry_dims(record: PlannedRecord) -> PlannedRecord | None:
    """The record with every defaulted unknown dimension at RETRY_DIM_SIZE, or None."""
    if not any(inp.defaulted_axes for inp in record.inputs):
        return None
    inputs = []
    for inp in record.inputs:
        shape = tuple(RETRY_DIM_SIZE if axis in inp.defaulted_axes else d for axis, d in enumerate(inp.shape))
        inputs.append(dataclasses.replace(inp, shape=shape))
    return dataclasses.replace(record, inputs=tuple(inputs))


def _replay_with_retry(replayer: Replayer, warmup_plan: WarmupPlan, logs: list, how: list,
                       iterations: int = 2, threads: int = 1) -> tuple[list[RecordResult], WarmupPlan]:
    """Replay every record; retry a failure with safe values, then with larger default dims.

    Returns the results and the plan as finally written (a retried record may have
    new shapes).
    """
    records = list(warmup_plan.records)
    results = replayer.replay(parse_records(serialize_logs(logs)), iterations=iterations, threads=threads)
    for i, result in enumerate(results):
        if result.ok:
            continue
        record = records[i]
        attempts = [(record, SAFE, "safe values (zeros/empty/defaults)")]
        solved = solve_failed_record(replayer.meta_graph, record)  # issue 26: solve the failing check first
        if solved is not None:
            attempts.insert(0, (solved, PLANNED, "sizes and values solved from the graph's checks"))
        bigger = _with_retry_dims(record)
        if bigger is not None:
            attempts += [(bigger, PLANNED, f"unknown dims at {RETRY_DIM_SIZE}"),
                         (bigger, SAFE, f"safe values with unknown dims at {RETRY_DIM_SIZE}")]
        errors, last = [], result
        for candidate, strategy, label in attempts:
            values, new_how = _values(warmup_plan, candidate, strategy)
            retry_log = build_log(candidate, values, warmup_plan.model_name)
            (retry,) = replayer.replay(parse_records(serialize_logs([retry_log])), iterations=iterations)
            if retry.ok:
                log.warning("record %d (%s) failed with planned values (%s); passed with %s",
                            i, record.signature, result.error, label)
                retry.index = i
                logs[i], how[i], results[i], records[i] = retry_log, new_how, retry, candidate
                break
            errors.append(f"retried with {label}: {retry.error}")
            last = retry if retry.failed_node else last
        else:
            hint = (_fix_hint(record, _rejection(replayer, record, last))
                    if any("TensorFlow error" in e for e in errors) else "")
            result.error = " | ".join([result.error] + errors + ([hint] if hint else []))
    for result, h in zip(results, how):
        result.inputs = dict(h)
    return results, dataclasses.replace(warmup_plan, records=tuple(records))


def add_warmup(export_dir: str | os.PathLike, config: WarmupConfig | None = None,
               **options: Any) -> WarmupReport:
    """Write ``assets.extra/tf_serving_warmup_requests`` for ``export_dir`` and replay it.

    Options are ``WarmupConfig`` fields (e.g. ``batch_sizes=[1, 8]``). Every record
    is replayed (unless ``replay=False``) from its serialized bytes; a failing one
    is retried once with safe values. Only when all pass is the file written to a
    temp name, read back byte for byte, and renamed into place. On any failure the
    directory is left as it was and the error names record, signature and cause.
    """
    export_dir = os.fspath(export_dir)
    config = resolve_config(config, **options)
    budget_s = None
    if config.load_budget is not None:  # bad input fails before any scan or replay
        budget_s = parse_duration(config.load_budget, "load_budget")
        if not config.replay:
            raise PlanError("load_budget= needs the records' measured costs, so it cannot be used with "
                            "replay=False (CLI: --no-replay); drop one of them.")
    warmup_plan = plan(export_dir, config)
    logs, how = [], []
    for record in warmup_plan.records:
        values, h = _values(warmup_plan, record)
        try:
            logs.append(build_log(record, values, warmup_plan.model_name))
        except (TypeError, ValueError) as e:  # values tf.make_tensor_proto cannot encode
            raise PlanError(f"signature {record.signature!r} ({record.key}): the values for "
                            f"{[i.alias for i in record.inputs]} cannot be encoded as their dtypes "
                            f"({e}); check overrides= for these inputs.") from None
        how.append(h)
    report = WarmupReport(export_dir=export_dir, path=None, plan=warmup_plan)
    _describe_data(report)
    server = warmup_plan.server
    report.warnings = list(server.warnings) if server else []
    counts = traffic_classes(warmup_plan.samples)
    if config.replay:
        # As TF Serving at load: each record copies x num_request_iterations times (at least
        # twice, for the first/second timings), on num_model_warmup_threads threads.
        iters = warmup_plan.copies * (server.num_request_iterations if server else 1)
        runs = max(2, iters)
        threads = server.num_model_warmup_threads if server else 1
        report.results, report.plan = _replay(export_dir, config, warmup_plan, logs, how, runs, threads, report)
        report.replayed = True
        report.replay_runs, report.replay_threads = runs, threads
        if budget_s is not None:
            classes = report.plan.classes()
            try:
                report.budget = choose_within_budget(
                    classes, record_costs(report.results, iters), counts or None, budget_s * 1000.0,
                    threads, labels=[c.label() for c in classes])
            except ValueError as e:
                raise PlanError(f"load_budget: {e}; nothing was written.") from None
            if report.budget.applied:  # the kept file is replayed and checked as always
                keep = report.budget.kept
                logs, how = [logs[i] for i in keep], [how[i] for i in keep]
                records = tuple(report.plan.records[i] for i in keep)
                kept = dataclasses.replace(report.plan, records=records, xla_compiles={
                    sig: len({r.request_class(report.plan.batching) for r in records if r.signature == sig})
                    for sig in report.plan.xla_compiles})
                report.results, report.plan = _replay(export_dir, config, kept, logs, how, runs, threads,
                                                      report)
        report.load_cost = load_cost(report.results, report.plan.classes(), threads, iters)
        if report.budget is not None and report.budget.applied:
            report.budget.measured_ms = report.load_cost["total_ms"]
    if counts:  # what share of the data's requests the file warms
        sources = ", ".join(sorted({s.source for s in report.plan.samples.values()}))
        report.coverage = measure_coverage(report.plan.classes(), counts, sources)
    if report.budget is not None and report.budget.applied:
        _describe_data(report)  # again: the cut changed the records
    report.xla_warnings = xla_warnings(report.plan, report.results)
    # ``iterations``: each record back to back ``copies`` times, as TF Serving reads them in order.
    records = [r for r in serialize_logs(logs) for _ in range(warmup_plan.copies)]
    report.file_bytes = sum(len(r) for r in records)
    with staged_write(export_dir, records, overwrite=config.overwrite) as tmp:
        if read_records(tmp) != records:  # what TF Serving will read is what we replayed
            raise WarmupFileError(f"read-back of {tmp} differs from the records written; the "
                                  f"filesystem under {export_dir} is not storing files faithfully.")
    report.path = warmup_path(export_dir)
    log.info("wrote %d warmup records to %s", len(records), report.path)
    return report


def _describe_data(report: WarmupReport) -> None:
    """Where the records' values come from, and what that means for privacy."""
    if not report.plan.samples:
        return
    report.data_source = {sig: s.to_dict(privacy=report.plan.privacy)
                          for sig, s in sorted(report.plan.samples.items())}
    n = sum(1 for r in report.plan.records if r.source == "dataset")
    sources = sorted({s.source for s in report.plan.samples.values()})
    if report.plan.privacy == "shapes_only":
        report.privacy = (f"privacy='shapes_only': {n} record(s) use values synthesised from what "
                          f"{', '.join(sources)} taught (shapes, lengths, ranges, vocabularies of "
                          "values seen at least twice, the form of encoded images/CSV/numbers); "
                          "no sampled row is copied into the file.")
        flags = [f"{sig}: {f}" for sig, s in sorted(report.plan.samples.items())
                 for f in s.unavoidable_values()]
        if flags:  # values the learned domain cannot avoid: said, never hidden
            report.privacy += (" Values in the file that also occur in the data, because the "
                               "learned domain holds no others: " + "; ".join(flags) + ".")
            log.warning("shapes_only: %d input(s) emit values that occur in the data: %s",
                        len(flags), "; ".join(flags))
    else:
        report.privacy = (f"{n} record(s) carry rows sampled from {', '.join(sources)}. They are "
                          "copied into assets.extra/ and ship with the model artifact to every "
                          "place it is deployed. To keep user data out, pass privacy='shapes_only' "
                          "(CLI: --privacy shapes_only).")


def _replay(export_dir: str, config: WarmupConfig, warmup_plan: WarmupPlan, logs: list, how: list,
            runs: int, threads: int, report: WarmupReport) -> tuple[list[RecordResult], WarmupPlan]:
    """Replay ``logs`` in a freshly loaded model, as TF Serving's load would; any failure raises."""
    server = warmup_plan.server
    with Replayer(export_dir, warmup_plan.tags, warmup_plan.batching,
                  session_config=server.session_config if server else None,
                  op_libraries=config.op_libraries) as replayer:
        report.load_ms = round(replayer.load_ms, 3)
        results, final = _replay_with_retry(replayer, warmup_plan, logs, how, runs, threads)
    failures = [r for r in results if not r.ok]
    if failures:
        report.results, report.plan, report.replayed = results, final, True
        lines = [f"record {r.index} (signature {r.signature!r}, {r.log_type}, batch "
                 f"{r.batch_size}): {r.error}" for r in failures]
        missing = {unrestored_variable(r.error or "") for r in failures}
        if None not in missing:
            raise ReplayError(
                f"{export_dir} cannot serve any request: TF Serving's loader does not restore its "
                f"variable(s) {', '.join(sorted(missing))}, so every request fails with 'Could not "
                "find variable', whatever the warmup file holds (a Keras 3 model written with "
                "tf.saved_model.save, keras-team/keras#19274). Export it with model.export(DIR) "
                "or tfwarm_export.export(model, DIR); nothing was written (an existing warmup file "
                "is kept).\n  " + "\n  ".join(lines[:3]), report)
        raise ReplayError(
            f"{len(failures)} of {len(logs)} warmup record(s) for {export_dir} failed "
            "replay, so TF Serving would fail to load this model with them; nothing was "
            "written (an existing warmup file is kept).\n  " + "\n  ".join(lines)
            + "\nFix the inputs with overrides=/dim_sizes=/shapes= or leave the signature "
            "out with signatures=[...].", report)
    return results, final


def xla_warnings(warmup_plan: WarmupPlan, results: list[RecordResult]) -> dict[str, str]:
    """The plan's XLA flags, with the per-shape compile cost measured in replay (first - second run)."""
    out = {}
    for sig, where in sorted(warmup_plan.xla.items()):
        costs = sorted(r.first_ms - r.second_ms for r in results
                       if r.signature == sig and r.ok and r.first_ms is not None and r.second_ms is not None)
        ms = costs[len(costs) // 2] if costs else None
        out[sig] = analysis.xla_shape_warning(where, DEFAULT_DIM_SIZE, ms)
    return out


def check(export_dir: str | os.PathLike, **kwargs: Any) -> CheckReport:
    """Validate an existing warmup file; see ``check_warmup_file``."""
    return check_warmup_file(os.fspath(export_dir), **kwargs)


__all__ = ["plan", "build_logs", "add_warmup", "check", "results_table", "xla_warnings"]
