"""Apache Beam: select warmup requests from logs that outgrow one machine.

    requests | tfwarm_export.beam.SelectWarmupRequests(export_dir, WarmupConfig(...))

gives a one-element PCollection holding a ``TrafficSelection``; pass it on as
``add_warmup(export_dir, traffic=selection)``. ``ReadTraffic(files)`` reads
traffic files with Beam's own IO (``ReadAllFromText``, ``ReadAllFromTFRecord``,
``fileio``); ``run_selection`` builds and runs the whole pipeline, which is
what ``add_warmup(..., runner="DataflowRunner")`` and ``tfwarm add --runner``
do. The selection itself is ``traffic.combine.SelectionCombiner`` under
``beam.CombineGlobally``: the same code the local path runs, so the records
are the same on the DirectRunner, Dataflow, Flink or Spark.

Workers need ``tfwarm_export`` installed: on Dataflow pass
``--beam-arg setup_file=./setup.py`` (or ``extra_package=dist/...whl``).
Install with ``pip install tfwarm_export[beam]``.
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
import uuid
from typing import Any, Iterable, Sequence

_disabled = logging.root.manager.disable
logging.disable(logging.WARNING)  # Beam logs optional-GCP-client notices at import; not ours to show
try:
    import apache_beam as beam
    from apache_beam.io import fileio
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("tfwarm_export.beam needs Apache Beam: pip install 'tfwarm_export[beam]' "
                      "(apache-beam>=2.50)") from e
finally:
    logging.disable(_disabled)

import tensorflow as tf

from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.errors import DatasetError, PlanError
from tfwarm_export.model.signatures import ModelSignatures, read_signatures
from tfwarm_export._support.startup import capture_fd2, last_captured
from tfwarm_export.traffic import (SelectionCombiner, TrafficFile, TrafficSelection, TrafficSpec,
                                   to_element, traffic_plan, traffic_spec)
from tfwarm_export.traffic.readers.files import REST_JSON
from tfwarm_export.traffic.readers.rest_json import is_single_body_file

__all__ = ["ReadTraffic", "SelectWarmupRequests", "run_selection", "to_element"]

_log = logging.getLogger("tfwarm_export.beam")


class _SelectionCombineFn(beam.CombineFn):
    """``SelectionCombiner`` as a ``beam.CombineFn``: every method delegates."""

    def __init__(self, combiner: SelectionCombiner):
        super().__init__()
        self._combiner = combiner

    def create_accumulator(self):
        return self._combiner.create_accumulator()

    def add_input(self, acc, element):
        acc.add(element)  # what SelectionCombiner.add_input does, one call less per element
        return acc

    def merge_accumulators(self, accumulators):
        return self._combiner.merge_accumulators(accumulators)

    def extract_output(self, acc):
        return self._combiner.extract_output(acc)


def _spec_for(export_dir: str, config: WarmupConfig) -> tuple[ModelSignatures, TrafficSpec]:
    from tfwarm_export.serving.batching import BatchingConfig, load_batching_parameters

    model = read_signatures(os.fspath(export_dir), config.tags)
    wanted = list(config.signatures) if config.signatures is not None else sorted(model.signatures)
    for name in wanted:
        model.get(name)
    batching = config.batching_parameters
    if batching is not None and not isinstance(batching, BatchingConfig):
        batching = load_batching_parameters(batching)
    spec = traffic_spec({n: model.signatures[n] for n in wanted}, sorted(model.signatures),
                        batching.allowed_batch_sizes if batching else (),
                        k=config.dataset_sample_size, seed=config.seed)
    return model, spec


class SelectWarmupRequests(beam.PTransform):
    """Requests (or rows) -> one ``TrafficSelection`` for ``export_dir``.

    Elements may be PredictionLog protos or bytes, REST JSON bodies (dict, str,
    bytes), serialized tf.Examples, or ``(kind, payload)`` pairs from
    ``ReadTraffic``. The export's signatures are read once, at construction.

    Args:
      export_dir: the version directory the requests must fit.
      config: the options (``seed``, ``dataset_sample_size``, batching...).
      source: how the input is named in the plan's notes.
      spec: a prepared traffic spec (``run_selection`` passes its own); None: from ``export_dir``.
      **options: ``WarmupConfig`` fields merged over ``config``.

    Raises:
      SavedModelError: no SavedModel at ``export_dir``.
      BatchingError: the batching file is invalid.

    Example:
        >>> selection = (p | beam.io.ReadFromText("logs/requests.jsonl")
        ...              | SelectWarmupRequests("export/8", WarmupConfig(seed=0)))  # doctest: +SKIP
    """

    def __init__(self, export_dir: str | os.PathLike, config: WarmupConfig | None = None, *,
                 source: str = "a Beam PCollection", spec: TrafficSpec | None = None, **options: Any):
        super().__init__()
        config = resolve_config(config, **options)
        self._spec = spec if spec is not None else _spec_for(os.fspath(export_dir), config)[1]
        self._source = source

    def expand(self, pcoll):
        combiner = SelectionCombiner(self._spec, self._source)
        return pcoll | "Select" >> beam.CombineGlobally(_SelectionCombineFn(combiner))


def _read_whole(readable_file, compression: str) -> bytes:
    kind = CompressionTypes.GZIP if compression == "GZIP" else CompressionTypes.UNCOMPRESSED
    with readable_file.open(compression_type=kind) as f:
        return f.read()


class ReadTraffic(beam.PTransform):
    """Traffic files -> ``(kind, payload)`` elements, with Beam's own IO.

    JSONL through ``ReadAllFromText``, one-body ``.json`` files through
    ``fileio``, PredictionLog and tf.Example TFRecords through
    ``ReadAllFromTFRecord``; compression as detected when the files were listed.

    Args:
      files: the traffic files, as the traffic planner listed and classified them.
    """

    def __init__(self, files: Sequence[TrafficFile]):
        super().__init__()
        self._files = list(files)

    def expand(self, pbegin):
        groups: dict[tuple[str, str, bool], list[str]] = {}
        for f in self._files:
            single = f.kind == REST_JSON and is_single_body_file(f.path)
            groups.setdefault((f.kind, f.compression, single), []).append(f.path)
        parts = []
        for (kind, compression, single), paths in sorted(groups.items()):
            label = f"{kind}{'-json' if single else ''}{'-gz' if compression else ''}"
            ctype = CompressionTypes.GZIP if compression == "GZIP" else CompressionTypes.UNCOMPRESSED
            files = pbegin | f"Files[{label}]" >> beam.Create(paths)
            if kind == REST_JSON and single:
                part = (files
                        | f"Match[{label}]" >> fileio.MatchAll()
                        | f"Open[{label}]" >> fileio.ReadMatches()
                        | f"Read[{label}]" >> beam.Map(_read_whole, compression)
                        | f"Tag[{label}]" >> beam.Map(lambda body: (REST_JSON, body)))
            elif kind == REST_JSON:
                part = (files
                        | f"Read[{label}]" >> beam.io.ReadAllFromText(compression_type=ctype)
                        | f"NonEmpty[{label}]" >> beam.Filter(lambda line: bool(line.strip()))
                        | f"Tag[{label}]" >> beam.Map(lambda line: (REST_JSON, line)))
            else:
                part = (files
                        | f"Read[{label}]" >> beam.io.ReadAllFromTFRecord(
                            coder=beam.coders.BytesCoder(), compression_type=ctype)
                        | f"Tag[{label}]" >> beam.Map(lambda rec, k=kind: (k, rec)))
            parts.append(part)
        return tuple(parts) | "AllTraffic" >> beam.Flatten()


def pipeline_options(runner: str | None, beam_args: Iterable[str] = ()) -> PipelineOptions:
    """``runner`` plus ``beam_args`` (``"key=value"`` or ``"--key=value"``) as PipelineOptions."""
    import contextlib
    import io

    argv = [f"--runner={runner or 'DirectRunner'}"]
    for arg in beam_args:
        arg = str(arg)
        argv.append(arg if arg.startswith("--") else f"--{arg}")
    opts = PipelineOptions(argv)
    usage = io.StringIO()
    try:  # Beam parses lazily, with argparse: a bad value would print its whole usage and exit
        with contextlib.redirect_stderr(usage):
            opts.get_all_options()
    except SystemExit:
        why = (usage.getvalue().strip().splitlines() or ["invalid pipeline option"])[-1]
        why = why.split("error: ", 1)[-1]
        raise PlanError(f"a Beam pipeline option (--runner/--beam-arg) is invalid: {why}") from None
    return opts


def _write_result(selection: TrafficSelection, path: str) -> None:
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(pickle.dumps(selection, protocol=pickle.HIGHEST_PROTOCOL))


def run_selection(export_dir: str | os.PathLike, config: WarmupConfig | None = None,
                  **options: Any) -> TrafficSelection:
    """Run the traffic selection for ``config.traffic`` / ``config.previous_version``
    as a Beam pipeline on ``config.runner`` and return its ``TrafficSelection``.

    The result travels back through a file under the pipeline's
    ``temp_location`` (a local temp dir for the DirectRunner).

    Args:
      export_dir: the version directory the requests must fit.
      config: the options; ``runner``, ``beam_args`` and ``traffic`` or
        ``previous_version`` are used.
      **options: ``WarmupConfig`` fields merged over ``config``.

    Returns:
      The ``TrafficSelection``, to pass as ``add_warmup(export_dir, traffic=selection)``.

    Raises:
      PlanError: neither ``traffic`` nor ``previous_version`` is given, or a pipeline
        option is invalid.
      DatasetError: the pipeline failed on its runner, or produced no selection.
      SavedModelError: no SavedModel at ``export_dir``.
    """
    config = resolve_config(config, **options)
    if config.traffic is None and config.previous_version is None:
        raise PlanError("a Beam runner selects from traffic: pass traffic=... (CLI --traffic) "
                        "or previous_version=... (CLI --from-version).")
    model, spec = _spec_for(os.fspath(export_dir), config)
    files, spec, source = traffic_plan(dict(spec.signatures), spec.known, spec.allowed_batch_sizes,
                                       config.traffic, config.previous_version,
                                       k=spec.k, seed=spec.seed)
    opts = pipeline_options(config.runner, config.beam_args)
    temp = opts.get_all_options().get("temp_location")
    local_tmp = None
    if not temp:
        local_tmp = temp = tempfile.mkdtemp(prefix="tfwarm-beam-")
    out = f"{temp.rstrip('/')}/tfwarm-selection-{uuid.uuid4().hex}.pkl"
    try:
        try:
            # Beam's workers (and its harness logging) write to the inherited stderr: kept
            # out of the user's way, logged at debug level, and shown if the run fails
            with capture_fd2():
                with beam.Pipeline(options=opts) as p:
                    _ = (p
                         | "ReadTraffic" >> ReadTraffic(files)
                         | "SelectWarmupRequests" >> SelectWarmupRequests(export_dir, config,
                                                                          source=source, spec=spec)
                         | "Collect" >> beam.Map(_write_result, out))
            _log.debug("Beam pipeline output:\n%s", last_captured())
        except Exception as e:  # a runner's failure, in whatever type it raises
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:400]
            raise DatasetError(f"the Beam pipeline on {config.runner} failed: {first}. Check the "
                               "runner options (--beam-arg) and that workers have tfwarm_export "
                               "installed (setup_file=./setup.py).") from None
        if not tf.io.gfile.exists(out):
            raise DatasetError(f"the Beam pipeline on {config.runner} produced no selection at {out}.")
        with tf.io.gfile.GFile(out, "rb") as f:
            return pickle.loads(f.read())
    finally:
        if tf.io.gfile.exists(out):
            tf.io.gfile.remove(out)
        if local_tmp is not None:
            tf.io.gfile.rmtree(local_tmp)
