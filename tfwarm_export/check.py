"""``check``: validate any warmup file against TF Serving's rules, then replay it.

Whatever wrote the file (us, a hand-written script, another tool), this reports
one line per broken rule: framing, record cap, record types, signatures, aliases,
dtypes, shapes, batching limits and allowed-batch-size coverage.
"""
from __future__ import annotations

import os
from typing import Sequence

from tfwarm_export import progress
from tfwarm_export.batching import BatchingConfig, load_batching_parameters
from tfwarm_export.errors import WarmupFileError
from tfwarm_export.plan import MAX_RECORDS
from tfwarm_export.replay import Replayer, RecordProblem, RecordResult, _signature_name, prepare
from tfwarm_export.report import CheckReport
from tfwarm_export.signatures import DEFAULT_TAGS, read_signatures
from tfwarm_export.warmup_file import parse_records, read_records, warmup_path


def check_warmup_file(export_dir: str, *, path: str | None = None,
                      batching_parameters: str | BatchingConfig | None = None,
                      tags: Sequence[str] = DEFAULT_TAGS, replay: bool = True) -> CheckReport:
    """Check ``path`` (default: the model's own warmup file) against ``export_dir``."""
    export_dir = os.fspath(export_dir)
    path = os.fspath(path) if path else warmup_path(export_dir)
    batching = batching_parameters
    if batching is not None and not isinstance(batching, BatchingConfig):
        batching = load_batching_parameters(batching)
    model = read_signatures(export_dir, tags)
    report = CheckReport(export_dir=export_dir, path=path)
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
            sig = _signature_name(log)
            report.problems.append(f"record {i}" + (f" ({sig})" if sig else "") + f": {e}")
            report.results.append(RecordResult(i, sig, log.WhichOneof("log_type") or "unset",
                                               None, False, str(e)))
    for run in prepared.values():
        if run.log_type != "multi_inference_log":
            report.coverage.setdefault(run.signature, [])
            size = run.padded_to or run.batch_size
            if size is not None and size not in report.coverage[run.signature]:
                report.coverage[run.signature].append(size)
    for sig in report.coverage:
        report.coverage[sig].sort()
    if batching is not None and batching.allowed_batch_sizes:
        for sig, sizes in sorted(report.coverage.items()):
            missing = [s for s in batching.allowed_batch_sizes if s not in sizes]
            if missing:
                report.problems.append(
                    f"signature {sig!r}: allowed batch sizes {missing} are not warmed; the first "
                    f"request padded to each of them stays cold. Add records of those sizes "
                    f"(tfwarm add --batching-parameters {batching.source or 'FILE'} --overwrite).")
    if replay and prepared:
        with Replayer(export_dir, tags, batching) as replayer:
            report.replayed = True
            for i, run in progress.bar(sorted(prepared.items()), desc="replay", unit="record"):
                result = replayer.run_record(i, run, iterations=1)
                if not result.ok:
                    report.problems.append(f"record {i} ({run.signature}): replay failed: {result.error}")
                report.results.append(result)
        report.results.sort(key=lambda r: r.index)
    return report
