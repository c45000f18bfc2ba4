"""One encoder per encoding type: ``@register_encoder(WavEncoding)`` beside the code that writes the bytes.

``analysis/`` says which encoding a string input must carry (a dataclass from
``specs/encodings.py``); the values stage looks the encoder up here by the
encoding's type. A new decoder is therefore its analysis module, its encoding
type in ``specs/encodings.py`` and one registered encoder, with no central
``isinstance`` chain to edit. The encoder modules (``encoders.py``,
``byte_encoders.py``, ``regex_strings.py``, ``examples.py``) register on import, and
``values/__init__.py`` imports them, so the table is complete before any value is drawn.
"""
from __future__ import annotations

import string
from typing import Any, Callable

import numpy as np

from tfwarm_export.errors import PlanError

Encoder = Callable[[Any, np.random.Generator, int], bytes]
"""``(encoding, rng, row) -> bytes`` the encoding's decoder accepts; ``row`` varies optional parts."""

_ENCODERS: dict[type, Encoder] = {}
_LETTERS = np.array(list(string.ascii_lowercase))


def register_encoder(encoding_type: type) -> Callable[[Encoder], Encoder]:
    """Decorator: ``fn`` writes the bytes of every ``encoding_type`` value (one encoder per type)."""
    def add(fn: Encoder) -> Encoder:
        if _ENCODERS.get(encoding_type, fn) is not fn:
            raise ValueError(f"{encoding_type.__name__} already has an encoder "
                             f"({_ENCODERS[encoding_type].__module__}.{_ENCODERS[encoding_type].__name__})")
        _ENCODERS[encoding_type] = fn
        return fn
    return add


def encoder_for(encoding_type: type) -> Encoder | None:
    """The encoder registered for ``encoding_type`` or its nearest base class, or None."""
    return next((_ENCODERS[c] for c in encoding_type.__mro__ if c in _ENCODERS), None)


def registered_types() -> frozenset[type]:
    """The encoding types that have an encoder."""
    return frozenset(_ENCODERS)


def random_word(rng: np.random.Generator) -> str:
    """1 to 8 random lowercase letters: text for a string no decoder reads."""
    return "".join(_LETTERS[rng.integers(0, len(_LETTERS), size=int(rng.integers(1, 9)))])


def encode_inner(inner: Any, rng: np.random.Generator, row: int) -> bytes:
    """What a wrapping decoder (base64, compression) wraps: ``inner``'s bytes, or a word when
    the wrapped bytes go to no decoder (``inner`` None)."""
    return encode_one(inner, rng, row) if inner is not None else random_word(rng).encode()


def encode_one(enc: Any, rng: np.random.Generator, row: int = 0) -> bytes:
    """One element the decoder described by ``enc`` accepts (``row`` varies optional fields).

    Wrapping decoders (base64, compression, a transcode) encode their inner decoder's bytes.
    """
    encoder = encoder_for(type(enc))
    if encoder is None:
        raise PlanError(f"no encoder is registered for {enc.describe()} ({type(enc).__name__}); "
                        "give the input's values with --override")
    return encoder(enc, rng, row)


def encode_array(enc: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A string array of ``shape`` whose every element ``enc``'s decoder accepts."""
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = encode_one(enc, rng, i)
    return out.reshape(shape)


__all__ = ["Encoder", "register_encoder", "encoder_for", "registered_types", "random_word", "encode_inner",
           "encode_one", "encode_array"]
