"""Write and read ``assets.extra/tf_serving_warmup_requests``.

TF Serving reads the file as an *uncompressed* TFRecord of PredictionLog protos.
Writing goes to a temp name in ``assets.extra/`` and is renamed into place only
after the caller's check passes, so a failed run never leaves a half-written
file and never loses the previous one. All I/O goes through ``tf.io.gfile`` so
``gs://`` and ``ram://`` paths work too.
"""
from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from typing import Iterable, Iterator

import tensorflow as tf
from google.protobuf import message as pb_message
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export.errors import WarmupFileError

log = logging.getLogger("tfwarm_export")

ASSETS_EXTRA = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
_GZIP_MAGIC = b"\x1f\x8b"


def warmup_path(export_dir: str) -> str:
    return os.path.join(os.fspath(export_dir), ASSETS_EXTRA, WARMUP_FILENAME)


@contextmanager
def quiet_deprecations():
    """Silence TF's deprecation notices for TF1 APIs we use on purpose (TF Serving's own paths)."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _describe_unreadable(path: str, head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return (f"{path} is GZIP-compressed; TF Serving reads the warmup file as an uncompressed "
                "TFRecord and fails with 'corrupted record'. Rewrite it with a plain "
                "tf.io.TFRecordWriter (no compression options).")
    return (f"{path} is not a TFRecord file (bad length/CRC framing). If it holds a raw serialized "
            "PredictionLog, write each record with tf.io.TFRecordWriter instead of writing bytes directly.")


def read_records(path: str) -> list[bytes]:
    """The raw records of a warmup file, rejecting GZIP and unframed files."""
    if not tf.io.gfile.exists(path):
        raise WarmupFileError(f"no warmup file at {path}; create one with `tfwarm add`.")
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_GZIP_MAGIC):
        raise WarmupFileError(_describe_unreadable(path, head))
    try:
        # The C++ record reader directly: ~100x faster than building a tf.data pipeline.
        with quiet_deprecations():
            return [bytes(r) for r in tf.compat.v1.io.tf_record_iterator(path)]
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError):
        raise WarmupFileError(_describe_unreadable(path, head)) from None


def parse_records(records: Iterable[bytes], path: str = "") -> list[prediction_log_pb2.PredictionLog]:
    logs = []
    for i, raw in enumerate(records):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(raw)
        except pb_message.DecodeError as e:
            raise WarmupFileError(f"{path} record {i}: not a PredictionLog proto ({e}).") from None
        logs.append(log)
    return logs


def read_logs(path: str) -> list[prediction_log_pb2.PredictionLog]:
    return parse_records(read_records(path), path)


def serialize_logs(logs: Iterable[prediction_log_pb2.PredictionLog]) -> list[bytes]:
    """Deterministic serialization: map fields in sorted order, so files are byte-identical."""
    return [log.SerializeToString(deterministic=True) for log in logs]


@contextmanager
def staged_write(export_dir: str, records: list[bytes], *, overwrite: bool = False
                 ) -> Iterator[str]:
    """Write ``records`` to a temp file in ``assets.extra/``; yield its path.

    On normal exit the temp file is renamed to the warmup path. If the body
    raises, the temp file (and an ``assets.extra/`` we created) is removed and
    any existing warmup file is untouched.
    """
    export_dir = os.fspath(export_dir)
    final = warmup_path(export_dir)
    if tf.io.gfile.exists(final) and not overwrite:
        raise WarmupFileError(f"{final} already exists; pass overwrite=True (CLI: --overwrite) to "
                              "replace it. The existing file was left as it was.")
    extra = os.path.dirname(final)
    created_dir = not tf.io.gfile.exists(extra)
    tmp = os.path.join(extra, f".{WARMUP_FILENAME}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        tf.io.gfile.makedirs(extra)
        with tf.io.TFRecordWriter(tmp) as writer:
            for r in records:
                writer.write(r)
    except (tf.errors.OpError, OSError) as e:
        _cleanup(tmp, extra if created_dir else None)
        raise WarmupFileError(
            f"cannot write the warmup file under {extra}: {getattr(e, 'message', e)}. Check that "
            f"{export_dir} exists and is writable (or copy the model somewhere writable).") from None
    try:
        yield tmp
        tf.io.gfile.rename(tmp, final, overwrite=True)
    except BaseException:
        _cleanup(tmp, extra if created_dir else None)
        raise


def _cleanup(tmp: str, created_dir: str | None) -> None:
    try:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        if created_dir and tf.io.gfile.exists(created_dir) and not tf.io.gfile.listdir(created_dir):
            tf.io.gfile.rmtree(created_dir)
    except (tf.errors.OpError, OSError) as e:
        # The failure that brought us here is what the caller raises; a leftover
        # temp file is hidden (dot name) and harmless to TF Serving, but say so.
        log.warning("could not remove the temporary warmup file %s: %s; delete it by hand",
                    tmp, getattr(e, "message", e))
