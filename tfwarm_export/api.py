"""The public entry points: ``plan``, ``build_logs``, ``add_warmup``, ``check``.

Flow, one way only: signatures -> plan -> values -> requests -> file -> replay
report. Each step lives in its own module; this one only wires them together.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export import analysis
from tfwarm_export.check import batching_problems, check_warmup_file, replay_settings, rules_stage
from tfwarm_export.config import DEFAULT_DIM_SIZE, RETRY_DIM_SIZE, WarmupConfig, resolve_config
from tfwarm_export.context import Context, resolve
from tfwarm_export.errors import PlanError, ReplayError, WarmupFileError, unrestored_variable
from tfwarm_export.planning.budget import choose_within_budget
from tfwarm_export.planning.plan import make_plan, select_traffic
from tfwarm_export.planning.records import PlannedRecord, WarmupPlan
from tfwarm_export.specs.request_kinds import MULTI_INFERENCE
from tfwarm_export.serving.coverage import measure_coverage, merged_counts, traffic_classes
from tfwarm_export.serving.load_cost import compile_ms, load_cost, record_costs
from tfwarm_export.planning.tensor_inputs import solve_failed_record
from tfwarm_export.serving.replay import RecordResult, Replayer
from tfwarm_export.report import CheckReport, WarmupReport, results_table
from tfwarm_export.planning.requests import build_log
from tfwarm_export.values.synth import PLANNED, SAFE, record_values
from tfwarm_export.traffic import TrafficSelection
from tfwarm_export.serving.warmup_file import parse_records, read_records, serialize_logs, staged_write, warmup_path

log = logging.getLogger("tfwarm_export")


def plan(export_dir: str | os.PathLike, config: WarmupConfig | None = None, **options: Any) -> WarmupPlan:
    """What ``add_warmup`` would write, without writing anything.

    The signatures are read from ``saved_model.pb`` as TF Serving reads them, under the
    server configuration the options name (batching file, platform config, the version's
    ``batching_params.pbtxt``), and one record is planned per (signature, batch size, shape
    variant). Nothing is loaded into a session and nothing is written.

    Args:
      export_dir: the SavedModel version directory (``base_path/<version>``).
      config: the options; None means the defaults.
      **options: ``WarmupConfig`` fields, merged over ``config`` (e.g. ``batch_sizes=[1, 8]``).

    Returns:
      The plan: its ``records``, the signatures ``skipped`` with their reasons, ``notes``
      and ``summary()`` / ``to_json()`` for people and machines.

    Raises:
      SavedModelError: no SavedModel at ``export_dir``, or no MetaGraph with the tags.
      OpLibraryError: the graph needs ops no installed package registers.
      SignatureError: a signature named in ``signatures`` is not in the export.
      BatchingError: the batch sizes or batching file are invalid.
      ServingConfigError: the platform config or ``saved_model_config.pb`` is invalid.
      ConfigKeyError: a key of ``overrides``/``dim_sizes``/``shapes``/a dataset names nothing.
      OptionError: options that contradict each other or a value out of range.
      PlanError: over 1000 records, or an input that cannot be planned (unknown rank).
      DatasetError: the dataset or traffic does not fit the signatures it is meant to feed.

    Example:
        >>> plan = tfwarm_export.plan("export/1", batch_sizes=[1, 8])  # doctest: +SKIP
        >>> print(plan.summary())  # doctest: +SKIP
    """
    return plan_context(resolve(resolve_config(config, **options), export_dir))


def plan_context(context: Context) -> WarmupPlan:
    """The plan for a resolved ``context``: the traffic is selected first (``select``), then the
    planner runs on the context and that selection."""
    context = select(context)
    return make_plan(context.model, context.config, context.server, context.wanted, selection=context.selection,
                     inputs=context.inputs)


def select(context: Context) -> Context:
    """``context`` with its traffic selection made, once, at the edge: the one given as
    ``traffic=`` (a ``TrafficSelection``), a Beam pipeline on ``config.runner``, or the local
    scan, all under the server and signatures ``context`` resolved, so they select alike."""
    config = context.config
    if context.selection is not None:
        return context
    if config.runner and (config.traffic is not None or config.previous_version is not None) \
            and not isinstance(config.traffic, TrafficSelection):
        try:
            from tfwarm_export.beam import run_selection  # the [beam] extra, only when asked for
        except ImportError as e:
            raise PlanError(f"runner={config.runner!r}: {e}") from None
        return context.with_selection(run_selection(context=context))
    return context.with_selection(select_traffic(context.model, context.wanted, config, context.batching))


def build_logs(warmup_plan: WarmupPlan, strategy: str = PLANNED) -> list[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records for a plan, without replaying or writing them.

    Values derive from ``plan.seed`` (and the plan's sampled rows), so the same plan
    always gives the same records: what ``add_warmup`` would write before replay.

    Args:
      warmup_plan: a plan from ``plan``.
      strategy: ``"planned"`` (the values the plan chose) or ``"safe"`` (the fallback
        values a failing record is retried with: zeros, empty strings, a domain's low end).

    Returns:
      One ``tensorflow_serving.apis.prediction_log_pb2.PredictionLog`` per planned record,
      in plan order.

    Raises:
      PlanError: a planned value cannot be encoded as its input's dtype.
    """
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


@dataclass(frozen=True)
class Built:
    """One record through ``add``'s pipeline: as planned, as built (its PredictionLog), and
    how its values were made. Kept together, so a retry or a budget cut changes one item,
    never several lists held in step by index."""

    record: PlannedRecord
    log: prediction_log_pb2.PredictionLog
    how: Mapping[str, Any]


def _build(warmup_plan: WarmupPlan) -> list[Built]:
    """Every planned record as the PredictionLog it becomes (values from the plan's seed)."""
    built = []
    for record in warmup_plan.records:
        values, how = _values(warmup_plan, record)
        try:
            built.append(Built(record, build_log(record, values, warmup_plan.model_name), how))
        except (TypeError, ValueError) as e:  # values tf.make_tensor_proto cannot encode
            raise PlanError(f"signature {record.signature!r} ({record.key}): the values for "
                            f"{[i.alias for i in record.inputs]} cannot be encoded as their dtypes "
                            f"({e}); check overrides= for these inputs.") from None
    return built


def _retry(replayer: Replayer, warmup_plan: WarmupPlan, item: Built, result: RecordResult,
           iterations: int) -> tuple[Built, RecordResult] | None:
    """A failed record retried with sizes and values solved from the graph's checks (issue 26),
    then safe values, then larger default dims; on failure ``result.error`` gathers every
    attempt and the fix to try."""
    record = item.record
    attempts = [(record, SAFE, "safe values (zeros/empty/defaults)")]
    solved = solve_failed_record(replayer.meta_graph, record)  # solve the failing check first
    if solved is not None:
        attempts.insert(0, (solved, PLANNED, "sizes and values solved from the graph's checks"))
    bigger = _with_retry_dims(record)
    if bigger is not None:
        attempts += [(bigger, PLANNED, f"unknown dims at {RETRY_DIM_SIZE}"),
                     (bigger, SAFE, f"safe values with unknown dims at {RETRY_DIM_SIZE}")]
    errors, last = [], result
    for candidate, strategy, label in attempts:
        values, how = _values(warmup_plan, candidate, strategy)
        retry_log = build_log(candidate, values, warmup_plan.model_name)
        (retry,) = replayer.replay(parse_records(serialize_logs([retry_log])), iterations=iterations)
        if retry.ok:
            log.warning("record %d (%s) failed with planned values (%s); passed with %s",
                        result.index, record.signature, result.error, label)
            retry.index = result.index
            return Built(candidate, retry_log, how), retry
        errors.append(f"retried with {label}: {retry.error}")
        last = retry if retry.failed_node else last
    hint = (_fix_hint(record, _rejection(replayer, record, last))
            if any("TensorFlow error" in e for e in errors) else "")
    result.error = " | ".join([result.error] + errors + ([hint] if hint else []))
    return None


def _replay_with_retry(replayer: Replayer, warmup_plan: WarmupPlan, built: list[Built],
                       iterations: int = 2, threads: int = 1) -> tuple[list[RecordResult], list[Built]]:
    """Replay every record; retry a failure (``_retry``). Returns the results and the records
    as finally built (a retried record may have new values or shapes)."""
    results = replayer.replay(parse_records(serialize_logs([b.log for b in built])),
                              iterations=iterations, threads=threads)
    final = list(built)
    for i, result in enumerate(results):
        if not result.ok:
            fixed = _retry(replayer, warmup_plan, built[i], result, iterations)
            if fixed is not None:
                final[i], results[i] = fixed
    for result, item in zip(results, final):
        result.inputs = dict(item.how)
    return results, final


def add_warmup(export_dir: str | os.PathLike, config: WarmupConfig | None = None, *,
               context: Context | None = None, **options: Any) -> WarmupReport:
    """Write ``assets.extra/tf_serving_warmup_requests`` for ``export_dir`` and replay it.

    Options are ``WarmupConfig`` fields (e.g. ``batch_sizes=[1, 8]``); ``context`` is one
    already resolved (``context.resolve``). Every record
    is replayed (unless ``replay=False``) from its serialized bytes; a failing one
    is retried once with safe values. Only when all pass is the file written to a
    temp name, read back byte for byte, and renamed into place. On any failure the
    directory is left as it was and the error names record, signature and cause.

    One pipeline: plan -> build -> replay and retry -> budget -> write.

    Args:
      export_dir: the SavedModel version directory (``base_path/<version>``).
      config: the options; None means the defaults.
      context: an already resolved ``Context`` (``tfwarm_export.context.resolve``); None
        resolves one from ``export_dir`` and the options.
      **options: ``WarmupConfig`` fields, merged over ``config``.

    Returns:
      The report: the plan, each record's replay result and first/second-run times,
      ``path`` (where the file was written; None when ``replay`` found a failure),
      ``ok``, the privacy note, and ``summary()`` / ``to_json()``.

    Raises:
      ReplayError: a record failed replay (``error.report`` holds the report); nothing written.
      WarmupFileError: the file exists and ``overwrite`` is False, or cannot be written.
      OptionError: options that contradict each other (``load_budget`` with ``replay=False``)
        or a value out of range.
      PlanError: the plan cannot be built, or it leaves an allowed batch size cold, so the
        file would fail ``check``.
      ConfigKeyError: an option key names no signature, input or feature.
      SavedModelError: no SavedModel, no MetaGraph with the tags, or the model fails to load.
      OpLibraryError: the graph needs ops no installed package registers.
      SignatureError: a signature named in ``signatures`` is not in the export.
      BatchingError: the batch sizes or batching file are invalid.
      ServingConfigError: the platform config or ``saved_model_config.pb`` is invalid.
      DatasetError: the dataset or traffic does not fit, or a Beam run over it failed.

    Example:
        >>> report = tfwarm_export.add_warmup("export/1", batch_sizes=[1, 8, 32])  # doctest: +SKIP
        >>> report.ok  # doctest: +SKIP
        True
    """
    if context is None:
        context = resolve(resolve_config(config, **options), export_dir)
    warmup_plan = plan_context(context)
    unwarmed = unwarmed_batch_sizes(context, warmup_plan)
    if unwarmed:  # the file would fail its own check: refused before anything is built
        raise PlanError("the plan leaves allowed batch sizes cold, so `tfwarm check` would reject "
                        "the file; nothing was written:\n  " + "\n  ".join(unwarmed)
                        + "\nLeave batch_sizes= unset (every allowed size is warmed) or list them all.")
    built = _build(warmup_plan)
    report = WarmupReport(export_dir=context.export_dir, path=None, plan=warmup_plan)
    _describe_data(report)
    report.warnings = list(context.server.warnings)
    counts = traffic_classes(warmup_plan.samples)
    rule = context.batching.rule if context.batching is not None else None
    if context.config.replay:
        built = _replay_stage(context, report, built, merged_counts(counts, rule) if counts else None)
    if counts:  # what share of the data's requests the file warms
        sources = ", ".join(sorted({s.source for s in report.plan.samples.values()}))
        report.coverage = measure_coverage(report.plan.classes(), counts, sources, rule=rule)
    if report.budget is not None and report.budget.applied:
        _describe_data(report)  # again: the cut changed the records
    report.xla_warnings = xla_warnings(report.plan, report.results)
    _write(context, report, built)
    return report


def _replay_stage(context: Context, report: WarmupReport, built: list[Built],
                  weights: Mapping | None) -> list[Built]:
    """Replay as TF Serving's load would, then apply ``load_budget`` (the kept file is
    replayed again); returns the records kept, as finally built."""
    server, warmup_plan = context.server, report.plan
    iters = warmup_plan.copies * server.num_request_iterations  # what the costs are measured over
    runs, threads = replay_settings(context, warmup_plan.copies)  # as check replays
    built = _replay(context, warmup_plan, built, runs, threads, report)
    report.replayed, report.replay_runs, report.replay_threads = True, runs, threads
    budget_s = context.config.load_budget_s  # validated when the config was built
    if budget_s is not None:
        classes = report.plan.classes()
        try:
            report.budget = choose_within_budget(classes, record_costs(report.results, iters), weights,
                                                 budget_s * 1000.0, threads, labels=[c.label() for c in classes],
                                                 rule=context.batching.rule if context.batching else None)
        except ValueError as e:
            raise PlanError(f"load_budget: {e}; nothing was written.") from None
        if report.budget.applied:  # the kept file is replayed and checked as always
            built = [built[i] for i in report.budget.kept]
            records = tuple(b.record for b in built)
            kept = dataclasses.replace(report.plan, records=records, xla_compiles={
                sig: len({r.request_class(report.plan.batching) for r in records if r.signature == sig})
                for sig in report.plan.xla_compiles})
            built = _replay(context, kept, built, runs, threads, report)
    report.load_cost = load_cost(report.results, report.plan.classes(), threads, iters)
    if report.budget is not None and report.budget.applied:
        report.budget.measured_ms = report.load_cost["total_ms"]
    return built


def _write(context: Context, report: WarmupReport, built: list[Built]) -> None:
    """Stage, read back and rename the file: what TF Serving will read is what was replayed.
    ``iterations``: each record back to back ``copies`` times, as TF Serving reads them in order."""
    export_dir = context.export_dir
    records = [r for r in serialize_logs([b.log for b in built]) for _ in range(report.plan.copies)]
    _verify(context, records, report)
    report.file_bytes = sum(len(r) for r in records)
    with staged_write(export_dir, records, overwrite=context.config.overwrite) as tmp:
        if read_records(tmp) != records:
            raise WarmupFileError(f"read-back of {tmp} differs from the records written; the "
                                  f"filesystem under {export_dir} is not storing files faithfully.")
    report.path = warmup_path(export_dir)
    log.info("wrote %d warmup records to %s", len(records), report.path)


def _verify(context: Context, records: list[bytes], report: WarmupReport) -> None:
    """``check``'s own rules (``check.rules_stage``) on the exact bytes about to be written: a
    file ``check`` would reject is refused, whatever cut or retry led to it; nothing is written."""
    path = warmup_path(context.export_dir)
    problems = rules_stage(context, parse_records(records, path), path).problems
    if problems:
        cause = " (after the load budget's cut)" if report.budget is not None and report.budget.applied else ""
        raise PlanError(f"the records to write{cause} break rules `tfwarm check` enforces, so the file "
                        "was not written (an existing warmup file is kept):\n  " + "\n  ".join(problems))


def unwarmed_batch_sizes(context: Context, warmup_plan: WarmupPlan) -> list[str]:
    """What ``check`` would reject in the plan's batch sizes (``check.batching_problems``)."""
    classes = warmup_plan.classes()
    sizes: dict[str, set[int]] = {}
    for record, rc in zip(warmup_plan.records, classes):
        if record.request_type != MULTI_INFERENCE:
            sizes.setdefault(rc.signature, set()).update([rc.batch_size] if rc.batch_size else [])
    return batching_problems(context, {k: sorted(v) for k, v in sizes.items()}, classes)


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


def _replay(context: Context, warmup_plan: WarmupPlan, built: list[Built], runs: int, threads: int,
            report: WarmupReport) -> list[Built]:
    """Replay ``built`` in a freshly loaded model, as TF Serving's load would; any failure raises.
    ``report.results`` and ``report.plan`` become what was replayed (retries included)."""
    export_dir = context.export_dir
    with context.replayer() as replayer:
        report.load_ms = round(replayer.load_ms, 3)
        results, built = _replay_with_retry(replayer, warmup_plan, built, runs, threads)
    report.results = results
    report.plan = dataclasses.replace(warmup_plan, records=tuple(b.record for b in built))
    failures = [r for r in results if not r.ok]
    if failures:
        report.replayed = True
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
            f"{len(failures)} of {len(built)} warmup record(s) for {export_dir} failed "
            "replay, so TF Serving would fail to load this model with them; nothing was "
            "written (an existing warmup file is kept).\n  " + "\n  ".join(lines)
            + "\nFix the inputs with overrides=/dim_sizes=/shapes= or leave the signature "
            "out with signatures=[...].", report)
    return built


def xla_warnings(warmup_plan: WarmupPlan, results: list[RecordResult]) -> dict[str, str]:
    """The plan's XLA flags, with the per-shape compile cost measured in replay (first - second run)."""
    out = {}
    for sig, where in sorted(warmup_plan.xla.items()):
        out[sig] = analysis.xla_shape_warning(where, DEFAULT_DIM_SIZE, compile_ms(results, sig))
    return out


def check(export_dir: str | os.PathLike, config: WarmupConfig | None = None, **kwargs: Any) -> CheckReport:
    """Validate an existing warmup file against TF Serving's rules, and replay it.

    Broken rules (GZIP, no TFRecord framing, unknown signatures, wrong aliases, dtypes or
    shapes, batches over ``max_batch_size``, allowed sizes left unwarmed, over 1000
    records, a record that fails replay) are reported in ``problems``, not raised.
    The server is resolved exactly as ``add_warmup`` resolves it (``context.resolve``),
    so ``check`` passes every file ``add_warmup`` keeps.

    Args:
      export_dir: the SavedModel version directory the file is for.
      config: the options (``batching_parameters``, ``tags``, ``platform_config``,
        ``ignore_per_model_batching``, ``op_libraries``, ``replay``, ``traffic``...);
        None means the defaults.
      **kwargs: ``WarmupConfig`` fields merged over ``config``, plus ``path`` (the file;
        default the model's own ``assets.extra/tf_serving_warmup_requests``) and
        ``context`` (an already resolved ``Context``). With ``traffic`` (any source
        ``add_warmup`` reads) the report says what share of its requests the file warms,
        in ``coverage``.

    Returns:
      A ``CheckReport``: ``ok`` is True when no rule is broken; ``problems`` has one line
      per broken rule and ``warnings`` what does not fail the check.

    Raises:
      SavedModelError: no SavedModel at ``export_dir``, or no MetaGraph with the tags.
      OpLibraryError: the graph needs ops no installed package registers.
      BatchingError: the batching file is invalid.
      ServingConfigError: the platform config is invalid.
      OptionError: options that contradict each other or a value out of range.
      DatasetError: the ``traffic`` cannot be read.

    A missing or unreadable warmup file is not raised: it is the report's problem.

    Example:
        >>> tfwarm_export.check("export/1").ok  # doctest: +SKIP
        True
    """
    return check_warmup_file(export_dir, config, **kwargs)


__all__ = ["plan", "build_logs", "add_warmup", "check", "results_table", "xla_warnings"]
