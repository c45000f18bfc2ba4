"""``WarmupConfig``: the one options object every entry point shares.

The CLI, ``add_warmup``, the ``save``/``export`` wrappers, the Keras callback and
the pipeline components all take the same immutable config, so an option added
here is available everywhere and documented once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tfwarm_export.signatures import DEFAULT_TAGS

DEFAULT_DIM_SIZE = 4
"""Size given to an unknown non-batch dimension when nothing better is known."""

RETRY_DIM_SIZE = 32
"""Size tried for those dimensions when a record fails at DEFAULT_DIM_SIZE (e.g. a
convolution stack that needs a larger image)."""

DEFAULT_SEED = 0


@dataclass(frozen=True)
class WarmupConfig:
    """How to build the warmup file. Every field has a safe default.

    Attributes:
      batch_sizes: sizes to warm. None: the batching file's allowed sizes (or its
        max_batch_size), else ``(1,)``.
      batching_parameters: path to TF Serving's ``--batching_parameters_file`` (or a
        ``BatchingConfig``). Enables TF Serving's batching rules in plan and replay.
      signatures: names to warm; None warms every servable signature.
      seed: all synthetic values derive from it; same seed, byte-identical file.
      overrides: ``{"alias" | "signature/alias" | "feature": value}``: a constant,
        ``(low, high)`` / ``range``, a list of choices, a callable ``fn(rng, shape)``
        or a ``Domain``.
      dim_sizes: sizes for unknown non-batch dims, ``{"alias" | "sig/alias": {axis: size}}``
        (a list of sizes warms each); the fallback is ``DEFAULT_DIM_SIZE``.
      shapes: full shapes for inputs of unknown rank, ``{"alias": (None, 12)}``; None
        or -1 marks the batch dimension.
      dataset: user data to sample instead of synthesising values.
      dataset_sample_size / dataset_max_scan: rows kept (reservoir sampling) and
        rows scanned at most.
      max_buckets / bucket_quantiles: sizes warmed per variable dimension seen in
        the data: every distinct size when there are at most ``max_buckets``,
        else the sizes at these quantiles (default evenly spaced, max included).
      privacy: "rows" copies sampled rows into the file; "shapes_only" learns only
        shapes, lengths, ranges and vocabularies and synthesises the values.
      replay: replay every record in-process before the file is kept.
      model_name: ``model_spec.name`` in each request (TF Serving ignores it for
        warmup, but MultiInference needs one).
      tags: MetaGraph tag set TF Serving loads.
      overwrite: replace an existing warmup file.
      multi_inference: also emit MultiInference records for classify/regress
        signatures that share one input.
      include_stateful: warm signatures that mutate variables or tables.
      image_size: ``(height, width)`` (or one int) of the images written for string
        inputs an image decoder reads, instead of the graph's resize target (or
        224x224); a dict ``{"alias" | "sig/alias": (h, w)}`` sets it per input.
    """

    batch_sizes: Sequence[int] | None = None
    batching_parameters: Any = None
    signatures: Sequence[str] | None = None
    seed: int = DEFAULT_SEED
    overrides: Mapping[str, Any] = field(default_factory=dict)
    dim_sizes: Mapping[str, Mapping[int, int | Sequence[int]]] = field(default_factory=dict)
    shapes: Mapping[str, Sequence[int | None]] = field(default_factory=dict)
    dataset: Any = None
    dataset_sample_size: int = 256
    dataset_max_scan: int | None = None
    max_buckets: int = 8
    bucket_quantiles: Sequence[float] | None = None
    privacy: str = "rows"
    replay: bool = True
    model_name: str = ""
    tags: Sequence[str] = DEFAULT_TAGS
    overwrite: bool = False
    multi_inference: bool = False
    include_stateful: bool = False
    image_size: Any = None

    def replace(self, **changes: Any) -> "WarmupConfig":
        """A copy with ``changes`` applied; unknown names raise TypeError."""
        return dataclasses.replace(self, **changes)


def resolve_config(config: WarmupConfig | None, **kwargs: Any) -> WarmupConfig:
    """Merge keyword options over ``config`` (kwargs win)."""
    config = config or WarmupConfig()
    names = {f.name for f in dataclasses.fields(WarmupConfig)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise TypeError(f"unknown warmup option(s) {unknown}; valid options: {sorted(names)}")
    return config.replace(**kwargs) if kwargs else config
