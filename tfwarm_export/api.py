"""The public entry points: ``plan``, ``build_logs``, ``add_warmup``, ``check``.

Flow, one way only: signatures -> plan -> values -> requests -> file -> replay
report. Each step lives in its own module; this one only wires them together.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export.check import check_warmup_file
from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.errors import ReplayError
from tfwarm_export.plan import WarmupPlan, make_plan
from tfwarm_export.replay import Replayer
from tfwarm_export.report import CheckReport, WarmupReport, results_table
from tfwarm_export.requests import build_log
from tfwarm_export.signatures import read_signatures
from tfwarm_export.synth import record_values
from tfwarm_export.warmup_file import read_logs, serialize_logs, staged_write, warmup_path

log = logging.getLogger("tfwarm_export")


def plan(export_dir: str | os.PathLike, config: WarmupConfig | None = None, **options: Any) -> WarmupPlan:
    """What ``add_warmup`` would write, without writing anything."""
    config = resolve_config(config, **options)
    model = read_signatures(os.fspath(export_dir), config.tags)
    return make_plan(model, config)


def build_logs(warmup_plan: WarmupPlan) -> list[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records for a plan (values derive from ``plan.seed``)."""
    return [build_log(r, record_values(r, warmup_plan.seed), warmup_plan.model_name)
            for r in warmup_plan.records]


def add_warmup(export_dir: str | os.PathLike, config: WarmupConfig | None = None,
               **options: Any) -> WarmupReport:
    """Write ``assets.extra/tf_serving_warmup_requests`` for ``export_dir`` and replay it.

    Options are ``WarmupConfig`` fields (e.g. ``batch_sizes=[1, 8]``). The file is
    written to a temp name, read back, replayed (unless ``replay=False``), and
    only then renamed into place; on any failure the directory is left as it
    was and the error says which record failed and why.
    """
    export_dir = os.fspath(export_dir)
    config = resolve_config(config, **options)
    warmup_plan = plan(export_dir, config)
    records = serialize_logs(build_logs(warmup_plan))
    report = WarmupReport(export_dir=export_dir, path=None, plan=warmup_plan,
                          file_bytes=sum(len(r) for r in records))
    with staged_write(export_dir, records, overwrite=config.overwrite) as tmp:
        if config.replay:
            logs = read_logs(tmp)  # replay what is on disk, framing included
            with Replayer(export_dir, config.tags, warmup_plan.batching) as replayer:
                report.load_ms = round(replayer.load_ms, 3)
                report.results = replayer.replay(logs)
            report.replayed = True
            if not report.ok:
                lines = [f"record {r.index} (signature {r.signature!r}, {r.log_type}, batch "
                         f"{r.batch_size}): {r.error}" for r in report.failures]
                raise ReplayError(
                    f"{len(report.failures)} of {len(logs)} warmup record(s) for {export_dir} failed "
                    "replay, so TF Serving would fail to load this model with them; nothing was "
                    "written (an existing warmup file is kept).\n  " + "\n  ".join(lines)
                    + "\nFix the inputs with overrides=/dim_sizes=/shapes= or leave the signature "
                    "out with signatures=[...].", report)
    report.path = warmup_path(export_dir)
    log.info("wrote %d warmup records to %s", len(records), report.path)
    return report


def check(export_dir: str | os.PathLike, **kwargs: Any) -> CheckReport:
    """Validate an existing warmup file; see ``check_warmup_file``."""
    return check_warmup_file(os.fspath(export_dir), **kwargs)


__all__ = ["plan", "build_logs", "add_warmup", "check", "results_table"]
