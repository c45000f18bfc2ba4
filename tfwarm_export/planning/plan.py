"""The warmup plan: which records to write, decided before any value exists.

One record per (signature, batch size[, shape variant]). The plan is visible
(``tfwarm inspect``, ``tfwarm_export.plan``) before anything is written, and it
already applies TF Serving's rules: request type per method, aliases, batching
limits, the 1000-record cap. Signatures that TF Serving could never run are
listed in ``skipped`` with the reason instead of becoming a failing record.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export import analysis
from tfwarm_export.serving.batching import BatchingConfig, padding_note, resolve_batch_sizes
from tfwarm_export.config import DEFAULT_DIM_SIZE, WarmupConfig
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.limits import MAX_RECORDS
from tfwarm_export.specs.request_kinds import CLASSIFY, MULTI_INFERENCE, PREDICT, REGRESS
from tfwarm_export.errors import DatasetError, PlanError, SignatureError
from tfwarm_export.planning.feeds import COMPOSITE, EXAMPLES, TENSOR, FeedPlan, PlanItem
from tfwarm_export.planning.records import InputPlan, PlannedRecord, WarmupPlan
from tfwarm_export.planning.request_types import choose_request_type
from tfwarm_export.planning.tensor_inputs import (input_shapes, refuse_unservable, solve_constraints,
                                                 solved_input, tensor_domain)
from tfwarm_export.planning.xla_classes import exact_classes, fit_exact_to_cap, xla_compiles, xla_default_dims
from tfwarm_export.planning.input_options import ResolvedInputs, resolve_inputs
from tfwarm_export.planning.plan_inputs import (Skip, composite_batching_reason, composite_input,
                                       composite_part_shape, logical_signature)
from tfwarm_export.traffic import (TrafficSelection, check_selection, sample_dataset,
                                   sample_traffic, traffic_plan, traffic_spec)
from tfwarm_export.serving.serving_config import ServerSettings
from tfwarm_export.traffic.stats import bucket_quantiles, cut_quantiles
from tfwarm_export.model.signatures import (ModelSignatures, SignatureInfo, TensorSpec)


def _data_variants(sample: Any, per_input: Mapping[str, FeedPlan], config: WarmupConfig, sig: SignatureInfo,
                   max_buckets: int, inputs: ResolvedInputs) -> list[dict[tuple[str, int], int]]:
    """Shape variants from the sizes seen in the data: the i-th bucket of every unknown dim.

    Dimensions the user sized with ``dim_sizes`` keep the user's sizes.
    """
    buckets = {key: sizes for key, sizes in sample.buckets(max_buckets, config.bucket_quantiles).items()
               if key[0] in per_input and per_input[key[0]].kind == TENSOR
               and not inputs.get(sig.name, key[0]).dims.get(key[1])}
    if not buckets:
        return [{}]
    n = max(len(v) for v in buckets.values())
    return [{key: sizes[min(i, len(sizes) - 1)] for key, sizes in buckets.items()} for i in range(n)]


def _plan_signature(model: ModelSignatures, sig: SignatureInfo, config: WarmupConfig,
                    batch_sizes: tuple[int, ...], batching: BatchingConfig | None,
                    notes: list[str], sample: Any = None,
                    max_buckets: int | None = None, *, inputs: ResolvedInputs) -> list[PlannedRecord]:
    request_type, fallback_note = choose_request_type(sig)
    if fallback_note:
        notes.append(f"{sig.name}: {fallback_note}")
    if not config.include_stateful:
        stateful = analysis.find_stateful_ops(model.meta_graph, [s.name for s in sig.outputs.values()])
        if stateful:
            raise Skip(f"it mutates model state ({', '.join(stateful[:3])}); replaying it at every "
                        "load would change the model. Pass include_stateful=True to warm it anyway")
    refuse_unservable(model, sig)  # issue 26: tf.py_function and the like fail every request
    problems = [f"input {s.alias!r} ({s.name}): {s.problem}" for s in sig.inputs.values() if s.problem]
    if problems:
        raise Skip("; ".join(problems) + ". Re-export the model so the SignatureDef records each "
                    "input's dtype")
    feeds = [sig.inputs[a] for a in sig.required_inputs]
    if not feeds and request_type == PREDICT and sample is None:
        return _defaulted_records(model, sig, config, batch_sizes, batching, notes, inputs)
    return _plan_feeds(model, sig, feeds, config, batch_sizes, batching, notes, request_type,
                       sample, max_buckets, inputs)


NO_INPUT_BATCHING_REASON = (
    "it has no inputs, and TF Serving's batching session refuses a run without input tensors "
    "(\"Batching Run() must have at least one input tensor\"), so every request to it fails with "
    "batching on. Serve it from a model loaded without --enable_batching")


def _defaulted_records(model: ModelSignatures, sig: SignatureInfo, config: WarmupConfig,
                       batch_sizes: tuple[int, ...], batching: BatchingConfig | None,
                       notes: list[str], inputs: ResolvedInputs) -> list[PlannedRecord]:
    """Records for a signature a request may leave empty: no inputs, or every input defaulted.

    TF Serving fills every missing alias with its ``defaults`` tensor, so an empty request
    runs the defaults; traffic that feeds the inputs with other shapes is a different run,
    warmed as well (a fed record shaped exactly like the defaults would repeat the empty one).
    """
    defaults = {a: np.asarray(sig.defaults[a]) for a in sorted(sig.inputs)}
    dims0 = {v.shape[0] for v in defaults.values() if v.ndim >= 1}
    scalars = sorted(a for a, v in defaults.items() if v.ndim == 0)
    batch = dims0.pop() if len(dims0) == 1 and not scalars else None
    records: list[PlannedRecord] = []
    if batching is not None and not sig.inputs:
        raise Skip(NO_INPUT_BATCHING_REASON)
    why_not = None
    if batching is not None:
        if scalars:
            why_not = f"the default of {scalars} is rank 0 and the batching session needs a batch dimension"
        elif batch is None:
            why_not = "the defaults do not share one 0th dimension, which the batching session needs"
        elif batch > batching.max_batch_size:
            why_not = f"the defaults' batch {batch} exceeds max_batch_size {batching.max_batch_size}"
        else:
            padded = batching.padded_size(batch)
            fixed = sorted(a for a, s in sig.inputs.items() if s.shape and s.shape[0] not in (None, padded))
            if fixed:
                why_not = (f"the batching session pads the defaults' batch {batch} to {padded}, but "
                           f"{fixed} fix the batch dimension at {sig.inputs[fixed[0]].shape[0]}")
    if why_not is None:
        records.append(PlannedRecord(signature=sig.name, request_type=PREDICT, batch_size=batch,
                                     inputs=(), source="defaults"))
    if sig.inputs:
        try:
            fed = _plan_feeds(model, sig, [sig.inputs[a] for a in sorted(sig.inputs)], config,
                              batch_sizes, batching, notes, PREDICT, None, None, inputs)
        except Skip as e:
            if not records:
                raise Skip(f"a request without inputs fails with batching on ({why_not}), and "
                            f"feeding the defaulted inputs cannot be planned either: {e}") from None
            notes.append(f"{sig.name}: warmed with its defaults only; feeding the defaulted inputs "
                         f"cannot be planned ({e})")
            fed = []
        for r in fed:
            if all(tuple(i.shape) == defaults[i.alias].shape for i in r.inputs):
                continue  # the same Session run as the empty request
            records.append(dataclasses.replace(r, variant=r.variant + 1))
        if why_not is not None:
            if not records:
                raise Skip(f"a request without inputs fails with batching on ({why_not}), and fed "
                            "requests would repeat the defaults' shapes")
            notes.append(f"{sig.name}: no record without inputs under batching ({why_not}); "
                         "only requests that feed the defaulted inputs are warmed")
    if why_not is None:
        notes.append(f"{sig.name}: " + ("no inputs; warmed with an empty request" if not sig.inputs else
                                    f"every input has a default; warmed with an empty request (TF "
                                    f"Serving feeds the defaults){' and with fed inputs' if len(records) > 1 else ''}"))
    return records


def _plan_feeds(model: ModelSignatures, sig: SignatureInfo, feeds: list[TensorSpec], config: WarmupConfig,
                batch_sizes: tuple[int, ...], batching: BatchingConfig | None, notes: list[str],
                request_type: str, sample: Any, max_buckets: int | None,
                inputs: ResolvedInputs) -> list[PlannedRecord]:
    """Records that feed ``feeds`` (normally every input without a default), step by step:
    each input's plan, the batch sizes the signature can take, the (batch, variant, bucket)
    items (exact classes under XLA), then one record per item."""
    if not feeds:
        raise Skip("it has no inputs without defaults; there is nothing to feed")
    composites = analysis.find_composites(model.meta_graph, {s.alias: (s.name, s.dtype) for s in feeds})
    if composites and batching is not None:
        raise Skip(composite_batching_reason(composites))
    if composites and sample is not None and not {c.group for c in composites.values()} <= set(sample.aliases):
        notes.append(f"{sig.name}: the dataset has no field for its ragged/sparse inputs; values are "
                     "synthesised")
        sample = None
    per_input = {spec.alias: (composite_input(model, sig, spec, composites[spec.alias], inputs)
                              if spec.alias in composites else
                              _feed_plan(model, sig, spec, config, request_type, notes, inputs))
                 for spec in feeds}
    sizes, fixed0 = _signature_batch_sizes(sig, per_input, batch_sizes, batching, notes)
    # sizes and values the graph's checks and input relations need, per batch size (issue 26)
    solved = solve_constraints(model, sig, per_input, sizes, batching, notes) if sample is None else {}
    items = _plan_items(model, sig, per_input, config, sample, sizes, fixed0, batching, request_type,
                        max_buckets, notes, inputs)
    source = "dataset" if sample is not None else "synthetic"
    return [_record(sig.name, request_type, per_input, item, source, solved) for item in items]


def _feed_plan(model: ModelSignatures, sig: SignatureInfo, spec: TensorSpec, config: WarmupConfig,
               request_type: str, notes: list[str], inputs: ResolvedInputs) -> FeedPlan:
    """One plain input: serialized tf.Examples when it feeds a parser, else a tensor."""
    override = inputs.get(sig.name, spec.alias).override
    domain = Domain.from_user(override) if override is not None else None
    example_spec = None
    if spec.dtype == tf.string and (request_type in (CLASSIFY, REGRESS) or spec.rank in (None, 0, 1)):
        example_spec = analysis.find_example_spec(model.meta_graph, spec.name)
    if request_type in (CLASSIFY, REGRESS) and example_spec is None and domain is None:
        raise Skip(f"could not find the tf.Example parser that input {spec.alias!r} ({spec.name}) "
                   f"feeds. Give serialized examples: overrides={{'{sig.name}/{spec.alias}': "
                   "[example.SerializeToString(), ...]}")
    if example_spec is not None and domain is None:
        return _examples_feed(model, sig, spec, config, request_type, example_spec, inputs)
    shape, variants, defaulted = input_shapes(sig, spec, inputs, model.meta_graph, notes)
    if domain is None:
        domain = tensor_domain(model, sig, spec, inputs)
    return FeedPlan(spec=spec, shape=tuple(shape), variants=tuple(variants), kind=TENSOR, domain=domain,
                    defaulted=tuple(defaulted))


def _examples_feed(model: ModelSignatures, sig: SignatureInfo, spec: TensorSpec, config: WarmupConfig,
                   request_type: str, example_spec, inputs: ResolvedInputs) -> FeedPlan:
    """A string input that feeds a tf.Example parser: its features' value domains."""
    shape = (() if example_spec.single else (None,)) if spec.rank in (None, 0, 1) else spec.shape
    if spec.shape is not None and len(shape) != len(spec.shape):
        shape = spec.shape
    if request_type in (CLASSIFY, REGRESS):
        shape = (None,)  # the Classify/Regress API always feeds a 1-D batch of examples
    variants = (tuple(DEFAULT_DIM_SIZE if d is None else d for d in shape[1:]),)
    feature_domains = analysis.find_value_domains(model.meta_graph, {spec.alias: spec.name}, example_spec,
                                                  export_dir=model.export_dir)
    for key, dom in analysis.find_feature_decoder_domains(  # e.g. image/encoded -> DecodeJpeg
            model.meta_graph, example_spec, model.export_dir, config.image_size).items():
        feature_domains.setdefault(key, dom)
    keys = [example_spec.domain_key(f.key) for f in example_spec.context_features()]
    keys += [example_spec.domain_key(f.key, True) for f in example_spec.feature_list_features()]
    for key in list(feature_domains) + keys:
        user = inputs.get(sig.name, key).override
        if user is not None:
            feature_domains[key] = Domain.from_user(user)
    return FeedPlan(spec=spec, shape=tuple(shape), variants=variants, kind=EXAMPLES,
                    example_spec=example_spec, feature_domains=feature_domains)


def _signature_batch_sizes(sig: SignatureInfo, per_input: Mapping[str, FeedPlan],
                           batch_sizes: tuple[int, ...], batching: BatchingConfig | None,
                           notes: list[str]) -> tuple[tuple[int | None, ...], set[int]]:
    """The batch sizes this signature is warmed at, and the batch its inputs fix (if any)."""
    ranks = {a: p.rank for a, p in per_input.items()}
    scalars = [a for a, r in ranks.items() if r == 0]
    if batching is not None and scalars:
        raise Skip(f"inputs {scalars} are rank 0; TF Serving's batching needs every input to "
                   "have a batch dimension, so every request to this signature fails with "
                   "batching on")
    fixed0 = {p.shape[0] for p in per_input.values() if p.rank >= 1 and p.shape[0] is not None
              and p.kind != COMPOSITE}
    fixed0 |= {p.batch_dim for p in per_input.values() if p.batch_dim is not None}
    if batching is not None:  # TF Serving feeds the defaults of inputs left out: they are batched too
        for alias in sorted(set(sig.defaults) - set(per_input)):
            default = np.asarray(sig.defaults[alias])
            if default.ndim == 0:
                raise Skip(f"input {alias!r} is left to its default, a rank-0 tensor that TF Serving "
                           "feeds with every request; its batching session needs every input to have "
                           "a batch dimension (\"Batching Run() input tensors must have at least one "
                           "dimension\")")
            fixed0.add(int(default.shape[0]))
    if len(fixed0) > 1:
        raise Skip(f"inputs fix different batch dimensions {sorted(fixed0)}; no request can satisfy all")
    if scalars:
        notes.append(f"{sig.name}: inputs {scalars} are rank 0 (no batch dimension); they cannot be "
                     "batched by TF Serving's batching")
    if not any(r >= 1 for r in ranks.values()):
        return (None,), set(fixed0)
    if not fixed0:
        return tuple(batch_sizes), set()
    only = next(iter(fixed0))
    if batching is not None and only > batching.max_batch_size:
        raise Skip(f"its batch dimension is fixed at {only} > max_batch_size {batching.max_batch_size}")
    if batching is not None and batching.padded_size(only) != only:
        raise Skip(f"its batch dimension is fixed at {only}, but TF Serving's batching session pads "
                   f"a batch of {only} to {batching.padded_size(only)} (allowed_batch_sizes), "
                   "which that input cannot take")
    if tuple(batch_sizes) != (only,):
        notes.append(f"{sig.name}: the batch dimension is fixed at {only}; only that size is warmed")
    return (only,), set(fixed0)


def _plan_items(model: ModelSignatures, sig: SignatureInfo, per_input: Mapping[str, FeedPlan],
                config: WarmupConfig, sample: Any, sizes: tuple, fixed0: set[int],
                batching: BatchingConfig | None, request_type: str, max_buckets: int | None,
                notes: list[str], inputs: ResolvedInputs) -> list[PlanItem]:
    """Every (batch, variant, bucket) to warm: sizes x shape variants (buckets from the data),
    or, for a signature that compiles per shape, the exact classes the data runs at."""
    exact = exact_classes(model, sig, per_input, sample, sizes, fixed0, batching, inputs, request_type)
    if exact is not None:
        items, source_note = exact
        notes.append(f"{sig.name}: {source_note}")
        return items
    n_variants = max(len(p.variants) for p in per_input.values())
    data_variants: list[dict[tuple[str, int], int]] = [{}]
    if sample is not None:
        data_variants = _data_variants(sample, per_input, config, sig,
                                       max_buckets if max_buckets is not None else config.max_buckets, inputs)
        n_variants = max(n_variants, len(data_variants))
    return [PlanItem(b, v, data_variants[min(v, len(data_variants) - 1)])
            for b in sizes for v in range(n_variants)]


def _record(signature: str, request_type: str, per_input: Mapping[str, FeedPlan], item: PlanItem,
            source: str, solved: Mapping[int, Any]) -> PlannedRecord:
    """The record of one item: each input at the item's batch, variant and data sizes, then
    what the constraint solver fixed for that batch (``solved``, issue 26)."""
    inputs = []
    for alias in sorted(per_input):
        p = per_input[alias]
        rest = list(p.variant(0 if item.exact else item.variant))  # an exact class's sizes: its bucket
        defaulted = set(p.defaulted)
        for (b_alias, axis), size in item.bucket.items():
            if b_alias == alias and 0 < axis <= len(rest):
                rest[axis - 1] = size
                defaulted.discard(axis)
        shape = ((item.batch,) + tuple(rest)) if p.rank >= 1 else ()
        domain = p.domain
        if p.kind == TENSOR and p.rank >= 1:
            shape, domain, defaulted = solved_input(solved, item.batch, item.variant, alias, shape, domain,
                                                    defaulted)
        composite = None
        if p.kind == COMPOSITE:
            composite = dataclasses.replace(p.component, sizes=(item.batch,) + tuple(rest))
            shape, defaulted = composite_part_shape(composite), set()
        inputs.append(InputPlan(alias=alias, tensor=p.spec.name, dtype=p.spec.dtype, shape=shape,
                                kind=p.kind, domain=domain, example_spec=p.example_spec,
                                feature_domains=p.feature_domains,
                                defaulted_axes=tuple(sorted(defaulted)) if p.rank >= 1 else (),
                                composite=composite))
    return PlannedRecord(signature=signature, request_type=request_type, batch_size=item.batch,
                         inputs=tuple(inputs), variant=item.variant, source=source,
                         bucket=tuple(sorted(item.bucket.items())), exact=item.count)


def _multi_inference_records(model: ModelSignatures, records: list[PlannedRecord],
                             batch_sizes: tuple[int, ...], notes: list[str],
                             model_name: str) -> list[PlannedRecord]:
    """One MultiInference record per batch size for classify/regress signatures sharing an input."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r.request_type in (CLASSIFY, REGRESS) and r.variant == 0 and r.batch_size == batch_sizes[0]:
            groups.setdefault(r.inputs[0].tensor, []).append(r.signature)
    out = []
    for tensor, sigs in sorted(groups.items()):
        if len(sigs) < 2:
            continue
        if not model_name:
            raise PlanError("MultiInference requests need a model name shared by all tasks; pass "
                            "model_name=... (CLI: --model-name) with multi_inference.")
        for r in records:
            if r.signature == sigs[0] and r.variant == 0:
                out.append(PlannedRecord(signature="+".join(sorted(sigs)), request_type=MULTI_INFERENCE,
                                         batch_size=r.batch_size, inputs=r.inputs,
                                         tasks=tuple((s, model.signatures[s].method_name)
                                                     for s in sorted(sigs))))
    if not out:
        notes.append("multi_inference: no two classify/regress signatures share an input; none planned")
    return out


def make_plan(model: ModelSignatures, config: WarmupConfig, server: ServerSettings,
              wanted: Sequence[str], selection: TrafficSelection | None = None,
              inputs: ResolvedInputs | None = None) -> WarmupPlan:
    """Build the plan for the signatures ``wanted`` of ``model``. Raises PlanError on impossible options.

    ``server`` is what TF Serving will load the model with, resolved once at the edge
    (``tfwarm_export.context.resolve``, which also validated the config's keys); nothing
    here reads a configuration file. ``selection``: the traffic selected at the edge
    (``api.select``); None with ``config.traffic`` set selects here (``select_traffic``).
    I/O comes first (sampling the dataset and traffic), then ``plan_records`` plans from the
    samples without touching a file.
    """
    wanted = list(wanted)
    if not wanted:
        raise SignatureError(f"{model.export_dir} has no signatures to warm; export the model with "
                             "a serving signature (e.g. signatures={'serving_default': fn}).")
    notes: list[str] = list(server.notes) + model.recoveries(wanted)
    padded = padding_note(config.batch_sizes, server.batching)
    if padded:
        notes.append(padded)
    samples = _sample_datasets(model, wanted, config, notes)
    if selection is None:
        selection = select_traffic(model, wanted, config, server.batching)
    samples.update(_traffic_samples(wanted, selection, notes, samples))
    return plan_records(model, config, server, wanted, samples, notes, inputs)


def plan_records(model: ModelSignatures, config: WarmupConfig, server: ServerSettings,
                 wanted: Sequence[str], samples: Mapping[str, Any], notes: Sequence[str] = (),
                 inputs: ResolvedInputs | None = None) -> WarmupPlan:
    """The plan from the model, the options, the server and the data already sampled: a pure
    function (same inputs, same plan), so it can be tested and reasoned about alone.
    ``inputs``: the per-input options resolved at the edge; None resolves them from ``config``."""
    if inputs is None:
        inputs = resolve_inputs(model, config)
    batching = server.batching
    batch_sizes = resolve_batch_sizes(config.batch_sizes, batching)
    notes, skipped = list(notes), {}
    per_sig: dict[str, list[PlannedRecord]] = {}
    for name in wanted:
        try:
            per_sig[name] = _plan_signature(model, model.signatures[name], config, batch_sizes,
                                            batching, notes, samples.get(name), inputs=inputs)
        except Skip as why:
            skipped[name] = str(why)
    _fit_buckets_to_budget(model, config, batch_sizes, batching, samples, per_sig, notes, inputs)
    fit_exact_to_cap(per_sig, notes)
    records = [r for name in wanted for r in per_sig.get(name, [])]
    if config.multi_inference:
        records.extend(_multi_inference_records(model, records, batch_sizes, notes, config.model_name))
    if config.signatures is not None and skipped:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
        raise SignatureError(f"requested signature(s) cannot be warmed: {names}.")
    if not records:
        raise PlanError(f"nothing to warm in {model.export_dir}: "
                        + "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
    _check_cap(records, batch_sizes, notes)
    copies = _copies(config.iterations, len(records), notes)
    return WarmupPlan(export_dir=model.export_dir, tags=tuple(model.tags), model_name=config.model_name,
                      seed=config.seed, batch_sizes=batch_sizes, batching=batching,
                      records=tuple(records), skipped=skipped, notes=tuple(notes),
                      samples=dict(samples), privacy=config.privacy, server=server, copies=copies,
                      xla=xla_default_dims(model, records),
                      xla_compiles=xla_compiles(model, records, batching))


def _check_cap(records: Sequence[PlannedRecord], batch_sizes: tuple[int, ...], notes: Sequence[str]) -> None:
    """A plan over TF Serving's record cap is an error naming what to cut."""
    if len(records) <= MAX_RECORDS:
        return
    per_sig: dict[str, int] = {}
    for r in records:
        per_sig[r.signature] = per_sig.get(r.signature, 0) + 1
    breakdown = ", ".join(f"{k}: {v}" for k, v in sorted(per_sig.items()))
    raise PlanError(
        f"the plan has {len(records)} records, over TF Serving's limit of {MAX_RECORDS} per "
        f"warmup file ({len(per_sig)} signature(s) x {len(batch_sizes)} batch size(s) x shape "
        f"variants: {breakdown}). Reduce it: warm fewer signatures (signatures=[...]), fewer "
        "batch sizes (batch_sizes=[...] or fewer allowed_batch_sizes), or fewer dim sizes/buckets."
        + (" Buckets from the data are already cut to one size per dimension, so max_buckets/"
           "bucket_quantiles cannot cut further." if any("buckets were cut to 1 " in n for n in notes) else ""))


def _copies(iterations: int, n_records: int, notes: list[str]) -> int:
    """How many times each record goes into the file: ``iterations``, cut to fit the cap."""
    fit = max(1, MAX_RECORDS // max(1, n_records))
    if iterations > fit:
        notes.append(f"iterations={iterations} would write {iterations * n_records} records, over TF "
                     f"Serving's limit of {MAX_RECORDS}; each record is written {fit} time(s) instead")
        return fit
    return int(iterations)


def _sample_datasets(model: ModelSignatures, wanted: list[str], config: WarmupConfig,
                     notes: list[str]) -> dict[str, Any]:
    """Sample ``config.dataset`` for the signatures it feeds.

    A dict ``{signature: dataset}`` says which explicitly. A single dataset feeds
    every warmed signature it fits (one scan per distinct input layout); the others
    are synthesised, with a note. If it fits none, the first mismatch is raised.
    """
    if config.dataset is None:
        return {}
    def sample(ds, sig):
        return sample_dataset(ds, sig, k=config.dataset_sample_size, seed=config.seed,
                              max_scan=config.dataset_max_scan)

    if isinstance(config.dataset, Mapping) and config.dataset and all(
            isinstance(k, str) and k in model.signatures for k in config.dataset):
        return {name: sample(ds, logical_signature(model, model.signatures[name]))
                for name, ds in sorted(config.dataset.items()) if name in wanted}
    out: dict[str, Any] = {}
    cache: dict[tuple, Any] = {}
    errors: dict[str, DatasetError] = {}
    for name in wanted:
        sig = model.signatures[name]
        layout = tuple((a, s.dtype.name, s.shape) for a, s in sorted(sig.inputs.items()))
        if layout in cache:
            if cache[layout] is not None:
                out[name] = cache[layout]
            continue
        try:
            cache[layout] = out[name] = sample(config.dataset, logical_signature(model, sig))
        except (DatasetError, SignatureError) as e:
            cache[layout] = None
            errors[name] = e
    if not out:
        first = next(iter(errors.values()))
        raise type(first)(f"{first} (the dataset fits none of the warmed signatures "
                          f"{sorted(errors)}; pass dataset={{'signature': data}} to choose one)") from None
    for name in sorted(errors):
        notes.append(f"{name}: the dataset does not fit this signature ({str(errors[name]).splitlines()[0]}); "
                     "values are synthesised")
    return out


def _fit_buckets_to_budget(model: ModelSignatures, config: WarmupConfig, batch_sizes, batching,
                           samples: Mapping[str, Any], per_sig: dict[str, list[PlannedRecord]],
                           notes: list[str], inputs: ResolvedInputs) -> None:
    """Shrink data buckets (never batch sizes or signatures) until the plan fits 1000 records."""
    cap = config.max_buckets
    fixed = config.bucket_quantiles  # fixed quantiles: the cut removes quantiles, evenly, never the max
    exact = {name for name, recs in per_sig.items() if any(r.exact for r in recs)}  # cut apart
    wanted = {name: {r.bucket for r in recs} for name, recs in per_sig.items() if name not in exact}
    cut_config = config
    while sum(len(v) for v in per_sig.values()) > MAX_RECORDS and cap > 1 and len(exact) < len(per_sig):
        cap -= 1
        if fixed is not None:
            cut_config = config.replace(bucket_quantiles=cut_quantiles(fixed, min(cap, len(fixed) + 1)))
        for name, sample in samples.items():
            if name in per_sig and name not in exact:
                per_sig[name] = _plan_signature(model, model.signatures[name], cut_config, batch_sizes,
                                                batching, [], sample, max_buckets=cap, inputs=inputs)
    for name, before in sorted(wanted.items()):  # one note per signature: the final cut
        dropped = before - {r.bucket for r in per_sig[name]}
        if dropped:
            shown = sorted({f"{a}[{ax}]={n}" for b in dropped for (a, ax), n in b})
            how = f"dataset buckets were cut to {cap} per dimension"
            if fixed is not None and list(cut_config.bucket_quantiles) != bucket_quantiles(config.max_buckets, fixed):
                how += f" (bucket_quantiles cut to {cut_config.bucket_quantiles})"
            notes.append(f"{name}: to stay within {MAX_RECORDS} records, {how}; dropped {', '.join(shown)}")


def select_traffic(model: ModelSignatures, wanted: Sequence[str], config: WarmupConfig,
                   batching: BatchingConfig | None) -> TrafficSelection | None:
    """The local selection from logged traffic / a previous version for ``wanted`` (the Beam
    pipeline makes the same one on a runner); None without traffic."""
    if config.traffic is None and config.previous_version is None:
        return None
    if isinstance(config.traffic, TrafficSelection):
        return config.traffic
    return sample_traffic(*traffic_scan(model, wanted, config, batching))


def _traffic_samples(wanted: Sequence[str], selection: TrafficSelection | None, notes: list[str],
                     have: Mapping[str, Any]) -> dict[str, Any]:
    """The selection's samples for the signatures ``dataset=`` does not already feed; count
    what was dropped, and why."""
    if selection is None:
        return {}
    check_selection(selection)
    notes.extend(selection.drop_lines())
    out = {}
    for name in wanted:
        if name in have:
            continue
        if name in selection.samples:
            out[name] = selection.samples[name]
        else:
            notes.append(f"{name}: no request from {selection.source} fits this signature; "
                         "values are synthesised")
    return out


def traffic_scan(model: ModelSignatures, wanted: Sequence[str], config: WarmupConfig,
                 batching: BatchingConfig | None) -> tuple[list, Any, str]:
    """Files, spec and source of the traffic scan for ``wanted``: the one setup the local
    path and the Beam pipeline share, under the server's batching rule, so both pad,
    drop and select the same requests."""
    rule = batching.rule if batching is not None else ()
    return traffic_plan({n: model.signatures[n] for n in wanted}, sorted(model.signatures), rule,
                        config.traffic, config.previous_version, k=config.dataset_sample_size,
                        seed=config.seed)


def selection_spec(model: ModelSignatures, wanted: Sequence[str], config: WarmupConfig,
                   batching: BatchingConfig | None) -> Any:
    """The ``TrafficSpec`` ``traffic_scan`` builds, without listing any file (Beam's transform)."""
    rule = batching.rule if batching is not None else ()
    return traffic_spec({n: model.signatures[n] for n in wanted}, sorted(model.signatures), rule,
                        k=config.dataset_sample_size, seed=config.seed)
