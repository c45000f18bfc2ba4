"""Signatures that compile per shape: the exact classes to warm, and what the plan flags.

XLA compiles once per exact shape, so for such signatures the plan warms the exact
(padded batch, sizes) classes seen in traffic or a dataset, most frequent first,
instead of buckets; and it flags XLA signatures left at default sizes.
"""
from __future__ import annotations

from typing import Any, Mapping

from tfwarm_export import analysis
from tfwarm_export.model.signatures import ModelSignatures, SignatureInfo
from tfwarm_export.planning.feeds import TENSOR, FeedPlan, PlanItem
from tfwarm_export.planning.input_options import ResolvedInputs
from tfwarm_export.planning.records import PlannedRecord
from tfwarm_export.specs.limits import MAX_RECORDS
from tfwarm_export.specs.request_kinds import MULTI_INFERENCE, PREDICT
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.specs.batching import BatchRule


def exact_classes(model: ModelSignatures, sig: SignatureInfo, per_input: Mapping[str, FeedPlan], sample: Any,
                   sizes: tuple, fixed0: set, batching: BatchingConfig | None, inputs: ResolvedInputs,
                   request_type: str) -> tuple[list[PlanItem], str] | None:
    """For a signature that compiles once per shape (XLA): one item per exact class seen in the
    data (``PlanItem``: batch, index, bucket, count), most frequent first, and the plan note. None when
    buckets stay: no data, no unknown dimension left to the data, or no per-shape compile.

    A bucket's representative length warms nothing for its neighbours under XLA, so the exact
    (padded batch, sizes) of each class is what covers the traffic. Under batching, traffic
    classes run at every allowed size their shape's requests merge into (``merged_classes``);
    dataset rows (which have no batch) are crossed with the planned sizes.
    """
    if sample is None or request_type != PREDICT or any(p.kind != TENSOR for p in per_input.values()):
        return None
    axes = {alias: [ax for ax in range(1, len(p.shape)) if p.shape[ax] is None
                    and not inputs.get(sig.name, alias).dims.get(ax)]
            for alias, p in per_input.items()}
    if not any(axes.values()):
        return None
    if not analysis.find_xla_compilation(model.meta_graph, [s.name for s in sig.outputs.values()]):
        return None
    counts: dict[tuple, int] = {}
    skipped = 0

    def bucket_of(dims_of: Mapping[str, tuple[int, ...]], offset: int) -> tuple | None:
        if set(dims_of) != set(per_input):
            return None  # other inputs fed (e.g. a defaulted one): another Session run than planned
        try:
            return tuple(sorted(((a, ax), int(dims_of[a][ax - offset])) for a, axs in axes.items()
                                for ax in axs))
        except IndexError:
            return None

    if sample.class_counts:
        for rc, n in sample.class_counts.items():
            bucket = bucket_of(dict(rc.shape), 0) if rc.request_type == PREDICT else None
            ok = (bucket is not None and rc.batch_size is not None
                  and (not fixed0 or rc.batch_size in fixed0)
                  and (batching is None or rc.batch_size <= batching.max_batch_size))
            if not ok:
                skipped += n
                continue
            key = (rc.batch_size, bucket)
            counts[key] = counts.get(key, 0) + n
        if batching is not None and not fixed0:
            counts = merged_classes(counts, batching.rule)
        where = "requests"
    else:
        for shape, n in sample.row_shapes.items():
            bucket = bucket_of(dict(shape), 1)
            if bucket is None:
                skipped += n
                continue
            for b in sizes:
                if b is not None:
                    counts[(b, bucket)] = counts.get((b, bucket), 0) + n
        where = "rows"
    if not counts:
        return None
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    items = [PlanItem(b, i, dict(bucket), n, exact=True) for i, ((b, bucket), n) in enumerate(ordered)]
    note = (f"compiles with XLA once per shape: warming the {len(items)} exact (batch, shape) "
            f"class(es) seen in {sample.source}, most frequent first, instead of buckets")
    if skipped:
        note += f" ({skipped:,} {where} of other inputs or request types are not among them)"
    return items, note


def merged_classes(counts: Mapping[tuple, int], rule: BatchRule) -> dict[tuple, int]:
    """Logged ``(padded batch, bucket) -> requests`` as the classes they run at under batching.

    TF Serving merges concurrent requests of one shape into a batch and pads it to an allowed
    size (``specs.batching``), so at each shape every allowed size from the smallest one a
    logged request pads to upward runs, each one compile. A class's weight is the requests
    that can run in it (those padding to it or below). Every allowed size is warmed at least
    at the most frequent shape, since a lone request of any size pads to it (``check`` asks
    that of every signature).
    """
    by_bucket: dict[tuple, dict[int, int]] = {}
    for (b, bucket), n in counts.items():
        by_bucket.setdefault(bucket, {})[b] = by_bucket.get(bucket, {}).get(b, 0) + n
    out: dict[tuple, int] = {}
    for bucket, sizes in by_bucket.items():
        for s in rule.merged_sizes(sizes):
            out[(s, bucket)] = sum(n for b, n in sizes.items() if b <= s)
    top = max(by_bucket, key=lambda k: (sum(by_bucket[k].values()), repr(k)), default=None)
    for s in rule.allowed:
        if top is not None and not any(b == s for b, _ in out):
            out[(s, top)] = 0  # no logged request pads to it, but a lone one would
    return out


def fit_exact_to_cap(per_sig: dict[str, list[PlannedRecord]], notes: list[str]) -> None:
    """Cut the least frequent exact shapes (never a signature's first) to fit the cap.

    A shape goes with all its batch sizes: under batching its requests merge into each of
    them, so keeping some would leave the others cold (``check`` says so)."""
    over = sum(len(v) for v in per_sig.values()) - MAX_RECORDS
    if over <= 0:
        return
    shapes: dict[tuple, list[PlannedRecord]] = {}
    for name, recs in per_sig.items():
        for r in recs:
            if r.exact:
                shapes.setdefault((name, r.bucket), []).append(r)
    firsts = {(name, recs[0].bucket) for name, recs in per_sig.items() if recs}
    cands = sorted((k for k in shapes if k not in firsts),
                   key=lambda k: (max(r.exact for r in shapes[k]), k[0], repr(k[1])))
    cut: dict[str, list[PlannedRecord]] = {}
    for key in cands:
        if over <= 0:
            break
        cut.setdefault(key[0], []).extend(shapes[key])
        over -= len(shapes[key])
    for name, gone in sorted(cut.items()):
        drop = set(map(id, gone))
        per_sig[name] = [r for r in per_sig[name] if id(r) not in drop]
        notes.append(f"{name}: to stay within {MAX_RECORDS} records, the {len(gone)} least frequent "
                     f"exact class(es) were cut ({sum(r.exact for r in gone):,} requests/rows of the data)")


def xla_default_dims(model: ModelSignatures, records: list[PlannedRecord]) -> dict[str, tuple[str, ...]]:
    """XLA signatures whose unknown non-batch dims were warmed only at DEFAULT_DIM_SIZE."""
    out: dict[str, tuple[str, ...]] = {}
    for name in sorted({r.signature for r in records if r.request_type != MULTI_INFERENCE}):
        recs = [r for r in records if r.signature == name]
        if not all(any(i.defaulted_axes for i in r.inputs) for r in recs):
            continue
        sig = model.signatures[name]
        where = analysis.find_xla_compilation(model.meta_graph, [s.name for s in sig.outputs.values()])
        if where:
            out[name] = tuple(where)
    return out


def xla_compiles(model: ModelSignatures, records: list[PlannedRecord],
                  batching: BatchingConfig | None) -> dict[str, int]:
    """XLA signature -> distinct request classes its records warm: each is one compile at load."""
    out: dict[str, int] = {}
    for name in sorted({r.signature for r in records if r.request_type != MULTI_INFERENCE}):
        sig = model.signatures[name]
        if analysis.find_xla_compilation(model.meta_graph, [s.name for s in sig.outputs.values()]):
            out[name] = len({r.request_class(batching) for r in records if r.signature == name})
    return out
