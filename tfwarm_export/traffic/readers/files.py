"""Paths, globs and compression, for every file-based reader (any tf.io.gfile scheme)."""
from __future__ import annotations

import os

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


