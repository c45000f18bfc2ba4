"""Reports: what was warmed, how replay went, and what to know about the file."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tfwarm_export.planning.records import WarmupPlan
from tfwarm_export.serving.load_cost import load_cost_lines
from tfwarm_export.serving.replay import RecordResult


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def warning_lines(results: list[RecordResult]) -> list[str]:
    seen: dict[str, list[int]] = {}
    for r in results:
        for w in r.warnings:
            seen.setdefault(w, []).append(r.index)
    return [f"  warning (records {idx}): {w}" for w, idx in seen.items()]


def _value_lines(results: list[RecordResult], limit: int = 20) -> list[str]:
    """How each input's values were made (e.g. "decoded: DecodeJpeg 224x224x3"), once per kind."""
    seen = list(dict.fromkeys((r.signature, alias, how) for r in results
                              for alias, how in sorted(r.inputs.items())))
    if not seen:
        return []
    lines = ["  values:"] + [f"    {sig}/{alias}: {how}" for sig, alias, how in seen[:limit]]
    if len(seen) > limit:
        lines.append(f"    ... and {len(seen) - limit} more (see --json)")
    return lines


def results_table(results: list[RecordResult]) -> list[str]:
    lines = [f"  {'#':>4}  {'signature':<28} {'type':<20} {'batch':>5} {'1st ms':>9} {'2nd ms':>9}  status"]
    for r in results:
        status = "ok" if r.ok else f"FAILED: {r.error}"
        lines.append(f"  {r.index:>4}  {r.signature[:28]:<28} {r.log_type:<20} {str(r.batch_size):>5} "
                     f"{_ms(r.first_ms):>9} {_ms(r.second_ms):>9}  {status}")
    return lines


@dataclass
class WarmupReport:
    """Result of ``add_warmup`` (and ``save``/``export``): the plan, the file, and the replay of every record.

    Attributes:
      export_dir: the version directory warmed.
      path: where the warmup file was written; None when nothing was written.
      plan: the ``WarmupPlan`` the file was built from.
      results: one replay result per record (first/second-run ms, ``ok``, ``error``).
      replayed: whether the records were replayed (False with ``replay=False``).
      load_ms: how long loading the model for replay took.
      data_source: what the values came from (dataset, traffic), when not synthetic.
      privacy: the privacy note: whether user rows were copied into the file.
      file_bytes: the size of the file written.
      warnings: what deserves attention but did not fail (e.g. warmup disabled in the
        platform config).
      xla_warnings: signature -> the warning for XLA signatures warmed at one shape only.
      replay_runs: runs per record in replay (2: TF Serving's first request, then warm).
      replay_threads: threads the file was replayed on (``num_model_warmup_threads``).
      load_cost: what replaying the file adds to each load (per-record first runs, wall time).
      budget: what ``load_budget`` kept and cut, when it was given.
      coverage: the share of the data's requests the file warms, with traffic or a dataset.
    """

    export_dir: str
    path: str | None
    plan: WarmupPlan
    results: list[RecordResult] = field(default_factory=list)
    replayed: bool = False
    load_ms: float | None = None
    data_source: dict[str, Any] | None = None
    privacy: str = "Values are synthetic: no user data is stored in the warmup file."
    file_bytes: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. warmup disabled in the platform config
    xla_warnings: dict[str, str] = field(default_factory=dict)  # signature -> XLA shape warning
    replay_runs: int = 2
    replay_threads: int = 1
    load_cost: dict | None = None  # serving.load_cost.load_cost: per-record first runs, replay time
    budget: Any = None             # planning.budget.BudgetChoice when load_budget was given
    coverage: Any = None           # serving.coverage.Coverage of the data's requests by the file

    @property
    def ok(self) -> bool:
        """True only when every record was replayed and passed: nothing replayed is not ok."""
        return self.replayed and bool(self.results) and all(r.ok for r in self.results)

    @property
    def failures(self) -> list[RecordResult]:
        return [r for r in self.results if not r.ok]

    @property
    def cold_ms(self) -> float:
        return sum(r.first_ms or 0 for r in self.results)

    @property
    def warm_ms(self) -> float:
        return sum(r.second_ms or 0 for r in self.results)

    def to_dict(self) -> dict:
        """The report as plain JSON-able data (what ``--json`` prints).

        Returns:
          A dict with ``ok``, ``path``, the plan, every record's result and the notes.
        """
        return {
            "export_dir": self.export_dir,
            "path": self.path,
            "ok": self.ok,
            "num_records": len(self.plan.records),
            "file_bytes": self.file_bytes,
            "replayed": self.replayed,
            "load_ms": self.load_ms,
            "first_run_total_ms": round(self.cold_ms, 3),
            "second_run_total_ms": round(self.warm_ms, 3),
            "privacy": self.privacy,
            "data_source": self.data_source,
            "plan": self.plan.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "warnings": self.warnings,
            "xla_warnings": self.xla_warnings,
            "replay_runs": self.replay_runs,
            "replay_threads": self.replay_threads,
            "load_cost": self.load_cost,
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "coverage": self.coverage.to_dict() if self.coverage is not None else None,
        }

    def to_json(self) -> str:
        """The report as JSON.

        Returns:
          str: ``to_dict()`` as indented JSON with sorted keys (what ``--json`` prints).
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def summary(self) -> str:
        """The report for people: what was written, the replay table, notes, warnings, privacy.

        Returns:
          str: several lines, as ``tfwarm add`` prints them.
        """
        head = "wrote" if self.path else "did NOT write"
        copies = f" x {self.plan.copies} copies" if self.plan.copies > 1 else ""
        lines = [f"tfwarm: {head} {len(self.plan.records)} warmup record(s){copies} "
                 f"to {self.path or self.export_dir}"]
        lines += ["", self.plan.summary()]
        if self.replayed:
            how = ("each record run twice, as TF Serving's first request would and then warm"
                   if self.replay_runs == 2 else f"each record run {self.replay_runs} times, as the "
                   "server's iterations give")
            if self.replay_threads > 1:
                how += f", on {self.replay_threads} threads"
            lines += ["", f"Replay (model load {_ms(self.load_ms)} ms; {how}):"]
            lines += results_table(self.results)
            lines += warning_lines(self.results)
            lines += _value_lines(self.results)
            if self.results and self.warm_ms > 0:
                lines.append(f"  first runs total {self.cold_ms:.1f} ms vs second runs {self.warm_ms:.1f} ms: "
                             f"the warmup file moves ~{self.cold_ms - self.warm_ms:.0f} ms of cold-start "
                             "cost from the first requests to model load.")
            if self.load_cost:
                lines += load_cost_lines(self.load_cost)
            if self.budget is not None:
                lines += self.budget.summary_lines()
            if self.coverage is not None:
                lines += self.coverage.summary_lines()
        else:
            lines += ["", "Replay skipped (replay=False): the file was not run against the model, so "
                          "nothing is verified (ok is False); run `tfwarm check` on it."]
        for sig, w in sorted(self.xla_warnings.items()):
            lines.append(f"  WARNING {sig}: {w}")
        lines += ["", f"Privacy: {self.privacy}"]
        return "\n".join(lines)


@dataclass
class CheckReport:
    """Result of ``check``: one problem string per rule broken, plus replay results.

    Attributes:
      export_dir: the version directory the file was checked against.
      path: the warmup file checked.
      num_records: records in the file.
      problems: one line per TF Serving rule the file breaks; empty when ``ok``.
      results: each record's replay result (when replayed).
      batch_sizes: signature -> the (padded) batch sizes the file warms.
      replayed: whether the records were replayed.
      warnings: worth acting on, but the file is valid (warmup disabled, XLA at one shape).
      server: the TF Serving settings the check ran under (batching, platform config).
      coverage: with ``traffic=``, the share of its requests the file warms.
      load_cost: what replaying the file adds to each load, after replay.
    """

    export_dir: str
    path: str
    num_records: int = 0
    problems: list[str] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    batch_sizes: dict[str, list[int]] = field(default_factory=dict)  # signature -> padded sizes warmed
    replayed: bool = False
    warnings: list[str] = field(default_factory=list)  # worth acting on, but the file is valid
    server: Any = None  # serving_config.ServerSettings the check ran under
    coverage: Any = None  # serving.coverage.Coverage, with traffic=
    load_cost: dict | None = None  # serving.load_cost.load_cost, after replay

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """The report as plain JSON-able data.

        Returns:
          dict: ``ok``, ``problems``, ``warnings``, batch sizes, coverage and each record's result.
        """
        return {"export_dir": self.export_dir, "path": self.path, "ok": self.ok,
                "num_records": self.num_records, "problems": self.problems,
                "batch_sizes": self.batch_sizes, "replayed": self.replayed, "warnings": self.warnings,
                "coverage": self.coverage.to_dict() if self.coverage is not None else None,
                "load_cost": self.load_cost,
                "server": self.server.to_dict() if self.server is not None else None,
                "results": [r.to_dict() for r in self.results]}

    def to_json(self) -> str:
        """The report as JSON.

        Returns:
          str: ``to_dict()`` as indented JSON with sorted keys (what ``--json`` prints).
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def summary(self) -> str:
        """The report for people: OK or the problems, batch sizes, replay table, warnings.

        Returns:
          str: several lines, as ``tfwarm check`` prints them.
        """
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        if self.ok and not self.replayed:
            verdict += " (static checks only; not replayed)"
        lines = [f"tfwarm check {self.path}: {verdict} ({self.num_records} record(s))"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.server is not None:
            lines += [ln for ln in self.server.summary_lines(notes=True) if not ln.startswith("  warning:")]
        for sig, sizes in sorted(self.batch_sizes.items()):
            lines.append(f"  {sig}: batch sizes {sizes}")
        if self.results and self.replayed:
            lines += results_table(self.results)
            lines += warning_lines(self.results)
            lines += _value_lines(self.results)
        if self.load_cost:
            lines += load_cost_lines(self.load_cost)
        if self.coverage is not None:
            lines += self.coverage.summary_lines()
        return "\n".join(lines)
