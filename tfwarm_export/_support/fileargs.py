"""File arguments that may be pipes: ``-`` (stdin), ``<(cmd)`` or a named FIFO.

A pipe can be read once only, and TensorFlow's file layer (``tf.io.gfile``)
sizes a local file with ``stat`` before reading it, so a pipe reads as empty
("max_batch_size is not set"). Here a stream is read once with plain Python I/O;
ordinary paths, local or remote (``gs://``...), go through ``tf.io.gfile``.
"""
from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile

STDIN = "-"


def is_stream(path: str | os.PathLike) -> bool:
    """True for ``-`` and for local paths that are not regular files (pipes, FIFOs, ttys)."""
    path = os.fspath(path)
    if path == STDIN:
        return True
    if "://" in path:
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of a file argument, read once. Raises OSError/FileNotFoundError."""
    path = os.fspath(path)
    if path == STDIN:
        return sys.stdin.buffer.read()
    if is_stream(path):
        with open(path, "rb") as f:
            return f.read()
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def read_text(path: str | os.PathLike) -> str:
    """``read_bytes`` decoded as UTF-8."""
    return read_bytes(path).decode("utf-8")


def describe(path: str | os.PathLike) -> str:
    """How to name the argument in messages (``<stdin>`` for ``-``)."""
    path = os.fspath(path)
    return "<stdin>" if path == STDIN else path


_spool_dir: str | None = None


def spooled_copy(data: bytes, suffix: str = "") -> str:
    """Write ``data`` (a stream already read) to a private temp file, removed at exit.

    For readers that need a real, seekable path (TFRecord readers, ``tf.data``).
    """
    global _spool_dir
    if _spool_dir is None:
        _spool_dir = tempfile.mkdtemp(prefix="tfwarm-input-")
        atexit.register(shutil.rmtree, _spool_dir, True)
    fd, path = tempfile.mkstemp(dir=_spool_dir, suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path
