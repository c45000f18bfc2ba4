"""Request classes, coverage against traffic, load cost and the load budget (issue 21).

No timing is asserted: the selection is tested with fixed costs, and the end-to-end runs
check invariants that hold whatever the measured costs are.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import tfwarm_export as tw
from tfwarm_export import cli
from tfwarm_export.bench import command as tb
from tfwarm_export.planning.budget import choose_within_budget
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.serving.coverage import expected_cold_hits, measure_coverage, unwarmed_sizes
from tfwarm_export.specs.batching import BatchRule
from tfwarm_export.serving.load_cost import nothing_new, replay_ms
from tfwarm_export.specs.durations import parse_duration
from tfwarm_export.specs.request_class import RequestClass, class_of_log, request_class
from tfwarm_export.serving.warmup_file import parse_records, read_records, warmup_path

sys.path.insert(0, os.path.dirname(__file__))
from models_serving import xla_sequence_module  # noqa: E402

BATCHING = "max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
ALLOWED = (2, 4, 8)


def padded(n: int) -> int:
    return next(s for s in ALLOWED if s >= n)


def predict_log(sig: str, **inputs) -> prediction_log_pb2.PredictionLog:
    log = prediction_log_pb2.PredictionLog()
    req = log.predict_log.request
    req.model_spec.signature_name = sig
    for alias, value in inputs.items():
        req.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return log


# ----------------------------------------------------------------- the class definition


def test_request_class_pads_the_batch_and_keeps_every_exact_size():
    cfg = BatchingConfig(max_batch_size=8, allowed_batch_sizes=ALLOWED)
    a = class_of_log(predict_log("seq", ids=np.zeros((3, 5), np.int32), mask=np.zeros((3, 5), np.int32)),
                     cfg.padded_size)
    assert a == RequestClass("seq", "predict", 4, (("ids", (4, 5)), ("mask", (4, 5))))
    # a batch of 4 is the same Session run as a batch of 3 padded to 4; another length is not
    b = class_of_log(predict_log("seq", ids=np.ones((4, 5), np.int32), mask=np.ones((4, 5), np.int32)),
                     cfg.padded_size)
    c = class_of_log(predict_log("seq", ids=np.ones((4, 6), np.int32), mask=np.ones((4, 6), np.int32)),
                     cfg.padded_size)
    assert a == b and a != c
    assert a == request_class("seq", "predict", {"ids": (3, 5), "mask": (3, 5)}, cfg.padded_size)
    # without batching nothing is padded; an empty signature name is serving_default
    assert class_of_log(predict_log("", x=np.zeros((3, 2), np.float32))) == \
        RequestClass("serving_default", "predict", 3, (("x", (3, 2)),))
    # classify: the class is the number of examples, padded
    log = prediction_log_pb2.PredictionLog()
    log.classify_log.request.model_spec.signature_name = "cls"
    log.classify_log.request.input.example_list.examples.add()
    assert class_of_log(log, cfg.padded_size) == RequestClass("cls", "classify", 2, ())
    assert class_of_log(log).to_dict() == {"signature": "cls", "request_type": "classify",
                                           "batch_size": 1, "shape": {}}
    # bench uses this very definition
    assert tb.request_key(log, cfg) == class_of_log(log, cfg.padded_size)


def test_nothing_new_names_the_earlier_record_of_the_same_class():
    a, b = RequestClass("s", "predict", 2, (("x", (2, 3)),)), RequestClass("s", "predict", 2, (("x", (2, 4)),))
    assert nothing_new([a, b, a, b, a]) == [(2, 0), (3, 1), (4, 0)]


# ----------------------------------------------------------------- coverage counting


def test_coverage_counts_and_expected_cold_hits():
    a, b, c = (RequestClass("s", "predict", 2, (("x", (2, n)),)) for n in (3, 4, 5))
    d = RequestClass("t", "predict", 2, (("y", (2, 1)),))
    cov = measure_coverage([a, c], {a: 70, b: 20, c: 5, d: 5}, "logs", {"bad dtype": 3})
    assert (cov.requests, cov.covered) == (100, 75) and cov.fraction == pytest.approx(0.75)
    assert [(rc, n) for rc, n in cov.uncovered] == [(b, 20), (d, 5)]
    assert cov.by_signature["s"] == {"requests": 95, "covered": 75, "fraction": pytest.approx(75 / 95),
                                     "classes": 3, "uncovered_classes": 1}
    assert cov.cold_hits_per_load == 2
    assert cov.cold_hits_first[50] == pytest.approx((1 - 0.8 ** 50) + (1 - 0.95 ** 50))
    d_json = cov.to_dict()
    assert d_json["dropped"] == 3 and d_json["uncovered"][0] == {**b.to_dict(), "count": 20}
    assert expected_cold_hits([], 10, 50) == 0.0
    # t's only class is batch 2, which the file warms for s but not for t: the fix is a batch size
    assert cov.missing_batch_sizes == {"t": [2]} and d_json["missing_batch_sizes"] == {"t": [2]}
    assert any("no record has batch size(s) 2" in ln and "--batch-sizes" in ln for ln in cov.summary_lines())
    e = RequestClass("s", "predict", 8, (("x", (8, 3)),))
    assert measure_coverage([a, c], {a: 1, e: 1}).missing_batch_sizes == {"s": [8]}
    assert measure_coverage([a, c], {a: 1, b: 1}).missing_batch_sizes == {}  # b: a length, not a batch size


# ----------------------------------------------------------------- the budget selection


def test_parse_duration():
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120
    assert parse_duration("500ms") == pytest.approx(0.5) and parse_duration("20") == 20
    assert parse_duration(1.5) == 1.5 and parse_duration(" 1.5h ") == 5400
    for bad in ("", "fast", "30 parsecs", "-5s", "0", "1e3s", True):
        with pytest.raises(ValueError, match="load budget"):
            parse_duration(bad)


def test_a_kept_file_that_replays_over_its_budget_says_so():
    """Costs from the full replay are shared; the kept file's own load is the measure."""
    choice = choose_within_budget(["a", "b", "c"], [10.0, 10.0, 10.0], None, 15.0)
    assert choice.applied and not choice.over_budget  # no measurement yet: nothing claimed
    choice.measured_ms = 14.0
    assert not choice.over_budget and not any("OVER BUDGET" in ln for ln in choice.summary_lines())
    choice.measured_ms = 22.0
    assert choice.over_budget and choice.to_dict()["over_budget"] and choice.to_dict()["measured_ms"] == 22.0
    assert any("OVER BUDGET" in ln and "0.022 s" in ln for ln in choice.summary_lines())


def test_budget_cuts_records_that_warm_nothing_new_first():
    a, b, c = "a", "b", "c"
    # record 2 repeats record 0: cutting it alone fits the budget, so nothing else goes
    choice = choose_within_budget([a, b, a, c], [10, 10, 10, 10], None, 30)
    assert choice.kept == [0, 1, 3] and choice.cut == [2] and choice.duplicates == {2: 0}
    assert choice.kept_ms == 30 and choice.full_ms == 40


def test_budget_keeps_the_most_traffic_per_second_and_is_deterministic():
    classes = ["rare", "common", "mid", "common", "cheap"]
    costs = [50.0, 40.0, 30.0, 40.0, 5.0]
    weights = {"rare": 1, "common": 100, "mid": 10, "cheap": 10}
    first = choose_within_budget(classes, costs, weights, 80)
    # the duplicate goes; then by weight (ties: cheaper first): common 40, cheap 5, mid 30 = 75
    assert first.kept == [1, 2, 4] and first.cut == [0, 3] and first.kept_ms == 75
    again = choose_within_budget(classes, costs, weights, 80)
    assert again.to_dict() == first.to_dict()
    assert first.to_dict()["costs_ms"] == costs  # the report lists the costs it used
    # equal weights (no data): the cheapest records first, as many classes as fit
    equal = choose_within_budget(["a", "b", "c", "d"], [50, 10, 20, 30], None, 45)
    assert equal.kept == [1, 2] and equal.weighted_by.startswith("equal")
    # everything fits: nothing is cut
    assert not choose_within_budget(["a", "b"], [1, 2], None, 10).applied
    with pytest.raises(ValueError, match="smaller than the cheapest"):
        choose_within_budget(["a", "b"], [10, 20], None, 5)


def _check_accepts(classes: list[RequestClass], rule: BatchRule) -> bool:
    """check's two batching rules on a kept file, via check's own function for the per-shape one."""
    sizes = {}
    for rc in classes:
        sizes.setdefault(rc.signature, set()).add(rc.batch_size)
    every_size = all(set(rule.allowed) <= s for s in sizes.values())
    return every_size and unwarmed_sizes(classes, rule) == []


def test_budget_under_batching_keeps_only_files_check_accepts():
    """Merged batches: a shape warmed at batch 2 must be warmed at 4 and 8 too, and every allowed
    size somewhere; the budget keeps whole chains, never a lone record (issue 25)."""
    rule = BatchRule(ALLOWED, max_batch_size=8)

    def rc(sig, b, n):
        return RequestClass(sig, "predict", b, (("ids", (b, n)),))

    classes = ([rc("seq", b, n) for n in (3, 5, 9) for b in ALLOWED] + [rc("seq", 8, 11)]
               + [rc("other", b, 2) for b in ALLOWED])
    costs = [float(10 + b) for n in (3, 5, 9) for b in ALLOWED] + [5.0, 3.0, 3.0, 3.0]
    weights = {c: (100 if c.shape[0][1][1] == 5 else 10) * c.batch_size for c in classes}
    seen = set()
    for budget in range(5, int(sum(costs)) + 10, 3):
        try:
            choice = choose_within_budget(classes, costs, weights, budget, rule=rule)
        except ValueError as e:  # the cheapest valid cut: "other"'s three records, 9 ms
            assert "smaller than the cheapest valid cut" in str(e) and "0.009 s" in str(e) and budget < 9
            continue
        kept = [classes[i] for i in choice.kept]
        assert _check_accepts(kept, rule), (budget, [c.label() for c in kept])
        assert choice.kept_ms <= budget
        seen.add(len(choice.kept))
    assert len(seen) >= 4  # cuts of many sizes were tried
    # without the rule, the same inputs cut single merged batches (the bug this guards against)
    loose = choose_within_budget(classes, costs, weights, 40)
    assert not _check_accepts([classes[i] for i in loose.kept], rule)
    # the most requested shape (length 5) is kept whole; the lone length-11 shape fits beside it
    one = choose_within_budget(classes, costs, weights, 60, rule=rule)
    assert {classes[i].shape[0][1] for i in one.kept if classes[i].signature == "seq"} == {
        (2, 5), (4, 5), (8, 5), (8, 11)}


def test_budget_under_warmup_threads_uses_the_wall_time():
    assert replay_ms([10, 10, 10, 10], threads=2) == 20 and replay_ms([10, 10, 10], threads=1) == 30
    choice = choose_within_budget(["a", "b", "c", "d"], [10, 10, 10, 10], None, 20, threads=2)
    assert not choice.applied and choice.full_ms == 20


# ----------------------------------------------------------------- end to end


def traffic_bodies(seed: int = 0, n: int = 240):
    """REST bodies for the ``seq`` XLA signature at skewed (batch, length), plus one invalid."""
    rng = np.random.default_rng(seed)
    bodies, truth = [], Counter()
    for _ in range(n):
        b = int(rng.choice([1, 2, 3, 5], p=[.4, .3, .2, .1]))
        length = int(rng.choice([3, 4, 6, 9], p=[.5, .3, .15, .05]))
        bodies.append({"signature_name": "seq", "instances": [
            {"ids": rng.integers(0, 50, length).tolist(), "mask": [1] * length} for _ in range(b)]})
        truth[(padded(b), length)] += 1
    bodies.append({"signature_name": "seq", "instances": [{"ids": [0.5], "mask": [1]}]})  # float: dropped
    return bodies, truth


def merged(truth: Counter) -> Counter:
    """The classes TF Serving's batching runs that traffic at, written out here: requests of
    one length merge into every allowed batch from the smallest one padded to; each class
    counts the requests that can run in it."""
    out = Counter()
    for length in {n for _, n in truth}:
        sizes = {b: c for (b, n), c in truth.items() if n == length}
        for s in ALLOWED:
            if s >= min(sizes):
                out[(s, length)] = sum(c for b, c in sizes.items() if b <= s)
    return out


@pytest.fixture(scope="module")
def xla_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("xla21")
    export_dir = xla_sequence_module(str(root / "m" / "1"))
    batching = str(root / "batching.txt")
    with open(batching, "w") as f:
        f.write(BATCHING)
    bodies, truth = traffic_bodies()
    traffic = str(root / "traffic.jsonl")
    with open(traffic, "w") as f:
        f.write("\n".join(json.dumps(b) for b in bodies) + "\n")
    return export_dir, batching, traffic, truth


def file_classes(export_dir: str) -> set[tuple[int, int]]:
    """(batch, length) of every record in the file, read here without the package's class code."""
    out = set()
    for raw in tf.data.TFRecordDataset(warmup_path(export_dir)).as_numpy_iterator():
        req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
        out.add(tuple(d.size for d in req.inputs["ids"].tensor_shape.dim))
    return out


def test_traffic_made_file_covers_its_xla_traffic_and_check_counts_it(xla_setup, tmp_path, capsys):
    export_dir, batching, traffic, truth = xla_setup
    report = tw.add_warmup(export_dir, traffic=[traffic], batching_parameters=batching,
                           signatures=["seq"], overwrite=True)
    # exact classes, most frequent first: one record per (batch, length) the traffic runs at,
    # merged batches included (issue 25)
    runs = merged(truth)
    assert file_classes(export_dir) == set(runs) and len(runs) > len(truth)
    counts = [r.exact for r in report.plan.records]
    assert counts == sorted(counts, reverse=True) and sorted(counts) == sorted(runs.values())
    assert report.coverage.fraction == 1.0
    assert report.load_cost["nothing_new"] == [] and len(report.load_cost["records"]) == len(runs)
    assert report.plan.xla_compiles == {"seq": len(runs)}

    # a file cut by hand to the two most frequent lengths: check counts what we count here
    logs = parse_records(read_records(warmup_path(export_dir)), "file")
    keep = [lg for lg in logs if lg.predict_log.request.inputs["ids"].tensor_shape.dim[1].size in (3, 4)]
    keep.append(keep[0])  # a repeat: warms nothing new
    path = str(tmp_path / "cut.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for lg in keep:
            w.write(lg.SerializeToString())
    warmed = {tuple(d.size for d in lg.predict_log.request.inputs["ids"].tensor_shape.dim) for lg in keep}
    want = sum(n for cls, n in truth.items() if cls in warmed)
    total = sum(truth.values())
    assert cli.main(["check", export_dir, "--file", path, "--batching-parameters", batching,
                     "--traffic", traffic, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cov = out["coverage"]
    assert (cov["requests"], cov["covered"]) == (total, want)
    assert cov["fraction"] == pytest.approx(want / total)
    assert cov["dropped"] == 1 and cov["by_signature"]["seq"]["covered"] == want
    uncovered = [((u["batch_size"], u["shape"]["ids"][1]), u["count"]) for u in cov["uncovered"]]
    assert uncovered == sorted(((c, n) for c, n in runs.items() if c not in warmed),
                               key=lambda kv: (-kv[1], kv[0]))[:len(uncovered)]
    assert all(set(u) >= {"signature", "batch_size", "shape", "count"} for u in cov["uncovered"])
    assert cov["expected_cold_hits"]["per_load"] == len(runs) - len(warmed)
    assert out["load_cost"]["nothing_new"] == [{"index": len(keep) - 1, "same_class_as": 0}]
    assert len(out["load_cost"]["records"]) == len(keep)


def test_load_budget_keeps_a_replayed_file_within_the_measured_budget(xla_setup, capsys):
    export_dir, batching, traffic, truth = xla_setup
    args = ["add", export_dir, "--traffic", traffic, "--batching-parameters", batching,
            "--signatures", "seq", "--overwrite", "--json"]
    assert cli.main(args + ["--load-budget", "1h"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["budget"]["applied"] is False and full["num_records"] == len(merged(truth))
    # half the most expensive file's cost, as measured by the run itself: invariants only
    budget_s = full["load_cost"]["total_ms"] / 2000
    code = cli.main(args + ["--load-budget", f"{budget_s * 1000:.3f}ms"])
    out = json.loads(capsys.readouterr().out)
    if code == 2:  # the cheapest record alone exceeded half of this (noisy) run: said plainly
        assert "smaller than the cheapest" in out["error"]
        return
    assert code == 0
    b = out["budget"]
    assert b["kept_ms"] <= b["budget_ms"] and sorted(b["kept"] + [c["index"] for c in b["cut"]]) == \
        list(range(len(b["costs_ms"])))
    assert out["num_records"] == len(b["kept"]) == len(file_classes(export_dir))
    assert out["replayed"] and out["ok"]
    assert out["coverage"]["covered"] == sum(truth[c] for c in file_classes(export_dir))


def test_load_budget_flag_errors(xla_setup, capsys):
    export_dir, batching, traffic, _ = xla_setup
    with pytest.raises(SystemExit) as e:
        cli.main(["add", export_dir, "--load-budget", "soon"])
    assert e.value.code == 2 and "--load-budget 'soon' is not a duration" in capsys.readouterr().err
    assert cli.main(["add", export_dir, "--load-budget", "30s", "--no-replay", "--overwrite"]) == 2
    assert "cannot be used with replay=False" in capsys.readouterr().err
