"""Paths, globs and compression, for every file-based reader (any tf.io.gfile scheme)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import tensorflow as tf

from tfwarm_export.errors import DatasetError


def tfrecord_files(dataset) -> list[str] | None:
    """Expand a path, list of paths or glob; None when ``dataset`` is not paths."""
    if isinstance(dataset, (str, os.PathLike)):
        items = [dataset]
    elif (isinstance(dataset, (list, tuple)) and dataset
          and all(isinstance(p, (str, os.PathLike)) for p in dataset)):
        items = list(dataset)
    else:
        return None
    files: list[str] = []
    for item in items:
        path = os.fspath(item)
        if any(c in path for c in "*?["):
            matched = sorted(tf.io.gfile.glob(path))
            if not matched:
                raise DatasetError(f"no TFRecord files match {path!r}; check the pattern.")
            files.extend(matched)
        elif tf.io.gfile.isdir(path):
            raise DatasetError(f"{path} is a directory; pass a glob such as "
                               f"{os.path.join(path, '*.tfrecord')!r} or a list of files.")
        elif not tf.io.gfile.exists(path):
            raise DatasetError(f"TFRecord file {path} does not exist; check the path.")
        else:
            files.append(path)
    return files


def detect_compression(path: str) -> str:
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(2)
    return "GZIP" if head == b"\x1f\x8b" else ""




# --------------------------------------------------------------------------- traffic sources

REST_JSON, PREDICTION_LOG, TF_EXAMPLE = "rest_json", "prediction_log", "tf_example"
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class TrafficFile:
    """One file of logged traffic: what it holds and how it is compressed."""

    path: str
    kind: str          # REST_JSON | PREDICTION_LOG | TF_EXAMPLE
    compression: str   # "" | "GZIP"
    origin: str = ""   # the pattern or directory the user gave


def _is_json_name(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    return name.endswith(_JSON_SUFFIXES)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli), for the 8 bytes of a length header."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class NotTFRecord(Exception):
    """The file does not start with a TFRecord record."""


def _first_record(path: str, compression: str) -> bytes | None:
    """The first record of a TFRecord file, framing checked (length and its CRC).

    Read with ``GFile`` rather than a ``tf.data`` pipeline (~10 ms to set up) or
    ``tf_record_iterator`` (a 16 MiB read buffer): listing a log of thousands of
    shards pays this per file. The record's own CRC is checked by the full read."""
    import gzip
    import struct

    with tf.io.gfile.GFile(path, "rb") as f:
        raw = gzip.GzipFile(fileobj=f) if compression == "GZIP" else f
        try:
            head = raw.read(12)
            if not head:
                return None
            if len(head) < 12 or _masked_crc32c(head[:8]) != struct.unpack("<I", head[8:])[0]:
                raise NotTFRecord("no TFRecord length header at the start")
            (size,) = struct.unpack("<Q", head[:8])
            if size > 1 << 31:
                raise NotTFRecord(f"the first record claims {size} bytes")
            data = raw.read(size)
        except (OSError, EOFError) as e:  # a broken GZIP stream
            raise NotTFRecord(f"{type(e).__name__}: {e}") from None
    if len(data) < size:
        raise NotTFRecord(f"the first record is cut short ({len(data)} of {size} bytes)")
    return data


def classify_file(path: str, origin: str = "") -> TrafficFile:
    """REST JSON by name (``.json``/``.jsonl``/``.ndjson``, optionally ``.gz``);
    otherwise a TFRecord whose first record says PredictionLog or tf.Example."""
    from tfwarm_export.traffic.readers.prediction_log import is_prediction_log

    compression = detect_compression(path)
    if _is_json_name(path):
        return TrafficFile(path, REST_JSON, compression, origin)
    try:
        first = _first_record(path, compression)
    except NotTFRecord as e:
        raise DatasetError(
            f"traffic file {path} is neither REST JSON (.json/.jsonl/.ndjson) nor a readable "
            f"TFRecord ({e}); pass request-log TFRecords, warmup files, tf.Example TFRecords or "
            "JSON bodies.") from None
    kind = PREDICTION_LOG if first is None or is_prediction_log(first) else TF_EXAMPLE
    return TrafficFile(path, kind, compression, origin)


def traffic_files(sources) -> list[TrafficFile]:
    """Expand traffic sources: paths, globs or directories (of ``.json``/``.jsonl``
    bodies or TFRecords), local or any ``tf.io.gfile`` scheme; sorted, deduplicated."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    out: dict[str, TrafficFile] = {}
    for item in items:
        origin = os.fspath(item)
        if any(c in origin for c in "*?["):
            matched = sorted(p for p in tf.io.gfile.glob(origin) if not tf.io.gfile.isdir(p))
            if not matched:
                raise DatasetError(f"no traffic files match {origin!r}; check the pattern.")
        elif tf.io.gfile.isdir(origin):
            names = sorted(tf.io.gfile.listdir(origin))
            matched = [os.path.join(origin, n) for n in names
                       if not n.startswith(".") and not tf.io.gfile.isdir(os.path.join(origin, n))]
            if not matched:
                raise DatasetError(f"traffic directory {origin} has no files.")
        elif not tf.io.gfile.exists(origin):
            raise DatasetError(f"traffic source {origin} does not exist; check the path.")
        else:
            matched = [origin]
        for path in matched:
            if path not in out:
                out[path] = classify_file(path, origin)
    return [out[p] for p in sorted(out)]


def describe_sources(files: list[TrafficFile], label: str | None = None) -> str:
    """A short name for reports: the origins and what they held."""
    kinds = sorted({f.kind.replace("_", " ") for f in files})
    origins = sorted({f.origin for f in files})
    where = label or ", ".join(origins[:3]) + (f" (+{len(origins) - 3} more)" if len(origins) > 3 else "")
    return f"{where} [{len(files)} file(s): {', '.join(kinds)}]"
