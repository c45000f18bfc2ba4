"""The warmup plan: which records to write, decided before any value exists.

One record per (signature, batch size[, shape variant]). The plan is visible
(``tfwarm inspect``, ``tfwarm_export.plan``) before anything is written, and it
already applies TF Serving's rules: request type per method, aliases, batching
limits, the 1000-record cap. Signatures that TF Serving could never run are
listed in ``skipped`` with the reason instead of becoming a failing record.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tfwarm_export import analysis
from tfwarm_export.serving.batching import BatchingConfig, padding_note, resolve_batch_sizes
from tfwarm_export.serving.load_cost import nothing_new
from tfwarm_export.serving.request_class import RequestClass, request_class
from tfwarm_export.config import DEFAULT_DIM_SIZE, WarmupConfig
from tfwarm_export.values.domains import Domain
from tfwarm_export.errors import DatasetError, PlanError, SignatureError
from tfwarm_export.values.example_spec import ExampleSpec
from tfwarm_export.planning.keys import validate_keys
from tfwarm_export.planning.plan_inputs import (Skip, composite_batching_reason, composite_input,
                                       composite_part_shape, logical_signature, lookup)
from tfwarm_export.traffic import (DataSample, TrafficSelection, check_selection, sample_dataset,
                                   sample_traffic, traffic_plan)
from tfwarm_export.serving.serving_config import ServerSettings, resolve_server
from tfwarm_export.traffic.stats import bucket_quantiles, cut_quantiles
from tfwarm_export.model.signatures import (CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD,
                                      ModelSignatures, SignatureInfo, TensorSpec)

MAX_RECORDS = 1000
"""TF Serving's limit on records in one warmup file (record 1001 fails the load)."""

PREDICT, CLASSIFY, REGRESS, MULTI_INFERENCE = "predict", "classify", "regress", "multi_inference"


@dataclass(frozen=True)
class InputPlan:
    """How one request input is filled.

    ``kind`` is "tensor" (values synthesised or sampled for ``shape``) or
    "examples" (``shape[0]`` serialized tf.Examples built from ``example_spec``).
    """

    alias: str
    tensor: str
    dtype: tf.DType
    shape: tuple[int, ...]
    kind: str = "tensor"
    domain: Domain | None = None
    example_spec: ExampleSpec | None = None
    feature_domains: Mapping[str, Domain] = field(default_factory=dict)
    defaulted_axes: tuple[int, ...] = ()  # unknown dims sized by DEFAULT_DIM_SIZE, not by user/data
    composite: analysis.Component | None = None  # kind "composite": one part of a ragged/sparse input

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"alias": self.alias, "tensor": self.tensor, "dtype": self.dtype.name,
                             "shape": list(self.shape), "kind": self.kind}
        if self.defaulted_axes:
            d["defaulted_axes"] = list(self.defaulted_axes)
        if self.domain is not None:
            d["domain"] = self.domain.describe()
        if self.example_spec is not None:
            d["example_spec"] = self.example_spec.to_dict()
        if self.feature_domains:
            d["feature_domains"] = {k: v.describe() for k, v in sorted(self.feature_domains.items())}
        if self.composite is not None:
            d["composite"] = {"part": self.composite.describe(), "shape": list(self.composite.sizes)}
            if self.composite.confirmed_by:
                d["composite"]["confirmed_by"] = list(self.composite.confirmed_by)
        return d


@dataclass(frozen=True)
class PlannedRecord:
    """One PredictionLog to write. ``batch_size`` is None for unbatched inputs."""

    signature: str
    request_type: str
    batch_size: int | None
    inputs: tuple[InputPlan, ...]
    variant: int = 0
    tasks: tuple[tuple[str, str], ...] = ()  # MultiInference: (signature, method_name) pairs
    source: str = "synthetic"  # or "dataset": values come from WarmupPlan.samples[signature]
    bucket: tuple[tuple[tuple[str, int], int], ...] = ()  # ((alias, axis), size) from the data
    exact: int = 0  # > 0: an exact class seen this often in the data (signatures that compile per shape)

    @property
    def key(self) -> str:
        parts = [self.signature, self.request_type, f"b{self.batch_size}"]
        if self.variant:
            parts.append(f"v{self.variant}")
        return "/".join(parts)

    def request_class(self, batching: BatchingConfig | None = None) -> RequestClass:
        """The class of the request this record becomes (``serving.request_class``)."""
        if self.request_type == PREDICT:
            shapes = {i.alias: i.shape for i in self.inputs}
        else:
            shapes = {"inputs": (self.batch_size or 0,)}
        return request_class(self.signature, self.request_type, shapes,
                             batching.padded_size if batching is not None else None)

    def to_dict(self) -> dict:
        d = {"signature": self.signature, "request_type": self.request_type,
             "batch_size": self.batch_size, "variant": self.variant, "source": self.source,
             "inputs": [i.to_dict() for i in self.inputs]}
        if self.exact:
            d["exact_class_count"] = self.exact
        if self.bucket:
            d["bucket"] = {f"{a}[{ax}]": size for (a, ax), size in self.bucket}
        if self.tasks:
            d["tasks"] = [list(t) for t in self.tasks]
        return d


@dataclass(frozen=True)
class WarmupPlan:
    """What will be written, and why anything is left out."""

    export_dir: str
    tags: tuple[str, ...]
    model_name: str
    seed: int
    batch_sizes: tuple[int, ...]
    batching: BatchingConfig | None
    records: tuple[PlannedRecord, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    samples: Mapping[str, DataSample] = field(default_factory=dict)
    privacy: str = "rows"
    server: ServerSettings | None = None  # what TF Serving loads the model with
    copies: int = 1  # each record is written this many times (``iterations``)
    xla: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # XLA sigs warmed at a default dim
    xla_compiles: Mapping[str, int] = field(default_factory=dict)  # XLA sig -> distinct shapes it warms

    def classes(self) -> list[RequestClass]:
        """Each record's request class, in file order."""
        return [r.request_class(self.batching) for r in self.records]

    def duplicates(self) -> list[tuple[int, int]]:
        """``(record, earlier record)`` pairs of the same class: the later warms nothing new."""
        return nothing_new(self.classes())

    def load_estimate(self) -> dict:
        """What loading the file will cost, known before anything runs: XLA compiles (one per
        distinct shape of an XLA signature) and records that repeat an earlier one's class."""
        return {"xla_compiles": sum(self.xla_compiles.values()),
                "xla_compiles_by_signature": dict(sorted(self.xla_compiles.items())),
                "duplicate_records": [{"index": i, "same_class_as": j} for i, j in self.duplicates()]}

    @property
    def signatures(self) -> list[str]:
        return sorted({r.signature for r in self.records if r.request_type != MULTI_INFERENCE})

    def to_dict(self) -> dict:
        return {
            "export_dir": self.export_dir,
            "tags": list(self.tags),
            "model_name": self.model_name,
            "seed": self.seed,
            "batch_sizes": list(self.batch_sizes),
            "batching": self.batching.to_dict() if self.batching else None,
            "num_records": len(self.records),
            "records": [r.to_dict() for r in self.records],
            "skipped": dict(sorted(self.skipped.items())),
            "notes": list(self.notes),
            "data": {sig: sample.to_dict(privacy=self.privacy) for sig, sample in sorted(self.samples.items())},
            "privacy": self.privacy,
            "server": self.server.to_dict() if self.server else None,
            "copies": self.copies,
            "xla_default_dims": {k: list(v) for k, v in sorted(self.xla.items())},
            "load_estimate": self.load_estimate(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> str:
        lines = [f"Warmup plan for {self.export_dir}: {len(self.records)} record(s), "
                 f"batch sizes {list(self.batch_sizes)}"]
        by_sig: dict[str, list[PlannedRecord]] = {}
        for r in self.records:
            by_sig.setdefault(r.signature, []).append(r)
        for sig, recs in sorted(by_sig.items()):
            shapes = ", ".join(f"{i.alias}{list(i.shape)}" + (f" {i.domain.source}" if i.domain is not None
                                                               and i.domain.encoding is not None else "")
                               for i in recs[0].inputs) or "no inputs"
            sizes = [str(s) for s in sorted({r.batch_size for r in recs}, key=lambda b: b or 0)]
            lines.append(f"  {sig}: {recs[0].request_type} x{len(recs)} "
                         f"(batch {', '.join(sizes)}; e.g. {shapes})")
        for sig, where in sorted(self.xla.items()):
            lines.append(f"  {sig}: WARNING - {analysis.xla_shape_warning(where, DEFAULT_DIM_SIZE)}")
        for sig, why in sorted(self.skipped.items()):
            lines.append(f"  {sig}: SKIPPED - {why}")
        if self.xla_compiles:
            n = sum(self.xla_compiles.values())
            lines.append(f"  load estimate: {n} XLA compile(s) at load ("
                         + ", ".join(f"{k}: {v}" for k, v in sorted(self.xla_compiles.items())) + ")")
        dups = self.duplicates()
        if dups:
            lines.append(f"  {len(dups)} record(s) warm nothing new (an earlier record has the same "
                         f"class): {', '.join(str(i) for i, _ in dups[:20])}")
        if self.copies > 1:
            lines.append(f"  each record is written {self.copies} times ({len(self.records) * self.copies} "
                         "records in the file)")
        lines += [f"  note: {n}" for n in self.notes]
        if self.server is not None:
            lines += self.server.summary_lines()
        return "\n".join(lines)


def _is_float(dtype: tf.DType) -> bool:
    return dtype.is_floating


def _classify_problem(sig: SignatureInfo) -> str | None:
    """Why the Classify API would reject ``sig``, or None if it accepts it."""
    if set(sig.inputs) != {"inputs"}:
        return f"Classify needs exactly one input named 'inputs', found {sorted(sig.inputs)}"
    if sig.inputs["inputs"].dtype != tf.string:
        return f"Classify feeds serialized tf.Examples, but 'inputs' is {sig.inputs['inputs'].dtype.name}"
    outs = set(sig.outputs)
    if not outs & {"classes", "scores"} or outs - {"classes", "scores"}:
        return f"Classify outputs must be 'classes' and/or 'scores', found {sorted(outs)}"
    for alias, want in (("classes", tf.string), ("scores", None)):
        spec = sig.outputs.get(alias)
        if spec is None:
            continue
        if want is tf.string and spec.dtype != tf.string:
            return f"Classify output 'classes' must be string, found {spec.dtype.name}"
        if want is None and not _is_float(spec.dtype):
            return f"Classify output 'scores' must be float, found {spec.dtype.name}"
        if spec.rank is not None and spec.rank != 2:
            return f"Classify output {alias!r} must be [batch, n], found shape {spec.shape_str()}"
    return None


def _regress_problem(sig: SignatureInfo) -> str | None:
    """Why the Regress API would reject ``sig``, or None if it accepts it."""
    if set(sig.inputs) != {"inputs"}:
        return f"Regress needs exactly one input named 'inputs', found {sorted(sig.inputs)}"
    if sig.inputs["inputs"].dtype != tf.string:
        return f"Regress feeds serialized tf.Examples, but 'inputs' is {sig.inputs['inputs'].dtype.name}"
    if set(sig.outputs) != {"outputs"}:
        return f"Regress needs exactly one output named 'outputs', found {sorted(sig.outputs)}"
    spec = sig.outputs["outputs"]
    if not _is_float(spec.dtype):
        return f"Regress output 'outputs' must be float, found {spec.dtype.name}"
    if spec.shape is not None and not (len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] in (1, None))):
        return f"Regress output must be [batch] or [batch, 1], found {spec.shape_str()}"
    return None


def choose_request_type(sig: SignatureInfo) -> tuple[str, str | None]:
    """The request type TF Serving can run for ``sig``, plus a note on any fallback.

    Classify/Regress signatures get their own request type when they meet that
    API's rules; otherwise the Predict API (which accepts classify and regress
    method names) still warms the same graph.
    """
    dense = all(s.encoding == "dense" for s in sig.inputs.values())
    if sig.method_name == PREDICT_METHOD:
        if not dense:
            bad = [a for a, s in sig.inputs.items() if s.encoding != "dense"]
            raise Skip(f"inputs {bad} are sparse/composite tensors; the Predict API feeds dense "
                        "tensors only, so TF Serving can never run this signature")
        return PREDICT, None
    if sig.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
        problem = (_classify_problem if sig.method_name == CLASSIFY_METHOD else _regress_problem)(sig)
        if problem is None:
            return (CLASSIFY if sig.method_name == CLASSIFY_METHOD else REGRESS), None
        if dense:
            return PREDICT, f"{problem}; warmed through the Predict API instead"
        raise Skip(problem)
    raise Skip(f"method_name {sig.method_name!r} is not predict/classify/regress; every TF Serving "
                "API refuses to run it")


def _input_shapes(sig: SignatureInfo, spec: TensorSpec, config: WarmupConfig, meta_graph=None,
                  notes: list[str] | None = None
                  ) -> tuple[tuple[int | None, ...], list[tuple[int, ...]], tuple[int, ...]]:
    """The declared shape (after user ``shapes``), its non-batch variants, and the
    axes that fell back to ``DEFAULT_DIM_SIZE``.

    An unknown rank or unknown non-batch dims not sized by the user are first read from
    the ops that consume the input (``analysis.consumer_shapes``); the plan notes where from.
    """
    shape = spec.shape
    user_shape = lookup(config.shapes, sig.name, spec.alias)
    if user_shape is not None:
        user_shape = tuple(None if (d is None or int(d) < 0) else int(d) for d in user_shape)
        if shape is not None and (len(user_shape) != len(shape) or any(
                a is not None and b is not None and a != b for a, b in zip(user_shape, shape))):
            raise PlanError(f"shape override {list(user_shape)} for {sig.name}/{spec.alias} is not "
                            f"compatible with the signature's {spec.shape_str()}.")
        shape = user_shape
    dims = lookup(config.dim_sizes, sig.name, spec.alias) or {}
    minimum: dict[int, int] = {}
    if meta_graph is not None and user_shape is None and (shape is None or any(
            d is None and axis not in dims and str(axis) not in dims
            for axis, d in enumerate(shape) if axis > 0)):
        found = analysis.find_consumer_shape(meta_graph, spec.name, shape)
        if found is not None:
            before = shape
            shape = found.shape if shape is None else tuple(
                d if d is not None or axis == 0 else found.shape[axis] for axis, d in enumerate(shape))
            minimum = found.minimum
            if shape != before and notes is not None:
                was = "unknown rank" if before is None else "shape " + spec.shape_str()
                notes.append(f"{sig.name}: input {spec.alias!r} has {was}; shape {found.describe()}")
    if shape is None:
        raise Skip(
            f"input {spec.alias!r} of signature {sig.name!r} has unknown rank, and no op that reads it "
            f"(Reshape, MatMul, Conv, BiasAdd, ConcatV2, EnsureShape) fixes one, so no shape can be "
            f"synthesised. Give one: shapes={{'{sig.name}/{spec.alias}': (None, 16)}} in Python, or "
            f"--shape {sig.name}/{spec.alias}=-1,16 on the command line (-1 marks the batch dim).")
    per_axis: list[list[int]] = []
    defaulted: list[int] = []
    for axis, d in enumerate(shape):
        if axis == 0:
            continue
        if d is not None:
            per_axis.append([d])
            continue
        if axis not in dims and str(axis) not in dims:
            defaulted.append(axis)
        chosen = dims.get(axis, dims.get(str(axis), max(DEFAULT_DIM_SIZE, minimum.get(axis, 0))))
        chosen = [int(c) for c in (chosen if isinstance(chosen, (list, tuple)) else [chosen])]
        if any(c < 0 for c in chosen):
            raise PlanError(f"dim size for {sig.name}/{spec.alias} axis {axis} must be >= 0, got {chosen}")
        per_axis.append(chosen)
    # Variants zip across axes (a sequence length list applies to every unknown axis alike).
    n = max((len(a) for a in per_axis), default=1)
    variants = [tuple(a[min(i, len(a) - 1)] for a in per_axis) for i in range(n)]
    return shape, variants, tuple(defaulted)


def _data_variants(sample: Any, per_input: dict[str, dict], config: WarmupConfig, sig: SignatureInfo,
                   max_buckets: int) -> list[dict[tuple[str, int], int]]:
    """Shape variants from the sizes seen in the data: the i-th bucket of every unknown dim.

    Dimensions the user sized with ``dim_sizes`` keep the user's sizes.
    """
    buckets = {key: sizes for key, sizes in sample.buckets(max_buckets, config.bucket_quantiles).items()
               if key[0] in per_input and per_input[key[0]]["kind"] == "tensor"
               and not (lookup(config.dim_sizes, sig.name, key[0]) or {}).get(key[1])}
    if not buckets:
        return [{}]
    n = max(len(v) for v in buckets.values())
    return [{key: sizes[min(i, len(sizes) - 1)] for key, sizes in buckets.items()} for i in range(n)]


def _plan_signature(model: ModelSignatures, sig: SignatureInfo, config: WarmupConfig,
                    batch_sizes: tuple[int, ...], batching: BatchingConfig | None,
                    notes: list[str], sample: Any = None,
                    max_buckets: int | None = None) -> list[PlannedRecord]:
    request_type, fallback_note = choose_request_type(sig)
    if fallback_note:
        notes.append(f"{sig.name}: {fallback_note}")
    if not config.include_stateful:
        stateful = analysis.find_stateful_ops(model.meta_graph, [s.name for s in sig.outputs.values()])
        if stateful:
            raise Skip(f"it mutates model state ({', '.join(stateful[:3])}); replaying it at every "
                        "load would change the model. Pass include_stateful=True to warm it anyway")
    problems = [f"input {s.alias!r} ({s.name}): {s.problem}" for s in sig.inputs.values() if s.problem]
    if problems:
        raise Skip("; ".join(problems) + ". Re-export the model so the SignatureDef records each "
                    "input's dtype")
    feeds = [sig.inputs[a] for a in sig.required_inputs]
    if not feeds and request_type == PREDICT and sample is None:
        return _defaulted_records(model, sig, config, batch_sizes, batching, notes)
    return _plan_feeds(model, sig, feeds, config, batch_sizes, batching, notes, request_type,
                       sample, max_buckets)


NO_INPUT_BATCHING_REASON = (
    "it has no inputs, and TF Serving's batching session refuses a run without input tensors "
    "(\"Batching Run() must have at least one input tensor\"), so every request to it fails with "
    "batching on. Serve it from a model loaded without --enable_batching")


def _defaulted_records(model: ModelSignatures, sig: SignatureInfo, config: WarmupConfig,
                       batch_sizes: tuple[int, ...], batching: BatchingConfig | None,
                       notes: list[str]) -> list[PlannedRecord]:
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
                              batch_sizes, batching, notes, PREDICT, None, None)
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


def _tensor_domain(model: ModelSignatures, sig: SignatureInfo, spec: TensorSpec,
                   config: WarmupConfig) -> Domain | None:
    """Where a plain tensor input's values come from, strongest evidence first: a string guard
    that fixes the text (regex, membership), the decoder the bytes reach, value domains
    (tables, gathers, Assert bounds), then the remaining guards (length, exclusions,
    cond/where bounds)."""
    guard = analysis.find_guard_domain(model.meta_graph, spec.name, spec.dtype)
    strong = (guard is not None and isinstance(guard.encoding, analysis.GuardEncoding)
              and (guard.encoding.patterns or guard.encoding.choices is not None))
    if strong:
        return guard
    if spec.dtype == tf.string:  # bytes a graph decoder reads
        size = config.image_size
        size = lookup(size, sig.name, spec.alias) if isinstance(size, Mapping) else size
        found = analysis.find_decoder_domain(model.meta_graph, spec.name, model.export_dir, size)
        if found is not None:
            return found
    found = analysis.find_value_domains(model.meta_graph, {spec.alias: spec.name}, None,
                                        export_dir=model.export_dir).get(spec.alias)
    if found is None and guard is None and spec.dtype == tf.string:
        _refuse_unsupported_use(model, sig.name, spec)  # nothing says what to write: can any bytes do?
    return found if found is not None else guard


def _plan_feeds(model: ModelSignatures, sig: SignatureInfo, feeds: list[TensorSpec], config: WarmupConfig,
                batch_sizes: tuple[int, ...], batching: BatchingConfig | None, notes: list[str],
                request_type: str, sample: Any, max_buckets: int | None) -> list[PlannedRecord]:
    """Records that feed ``feeds`` (normally every input without a default)."""
    if not feeds:
        raise Skip("it has no inputs without defaults; there is nothing to feed")
    composites = analysis.find_composites(model.meta_graph, {s.alias: (s.name, s.dtype) for s in feeds})
    if composites and batching is not None:
        raise Skip(composite_batching_reason(composites))
    if composites and sample is not None and not {c.group for c in composites.values()} <= set(sample.aliases):
        notes.append(f"{sig.name}: the dataset has no field for its ragged/sparse inputs; values are "
                     "synthesised")
        sample = None
    per_input: dict[str, dict[str, Any]] = {}
    for spec in feeds:
        if spec.alias in composites:
            per_input[spec.alias] = composite_input(model, sig, spec, composites[spec.alias], config)
            continue
        override = lookup(config.overrides, sig.name, spec.alias)
        domain = Domain.from_user(override) if override is not None else None
        example_spec = None
        if spec.dtype == tf.string and (request_type in (CLASSIFY, REGRESS) or spec.rank in (None, 0, 1)):
            example_spec = analysis.find_example_spec(model.meta_graph, spec.name)
        if request_type in (CLASSIFY, REGRESS) and example_spec is None and domain is None:
            raise Skip(f"could not find the tf.Example parser that input {spec.alias!r} ({spec.name}) "
                        f"feeds. Give serialized examples: overrides={{'{sig.name}/{spec.alias}': "
                        "[example.SerializeToString(), ...]}")
        if example_spec is not None and domain is None:
            shape = (() if example_spec.single else (None,)) if spec.rank in (None, 0, 1) else spec.shape
            if spec.shape is not None and len(shape) != len(spec.shape):
                shape = spec.shape
            if request_type in (CLASSIFY, REGRESS):
                shape = (None,)  # the Classify/Regress API always feeds a 1-D batch of examples
            variants = [tuple(DEFAULT_DIM_SIZE if d is None else d for d in shape[1:])]
            feature_domains = analysis.find_value_domains(model.meta_graph, {spec.alias: spec.name}, example_spec,
                                                       export_dir=model.export_dir)
            for key, dom in analysis.find_feature_decoder_domains(  # e.g. image/encoded -> DecodeJpeg
                    model.meta_graph, example_spec, model.export_dir, config.image_size).items():
                feature_domains.setdefault(key, dom)
            keys = [example_spec.domain_key(f.key) for f in example_spec.context_features()]
            keys += [example_spec.domain_key(f.key, True) for f in example_spec.feature_list_features()]
            for key in list(feature_domains) + keys:
                user = lookup(config.overrides, sig.name, key)
                if user is not None:
                    feature_domains[key] = Domain.from_user(user)
            per_input[spec.alias] = dict(spec=spec, shape=shape, variants=variants, kind="examples",
                                         domain=None, example_spec=example_spec,
                                         feature_domains=feature_domains, defaulted=())
            continue
        shape, variants, defaulted = _input_shapes(sig, spec, config, model.meta_graph, notes)
        if domain is None:
            domain = _tensor_domain(model, sig, spec, config)
        per_input[spec.alias] = dict(spec=spec, shape=shape, variants=variants, kind="tensor",
                                     domain=domain, example_spec=None, feature_domains={},
                                     defaulted=defaulted)

    ranks = {a: (len(p["shape"]) if p["kind"] != "composite" else 1) for a, p in per_input.items()}
    if batching is not None:
        scalars = [a for a, r in ranks.items() if r == 0]
        if scalars:
            raise Skip(f"inputs {scalars} are rank 0; TF Serving's batching needs every input to "
                        "have a batch dimension, so every request to this signature fails with "
                        "batching on")
    batched = [a for a, r in ranks.items() if r >= 1]
    fixed0 = {p["shape"][0] for a, p in per_input.items() if ranks[a] >= 1 and p["shape"][0] is not None
              and p["kind"] != "composite"}
    fixed0 |= {p["batch_dim"] for p in per_input.values() if p.get("batch_dim") is not None}
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
    fixed_batch = set(fixed0)
    scalars = [a for a, r in ranks.items() if r == 0]
    if scalars:
        notes.append(f"{sig.name}: inputs {scalars} are rank 0 (no batch dimension); they cannot be "
                     "batched by TF Serving's batching")
    if not batched:
        sizes: tuple[int | None, ...] = (None,)
    elif fixed0:
        only = fixed0.pop()
        sizes = (only,)
        if batching is not None and only > batching.max_batch_size:
            raise Skip(f"its batch dimension is fixed at {only} > max_batch_size {batching.max_batch_size}")
        if batching is not None and batching.padded_size(only) != only:
            raise Skip(f"its batch dimension is fixed at {only}, but TF Serving's batching session pads "
                        f"a batch of {only} to {batching.padded_size(only)} (allowed_batch_sizes), "
                        "which that input cannot take")
        if tuple(batch_sizes) != (only,):
            notes.append(f"{sig.name}: the batch dimension is fixed at {only}; only that size is warmed")
    else:
        sizes = batch_sizes

    n_variants = max(len(p["variants"]) for p in per_input.values())
    data_variants: list[dict[tuple[str, int], int]] = [{}]
    if sample is not None:
        data_variants = _data_variants(sample, per_input, config, sig,
                                       max_buckets if max_buckets is not None else config.max_buckets)
        n_variants = max(n_variants, len(data_variants))
    items = [(b, v, data_variants[min(v, len(data_variants) - 1)], 0)
             for b in sizes for v in range(n_variants)]
    exact = _exact_classes(model, sig, per_input, sample, sizes, fixed_batch, batching, config, request_type)
    if exact is not None:
        items, source_note = exact
        notes.append(f"{sig.name}: {source_note}")
    records = []
    for batch_size, v, bucket, seen in items:
        inputs = []
        p_v = v if not seen else 0
        for alias in sorted(per_input):
            p = per_input[alias]
            rest = list(p["variants"][min(p_v, len(p["variants"]) - 1)])
            defaulted = set(p["defaulted"])
            for (b_alias, axis), size in bucket.items():
                if b_alias == alias and 0 < axis <= len(rest):
                    rest[axis - 1] = size
                    defaulted.discard(axis)
            shape = ((batch_size,) + tuple(rest)) if ranks[alias] >= 1 else ()
            composite = None
            if p["kind"] == "composite":
                composite = dataclasses.replace(p["component"], sizes=(batch_size,) + tuple(rest))
                shape, defaulted = composite_part_shape(composite), set()
            inputs.append(InputPlan(alias=alias, tensor=p["spec"].name, dtype=p["spec"].dtype,
                                    shape=shape, kind=p["kind"], domain=p["domain"],
                                    example_spec=p["example_spec"],
                                    feature_domains=p["feature_domains"],
                                    defaulted_axes=tuple(sorted(defaulted)) if ranks[alias] >= 1 else (),
                                    composite=composite))
        records.append(PlannedRecord(signature=sig.name, request_type=request_type,
                                     batch_size=batch_size, inputs=tuple(inputs), variant=v,
                                     source="dataset" if sample is not None else "synthetic",
                                     bucket=tuple(sorted(bucket.items())), exact=seen))
    return records


def _exact_classes(model: ModelSignatures, sig: SignatureInfo, per_input: dict[str, dict], sample: Any,
                   sizes: tuple, fixed0: set, batching: BatchingConfig | None, config: WarmupConfig,
                   request_type: str) -> tuple[list[tuple], str] | None:
    """For a signature that compiles once per shape (XLA): one item per exact class seen in the
    data, ``(batch, variant, bucket, count)``, most frequent first, and the plan note. None when
    buckets stay: no data, no unknown dimension left to the data, or no per-shape compile.

    A bucket's representative length warms nothing for its neighbours under XLA, so the exact
    (padded batch, sizes) of each class is what covers the traffic. Traffic classes keep their
    own padded batch; dataset rows (which have no batch) are crossed with the planned sizes.
    """
    if sample is None or request_type != PREDICT or any(p["kind"] != "tensor" for p in per_input.values()):
        return None
    axes = {alias: [ax for ax in range(1, len(p["shape"])) if p["shape"][ax] is None
                    and not (lookup(config.dim_sizes, sig.name, alias) or {}).get(ax)]
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
    items = [(b, i, dict(bucket), n) for i, ((b, bucket), n) in enumerate(ordered)]
    note = (f"compiles with XLA once per shape: warming the {len(items)} exact (batch, shape) "
            f"class(es) seen in {sample.source}, most frequent first, instead of buckets")
    if skipped:
        note += f" ({skipped:,} {where} of other inputs or request types are not among them)"
    return items, note


def _fit_exact_to_cap(per_sig: dict[str, list[PlannedRecord]], notes: list[str]) -> None:
    """Cut the least frequent exact classes (never a signature's last record) to fit the cap."""
    over = sum(len(v) for v in per_sig.values()) - MAX_RECORDS
    if over <= 0:
        return
    cands = sorted(((r.exact, -i, name, r) for name, recs in per_sig.items()
                    for i, r in enumerate(recs) if r.exact and i > 0), key=lambda c: c[:3])
    cut: dict[str, list[PlannedRecord]] = {}
    for _, _, name, r in cands[:over]:
        cut.setdefault(name, []).append(r)
    for name, gone in sorted(cut.items()):
        drop = set(map(id, gone))
        per_sig[name] = [r for r in per_sig[name] if id(r) not in drop]
        notes.append(f"{name}: to stay within {MAX_RECORDS} records, the {len(gone)} least frequent "
                     f"exact class(es) were cut ({sum(r.exact for r in gone):,} requests/rows of the data)")


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


def make_plan(model: ModelSignatures, config: WarmupConfig | None = None,
              server: ServerSettings | None = None) -> WarmupPlan:
    """Build the plan for ``model`` under ``config``. Raises PlanError on impossible options.

    ``server`` is what TF Serving will load the model with (``resolve_server``); it
    is resolved from ``config`` when not given.
    """
    config = config or WarmupConfig()
    validate_keys(model, config)  # a mistyped key is an error, never silently ignored
    try:  # checked on every plan, not only when some data has more sizes than buckets
        bucket_quantiles(config.max_buckets, config.bucket_quantiles)
    except ValueError as e:
        raise PlanError(f"{e}.") from None
    if server is None:
        server = resolve_server(model.export_dir, platform_config=config.platform_config,
                                batching_parameters=config.batching_parameters,
                                ignore_per_model_batching=config.ignore_per_model_batching)
    batching = server.batching
    batch_sizes = resolve_batch_sizes(config.batch_sizes, batching)

    if config.signatures is not None:
        wanted = list(dict.fromkeys(config.signatures))
        for name in wanted:
            model.get(name)  # raises SignatureError naming the available ones
    else:
        wanted = sorted(model.signatures)
    if not wanted:
        raise SignatureError(f"{model.export_dir} has no signatures to warm; export the model with "
                             "a serving signature (e.g. signatures={'serving_default': fn}).")

    notes: list[str] = list(server.notes) + model.recoveries(wanted)
    padded = padding_note(config.batch_sizes, batching)
    if padded:
        notes.append(padded)
    skipped: dict[str, str] = {}
    samples = _sample_datasets(model, wanted, config, notes)
    samples.update(_sample_traffic(model, wanted, config, batching, notes, samples))
    per_sig: dict[str, list[PlannedRecord]] = {}
    for name in wanted:
        try:
            per_sig[name] = _plan_signature(model, model.signatures[name], config, batch_sizes,
                                            batching, notes, samples.get(name))
        except Skip as why:
            skipped[name] = str(why)
    _fit_buckets_to_budget(model, config, batch_sizes, batching, samples, per_sig, notes)
    _fit_exact_to_cap(per_sig, notes)
    records = [r for name in wanted for r in per_sig.get(name, [])]
    if config.multi_inference:
        records.extend(_multi_inference_records(model, records, batch_sizes, notes, config.model_name))
    if config.signatures is not None and skipped:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
        raise SignatureError(f"requested signature(s) cannot be warmed: {names}.")
    if not records:
        raise PlanError(f"nothing to warm in {model.export_dir}: "
                        + "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
    if len(records) > MAX_RECORDS:
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
    copies = _copies(config.iterations, len(records), notes)
    return WarmupPlan(export_dir=model.export_dir, tags=tuple(model.tags), model_name=config.model_name,
                      seed=config.seed, batch_sizes=batch_sizes, batching=batching,
                      records=tuple(records), skipped=skipped, notes=tuple(notes),
                      samples=samples, privacy=config.privacy, server=server, copies=copies,
                      xla=_xla_default_dims(model, records),
                      xla_compiles=_xla_compiles(model, records, batching))


def _refuse_unsupported_use(model, signature: str, spec) -> None:
    """A PlanError when a string input reaches an op the catalogue marks unsupported."""
    use = analysis.find_unsupported_use(model.meta_graph, spec.name)
    if use is None:
        return
    key = f"{signature}/{spec.alias}"
    raise PlanError(f"signature {signature!r}: input {spec.alias!r} reaches {use.op} (node {use.node}, "
                    f"input {use.arg!r}), which the op catalogue marks unsupported: {use.why}. No value "
                    f"the tool writes is known to work there; give values that do with "
                    f"overrides={{'{key}': [b'...']}} (CLI --value '{key}=[\"...\"]'), or leave the "
                    "signature out with signatures=[...] (CLI --signatures).")


def _copies(iterations: int, n_records: int, notes: list[str]) -> int:
    """How many times each record goes into the file: ``iterations``, cut to fit the cap."""
    if int(iterations) < 1:
        raise PlanError(f"iterations must be >= 1, got {iterations}.")
    fit = max(1, MAX_RECORDS // max(1, n_records))
    if iterations > fit:
        notes.append(f"iterations={iterations} would write {iterations * n_records} records, over TF "
                     f"Serving's limit of {MAX_RECORDS}; each record is written {fit} time(s) instead")
        return fit
    return int(iterations)


def _xla_default_dims(model: ModelSignatures, records: list[PlannedRecord]) -> dict[str, tuple[str, ...]]:
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


def _xla_compiles(model: ModelSignatures, records: list[PlannedRecord],
                  batching: BatchingConfig | None) -> dict[str, int]:
    """XLA signature -> distinct request classes its records warm: each is one compile at load."""
    out: dict[str, int] = {}
    for name in sorted({r.signature for r in records if r.request_type != MULTI_INFERENCE}):
        sig = model.signatures[name]
        if analysis.find_xla_compilation(model.meta_graph, [s.name for s in sig.outputs.values()]):
            out[name] = len({r.request_class(batching) for r in records if r.signature == name})
    return out


def _sample_datasets(model: ModelSignatures, wanted: list[str], config: WarmupConfig,
                     notes: list[str]) -> dict[str, Any]:
    """Sample ``config.dataset`` for the signatures it feeds.

    A dict ``{signature: dataset}`` says which explicitly. A single dataset feeds
    every warmed signature it fits (one scan per distinct input layout); the others
    are synthesised, with a note. If it fits none, the first mismatch is raised.
    """
    if config.dataset is None:
        return {}
    if config.privacy not in ("rows", "shapes_only"):
        raise PlanError(f"privacy must be 'rows' or 'shapes_only', got {config.privacy!r}.")
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
                           notes: list[str]) -> None:
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
                                                batching, [], sample, max_buckets=cap)
    for name, before in sorted(wanted.items()):  # one note per signature: the final cut
        dropped = before - {r.bucket for r in per_sig[name]}
        if dropped:
            shown = sorted({f"{a}[{ax}]={n}" for b in dropped for (a, ax), n in b})
            how = f"dataset buckets were cut to {cap} per dimension"
            if fixed is not None and list(cut_config.bucket_quantiles) != bucket_quantiles(config.max_buckets, fixed):
                how += f" (bucket_quantiles cut to {cut_config.bucket_quantiles})"
            notes.append(f"{name}: to stay within {MAX_RECORDS} records, {how}; dropped {', '.join(shown)}")


def _sample_traffic(model: ModelSignatures, wanted: list[str], config: WarmupConfig,
                    batching: BatchingConfig | None, notes: list[str],
                    have: Mapping[str, Any]) -> dict[str, Any]:
    """Select rows from logged traffic / a previous version for the signatures
    ``dataset=`` does not already feed; count what was dropped, and why."""
    if config.traffic is None and config.previous_version is None:
        return {}
    if config.privacy not in ("rows", "shapes_only"):
        raise PlanError(f"privacy must be 'rows' or 'shapes_only', got {config.privacy!r}.")
    selection = config.traffic
    if not isinstance(selection, TrafficSelection):
        files, spec, source = traffic_plan(
            {n: model.signatures[n] for n in wanted}, sorted(model.signatures),
            batching.allowed_batch_sizes if batching else (), config.traffic,
            config.previous_version, k=config.dataset_sample_size, seed=config.seed)
        selection = sample_traffic(files, spec, source)
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
