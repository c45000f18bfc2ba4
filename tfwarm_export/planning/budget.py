"""A load-time budget: which records to keep when replaying the whole file takes too long.

TF Serving has no time limit on warmup, but platforms give a new version a fixed time to
become ready, and a long warmup competes with the models already serving. Given each
record's measured first-run cost and how often traffic brings its class, this keeps the
records that remove the most traffic-weighted cold-start cost per second of load:

1. records that warm nothing new (an earlier record has the same class) go first;
2. the rest are ranked by the cold-start cost each removes per second of load it adds.
   A class left cold costs its first-run time once per load, on the first request of
   that class, which arrives within the window with a probability that grows with its
   frequency. Per second of load that is the class's traffic weight (the cost cancels),
   so records are ranked by weight, then cheaper first (more classes per second), then
   file order; each is kept while the file's replay time stays within the budget.

Without traffic every class weighs the same, and the cheapest records are kept first.

Under batching (``rule``) a cut must leave a file ``check`` accepts, so records are kept in
units, never alone (``batch_units``): a record of batch ``b`` comes with every record of its
shape at a larger allowed size (concurrent requests of that shape merge into those batches),
and a signature's first kept unit also brings the cheapest shape that warms its smallest
allowed size (every allowed size must be warmed somewhere). A signature may still be cut
whole: ``check`` judges only the signatures a file holds.

Pure selection: given the same costs and weights the choice is the same; nothing here runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

from tfwarm_export.serving.coverage import shape_group
from tfwarm_export.serving.load_cost import replay_ms
from tfwarm_export.specs.batching import BatchRule
from tfwarm_export.specs.request_kinds import MULTI_INFERENCE

@dataclass
class BudgetChoice:
    """What a load budget kept and cut, with the costs and weights it used."""

    budget_ms: float
    threads: int
    full_ms: float
    kept_ms: float
    kept: list[int]
    cut: list[int]
    costs_ms: list[float]
    weights: list[float]
    duplicates: dict[int, int] = field(default_factory=dict)  # cut record -> earlier same-class one
    labels: list[str] = field(default_factory=list)
    weighted_by: str = "equal weights (no traffic or dataset)"
    measured_ms: float | None = None
    """The kept file's replay time as measured in its own fresh load (set after that replay).
    Costs come from the full replay, where a record's first run also warms kernels later
    records share, so a record replayed alone can cost more than its share of the full file."""

    @property
    def over_budget(self) -> bool:
        return self.measured_ms is not None and self.measured_ms > self.budget_ms

    @property
    def applied(self) -> bool:
        return bool(self.cut)

    def to_dict(self) -> dict:
        def rec(i: int) -> dict:
            d = {"index": i, "cost_ms": round(self.costs_ms[i], 3), "weight": self.weights[i]}
            if self.labels:
                d["class"] = self.labels[i]
            if i in self.duplicates:
                d["same_class_as"] = self.duplicates[i]
            return d
        return {"budget_ms": round(self.budget_ms, 3), "threads": self.threads,
                "full_ms": round(self.full_ms, 3), "kept_ms": round(self.kept_ms, 3),
                "measured_ms": None if self.measured_ms is None else round(self.measured_ms, 3),
                "over_budget": self.over_budget,
                "applied": self.applied, "weighted_by": self.weighted_by,
                "kept": self.kept, "cut": [rec(i) for i in self.cut],
                "costs_ms": [round(c, 3) for c in self.costs_ms]}

    def summary_lines(self) -> list[str]:
        if not self.applied:
            return [f"  load budget {self.budget_ms / 1000:.3g} s: the full file replays in "
                    f"{self.full_ms / 1000:.3g} s; nothing cut"]
        dup = sum(1 for i in self.cut if i in self.duplicates)
        lines = [f"  load budget {self.budget_ms / 1000:.3g} s: the full file ({len(self.costs_ms)} records) "
                 f"replays in {self.full_ms / 1000:.3g} s; kept {len(self.kept)} record(s), "
                 f"{self.kept_ms / 1000:.3g} s; cut {len(self.cut)}"
                 + (f" ({dup} warmed nothing new)" if dup else "") + f"; weights: {self.weighted_by}"]
        for i in self.cut[:20]:
            why = f" same class as record {self.duplicates[i]}" if i in self.duplicates else ""
            what = f" {self.labels[i]}" if self.labels else ""
            lines.append(f"    cut record {i}{what}: {self.costs_ms[i]:.1f} ms, weight {self.weights[i]:g}{why}")
        if len(self.cut) > 20:
            lines.append(f"    ... and {len(self.cut) - 20} more (see --json)")
        if self.over_budget:
            lines.append(f"    OVER BUDGET: the kept file replayed in {self.measured_ms / 1000:.3g} s in its own "
                         f"load, over {self.budget_ms / 1000:.3g} s: in the full replay these records shared "
                         "first-use costs with the cut ones. Raise the budget, or warm fewer signatures "
                         "(signatures=/--signatures)")
        return lines


@dataclass(frozen=True)
class BatchUnits:
    """Which records must be kept together for the file to pass ``check`` under batching.

    ``above[i]``: record i and every record of its shape at a larger batch;
    ``base[sig]``: the cheapest shape's chain from the signature's smallest batch (kept first
    in a signature, so every allowed size is warmed somewhere); ``signature_of[i]``: the
    signature record i counts for in that per-signature rule (absent: it counts for none);
    ``at_smallest[sig]``: its records at that smallest batch (any one of them brings its chain);
    ``own_chain[i]``: record i's shape's whole chain, where it reaches that smallest batch (then
    the signature's rule is met by completing i's own shape rather than the cheapest)."""

    above: dict[int, frozenset[int]]
    base: dict[str, frozenset[int]]
    signature_of: dict[int, str]
    at_smallest: dict[str, frozenset[int]]
    own_chain: dict[int, frozenset[int]]

    def closure(self, i: int, chosen: set[int]) -> set[int]:
        """What keeping record ``i`` brings, given the records already ``chosen``."""
        need = set(self.above.get(i, {i}))
        sig = self.signature_of.get(i)
        if sig is not None and not (self.at_smallest[sig] & (chosen | need)):
            need |= self.own_chain.get(i, self.base[sig])  # its smallest size is not kept yet
        return need - chosen


def batch_units(classes: Sequence[Hashable], costs: Sequence[float], keep: Sequence[int],
                rule: BatchRule | None) -> BatchUnits:
    """The units ``check``'s batching rules impose on records ``keep`` (``check.batching_problems``):
    per shape, the allowed sizes from the smallest warmed one upward; per signature, every size."""
    if rule is None or not rule.allowed:
        return BatchUnits({}, {}, {}, {}, {})
    groups: dict[tuple, list[int]] = {}
    for i in keep:
        rc = classes[i]
        if getattr(rc, "batch_size", None) is not None:
            groups.setdefault(shape_group(rc), []).append(i)
    above, signature_of = {}, {}
    chains: dict[str, list[tuple[float, int, frozenset[int]]]] = {}
    for members in groups.values():
        for i in members:
            above[i] = frozenset(j for j in members if classes[j].batch_size >= classes[i].batch_size)
            if classes[i].request_type != MULTI_INFERENCE:
                signature_of[i] = classes[i].signature
        low = min(members, key=lambda j: (classes[j].batch_size, j))
        if classes[low].request_type != MULTI_INFERENCE:
            chain = above[low]
            chains.setdefault(classes[low].signature, []).append(
                (classes[low].batch_size, sum(costs[j] for j in chain), min(chain), chain))
    base, at_smallest, own_chain = {}, {}, {}
    for sig, options in chains.items():
        smallest = min(o[0] for o in options)  # the signature's smallest warmed (allowed) size
        full = [o for o in options if o[0] == smallest]
        base[sig] = min(full, key=lambda o: (o[1], o[2]))[3]
        at_smallest[sig] = frozenset(i for i, s in signature_of.items()
                                     if s == sig and classes[i].batch_size == smallest)
        own_chain.update({i: o[3] for o in full for i in o[3]})
    return BatchUnits(above, base, signature_of, at_smallest, own_chain)


def _greedy(order: Sequence[int], units: BatchUnits, costs: Sequence[float], budget_ms: float,
            threads: int) -> list[int]:
    """Keep each record in ``order`` (with what its unit brings) while the file fits the budget."""
    chosen: set[int] = set()
    for i in order:
        if i in chosen:
            continue
        trial = chosen | units.closure(i, chosen)
        if replay_ms([costs[j] for j in sorted(trial)], threads) <= budget_ms:
            chosen = trial
    return sorted(chosen)


def choose_within_budget(classes: Sequence[Hashable], costs_ms: Sequence[float],
                         weights: Mapping[Hashable, float] | None, budget_ms: float,
                         threads: int = 1, labels: Sequence[str] = (),
                         rule: BatchRule | None = None) -> BudgetChoice:
    """Records (by index, file order kept) whose replay fits ``budget_ms``.

    ``classes[i]`` is record i's request class, ``costs_ms[i]`` its measured first run,
    ``weights`` how often traffic brings each class (None: every class weighs 1; a class
    the traffic never brings weighs 0). ``rule``: the server's batching, whose merged batches
    decide which records are kept together (``batch_units``). Deterministic for the same inputs.
    Raises ValueError when not even the cheapest unit fits: the file is never cut below what
    ``check`` accepts, and never kept over the budget by choice.
    """
    if len(classes) != len(costs_ms):
        raise ValueError(f"{len(classes)} classes but {len(costs_ms)} costs")
    if budget_ms <= 0:
        raise ValueError(f"the load budget must be positive, got {budget_ms} ms")
    n = len(classes)
    costs = [max(0.0, float(c)) for c in costs_ms]
    w = [1.0 if weights is None else float(weights.get(c, 0.0)) for c in classes]
    first: dict[Hashable, int] = {}
    duplicates: dict[int, int] = {}
    for i, c in enumerate(classes):
        if c in first:
            duplicates[i] = first[c]
        else:
            first[c] = i
    full = replay_ms(costs, threads)
    choice = BudgetChoice(budget_ms=float(budget_ms), threads=threads, full_ms=full, kept_ms=full,
                          kept=list(range(n)), cut=[], costs_ms=costs, weights=w,
                          duplicates={}, labels=list(labels),
                          weighted_by="equal weights (no traffic or dataset)" if weights is None
                          else "requests of each class in the traffic/dataset")
    if full <= budget_ms:
        return choice
    # 1. what warms nothing new goes first (its class stays warmed: no batching rule changes)
    kept = [i for i in range(n) if i not in duplicates]
    cut = sorted(duplicates)
    if replay_ms([costs[i] for i in kept], threads) > budget_ms:
        # 2. greedy by weight per second of load (= weight), cheaper first, then file order
        units = batch_units(classes, costs, kept, rule)
        chosen = _greedy(sorted(kept, key=lambda i: (-w[i], costs[i], i)), units, costs, budget_ms, threads)
        if not chosen:
            raise ValueError(_nothing_fits(kept, units, costs, budget_ms, threads))
        cut = sorted(set(range(n)) - set(chosen))
        kept = chosen
    choice.kept, choice.cut = kept, cut
    choice.kept_ms = replay_ms([costs[i] for i in kept], threads)
    choice.duplicates = {i: duplicates[i] for i in cut if i in duplicates}
    return choice


def _nothing_fits(kept: Sequence[int], units: BatchUnits, costs: Sequence[float], budget_ms: float,
                  threads: int) -> str:
    """Why no record fits: the cheapest record, or under batching the cheapest unit ``check`` accepts."""
    def unit_ms(i: int) -> float:
        return replay_ms([costs[j] for j in sorted(units.closure(i, set()))], threads)

    cheapest = min(kept, key=lambda i: (unit_ms(i), i))
    unit = sorted(units.closure(cheapest, set()))
    what = (f"record {cheapest}" if unit == [cheapest] else
            f"records {unit}, the fewest that keep a batch size's merged batches warm as check requires")
    return (f"the load budget ({budget_ms / 1000:.3g} s) is smaller than the cheapest "
            f"valid cut's replay ({unit_ms(cheapest) / 1000:.3g} s, {what}); "
            "raise the budget or warm fewer signatures")
