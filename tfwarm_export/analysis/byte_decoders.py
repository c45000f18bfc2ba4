"""WAV, compressed, protobuf and Unicode decoders: the bytes each accepts, read from its attrs.

``decoders.py`` follows a string input to the op that decodes it; for these
four ops this module says what that op needs:

* ``DecodeWav``: a RIFF/WAVE file of 16-bit PCM. ``desired_channels`` and
  ``desired_samples`` make the op convert any file, but a later ``Reshape`` or
  ``EnsureShape`` of the audio fixes the sample count, so that is honoured.
* ``DecodeCompressed``: ZLIB/GZIP/uncompressed bytes *of whatever decodes its
  output* (``inner``), so the chain continues (compressed raw floats, CSV,
  JSON tf.Examples, images, tensor protos).
* ``DecodeProtoV2``: a serialized message of ``message_type`` from the
  descriptor the op names (``local://``, ``bytes://`` or a file).
* ``UnicodeDecode``/``UnicodeDecodeWithOffsets``/``UnicodeTranscode`` with
  ``errors="strict"``: text valid in ``input_encoding`` (for a transcode to
  UTF-8, text whose UTF-8 form is what the next decoder reads).

Only the graph is read here; ``values/byte_encoders.py`` writes the bytes.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.index import IDENTITY_OPS, GraphIndex, Node
from tfwarm_export.specs.encodings import CompressedEncoding, ProtoEncoding, UnicodeEncoding, WavEncoding

BYTE_DECODERS = frozenset({"DecodeWav", "DecodeCompressed", "DecodeProtoV2", "UnicodeDecode",
                           "UnicodeDecodeWithOffsets", "UnicodeTranscode"})
"""Ops whose accepted bytes this module describes."""

WRAPPING_DECODERS = frozenset({"DecodeCompressed", "UnicodeTranscode"})
"""Decoders whose output is bytes again: what decodes it next decides the content."""

DEFAULT_WAV_SAMPLES = 1600
"""Samples per WAV file (0.1 s at 16 kHz) when nothing in the graph fixes the count."""


def _s(node: Node, name: str, default: str = "") -> str:
    a = node.attr(name)
    return a.s.decode("utf-8", "replace") if a is not None else default


def _i(node: Node, name: str, default: int) -> int:
    a = node.attr(name)
    return int(a.i) if a is not None else default


def _audio_passthrough(node: Node, pos: int):
    if node.op in IDENTITY_OPS or node.op in ("Cast", "TensorListSetItem", "TensorListStack"):
        return (0,) if pos == 0 or (node.op == "TensorListSetItem" and pos == 2) else ()
    return ()


def wav_encoding(idx: GraphIndex, node: Node) -> WavEncoding:
    """What ``DecodeWav`` needs: its attrs, then a ``Reshape``/``EnsureShape`` of the audio."""
    channels = _i(node, "desired_channels", -1)
    samples = _i(node, "desired_samples", -1)
    size_from = "desired_samples" if samples > 0 else "default"
    exact = samples > 0
    for consumer, pos in idx.walk_forward((node.scope, node.name, 0), _audio_passthrough):
        if pos != 0 or samples > 0:
            continue
        dims = None
        if consumer.op == "EnsureShape" and consumer.attr("shape") is not None:
            s = consumer.attr("shape").shape
            dims = None if s.unknown_rank else [d.size for d in s.dim]
        elif consumer.op == "Reshape" and len(consumer.inputs) > 1:
            v = idx.const_value(consumer.inputs[1])
            dims = [int(d) for d in np.ravel(v)] if v is not None and v.dtype.kind in "iu" else None
        if dims and len(dims) == 2 and dims[0] > 0:
            samples, exact, size_from = dims[0], True, consumer.op
            if channels <= 0 and dims[1] > 0:
                channels = dims[1]
    return WavEncoding(samples if samples > 0 else DEFAULT_WAV_SAMPLES, channels if channels > 0 else 1,
                       exact, size_from)


def compressed_encoding(node: Node, inner: object) -> CompressedEncoding:
    return CompressedEncoding(_s(node, "compression_type").upper(), inner)


def proto_encoding(node: Node) -> ProtoEncoding | None:
    types = node.attr("output_types")
    names = node.attr("field_names")
    if types is None or names is None:
        return None
    return ProtoEncoding(_s(node, "message_type"),
                         tuple(n.decode("utf-8") for n in names.list.s),
                         tuple(tf.dtypes.as_dtype(t) for t in types.list.type),
                         (node.attr("descriptor_source").s if node.attr("descriptor_source") is not None
                          else b"") or b"local://",
                         _s(node, "message_format", "binary") or "binary")


def unicode_encoding(node: Node, inner: object) -> UnicodeEncoding | None:
    """Only ``errors="strict"`` rejects text; "replace"/"ignore" accept any bytes."""
    if _s(node, "errors", "replace") != "strict":
        return None
    if node.op == "UnicodeTranscode" and _s(node, "output_encoding").upper() not in ("UTF-8", "UTF8"):
        inner = None
    return UnicodeEncoding(_s(node, "input_encoding", "UTF-8"), node.op, inner)


__all__ = ["BYTE_DECODERS", "WRAPPING_DECODERS", "wav_encoding", "compressed_encoding", "proto_encoding",
           "unicode_encoding", "DEFAULT_WAV_SAMPLES"]
