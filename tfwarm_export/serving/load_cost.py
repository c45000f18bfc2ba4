"""What a warmup file costs at load: each record's first run, and the whole replay.

TF Serving replays the file before the version becomes ready, so the time it takes is
added to every load. Each record runs ``num_request_iterations`` times; with
``num_model_warmup_threads`` > 1 threads take the next record as they finish, so the
file's replay time is the wall time of that schedule, not the sum.
"""
from __future__ import annotations

from typing import Sequence

from tfwarm_export.specs.request_class import RequestClass


def replay_ms(costs_ms: Sequence[float], threads: int = 1) -> float:
    """The replay time of records of these costs, in file order: the sum on one thread; on
    ``threads``, each thread takes the next record, and the last to finish ends the load."""
    if threads <= 1:
        return float(sum(costs_ms))
    ends = [0.0] * threads
    for c in costs_ms:
        i = min(range(threads), key=lambda t: (ends[t], t))
        ends[i] += c
    return max(ends)


def record_costs(results, iterations: int = 1) -> list[float]:
    """Per record: first run plus (iterations - 1) warm runs, as the server replays it."""
    out = []
    for r in results:
        first = r.first_ms or 0.0
        again = r.second_ms if r.second_ms is not None else first
        out.append(first + max(0, iterations - 1) * again)
    return out


def nothing_new(classes: Sequence[RequestClass]) -> list[tuple[int, int]]:
    """``(record, earlier record of the same class)``: records that warm nothing new."""
    first: dict[RequestClass, int] = {}
    out = []
    for i, rc in enumerate(classes):
        if rc in first:
            out.append((i, first[rc]))
        else:
            first[rc] = i
    return out


def load_cost(results, classes: Sequence[RequestClass], threads: int = 1,
              iterations: int = 1) -> dict:
    """The report's ``load_cost``: per-record first runs, the file's replay time, repeats."""
    costs = record_costs(results, iterations)
    return {"total_ms": round(replay_ms(costs, threads), 3),
            "sum_ms": round(sum(costs), 3), "threads": threads, "iterations": iterations,
            "records": [{"index": r.index, "first_ms": r.first_ms, "cost_ms": round(c, 3)}
                        for r, c in zip(results, costs)],
            "nothing_new": [{"index": i, "same_class_as": j} for i, j in nothing_new(classes)]}


def compile_ms(results, signature: str) -> float | None:
    """The median per-shape compile cost of ``signature``'s passing records: first minus
    second run (XLA compiles on the first run of each shape), or None when none was timed."""
    costs = sorted(r.first_ms - r.second_ms for r in results if r.signature == signature and r.ok
                   and r.first_ms is not None and r.second_ms is not None)
    return costs[len(costs) // 2] if costs else None


def load_cost_lines(cost: dict) -> list[str]:
    how = (f"wall time on {cost['threads']} warmup threads" if cost["threads"] > 1 else "sum of runs")
    lines = [f"  load cost: replaying the file adds ~{cost['total_ms'] / 1000:.3g} s to each load "
             f"({how}; {len(cost['records'])} record(s))"]
    dup = cost["nothing_new"]
    if dup:
        lines.append(f"  {len(dup)} record(s) warm nothing new (an earlier record has the same class): "
                     + ", ".join(f"{d['index']} (= {d['same_class_as']})" for d in dup[:10])
                     + (" ..." if len(dup) > 10 else ""))
    return lines
