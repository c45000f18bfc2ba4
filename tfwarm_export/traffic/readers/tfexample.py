"""TFRecord files of serialized tf.Example / SequenceExample, for a signature with one string input."""
from __future__ import annotations

from collections import Counter

from typing import Iterator

import numpy as np
import tensorflow as tf

from tfwarm_export.errors import DatasetError, tf_error_text
from tfwarm_export.traffic.readers.files import detect_compression
from tfwarm_export.traffic.rows import Chunk, example_alias
from tfwarm_export.traffic.validate import Dropped, LoggedRequest, RequestGroup, TrafficSpec

CHUNK_ROWS = 4096  # rows per internal read batch (per-chunk costs are paid per this many rows)


def tfrecord_chunks(files: list[str], compression: str, inputs, required, sig_name,
                     max_scan: int | None) -> tuple[str, str, Iterator[Chunk]]:
    alias = example_alias(inputs, required)
    if alias is None:
        shown = ", ".join(f"{a}: {s.dtype.name}{s.shape_str()}" for a, s in sorted(inputs.items()))
        raise DatasetError(
            f"TFRecord files hold serialized tf.Example records, but signature {sig_name!r} does "
            f"not take a single string input (inputs: {shown}). Pass a tf.data.Dataset or numpy "
            "arrays of its inputs instead, or pick the signature that parses examples.")
    groups: list[tuple[str, list[str]]] = []
    for f in files:
        c = detect_compression(f) if compression == "auto" else compression
        if groups and groups[-1][0] == c:
            groups[-1][1].append(f)
        else:
            groups.append((c, [f]))
    ds = None
    for c, group in groups:
        part = tf.data.TFRecordDataset(group, compression_type=c, buffer_size=1 << 20)
        ds = part if ds is None else ds.concatenate(part)
    if max_scan is not None:
        ds = ds.take(max_scan)
    ds = ds.batch(CHUNK_ROWS)
    spec = inputs[alias]
    trailing = spec.shape[1:] if spec.shape else ()
    reshape = trailing and all(d == 1 for d in trailing)
    kinds = sorted({c or "plain" for c, _ in groups})
    source = (f"TFRecord {files[0]}" if len(files) == 1 else
              f"TFRecord {len(files)} files ({files[0]} ... {files[-1]})") + f" [{', '.join(kinds)}]"

    def gen() -> Iterator[Chunk]:
        index = 0
        it = ds.as_numpy_iterator()
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except tf.errors.DataLossError as e:
                raise DatasetError(
                    f"{source}: record {index} onwards cannot be read ({tf_error_text(e)}). "
                    "Is it a TFRecord file? For ZLIB-compressed files pass compression='ZLIB'.") from None
            if reshape:
                batch = batch.reshape((len(batch),) + tuple(trailing))
            yield Chunk(index, {alias: ("record", batch)}, user_batch=False, label="record")
            index += len(batch)

    return source, alias, gen()




def decode_example_record(record: bytes, spec: TrafficSpec, memo: dict | None = None) -> list[LoggedRequest]:
    """A tf.Example record found among traffic files: a row for every warmed
    signature that takes serialized examples through one string input."""
    out = []
    for name in sorted(spec.signatures):
        alias = _examples_alias(spec.signatures[name])
        if alias is None:
            continue
        arr = np.empty(1, dtype=object)
        arr[0] = bytes(record)
        out.append(LoggedRequest(name, "examples", {alias: arr}))
    if not out:
        raise Dropped(NO_TAKER)
    return out


NO_TAKER = ("a tf.Example record, but no warmed signature takes serialized tf.Examples "
            "through one string input")


def _examples_alias(sig) -> str | None:
    """The one string input of ``sig`` that takes a batch of serialized tf.Examples."""
    alias = example_alias(sig.inputs, list(sig.required_inputs))
    if alias is None or sig.inputs[alias].rank not in (None, 1):
        return None
    return alias


def decode_example_records(payloads, spec: TrafficSpec, memo: dict) -> tuple[list[RequestGroup], Counter]:
    """Many tf.Example records at once: one group per signature that takes them (the
    same rows and drops as ``decode_example_record`` on each, without a loop per record)."""
    records = np.empty(len(payloads), dtype=object)
    values = payloads.tolist() if isinstance(payloads, np.ndarray) else list(payloads)
    records[:] = values if set(map(type, values)) <= {bytes} else [bytes(r) for r in values]
    groups, dropped = [], Counter()
    takers = [(name, alias) for name in sorted(spec.signatures)
              for alias in [_examples_alias(spec.signatures[name])] if alias is not None]
    if not takers:
        dropped[NO_TAKER] += len(records)
    for name, alias in takers:
        groups.append(RequestGroup(name, "examples", 1, {alias: records}, len(records)))
    return groups, dropped
