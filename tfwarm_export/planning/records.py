"""What a plan is made of: one ``PlannedRecord`` per record, its ``InputPlan``s, the ``WarmupPlan``.

Plain data, decided before any value exists; the plan (``plan.py``) builds it and
every later stage (values, requests, replay, reports) reads it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import tensorflow as tf

from tfwarm_export import analysis
from tfwarm_export.config import DEFAULT_DIM_SIZE
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.serving.load_cost import nothing_new
from tfwarm_export.specs.request_class import RequestClass, request_class
from tfwarm_export.serving.serving_config import ServerSettings
from tfwarm_export.traffic import DataSample
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.example_spec import ExampleSpec
from tfwarm_export.specs.request_kinds import MULTI_INFERENCE, PREDICT


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
        """The class of the request this record becomes (``specs.request_class``)."""
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
    """What will be written, and why anything is left out (from ``plan``).

    Attributes:
      export_dir: the version directory planned for.
      tags: the MetaGraph tag set read.
      model_name: ``model_spec.name`` of every request.
      seed: the seed every value derives from.
      batch_sizes: the batch sizes warmed (after TF Serving's padding).
      batching: the batching configuration planned under; None without batching.
      records: the planned records, in file order.
      skipped: signature -> why it is not warmed (and the fix).
      notes: what the plan changed or assumed, one line each.
      samples: signature -> the rows sampled from a dataset or traffic.
      privacy: ``"rows"`` or ``"shapes_only"``.
      server: the TF Serving settings the model is loaded with (platform config).
      copies: each record is written this many times (``iterations``).
      xla: XLA signature -> inputs warmed only at the default dimension size.
      xla_compiles: XLA signature -> the distinct shapes it warms (one compile each).
    """

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
        """Each record's request class, in file order.

        Returns:
          One ``RequestClass`` (signature, request type, padded batch, exact sizes) per record.
        """
        return [r.request_class(self.batching) for r in self.records]

    def duplicates(self) -> list[tuple[int, int]]:
        """``(record, earlier record)`` pairs of the same class: the later warms nothing new.

        Returns:
          The pairs, by record index.
        """
        return nothing_new(self.classes())

    def load_estimate(self) -> dict:
        """What loading the file will cost, known before anything runs: XLA compiles (one per
        distinct shape of an XLA signature) and records that repeat an earlier one's class.

        Returns:
          ``{"xla_compiles": int, "duplicates": [...]}``.
        """
        return {"xla_compiles": sum(self.xla_compiles.values()),
                "xla_compiles_by_signature": dict(sorted(self.xla_compiles.items())),
                "duplicate_records": [{"index": i, "same_class_as": j} for i, j in self.duplicates()]}

    @property
    def signatures(self) -> list[str]:
        """The signatures the plan warms.

        Returns:
          Their names, sorted (MultiInference records not counted apart).
        """
        return sorted({r.signature for r in self.records if r.request_type != MULTI_INFERENCE})

    def to_dict(self) -> dict:
        """The plan as plain JSON-able data (what ``tfwarm inspect --json`` prints).

        Returns:
          dict: the records, skipped signatures, notes and batching.
        """
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
        """The plan as JSON.

        Returns:
          str: ``to_dict()`` as indented JSON with sorted keys.
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> str:
        """The plan for people.

        Returns:
          str: records per signature and batch size, skipped signatures, notes (``tfwarm inspect``).
        """
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
