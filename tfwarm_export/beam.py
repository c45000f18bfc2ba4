"""Apache Beam: select warmup requests from logs that outgrow one machine.

    requests | tfwarm_export.beam.SelectWarmupRequests(export_dir, WarmupConfig(...))

gives a one-element PCollection holding a ``TrafficSelection``; pass it on as
``add_warmup(export_dir, traffic=selection)``. ``ReadTraffic(files)`` reads
traffic files with Beam's file sources, one element per file or, for a large
uncompressed JSONL file, per byte range (``traffic_shards``), so each worker
reads its share. ``run_selection`` builds and runs the whole pipeline, which is
what ``add_warmup(..., runner="DaskRunner")`` and ``tfwarm add --runner`` do.

The selection is ``traffic.combine.SelectionCombiner``, the code the local path
runs. Each bundle folds its rows into one accumulator (``_PreCombine``), and
only those accumulators are merged (``beam.CombineGlobally``), so only they are
shuffled, also on runners that skip combiner lifting (Dask). What was
run: the DirectRunner (in-memory and multi-process) and the DaskRunner on a
2-process ``dask.distributed`` cluster, both writing the file the local path
writes, byte for byte (tests/test_beam.py, tests/test_dask.py). Dataflow, Flink,
Spark and Prism were not run here: they need a cloud project, a job-server jar
or a binary fetched at run time.

Workers need ``tfwarm_export`` installed: on Dataflow pass
``--beam-arg setup_file=./setup.py`` (or ``extra_package=dist/...whl``); on
Dask install it on every worker. Install with ``pip install tfwarm_export[beam]``.
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

_disabled = logging.root.manager.disable
logging.disable(logging.WARNING)  # Beam logs optional-GCP-client notices at import; not ours to show
try:
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.window import GlobalWindows
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("tfwarm_export.beam needs Apache Beam: pip install 'tfwarm_export[beam]' "
                      "(apache-beam>=2.50)") from e
finally:
    logging.disable(_disabled)

import tensorflow as tf

from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.context import Context, resolve
from tfwarm_export.errors import DatasetError, PlanError
from tfwarm_export.planning.plan import selection_spec, traffic_scan
from tfwarm_export._support.startup import capture_fd2, last_captured
from tfwarm_export.traffic import (SelectionCombiner, TrafficFile, TrafficSelection, TrafficSpec,
                                   to_element)
from tfwarm_export.traffic.readers.files import REST_JSON
from tfwarm_export.traffic.readers.rest_json import is_single_body_file

__all__ = ["ReadTraffic", "SelectWarmupRequests", "TrafficShard", "run_selection", "to_element",
           "traffic_shards"]

_log = logging.getLogger("tfwarm_export.beam")


def _spec_for(context: Context) -> TrafficSpec:
    """The traffic spec of a resolved context: the same signatures and batching rule as local."""
    return selection_spec(context.model, context.wanted, context.config, context.batching)


class _PreCombine(beam.DoFn):
    """Rows -> one selection accumulator per bundle, emitted when the bundle ends.

    Runners that lift combiners do this themselves; Dask's overrides do not, and
    a plain ``CombineGlobally`` there shuffles every row to one worker. Folding
    each bundle here means only accumulators (bottom-k samples and counters)
    travel, on every runner."""

    def __init__(self, combiner: SelectionCombiner):
        super().__init__()
        self._combiner = combiner
        self._acc = None

    def start_bundle(self):
        self._acc = None

    def process(self, element):
        if self._acc is None:
            self._acc = self._combiner.create_accumulator()
        self._acc.add(element)

    def finish_bundle(self):
        if self._acc is not None:
            acc, self._acc = self._acc, None
            yield GlobalWindows.windowed_value(acc)


class _MergeSelections(beam.CombineFn):
    """Accumulators from ``_PreCombine`` -> the ``TrafficSelection`` (merges only)."""

    def __init__(self, combiner: SelectionCombiner):
        super().__init__()
        self._combiner = combiner

    def create_accumulator(self):
        return self._combiner.create_accumulator()

    def add_input(self, acc, other):
        return acc.merge(other)

    def merge_accumulators(self, accumulators):
        return self._combiner.merge_accumulators(accumulators)

    def extract_output(self, acc):
        return self._combiner.extract_output(acc)


class SelectWarmupRequests(beam.PTransform):
    """Requests (or rows) -> one ``TrafficSelection`` for ``export_dir``.

    Elements may be PredictionLog protos or bytes, REST JSON bodies (dict, str,
    bytes), serialized tf.Examples, or ``(kind, payload)`` pairs from
    ``ReadTraffic``. The export's signatures are read once, at construction.
    Each bundle is pre-combined, so only accumulators are shuffled.

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
        if spec is None:  # a transform users build themselves is an edge: it resolves the context
            spec = _spec_for(resolve(resolve_config(config, **options), export_dir))
        self._spec = spec
        self._source = source

    def expand(self, pcoll):
        combiner = SelectionCombiner(self._spec, self._source)
        return (pcoll
                | "PreCombine" >> beam.ParDo(_PreCombine(combiner))
                | "Select" >> beam.CombineGlobally(_MergeSelections(combiner)))


# --------------------------------------------------------------------------- reading, in shards

SHARD_BYTES = 64 << 20
"""A larger uncompressed JSONL file is read as byte ranges of about this size."""


@dataclass(frozen=True)
class TrafficShard:
    """One unit of reading: a whole file, or a byte range of an uncompressed JSONL
    file (a line belongs to the range its first byte is in, as Beam's text source
    splits), so that each worker reads its share.

    Attributes:
      path: the file (any ``tf.io.gfile`` path).
      kind: the traffic reader the file is for (REST JSON, PredictionLog or tf.Example TFRecord).
      compression: ``"GZIP"`` when detected at listing, else ``""``.
      single_body: the file is one REST body (a ``.json`` file), read whole.
      start: first byte of the range.
      end: byte after the range; None reads to the end.
    """

    path: str
    kind: str
    compression: str = ""
    single_body: bool = False
    start: int = 0
    end: int | None = None


def traffic_shards(files: Sequence[TrafficFile], shard_bytes: int = SHARD_BYTES) -> list[TrafficShard]:
    """Files -> shards, in a stable order. TFRecords and GZIP files have no sync
    points a reader could start from, so each is one shard.

    Args:
      files: the traffic files, as the traffic planner listed and classified them.
      shard_bytes: an uncompressed JSONL file larger than this is cut into byte ranges of
        about this size.

    Returns:
      The shards, file by file and range by range.

    Raises:
      tf.errors.NotFoundError: a file vanished since it was listed (``tf.io.gfile.stat``).
    """
    shards = []
    for f in files:
        single = f.kind == REST_JSON and is_single_body_file(f.path)
        if f.kind == REST_JSON and not single and not f.compression:
            size = tf.io.gfile.stat(f.path).length
            if size > shard_bytes:
                shards += [TrafficShard(f.path, f.kind, "", False, a, min(a + shard_bytes, size))
                           for a in range(0, size, shard_bytes)]
                continue
        shards.append(TrafficShard(f.path, f.kind, f.compression, single))
    return shards


def _read_shard(shard: TrafficShard) -> Iterator[tuple[str, Any]]:
    """One shard -> ``(kind, payload)`` elements, through Beam's own file sources."""
    from apache_beam.io import filesystems, textio, tfrecordio
    from apache_beam.io.range_trackers import OffsetRangeTracker

    ctype = CompressionTypes.GZIP if shard.compression == "GZIP" else CompressionTypes.UNCOMPRESSED
    end = OffsetRangeTracker.OFFSET_INFINITY if shard.end is None else shard.end
    if shard.single_body:
        with filesystems.FileSystems.open(shard.path, compression_type=ctype) as f:
            yield REST_JSON, f.read()
    elif shard.kind == REST_JSON:
        source = textio._TextSource(shard.path, 0, ctype, True, beam.coders.StrUtf8Coder(), validate=False)
        for line in source.read_records(shard.path, OffsetRangeTracker(shard.start, end)):
            if line.strip():
                yield REST_JSON, line
    else:
        source = tfrecordio._TFRecordSource(shard.path, beam.coders.BytesCoder(), ctype, validate=False)
        for record in source.read_records(shard.path, OffsetRangeTracker(0, end)):
            yield shard.kind, record


class ReadTraffic(beam.PTransform):
    """Traffic files -> ``(kind, payload)`` elements, one shard per element of a
    ``Create`` (see ``traffic_shards``), so a runner spreads the reads by shard.

    JSONL lines through Beam's text source (by byte range when large), one-body
    ``.json`` files whole, PredictionLog and tf.Example TFRecords through Beam's
    TFRecord source; compression as detected when the files were listed.

    Args:
      files: the traffic files, as the traffic planner listed and classified them; each is
        cut into shards (``traffic_shards``) so that workers read their share.
      shards: shards already cut (``run_selection`` passes its own); overrides ``files``.
    """

    def __init__(self, files: Sequence[TrafficFile] = (), *, shards: Sequence[TrafficShard] | None = None):
        super().__init__()
        self._shards = list(shards) if shards is not None else traffic_shards(files)

    def expand(self, pbegin):
        return (pbegin
                | "Shards" >> beam.Create(self._shards)
                | "Read" >> beam.FlatMap(_read_shard))


# --------------------------------------------------------------------------- runners and options

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
RUNNER_NAMES = {"daskrunner": DASK_RUNNER, "dask": DASK_RUNNER}
"""Short names (any case, as Beam takes its own) that Beam's list lacks."""

LOCAL_RUNNERS = frozenset({"DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                           "FnApiRunner", "InteractiveRunner", "TestDirectRunner"})
"""Runners whose workers share this machine's disk (a local temp dir returns the result)."""

def resolve_runner(name: str | None) -> str:
    """A runner name as Beam takes it: ``DaskRunner`` -> its full path, others as given."""
    name = (name or "DirectRunner").strip()
    return RUNNER_NAMES.get(name.lower(), name)


def _short(runner: str) -> str:
    """The runner's class name (``direct`` -> ``SwitchingDirectRunner``), once it imports."""
    return type(_runner_instance(runner)).__name__


def _runner_instance(runner: str):
    """Import the runner (which registers its options class) and make it."""
    from apache_beam.runners.runner import create_runner

    try:
        return create_runner(runner)
    except ImportError as e:
        raise PlanError(f"Beam runner {runner!r} cannot be imported here: {e}. Install its extra "
                        "(e.g. pip install 'tfwarm_export[beam]' for DaskRunner).") from None
    except (ValueError, AttributeError):
        raise PlanError(f"unknown Beam runner {runner!r}: give DirectRunner, DaskRunner, PortableRunner, "
                        "DataflowRunner, FlinkRunner, SparkRunner, PrismRunner or the full path of a "
                        "PipelineRunner class (tfwarm add --help says which need a cloud).") from None


def _given(beam_args: Sequence[str], *names: str) -> bool:
    return any(a.lstrip("-").split("=", 1)[0] in names for a in beam_args)


def pipeline_options(runner: str | None, beam_args: Iterable[str] = (),
                     defaults: dict[str, Any] | None = None) -> PipelineOptions:
    """``runner`` plus ``beam_args`` (``"key=value"`` or ``"--key=value"``) as PipelineOptions,
    checked once, after the runner's module (and so its options class) is imported.
    ``defaults`` are options added where ``beam_args`` does not set them."""
    import contextlib
    import io

    runner = resolve_runner(runner)
    _runner_instance(runner)
    args = [a if a.startswith("--") else f"--{a}" for a in map(str, beam_args)]
    args += [f"--{k}={v}" for k, v in (defaults or {}).items() if not _given(args, k)]
    opts = PipelineOptions([f"--runner={runner}", *args])
    usage, unknown = io.StringIO(), _Unparsed()
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    beam_log.addHandler(unknown)
    propagate, beam_log.propagate = beam_log.propagate, False  # said once, below, as an error
    try:  # Beam parses lazily, with argparse: a bad value would print its whole usage and exit
        with contextlib.redirect_stderr(usage):
            opts.get_all_options()
    except SystemExit:
        why = (usage.getvalue().strip().splitlines() or ["invalid pipeline option"])[-1]
        why = why.split("error: ", 1)[-1]
        raise PlanError(f"a Beam pipeline option (--runner/--beam-arg) is invalid: {why}") from None
    finally:
        beam_log.removeHandler(unknown)
        beam_log.propagate = propagate
    name = _short(runner)
    if unknown.args and (name in LOCAL_RUNNERS or name == "DaskRunner"):
        raise PlanError(f"unknown Beam pipeline option(s) for {name}: {' '.join(unknown.args)}; "
                        "check the spelling (Beam would ignore them).")
    return opts


class _Unparsed(logging.Handler):
    """Collects the options Beam's parser did not know ("Discarding unparseable args").
    Only runners that run here make them an error: a remote service may take options
    this SDK does not know (Dataflow keeps them)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.args: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Discarding unparseable args") and record.args:
            self.args += [str(a) for a in record.args[0]]


def _runner_defaults(runner: str, beam_args: Sequence[str], n_shards: int) -> dict[str, Any]:
    """Dask puts up to 128 elements in one partition: one partition per shard spreads the reads."""
    if _short(runner) == "DaskRunner" and not _given(beam_args, "dask_npartitions", "dask_partition_size"):
        return {"dask_npartitions": max(1, n_shards)}
    return {}


def _result_dir(runner: str, opts: PipelineOptions) -> tuple[str | None, bool]:
    """Where the selection comes back through, checked before the pipeline starts:
    ``(None, False)`` on Dask (the pipeline result carries it), a fresh local temp
    dir on a local runner, else the ``temp_location`` every worker and this machine
    must reach (probed here). The bool says the dir is ours to remove."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    name = _short(runner)
    temp = opts.view_as(GoogleCloudOptions).temp_location
    if name == "DaskRunner":
        return None, False
    if not temp:
        if name in LOCAL_RUNNERS:
            return tempfile.mkdtemp(prefix="tfwarm-beam-"), True
        raise PlanError(f"the selection on {name} comes back through a file: give "
                        "--beam-arg temp_location=PATH that every worker and this machine can reach "
                        "(gs://bucket/tmp, hdfs://..., or a shared mount).")
    probe = f"{temp.rstrip('/')}/tfwarm-probe-{uuid.uuid4().hex}"
    try:
        tf.io.gfile.makedirs(temp)
        with tf.io.gfile.GFile(probe, "wb") as f:
            f.write(b"ok")
        tf.io.gfile.remove(probe)
    except (OSError, tf.errors.OpError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise PlanError(f"temp_location {temp!r} is not writable from this machine ({why}); give "
                        "one that every worker and this machine can reach.") from None
    return temp, False


def _write_result(selection: TrafficSelection, path: str) -> None:
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(pickle.dumps(selection, protocol=pickle.HIGHEST_PROTOCOL))


def _pickled(selection: TrafficSelection) -> bytes:
    return pickle.dumps(selection, protocol=pickle.HIGHEST_PROTOCOL)


def _run_dask(pipeline: beam.Pipeline) -> TrafficSelection:
    """Run on Dask and take the selection from the pipeline result: Beam's Dask runner
    computes the last transform's bag and returns it to the client (``futures``)."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
        values = [v for part in result.client.gather(result.futures) for v in part]
    finally:
        result.client.close()
    if len(values) != 1:
        raise DatasetError(f"the Beam pipeline on DaskRunner returned {len(values)} selections, not 1.")
    return pickle.loads(values[0])


def _run(runner: str, opts: PipelineOptions, build, out: str | None) -> TrafficSelection:
    """Build the pipeline with ``build(p)`` (-> the selection PCollection) and run it."""
    pipeline = beam.Pipeline(runner=_runner_instance(runner), options=opts)
    selection = build(pipeline)
    if out is None:
        _ = selection | "Return" >> beam.Map(_pickled)
        return _run_dask(pipeline)
    _ = selection | "Collect" >> beam.Map(_write_result, out)
    pipeline.run().wait_until_finish()
    if not tf.io.gfile.exists(out):
        raise DatasetError(f"the Beam pipeline on {_short(runner)} produced no selection at {out}.")
    with tf.io.gfile.GFile(out, "rb") as f:
        return pickle.loads(f.read())


def run_selection(export_dir: str | os.PathLike | None = None, config: WarmupConfig | None = None, *,
                  context: Context | None = None, **options: Any) -> TrafficSelection:
    """Run the traffic selection for ``config.traffic`` / ``config.previous_version``
    as a Beam pipeline on ``config.runner`` and return its ``TrafficSelection``.

    ``context`` is the resolved model and server (``tfwarm_export.context.resolve``), as
    ``add_warmup`` passes it; without one it is resolved from ``export_dir`` and ``config``.
    The selection then pads, drops and selects exactly as the local path does. On Dask the
    result comes back through the pipeline result; on a local runner through a local temp
    dir; elsewhere through ``temp_location``.

    Args:
      export_dir: the version directory the requests must fit (when ``context`` is None).
      config: the options; ``runner``, ``beam_args`` and ``traffic`` or
        ``previous_version`` are used.
      context: an already resolved ``Context``; its config and server are used.
      **options: ``WarmupConfig`` fields merged over ``config``.

    Returns:
      The ``TrafficSelection``, to pass as ``add_warmup(export_dir, traffic=selection)``.

    Raises:
      PlanError: neither ``traffic`` nor ``previous_version`` is given, or a pipeline
        option is invalid (an unknown option, or a bad value).
      DatasetError: the pipeline failed on its runner, or produced no selection.
      SavedModelError: no SavedModel at ``export_dir``.
    """
    if context is None:
        context = resolve(resolve_config(config, **options), export_dir)
    config = context.config
    if config.traffic is None and config.previous_version is None:
        raise PlanError("a Beam runner selects from traffic: pass traffic=... (CLI --traffic) "
                        "or previous_version=... (CLI --from-version).")
    files, spec, source = traffic_scan(context.model, context.wanted, config, context.batching)
    return _select_on_runner(context.export_dir, config, files, spec, source)


def _select_on_runner(export_dir, config: WarmupConfig, files: Sequence[TrafficFile], spec: TrafficSpec,
                      source: str) -> TrafficSelection:
    runner, args = resolve_runner(config.runner), [str(a) for a in config.beam_args]
    shards = traffic_shards(files)
    opts = pipeline_options(runner, args, _runner_defaults(runner, args, len(shards)))
    temp, ours = _result_dir(runner, opts)
    out = None if temp is None else f"{temp.rstrip('/')}/tfwarm-selection-{uuid.uuid4().hex}.pkl"

    def build(p):
        return (p
                | "ReadTraffic" >> ReadTraffic(shards=shards)
                | "SelectWarmupRequests" >> SelectWarmupRequests(export_dir, config, source=source,
                                                                 spec=spec))
    try:
        try:
            # Beam's workers (and its harness logging) write to the inherited stderr: kept
            # out of the user's way, logged at debug level, and shown if the run fails
            with capture_fd2():
                selection = _run(runner, opts, build, out)
            _log.debug("Beam pipeline output:\n%s", last_captured())
            return selection
        except (Exception, SystemExit) as e:  # a runner's failure, in whatever type it raises
            if isinstance(e, DatasetError):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:400]
            raise DatasetError(f"the Beam pipeline on {config.runner} failed: {first}. Check the "
                               "runner options (--beam-arg) and that workers have tfwarm_export "
                               "installed (setup_file=./setup.py).") from None
    finally:
        if out is not None and tf.io.gfile.exists(out):
            tf.io.gfile.remove(out)
        if ours:
            tf.io.gfile.rmtree(temp)
