"""Bytes for WAV, compressed, protobuf and strict Unicode decoders (``analysis/byte_decoders.py``).

Everything is written by TensorFlow's own encoders or the standard library, so
the bytes are exactly what the decoder reads back: ``tf.audio.encode_wav``,
``zlib``/``gzip`` (``DecodeCompressed`` uses zlib's inflate for both), and
``tf.io.encode_proto`` against the same ``descriptor_source`` the graph's
``DecodeProtoV2`` names. Values derive from the rng only; GZIP headers carry no
time stamp, so the same seed gives the same bytes.
"""
from __future__ import annotations

import gzip
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from tfwarm_export.specs.encodings import (WAV_SAMPLE_RATE, CompressedEncoding, ProtoEncoding, UnicodeEncoding,
                                           WavEncoding)
from tfwarm_export.errors import PlanError
from tfwarm_export.values.encoder_registry import encode_inner, encode_one, register_encoder

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@register_encoder(WavEncoding)
def wav_bytes(enc: WavEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    """A 16-bit PCM WAV of ``enc.samples`` x ``enc.channels``: a seeded tone plus a little noise."""
    n, c = int(enc.samples), int(enc.channels)
    if enc.zero:
        audio = np.zeros((n, c), np.float32)
    else:
        t = np.arange(n, dtype=np.float32)[:, None] / WAV_SAMPLE_RATE
        freq = rng.uniform(200, 2000, size=(1, c)).astype(np.float32)
        audio = 0.4 * np.sin(2 * np.pi * freq * t) + rng.uniform(-0.05, 0.05, size=(n, c))
    return tf.audio.encode_wav(tf.constant(audio, tf.float32), WAV_SAMPLE_RATE).numpy()


def compress(enc: CompressedEncoding, data: bytes) -> bytes:
    """``data`` as ``DecodeCompressed`` with ``compression_type`` reads it (GZIP without mtime)."""
    if enc.compression == "ZLIB":
        return zlib.compress(data, 6)
    if enc.compression == "GZIP":
        return gzip.compress(data, 6, mtime=0)
    if enc.compression == "":
        return data
    raise PlanError(f"DecodeCompressed compression_type {enc.compression!r} is not one TensorFlow "
                    "reads (\"\", ZLIB, GZIP); give the input's values with --override")


@register_encoder(CompressedEncoding)
def _compressed(enc: CompressedEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    return compress(enc, encode_inner(enc.inner, rng, row))


def _field_values(dtype: tf.DType, rng: np.random.Generator) -> np.ndarray:
    if dtype == tf.string:
        return np.array([[_WORDS[int(rng.integers(0, len(_WORDS)))].encode()]], dtype=object)
    if dtype == tf.bool:
        return np.array([[bool(rng.integers(0, 2))]])
    if dtype.is_floating:
        return np.array([[round(float(rng.uniform(0, 4)), 2)]], dtype=dtype.as_numpy_dtype)
    return np.array([[int(rng.integers(1, 4))]], dtype=dtype.as_numpy_dtype)


def _encode_proto(enc: ProtoEncoding, values: list[np.ndarray], sizes: list[int]) -> bytes:
    out = tf.io.encode_proto(tf.constant([sizes], tf.int32), [tf.constant(v, dtype=t) for v, t in
                                                              zip(values, enc.output_types)],
                             list(enc.field_names), enc.message_type,
                             descriptor_source=enc.descriptor_source)
    return out.numpy()[0]


def _decodes(enc: ProtoEncoding, data: bytes) -> bool:
    """Whether the graph's own ``DecodeProtoV2`` settings read ``data`` (message fields hold
    serialized submessages, which a word is not)."""
    try:
        tf.io.decode_proto(tf.constant([data]), enc.message_type, list(enc.field_names),
                           list(enc.output_types), descriptor_source=enc.descriptor_source,
                           message_format=enc.message_format)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        return False
    return True


def _as_text(enc: ProtoEncoding, data: bytes) -> bytes:
    """Binary -> text format through protobuf's pool (``local://`` types Python has imported)."""
    from google.protobuf import descriptor_pool, message_factory, text_format

    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(enc.message_type)
    except KeyError:
        raise PlanError(f"DecodeProtoV2 reads {enc.message_type} in text format, and Python's protobuf "
                        "pool does not know that message; give the input's values with --override") from None
    msg = message_factory.GetMessageClass(desc).FromString(data)
    return text_format.MessageToString(msg).encode("utf-8")


@register_encoder(ProtoEncoding)
def proto_bytes(enc: ProtoEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    """A message with each decoded field set once (the empty message when ``zero``)."""
    n = len(enc.field_names)
    if enc.zero or n == 0:
        data = b""
    else:
        values = [_field_values(t, rng) for t in enc.output_types]
        try:
            data = _encode_proto(enc, values, [1] * n)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            raise PlanError(f"tf.io.encode_proto cannot write {enc.describe()}: "
                            f"{str(e).splitlines()[0][:200]}; give the input's values with --override") from None
        if not _decodes(enc, data):  # a string field that is a submessage: leave strings unset
            sizes = [0 if t == tf.string else 1 for t in enc.output_types]
            data = _encode_proto(enc, values, sizes)
    if enc.message_format == "text":
        data = _as_text(enc, data)
    return data


def unicode_bytes(enc: UnicodeEncoding, rng: np.random.Generator,
                  inner: Callable[[], bytes] | None = None) -> bytes:
    """Text valid in ``input_encoding``: a word with one non-ASCII letter where it fits, or the
    inner decoder's UTF-8 text re-encoded."""
    codec = enc.input_encoding.lower()
    if inner is not None:
        try:
            text = inner().decode("utf-8")
        except UnicodeDecodeError:
            raise PlanError(f"{enc.decoder} transcodes to UTF-8 for {enc.inner.describe()}, whose "
                            "bytes are not text; give the input's values with --override") from None
    else:
        text = "" if enc.zero else _WORDS[int(rng.integers(0, len(_WORDS)))] + "\u00e9"
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return text.encode("ascii", "ignore").decode("ascii").encode(codec)
    except LookupError:
        raise PlanError(f"{enc.decoder} input_encoding {enc.input_encoding!r} has no Python codec to "
                        "write it; give the input's values with --override") from None


@register_encoder(UnicodeEncoding)
def _unicode(enc: UnicodeEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    inner = (lambda: encode_one(enc.inner, rng, row)) if enc.inner is not None else None
    return unicode_bytes(enc, rng, inner)


__all__ = ["wav_bytes", "compress", "proto_bytes", "unicode_bytes"]
