"""Issue 14: what running each warmup record 1, 2 or 3 times buys, and what it costs at load.

TF Serving runs each warmup record ``num_request_iterations`` times (default 1);
``tfwarm add --iterations N`` gets the same effect by writing each record N times.
For every model of the benchmark suite (``run_suite.CASES``, fewer rows to stay
short) and every row (signature, batch size, shape), in fresh processes via
``tfwarm_export.bench``:

  cold first      first request after load, no warmup file;
  warmed first_k  first (fresh-valued) request after replaying the file written with
                  ``iterations=k``, for k = 1, 2, 3;
  steady          median of later requests, each after the same idle gap (pooled over
                  all warmed processes); b2b = back-to-back median.

  penalty removed_k = (cold first - warmed first_k) / (cold first - steady)
  load cost_k       = time to replay the k-copy file at load (median over processes)

The settings run interleaved (repeat r: k=1 with its cold process, then k=2, k=3),
so drift on a shared machine hits all three alike. The default for
``WarmupConfig.iterations`` is chosen from this table by the rule in ``choose``, and
the section "iterations" of benchmarks/RESULTS.md is rewritten with the table,
the rule and the reason (numbers stored in benchmarks/results/iterations.json;
``render`` writes the text from them).

Run from the repository root:  python benchmarks/bench_iterations.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import tensorflow as tf  # noqa: E402

import tfwarm_export as tw  # noqa: E402
from tfwarm_export.bench import command as tb  # noqa: E402
from tfwarm_export.config import DEFAULT_ITERATIONS  # noqa: E402

import results_doc  # noqa: E402
import run_suite  # noqa: E402

ITERATIONS = (1, 2, 3)
GAIN_NEEDED = 0.5  # percentage points of median penalty removed that an extra copy must buy
COMMAND = "python benchmarks/bench_iterations.py"
SECTION = "iterations"
# Fewer rows than the suite (one or two shapes per model) to keep the run short.
OPTIONS = {
    "mlp": {"batch_sizes": [1, 8], "signatures": ["serving_default"]},
    "cnn": {"batch_sizes": [1], "signatures": ["serving_default"]},
    "xla_seq": {"batch_sizes": [1], "signatures": ["serving_default"],
                "dim_sizes": {"tokens": {1: [16, 32]}}},
    "example": {"batch_sizes": [1, 8]},
}


def log(msg: str) -> None:
    print(msg, flush=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def measure(case, tmp: str, repeats: int, steady_n: int) -> list[dict]:
    path = os.path.join(tmp, case.name, "1")
    case.export(case.build(), path)
    options = OPTIONS[case.name]
    rows: dict[int, dict] = {}
    for r in range(repeats):
        for k in ITERATIONS:
            tw.add_warmup(path, iterations=k, overwrite=True, replay=(r == 0 and k == 1), **options)
            rep = tb.bench(path, iterations=steady_n, warmup="existing", repeats=1, cold=(k == 1),
                           **options)
            for row in rep.rows:
                d = rows.setdefault(row.index, {"label": row.label, "cold": [], "steady": [], "hot": [],
                                                **{f"warm{j}": [] for j in ITERATIONS},
                                                **{f"replay{j}": [] for j in ITERATIONS},
                                                "records": {}, "errors": []})
                d["cold"] += row.cold_first_samples
                d[f"warm{k}"] += row.warmed_first_samples
                d["steady"] += row.steady_samples
                d["hot"] += row.hot_samples
                if row.replay_ms is not None:
                    d[f"replay{k}"].append(row.replay_ms)
                d["records"][k] = rep.num_warmup_records
                if row.error or row.replay_failures:
                    d["errors"].append(row.error or row.replay_failures[0])
            log(f"[iterations] {case.name} repeat {r + 1}/{repeats} k={k}: "
                + ", ".join(f"{row.label}: warm {med(row.warmed_first_samples) or float('nan'):.2f} ms"
                            for row in rep.rows))
    out = []
    for i, d in sorted(rows.items()):
        cold, steady = med(d["cold"]), med(d["steady"])
        res = {"model": case.name, "label": d["label"], "cold": cold, "steady": steady, "hot": med(d["hot"]),
               "errors": d["errors"], "records": d["records"]}
        for k in ITERATIONS:
            warm = med(d[f"warm{k}"])
            res[f"warm{k}"] = warm
            res[f"replay{k}"] = med(d[f"replay{k}"])
            res[f"removed{k}"] = (100 * (cold - warm) / (cold - steady)
                                  if None not in (cold, warm, steady) and cold > steady else None)
        out.append(res)
    return out


def choose(rows: list[dict]) -> tuple[int, str, dict]:
    """Smallest k whose median penalty removed is within GAIN_NEEDED points of the best k."""
    removed = {k: med([r[f"removed{k}"] for r in rows]) for k in ITERATIONS}
    cost = {k: med([r[f"replay{k}"] / r["replay1"] for r in rows
                    if r[f"replay{k}"] and r["replay1"]]) for k in ITERATIONS}
    best = max(removed.values())
    chosen = min(k for k in ITERATIONS if removed[k] >= best - GAIN_NEEDED)
    others = ", ".join(f"{k}: {removed[k]:.2f} % at {cost[k]:.2f}x the load-time replay of 1"
                       for k in ITERATIONS)
    reason = (f"median penalty removed over {len(rows)} rows - {others}. The default is the smallest "
              f"count within {GAIN_NEEDED} percentage points of the best ({best:.2f} %): "
              f"iterations={chosen}.")
    return chosen, reason, {"removed": removed, "cost": cost}


def render(data: dict) -> str:
    """The RESULTS.md section, from the stored numbers alone (``main`` measures them)."""
    rows, repeats = data["rows"], data["repeats"]
    chosen, reason, _ = choose(rows)
    f = lambda v, spec=".2f": "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["## Record iterations (`benchmarks/bench_iterations.py`)", "",
             f"Generated by `{data['command']}` on {data['date']} in {data['wall_s']:.0f} s. "
             + results_doc.machine_sentence(data["facts_start"], data["facts_end"]), "",
             "Each model's file is written with `iterations=k` (each record k times back to back, the "
             "same runs as `num_request_iterations: k`), then replayed at load in fresh processes; the "
             "first request after it is a new request of the row's shape. Penalty removed = (cold first "
             "- warmed first) / (cold first - steady); steady follows the same idle gap as every first "
             f"request; b2b is back to back. Medians over {repeats} fresh process(es) per setting, the "
             "three settings interleaved.", "",
             "| model | row | cold first ms | steady ms | b2b ms | warmed first ms k=1 / 2 / 3 "
             "| penalty removed % k=1 / 2 / 3 | load replay ms k=1 / 2 / 3 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['label']} | {f(r['cold'])} | {f(r['steady'])} | {f(r['hot'])} | "
            + " / ".join(f(r[f"warm{k}"]) for k in ITERATIONS) + " | "
            + " / ".join(f(r[f"removed{k}"]) for k in ITERATIONS) + " | "
            + " / ".join(f(r[f"replay{k}"], ".0f") for k in ITERATIONS) + " |")
    errors = [f"{r['model']} {r['label']}: {e}" for r in rows for e in r["errors"]]
    lines += ["", f"**This run's choice: `iterations` = {chosen}.** Reason: {reason}"]
    if chosen != data["default_in_code"]:
        lines.append(f"(`tfwarm_export.config.DEFAULT_ITERATIONS` is {data['default_in_code']} in the "
                     "code that ran; this run alone does not move it.)")
    if errors:
        lines += ["", "Errors: " + "; ".join(errors[:5])]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per setting (default 3)")
    parser.add_argument("--steady", type=int, default=10, help="steady requests per warmed process")
    parser.add_argument("--models", default=",".join(OPTIONS), help="comma-separated suite models")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    facts_start = results_doc.machine_facts()
    wanted = args.models.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfwarm-iterations-") as tmp:
        for case in run_suite.CASES:
            if case.name in wanted:
                log(f"[iterations] {case.name}: building and exporting")
                rows += measure(case, tmp, args.repeats, args.steady)
    command = f"{COMMAND} --repeats {args.repeats}" + (f" --steady {args.steady}" if args.steady != 10 else "") \
        + (f" --models {args.models}" if wanted != list(OPTIONS) else "")
    data = {"command": command, "repeats": args.repeats,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wall_s": time.perf_counter() - start, "facts_start": facts_start,
            "facts_end": results_doc.machine_facts(), "rows": rows, "default_in_code": DEFAULT_ITERATIONS}
    text = results_doc.publish(SECTION, data, render, args.results)
    print(text)
    log(f"[iterations] wrote section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
