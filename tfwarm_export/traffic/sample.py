"""Sample real traffic shapes from the data users already have.

Warmup requests built from a signature alone have to guess every unknown
dimension, so the first real request can still hit an untraced shape. Users
usually have a ``tf.data`` pipeline, numpy arrays or TFRecord files of the
traffic the model serves: ``sample_dataset`` scans such data once (one reader
per source, ``readers/``) and keeps

* a sample of ``k`` rows (``select``: O(k) memory, so a 10x larger dataset
  costs the same memory);
* the distribution of sizes of every unknown non-batch dimension over *all*
  scanned rows, from which ``stats.choose_buckets`` picks the lengths worth warming;
* per-input value statistics (``stats``), which let ``privacy="shapes_only"``
  (``privacy``) synthesize look-alike data without copying rows.

Data flows one way: this package only reads data and hands out numpy batches;
turning them into requests is for the plan/requests modules, which import this
one (never the reverse).

Row/element conventions:

* A *row* is one example: ``{alias: np.ndarray}`` whose arrays have the
  signature input's shape without the leading batch dimension. String inputs
  hold ``bytes`` in ``dtype=object`` arrays, as TF's numpy bridge does.
* A tuple element is matched to inputs **by position in sorted alias order**
  (``SignatureInfo.inputs`` is sorted the same way); if the tuple has as many
  items as there are *required* inputs (those without a signature default), it
  is matched to the sorted required aliases instead.
* An ``(x, y)`` or ``(x, y, sample_weight)`` tuple as passed to ``Model.fit`` is
  recognised when its first item is itself a dict/tuple, or when its length does
  not match the input count; ``x`` is used. A 2-tuple of plain tensors for a
  two-input signature is ambiguous and is read as ``(input_a, input_b)``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export._support import progress
from tfwarm_export.errors import DatasetError, SignatureError, tf_error_text
from tfwarm_export.model.signatures import SignatureInfo, TensorSpec
from tfwarm_export.specs.batching import BatchRule
from tfwarm_export.traffic.readers.files import (PREDICTION_LOG, REST_JSON, TrafficFile,
                                                 describe_sources, detect_compression, tfrecord_files,
                                                 traffic_files)
from tfwarm_export.traffic.readers.prediction_log_batch import DecodedLogs, predecode
from tfwarm_export.traffic.readers.rest_json import read_bodies
from tfwarm_export.traffic.readers.numpy_arrays import numpy_chunks
from tfwarm_export.traffic.readers.tfdata import dataset_chunks
from tfwarm_export.traffic.readers.tfexample import tfrecord_chunks
from tfwarm_export.traffic.combine import RecordBatch, SelectionCombiner, TrafficSelection
from tfwarm_export.traffic.select import DEFAULT_K, DataSample, Scanner
from tfwarm_export.traffic.validate import TrafficSpec
from tfwarm_export.traffic.stats import VOCAB_CAP, VOCAB_MIN_COUNT

READ_BATCH = 4096  # records a local scan reads, decodes and groups at a time


def sample_dataset(dataset, signature: SignatureInfo | Mapping[str, TensorSpec], *,
                   k: int = DEFAULT_K, seed: int = 0, max_scan: int | None = None,
                   batched: bool | None = None, compression: str = "auto",
                   examples: bool | None = None, example_stats: str = "sample",
                   vocab_cap: int = VOCAB_CAP,
                   vocab_min_count: int = VOCAB_MIN_COUNT) -> DataSample:
    """Scan ``dataset`` once and keep a uniform sample of ``k`` rows for ``signature``.

    ``dataset`` is a ``tf.data.Dataset`` (batched or not), numpy arrays (a
    single array, a dict keyed by alias, a tuple in sorted alias order, or a
    pandas DataFrame; the leading axis is rows), or TFRecord files of
    serialized tf.Example/SequenceExample (a path, list of paths or glob;
    GZIP detected from the magic bytes) for signatures with one string input.

    ``max_scan`` caps the rows scanned (required for infinite datasets).
    ``batched`` overrides the rank-based batched/unbatched decision for a
    tf.data.Dataset; when no input has a known rank, elements are taken to be
    batches (the Keras convention). In-memory arrays always have rows first.
    A batched dataset that was padded (``padded_batch``) reports padded lengths.
    ``examples`` forces (True) or disables (False) treating a single string
    input as serialized tf.Examples; by default TFRecord data always is, other
    data when its values parse as Examples. ``example_stats="all"`` parses every
    scanned example (slow: Python per record) instead of only the sample.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_scan is not None and max_scan < 1:
        raise ValueError(f"max_scan must be >= 1, got {max_scan}")
    if example_stats not in ("sample", "all"):
        raise ValueError(f"example_stats must be 'sample' or 'all', got {example_stats!r}")
    if compression not in ("auto", "", "GZIP", "ZLIB"):
        raise ValueError(f"compression must be 'auto', '', 'GZIP' or 'ZLIB', got {compression!r}")
    if isinstance(signature, SignatureInfo):
        inputs, defaults, sig_name = signature.inputs, signature.defaults, signature.name
    else:
        inputs, defaults, sig_name = signature, {}, "<inputs>"
    if not inputs:
        raise SignatureError(f"signature {sig_name!r} has no inputs: there is nothing to sample.")
    for alias, spec in inputs.items():
        if spec.encoding != "dense":
            raise SignatureError(
                f"signature {sig_name!r} input {alias!r} uses {spec.encoding} encoding, which the "
                "Predict API cannot feed; sample a signature with dense inputs.")
    required = [a for a in sorted(inputs) if a not in defaults]

    scanner = Scanner(inputs, required, sig_name, k, seed, max_scan, vocab_cap, examples, example_stats)
    files = tfrecord_files(dataset)
    if files is not None:
        source, alias, chunks = tfrecord_chunks(files, compression, inputs, required, sig_name, max_scan)
        if examples is None:
            scanner.examples = True
    elif isinstance(dataset, tf.data.Dataset):
        source = f"tf.data.Dataset {dataset.element_spec}"
        if len(source) > 200:
            source = source[:197] + "..."
        chunks = dataset_chunks(dataset, inputs, required, sig_name, batched, max_scan)
    else:
        source, chunks = numpy_chunks(dataset, inputs, required, sig_name)
    with progress.bar(total=max_scan, desc=f"scan data for {sig_name}", unit="row") as scan_bar:
        for chunk in chunks:
            before = scanner.scanned
            scanner.add(chunk)
            scan_bar.update(scanner.scanned - before)
            if scanner.done:
                break
    return scanner.finish(source, k, seed, vocab_min_count)



# --------------------------------------------------------------------------- traffic


def traffic_spec(signatures: Mapping[str, SignatureInfo], known: Sequence[str] = (),
                 allowed_batch_sizes: Sequence[int] | BatchRule = (), *, k: int = DEFAULT_K, seed: int = 0,
                 vocab_cap: int = VOCAB_CAP) -> TrafficSpec:
    """The picklable part of the model a traffic scan checks requests against."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rule = allowed_batch_sizes if isinstance(allowed_batch_sizes, BatchRule) else None
    allowed = rule.allowed if rule is not None else tuple(int(s) for s in allowed_batch_sizes)
    return TrafficSpec(signatures=dict(signatures), known=tuple(sorted(known or signatures)),
                       allowed_batch_sizes=allowed, k=int(k), seed=int(seed), vocab_cap=vocab_cap,
                       rule=rule)


def previous_version_file(export_dir: str) -> TrafficFile:
    """Another version's warmup file as a traffic source (``--from-version``)."""
    path = os.path.join(os.fspath(export_dir), "assets.extra", "tf_serving_warmup_requests")
    if not tf.io.gfile.exists(path):
        raise DatasetError(f"previous version {export_dir} has no warmup file ({path}); "
                           "warm it first, or leave out previous_version / --from-version.")
    return TrafficFile(path, PREDICTION_LOG, detect_compression(path),
                       origin=f"previous version {os.fspath(export_dir)}")


def read_batches(f: TrafficFile, size: int = READ_BATCH) -> Iterator[RecordBatch]:
    """The requests in one traffic file, ``size`` payloads at a time."""
    if f.kind == REST_JSON:
        batch: list = []
        try:
            for body in read_bodies(f.path, f.compression):
                batch.append(body)
                if len(batch) >= size:
                    yield RecordBatch(REST_JSON, batch)
                    batch = []
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise DatasetError(f"traffic file {f.path} cannot be read as REST JSON "
                               f"({type(e).__name__}: {e}).") from None
        if batch:
            yield RecordBatch(REST_JSON, batch)
        return
    ds = tf.data.TFRecordDataset(f.path, compression_type=f.compression, buffer_size=1 << 20)
    ds = ds.batch(size).prefetch(1)
    if f.kind != PREDICTION_LOG:
        for records in _tfrecord_batches(ds.as_numpy_iterator(), f.path):
            yield RecordBatch(f.kind, records)
        return
    # records stay a string tensor; the next batch is decoded (C++, GIL released) while
    # this one is scanned
    with ThreadPoolExecutor(1, thread_name_prefix="tfwarm-decode") as pool:
        ahead = None
        for records in _tfrecord_batches(iter(ds), f.path):
            submitted = pool.submit(predecode, records)
            if ahead is not None:
                yield RecordBatch(f.kind, ahead.result())
            ahead = submitted
        if ahead is not None:
            yield RecordBatch(f.kind, ahead.result())


def _tfrecord_batches(it, path: str) -> Iterator:
    while True:
        try:
            records = next(it)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            raise DatasetError(f"traffic file {path} cannot be read past some record "
                               f"({tf_error_text(e)}); is it a complete TFRecord file?") from None
        yield records


def read_elements(f: TrafficFile) -> Iterator[tuple[str, object]]:
    """``(kind, payload)`` for every request in one traffic file."""
    for batch in read_batches(f):
        payloads = batch.payloads
        if isinstance(payloads, DecodedLogs):
            payloads = payloads.pick(np.arange(len(payloads)))
        for payload in (payloads.tolist() if isinstance(payloads, np.ndarray) else payloads):
            yield batch.kind, payload


def sample_traffic(files: Sequence[TrafficFile], spec: TrafficSpec, source: str | None = None,
                   vocab_min_count: int = VOCAB_MIN_COUNT) -> TrafficSelection:
    """Select warmup rows from logged traffic in this process.

    The same ``SelectionCombiner`` that ``tfwarm_export.beam`` runs on a Beam
    runner, fed one file after another: the result is identical to Beam's.
    """
    combiner = SelectionCombiner(spec, source or describe_sources(list(files)), vocab_min_count)
    acc = combiner.create_accumulator()
    with progress.bar(desc="select traffic", unit="request") as bar:
        for f in files:
            for batch in read_batches(f):
                combiner.add_input(acc, batch)
                bar.update(len(batch.payloads))
    return combiner.extract_output(acc)


def check_selection(selection: TrafficSelection) -> TrafficSelection:
    """A source in which nothing fits is an error: say why, by reason."""
    if not selection.samples:
        reasons = selection.drop_lines()[:5] or [f"{selection.source} holds no requests"]
        raise DatasetError(f"no request in {selection.source} fits the model ({selection.records} "
                           "record(s) read):\n  " + "\n  ".join(reasons)
                           + "\nCheck that the logs belong to this model, or warm without them.")
    return selection


def traffic_plan(signatures: Mapping[str, SignatureInfo], known: Sequence[str],
                 allowed_batch_sizes: Sequence[int] | BatchRule, traffic, previous_version, *, k: int,
                 seed: int) -> tuple[list[TrafficFile], TrafficSpec, str]:
    """Files, spec and source name of a traffic scan: the one setup shared by the
    local path and the Beam pipeline, so both read the same requests."""
    files: list[TrafficFile] = []
    if traffic is not None:
        files += traffic_files(traffic)
    if previous_version is not None:
        files.append(previous_version_file(previous_version))
    if not files:
        raise DatasetError("no traffic files to read; pass traffic= paths or previous_version=.")
    spec = traffic_spec(signatures, known, allowed_batch_sizes, k=k, seed=seed)
    return files, spec, describe_sources(files)
