"""What one ``tfwarm bench`` run measured: rows of samples, their medians and ratios, the table.

Plain data and arithmetic, no TensorFlow: the parent process fills rows from the
workers' JSON results, and the report, JSON and plot read them.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from typing import Sequence

DEFAULT_IDLE_MS = 50.0


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
                 f"  model load ~{fmt_ms(self.load_ms)} ms; replaying the file took ~{fmt_ms(self.replay_ms)} ms "
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


def fmt_ms(v: float | None, spec: str = ".1f") -> str:
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
                     f"{fmt_ms(r.cold_first_ms, '.2f'):>9} {fmt_ms(r.warmed_first_ms, '.2f'):>9} "
                     f"{fmt_ms(r.steady_ms, '.2f'):>8} {fmt_ms(r.steady_hot_ms, '.2f'):>7} "
                     f"{fmt_ms(r.warmed_over_steady, '.2f'):>11} "
                     f"{fmt_ms(r.cold_over_steady, '.1f'):>11}{mark}")
    return lines



def add_error(row: BenchRow, error: str) -> None:
    """Keep every worker's error: a failure in one repeat must not vanish in the next."""
    row.error = f"{row.error}; {error}" if row.error else error


def add_samples(row: BenchRow, mode: str, result: dict, repeat: int = 0) -> None:
    """Add one worker's samples to its row (``finish_row`` turns them into medians)."""
    if result.get("error"):
        add_error(row, f"{mode} worker (repeat {repeat + 1}): {result['error']}")
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


def finish_row(row: BenchRow) -> None:
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

