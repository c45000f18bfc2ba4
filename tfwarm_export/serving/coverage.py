"""What share of real traffic a warmup file warms, and what the rest costs per load.

A request is *covered* when the file has a record of its class (``request_class``):
same signature, request type, padded batch and exact size of every dimension. An
uncovered class pays its cold first request once per load, on the first request of
that class; how soon that comes depends on how often traffic brings it, which gives
the expected cold hits among the first N requests after a load:
``sum over uncovered classes of 1 - (1 - share)^N``.
Requests dropped as invalid for the export are counted apart, never as uncovered.

Under batching a request runs as more than its own class: TF Serving merges concurrent
requests of one shape and pads the batch to an allowed size (``specs.batching``), so it is
covered only when each of those classes is (``runs_of``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from tfwarm_export.specs.request_class import RequestClass
from tfwarm_export.specs.batching import BatchRule

WINDOWS = (50, 500)
"""First-N-requests windows the expected cold hits are reported for."""


def expected_cold_hits(counts: Iterable[int], total: int, n: int) -> float:
    """Expected number of distinct classes (of these request counts, out of ``total``) that
    appear among ``n`` requests drawn from the traffic: each is one cold hit."""
    if total <= 0:
        return 0.0
    return float(sum(1.0 - (1.0 - c / total) ** n for c in counts))


def _resolve(rc: RequestClass, file_classes: set[RequestClass]) -> RequestClass:
    """tf.Example records carry no request type: they match any record of the signature that
    feeds that many examples (Classify/Regress, or Predict with one ``[n]`` string input)."""
    if rc.request_type != "examples":
        return rc
    for fc in sorted(file_classes, key=repr):
        if fc.signature == rc.signature and fc.batch_size == rc.batch_size and (
                fc.request_type in ("classify", "regress")
                or (len(fc.shape) == 1 and fc.shape[0][1] == (rc.batch_size,))):
            return fc
    return rc


@dataclass
class Coverage:
    """Coverage of one traffic source by one file."""

    source: str
    requests: int = 0
    covered: int = 0
    by_signature: dict[str, dict] = field(default_factory=dict)
    uncovered: list[tuple[RequestClass, int]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    cold_hits_first: dict[int, float] = field(default_factory=dict)
    missing_batch_sizes: dict[str, list[int]] = field(default_factory=dict)
    """Per signature, batch sizes the traffic brings that no record of the file has: buckets
    and exact classes vary the other dimensions, so only the batch sizes asked for fix these."""

    @property
    def fraction(self) -> float:
        return self.covered / self.requests if self.requests else 0.0

    @property
    def cold_hits_per_load(self) -> int:
        """Uncovered classes: each pays one cold first request per load, if traffic brings it."""
        return len(self.uncovered)

    def to_dict(self, limit: int = 100) -> dict:
        return {"source": self.source, "requests": self.requests, "covered": self.covered,
                "fraction": round(self.fraction, 6), "by_signature": self.by_signature,
                "uncovered": [{**rc.to_dict(), "count": n} for rc, n in self.uncovered[:limit]],
                "uncovered_classes": len(self.uncovered),
                "missing_batch_sizes": self.missing_batch_sizes,
                "dropped": sum(self.dropped.values()), "dropped_reasons": self.dropped,
                "expected_cold_hits": {"per_load": self.cold_hits_per_load,
                                       **{f"first_{n}": round(v, 3) for n, v in self.cold_hits_first.items()}}}

    def summary_lines(self, limit: int = 10) -> list[str]:
        firsts = ", ".join(f"{v:.1f} in the first {n}" for n, v in self.cold_hits_first.items())
        lines = [f"  traffic coverage ({self.source}): {self.covered:,} of {self.requests:,} request(s) "
                 f"({100 * self.fraction:.1f}%) have a warmed class; {len(self.uncovered)} uncovered "
                 f"class(es) = cold hits per load (expected {firsts})"]
        for sig, d in sorted(self.by_signature.items()):
            lines.append(f"    {sig}: {d['covered']:,}/{d['requests']:,} ({100 * d['fraction']:.1f}%), "
                         f"{d['classes']} class(es), {d['uncovered_classes']} uncovered")
        for rc, n in self.uncovered[:limit]:
            lines.append(f"    uncovered: {rc.label()}: {n:,} request(s)")
        if len(self.uncovered) > limit:
            lines.append(f"    ... and {len(self.uncovered) - limit} more uncovered class(es) (see --json)")
        for sig, sizes in sorted(self.missing_batch_sizes.items()):
            shown = ",".join(map(str, sizes))
            lines.append(f"    {sig}: no record has batch size(s) {shown} that the traffic brings: warm them "
                         f"with batch_sizes=[...] (CLI --batch-sizes, every size to warm) or the server's batching "
                         "parameters (--batching-parameters), which pad them to allowed sizes")
        if self.dropped:
            lines.append(f"    {sum(self.dropped.values()):,} request(s) dropped as invalid for this export "
                         "(not counted): " + "; ".join(f"{n:,} {why}" for why, n in
                                                        sorted(self.dropped.items(), key=lambda kv: -kv[1])[:3]))
        return lines


def at_batch(rc: RequestClass, size: int) -> RequestClass:
    """``rc`` run in a batch of ``size`` rows (every batched input's 0th dimension)."""
    shape = tuple((a, (size,) + d[1:]) if d else (a, d) for a, d in rc.shape)
    return rc._replace(batch_size=size, shape=shape)


def runs_of(rc: RequestClass, rule: BatchRule | None) -> tuple[RequestClass, ...]:
    """Every class a request of class ``rc`` (its batch already padded) runs as under ``rule``:
    merged with concurrent requests of its shape, each allowed size from its own upward."""
    if rule is None or not rule.allowed or rc.batch_size is None:
        return (rc,)
    return tuple(at_batch(rc, s) for s in rule.runs_at(rc.batch_size)) or (rc,)


def merged_counts(traffic: Mapping[RequestClass, int], rule: BatchRule | None) -> Counter:
    """Class -> logged requests that can run in it (``runs_of``): the weight of each class a
    signature runs at, for coverage, expected cold hits and the load budget."""
    out: Counter = Counter()
    for rc, n in traffic.items():
        for run in runs_of(rc, rule):
            out[run] += int(n)
    return out


def shape_group(rc: RequestClass) -> tuple:
    """The key of the requests TF Serving's batching can merge with ``rc``: same signature, request
    type and every dimension but the batch. Records of one group must warm a chain of allowed sizes."""
    return (rc.signature, rc.request_type, tuple((a, d[1:]) for a, d in rc.shape))


def unwarmed_sizes(file_classes: Iterable[RequestClass], rule: BatchRule | None
                   ) -> list[tuple[RequestClass, list[int]]]:
    """Per shape the file warms (its smallest-batch class), the allowed sizes missing above it:
    concurrent requests of that shape merge into those batches, whose first run stays cold."""
    if rule is None or not rule.allowed:
        return []
    groups: dict[tuple, list[RequestClass]] = {}
    for rc in file_classes:
        if rc.batch_size is not None:
            groups.setdefault(shape_group(rc), []).append(rc)
    out = []
    for key in sorted(groups, key=repr):
        smallest = min(groups[key], key=lambda rc: rc.batch_size)
        have = {rc.batch_size for rc in groups[key]}
        missing = [s for s in rule.runs_at(smallest.batch_size) if s not in have]
        if missing:
            out.append((smallest, missing))
    return out


def measure_coverage(file_classes: Iterable[RequestClass], traffic: Mapping[RequestClass, int],
                     source: str = "traffic", dropped: Mapping[str, int] | None = None,
                     rule: BatchRule | None = None) -> Coverage:
    """Coverage of ``traffic`` (class -> requests) by a file whose records have ``file_classes``.

    Under batching (``rule``) a request is covered only when every class it can run as once
    merged (``runs_of``) is warmed; the uncovered classes are those merged classes."""
    have = set(file_classes)
    logged: Counter = Counter()
    for rc, n in traffic.items():
        logged[_resolve(rc, have)] += int(n)
    counts = merged_counts(logged, rule)
    cov = Coverage(source=source, dropped=dict(dropped or {}))
    cov.requests = sum(logged.values())
    cov.covered = sum(n for rc, n in logged.items() if all(r in have for r in runs_of(rc, rule)))
    cov.uncovered = sorted(((rc, n) for rc, n in counts.items() if rc not in have),
                           key=lambda kv: (-kv[1], repr(kv[0])))
    for sig in sorted({rc.signature for rc in counts}):
        mine = {rc: n for rc, n in counts.items() if rc.signature == sig}
        total = sum(n for rc, n in logged.items() if rc.signature == sig)
        hit = sum(n for rc, n in logged.items() if rc.signature == sig
                  and all(r in have for r in runs_of(rc, rule)))
        cov.by_signature[sig] = {"requests": total, "covered": hit,
                                 "fraction": round(hit / total, 6) if total else 0.0,
                                 "classes": len(mine),
                                 "uncovered_classes": sum(1 for rc in mine if rc not in have)}
    warmed_sizes = {(rc.signature, rc.request_type, rc.batch_size) for rc in have}
    for rc, _ in cov.uncovered:
        if rc.batch_size is not None and (rc.signature, rc.request_type, rc.batch_size) not in warmed_sizes:
            cov.missing_batch_sizes.setdefault(rc.signature, [])
            if rc.batch_size not in cov.missing_batch_sizes[rc.signature]:
                cov.missing_batch_sizes[rc.signature].append(rc.batch_size)
    cov.missing_batch_sizes = {sig: sorted(v) for sig, v in cov.missing_batch_sizes.items()}
    cov.cold_hits_first = {n: expected_cold_hits([c for _, c in cov.uncovered], cov.requests, n)
                           for n in WINDOWS}
    return cov


def traffic_classes(samples: Mapping[str, object]) -> Counter:
    """Every request class a traffic/dataset scan counted (``DataSample.class_counts``)."""
    out: Counter = Counter()
    for sample in samples.values():
        out.update(getattr(sample, "class_counts", None) or {})
    return out
