"""``WarmupConfig``: the one options object every entry point shares.

The CLI, ``add_warmup``, the ``save``/``export`` wrappers, the Keras callback and
the pipeline components all take the same immutable config, so an option added
here is available everywhere and documented once.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, Union

from tfwarm_export.errors import OptionError
from tfwarm_export.model.signatures import DEFAULT_TAGS

if TYPE_CHECKING:  # names for the annotations only: importing them here would pull TF data in
    import tensorflow as tf
    from google.protobuf.message import Message

    from tfwarm_export.serving.batching import BatchingConfig
    from tfwarm_export.specs.domains import Domain
    from tfwarm_export.traffic import TrafficSelection

PathLike = Union[str, "os.PathLike[str]"]
OverrideValue = Union[int, float, str, bytes, bool, tuple, list, range, Callable[..., Any], "Domain"]
"""An ``overrides`` value: a constant, ``(low, high)``, a range, a list of choices,
``fn(rng, shape)`` or a ``Domain``."""
DatasetSource = Union["tf.data.Dataset", Mapping[str, Any], Iterable[Any], PathLike]
"""What ``dataset=`` samples: a tf.data.Dataset, a dict of arrays, an iterable of rows,
TFRecord paths; or ``{signature: one of those}``."""
TrafficSource = Union[PathLike, Sequence[PathLike], "TrafficSelection"]
ImageSize = Union[int, tuple[int, int], Mapping[str, Union[int, tuple[int, int]]]]
PRIVACY_MODES = ("rows", "shapes_only")

DEFAULT_DIM_SIZE = 4
"""Size given to an unknown non-batch dimension when nothing better is known."""

RETRY_DIM_SIZE = 32
"""Size tried for those dimensions when a record fails at DEFAULT_DIM_SIZE (e.g. a
convolution stack that needs a larger image)."""

DEFAULT_SEED = 0

DEFAULT_ITERATIONS = 1
"""Copies of each record written to the file (``iterations``). Chosen with
``benchmarks/bench_iterations.py``; its measured table and the rule it applies are in
the "iterations" section of ``benchmarks/RESULTS.md`` (figures live there only).
Servers whose first requests still matter at the sub-millisecond level can ask for
more (``iterations=2`` or ``num_request_iterations``)."""


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
      dataset_sample_size: rows kept per stratum (the smallest hash(seed, row); also
        for traffic).
      dataset_max_scan: rows scanned at most (datasets only: a traffic scan reads every
        request, so its drop counts are complete).
      max_buckets: sizes warmed per variable dimension seen in the data: every distinct
        size when there are at most ``max_buckets``, else the sizes at ``bucket_quantiles``.
      bucket_quantiles: the quantiles of the sizes seen that are warmed when there are
        more than ``max_buckets`` (default evenly spaced, max included).
      traffic: logged requests to warm from: paths, globs or directories of REST JSON
        bodies (``.json``/``.jsonl``), PredictionLog TFRecords (request logs, warmup
        files) or tf.Example TFRecords, any mix, any ``tf.io.gfile`` scheme, GZIP
        detected; or a ``TrafficSelection`` made by ``tfwarm_export.beam``. Requests
        that no longer fit the export are dropped and counted by reason.
      previous_version: another version directory whose warmup file is read as
        traffic: records that still validate are reused, the rest is planned.
      runner: run the traffic selection as an Apache Beam pipeline on this runner
        (e.g. "DirectRunner", "DataflowRunner"); None selects in-process.
      beam_args: the pipeline's options (``"project=p"`` or ``"--project=p"``).
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
      op_libraries: custom kernel libraries (``.so``) loaded with ``tf.load_op_library``
        before the model is loaded (TF Text / TF-DF ops are imported automatically).
      image_size: ``(height, width)`` (or one int) of the images written for string
        inputs an image decoder reads, instead of the graph's resize target (or
        224x224); a dict ``{"alias" | "sig/alias": (h, w)}`` sets it per input.
      platform_config: TF Serving's ``--platform_config_file`` (path or a parsed
        ``SessionBundleConfig``): batching, warmup options, session config.
      ignore_per_model_batching: ignore ``batching_params.pbtxt`` in the version
        directory (servers without ``--enable_per_model_batching_params``).
      iterations: write each record this many times (within the 1000-record cap),
        for servers whose ``num_request_iterations`` you cannot change.
      load_budget: most seconds the file's replay may add to a load (a number, or
        ``"30s"``, ``"2m"``, ``"500ms"``). When the full file would take longer, the
        records that remove the most traffic-weighted cold-start cost per second of
        load are kept (``planning/budget.py``); needs ``replay`` (costs are measured).
    """

    batch_sizes: Sequence[int] | None = None
    batching_parameters: PathLike | BatchingConfig | None = None
    signatures: Sequence[str] | None = None
    seed: int = DEFAULT_SEED
    overrides: Mapping[str, OverrideValue] = field(default_factory=dict)
    dim_sizes: Mapping[str, Mapping[int, int | Sequence[int]]] = field(default_factory=dict)
    shapes: Mapping[str, Sequence[int | None]] = field(default_factory=dict)
    dataset: DatasetSource | Mapping[str, DatasetSource] | None = None
    dataset_sample_size: int = 256
    dataset_max_scan: int | None = None
    max_buckets: int = 8
    bucket_quantiles: Sequence[float] | None = None
    traffic: TrafficSource | None = None
    previous_version: str | None = None
    runner: str | None = None
    beam_args: Sequence[str] = ()
    privacy: str = "rows"
    replay: bool = True
    model_name: str = ""
    tags: Sequence[str] = DEFAULT_TAGS
    overwrite: bool = False
    multi_inference: bool = False
    include_stateful: bool = False
    op_libraries: Sequence[str] = ()
    image_size: ImageSize | None = None
    platform_config: PathLike | Message | None = None  # a path, or a parsed SessionBundleConfig
    ignore_per_model_batching: bool = False
    iterations: int = DEFAULT_ITERATIONS
    load_budget: float | int | str | None = None

    def __post_init__(self) -> None:
        """Refuse a bad value or a contradicting pair when the config is built, not deep in a run.

        Every entry point (CLI, ``add_warmup``, ``save``, Keras callback, components, Beam,
        fleet) builds a ``WarmupConfig``, so this is the one place options are validated.
        """
        for problem in _problems(self):
            raise OptionError(problem)

    @property
    def load_budget_s(self) -> float | None:
        """``load_budget`` in seconds (validated in ``__post_init__``)."""
        from tfwarm_export.specs.durations import parse_duration

        return None if self.load_budget is None else parse_duration(self.load_budget, "load_budget")

    def replace(self, **changes: Any) -> "WarmupConfig":
        """A copy with ``changes`` applied (the config itself is immutable).

        Args:
          **changes: fields to change, by name.

        Returns:
          The new ``WarmupConfig``.

        Raises:
          TypeError: a name is not a ``WarmupConfig`` field.
        """
        return dataclasses.replace(self, **changes)


def resolve_config(config: WarmupConfig | None, **kwargs: Any) -> WarmupConfig:
    """Merge keyword options over ``config`` (kwargs win)."""
    config = config or WarmupConfig()
    names = {f.name for f in dataclasses.fields(WarmupConfig)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise TypeError(f"unknown warmup option(s) {unknown}; valid options: {sorted(names)}")
    return config.replace(**kwargs) if kwargs else config


def _problems(c: WarmupConfig) -> Iterable[str]:
    """Each invalid value or contradicting pair of ``c``, as the one-line error to raise."""
    from tfwarm_export.specs.durations import parse_duration
    from tfwarm_export.traffic.stats import bucket_quantiles

    if c.privacy not in PRIVACY_MODES:
        yield f"privacy must be 'rows' or 'shapes_only', got {c.privacy!r}."
    if isinstance(c.iterations, bool) or not isinstance(c.iterations, int) or c.iterations < 1:
        yield f"iterations must be >= 1, got {c.iterations!r}."
    for name in ("dataset_sample_size", "max_buckets"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            yield f"{name} must be an integer >= 1, got {value!r}."
    try:  # checked on every config, not only when some data has more sizes than buckets
        bucket_quantiles(c.max_buckets, c.bucket_quantiles)
    except (ValueError, TypeError) as e:
        yield f"{e}."
    if c.load_budget is not None:
        try:
            parse_duration(c.load_budget, "load_budget")
        except ValueError as e:
            yield f"{e}."
        if not c.replay:
            yield ("load_budget= needs the records' measured costs, so it cannot be used with "
                   "replay=False (CLI: --no-replay); drop one of them.")
    if c.beam_args and not c.runner:
        yield ("beam_args= (CLI --beam-arg) configure a Beam runner, but runner= (CLI --runner) is "
               "not set; name the runner or drop the pipeline options.")
    if isinstance(c.tags, (str, bytes)) or not c.tags:
        yield f"tags must be a non-empty list of tag names, got {c.tags!r}."
