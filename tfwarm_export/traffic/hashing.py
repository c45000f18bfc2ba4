"""``hash(seed, row)``: the number that decides which rows a selection keeps.

Shared by every scan (datasets, traffic, Beam shards) so that the same row gets
the same number wherever and however it is read.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tfwarm_export.traffic.rows import Column

_U64 = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15


_S30, _S27, _S31 = _U64(30), _U64(27), _U64(31)
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wraps mod 2**64)."""
    h = (h ^ (h >> _S30)) * _M1
    h = (h ^ (h >> _S27)) * _M2
    return h ^ (h >> _S31)


_POWERS = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> np.ndarray:
    """``GOLDEN**i`` for i < n (mod 2**64): positional weights of a polynomial hash."""
    global _POWERS
    if len(_POWERS) < n:
        with np.errstate(over="ignore"):
            grown = np.full(max(n, 2 * len(_POWERS)), _GOLDEN, dtype=np.uint64)
            grown[0] = 1
            _POWERS = np.cumprod(grown, dtype=np.uint64)
    return _POWERS[:n]


def _fold(words: np.ndarray) -> np.ndarray:
    """Hash each row of a (n, w) uint64 matrix: sum of mixed words times position weights."""
    return mix((mix(words) * _powers(words.shape[1])).sum(axis=1, dtype=np.uint64)
                + _U64(words.shape[1]))


def _string_words(flat: list) -> np.ndarray:
    """One uint64 per string: CRC-32 and Adler-32 (both C-speed over ``map``) side by side."""
    import zlib

    crc = np.fromiter(map(zlib.crc32, flat), dtype=np.uint64, count=len(flat))
    adler = np.fromiter(map(zlib.adler32, flat), dtype=np.uint64, count=len(flat))
    return (crc << _U64(32)) | adler


def _dense_hashes(arr: np.ndarray) -> np.ndarray:
    """Per-row hash of an array with a leading row axis: its values' bytes and its row shape."""
    n = arr.shape[0]
    if arr.dtype == object:
        flat = arr.reshape(-1).tolist()
        if set(map(type, flat)) != {bytes}:
            flat = [v if isinstance(v, bytes) else bytes(v) for v in flat]
        words = _string_words(flat).reshape(n, -1)
    else:
        raw = np.ascontiguousarray(arr).reshape(n, -1).view(np.uint8)
        pad = (-raw.shape[1]) % 8
        if pad:
            raw = np.concatenate([raw, np.zeros((n, pad), np.uint8)], axis=1)
        words = raw.view(np.uint64) if raw.shape[1] else np.zeros((n, 0), np.uint64)
    shape = np.array([list(arr.shape[1:])], dtype=np.uint64).repeat(n, axis=0)
    return _fold(np.concatenate([words, shape, np.full((n, 1), arr.ndim, np.uint64)], axis=1))


def _name_hash(name: str) -> int:
    import zlib

    raw = name.encode("utf-8")
    return (zlib.crc32(raw) << 32) | zlib.adler32(raw)


def row_hashes(cols: Mapping[str, Column], n: int, seed: int) -> np.ndarray:
    """``hash(seed, row)`` for each of ``n`` rows: a uint64 per row.

    It depends on the row's aliases, values and shapes only, never on where the
    row was read or how it was chunked, so every shard of a distributed scan
    computes the same number for the same row. A row that arrives in a dense
    batch hashes like the same row arriving alone or in a ragged batch.
    """
    h = mix(np.full(n, (int(seed) * _GOLDEN + 1) % 2**64, dtype=np.uint64))
    for alias in sorted(cols):
        col = cols[alias]
        if col.dense is not None:
            part = _dense_hashes(col.dense[:n])
        else:
            part = np.array([_dense_hashes(r[None])[0] for r in col.rows[:n]], dtype=np.uint64)
        h = mix(h * _U64(31) + _U64(_name_hash(alias)))
        h = mix(h ^ part)
    return h
