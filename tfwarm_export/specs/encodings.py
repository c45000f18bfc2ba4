"""What a decoder accepts: one dataclass per encoding, shared by analysis/ and values/.

``analysis/`` reads the graph and says which encoding a string input must carry
(``decoders.py``, ``byte_decoders.py``, ``guards.py``); ``values/`` writes bytes of that
encoding (``values/encoders.py``, one encoder registered per type). Both import the
types from here, so neither imports the other's layer for them. Plain data: ``describe``
for the plan and ``smallest`` for the safe-value retry.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.example_spec import ExampleSpec

if TYPE_CHECKING:
    import tensorflow as tf

WAV_SAMPLE_RATE = 16000
"""Hz of the WAV files written for ``DecodeWav`` (the op reads any rate)."""


@dataclass(frozen=True)
class ImageEncoding:
    """An encoded image: ``formats`` the decoder accepts (first is written), size, channels.

    ``exact`` means a later op (``EnsureShape``/``Reshape``) needs exactly this
    size; otherwise the size is representative (a resize target, or the default).
    """

    op: str
    formats: tuple[str, ...]
    height: int
    width: int
    channels: int
    exact: bool = False
    size_from: str = ""

    def describe(self) -> str:
        fmt = self.formats[0] if len(self.formats) == 1 or self.op != "DecodeImage" else f"any ({self.formats[0]})"
        extra = f" {fmt}" if self.op == "DecodeImage" else ""
        return f"{self.op}{extra} {self.height}x{self.width}x{self.channels}"

    def smallest(self) -> "ImageEncoding":
        return self if self.exact else replace(self, height=1, width=1, size_from="smallest valid")


@dataclass(frozen=True)
class CsvField:
    """One column of a CSV line: ``dtype`` None for a column ``select_cols`` skips."""

    dtype: tf.DType | None
    required: bool = True
    default: object = None
    domain: Domain | None = None


@dataclass(frozen=True)
class CsvEncoding:
    fields: tuple[CsvField, ...]
    delim: str = ","
    use_quote_delim: bool = True
    na_value: str = ""
    op: str = "DecodeCSV"
    defaults_only: bool = False  # the safe line: optional fields empty, required ones "0"

    def describe(self) -> str:
        used = [f for f in self.fields if f.dtype is not None]
        types = ",".join(f.dtype.name + ("" if f.required else "?") for f in used)
        return f"DecodeCSV {len(self.fields)} fields [{types}] delim {self.delim!r}"

    def smallest(self) -> "CsvEncoding":
        return replace(self, defaults_only=True)


@dataclass(frozen=True)
class NumberEncoding:
    dtype: tf.DType
    domain: Domain | None = None
    zero: bool = False
    op: str = "StringToNumber"

    def describe(self) -> str:
        bound = f" in {self.domain.describe()}" if self.domain is not None else ""
        return f"StringToNumber {self.dtype.name}{bound}"

    def smallest(self) -> "NumberEncoding":
        return replace(self, zero=True)


@dataclass(frozen=True)
class Base64Encoding:
    """Web-safe base64 of ``inner`` (None: of arbitrary bytes)."""

    inner: object = None
    op: str = "DecodeBase64"

    def describe(self) -> str:
        return "DecodeBase64" + (f" of {self.inner.describe()}" if self.inner is not None else "")

    def smallest(self) -> "Base64Encoding":
        return replace(self, inner=self.inner.smallest() if self.inner is not None else None)


@dataclass(frozen=True)
class RawEncoding:
    """``count`` values of ``dtype`` as raw bytes (``fixed_length``: DecodePaddedRaw's byte count)."""

    dtype: tf.DType
    count: int
    little_endian: bool = True
    fixed_length: int | None = None
    exact: bool = False
    zero: bool = False
    op: str = "DecodeRaw"

    def describe(self) -> str:
        size = (f"{self.fixed_length} bytes" if self.fixed_length is not None
                else f"{self.count} x {self.dtype.name}")
        order = "little" if self.little_endian else "big"
        return f"{self.op} {size} ({order}-endian{', fixed by Reshape' if self.exact else ''})"

    def smallest(self) -> "RawEncoding":
        return replace(self, zero=True)


@dataclass(frozen=True)
class TensorProtoEncoding:
    dtype: tf.DType
    shape: tuple[int, ...]
    zero: bool = False
    op: str = "ParseTensor"

    def describe(self) -> str:
        return f"ParseTensor {self.dtype.name}{list(self.shape)}"

    def smallest(self) -> "TensorProtoEncoding":
        return replace(self, zero=True)


@dataclass(frozen=True)
class JsonExampleEncoding:
    spec: ExampleSpec
    feature_domains: tuple[tuple[str, Domain], ...] = ()
    zero: bool = False
    op: str = "DecodeJSONExample"

    def describe(self) -> str:
        keys = sorted(f.key for f in self.spec.context_features())
        return f"DecodeJSONExample of tf.Example {keys}"

    def smallest(self) -> "JsonExampleEncoding":
        return replace(self, zero=True)


@dataclass(frozen=True)
class WavEncoding:
    """16-bit PCM WAV: ``samples`` x ``channels``; ``exact`` when the graph fixes the count."""

    samples: int
    channels: int
    exact: bool = False
    size_from: str = "default"
    zero: bool = False
    op: str = "DecodeWav"

    def describe(self) -> str:
        return f"DecodeWav {self.samples} samples x {self.channels} ch ({self.size_from})"

    def smallest(self) -> "WavEncoding":
        return replace(self, zero=True) if self.exact else replace(self, samples=1, zero=True,
                                                                   size_from="smallest valid")


@dataclass(frozen=True)
class CompressedEncoding:
    """``inner``'s bytes (None: arbitrary bytes) compressed as ``compression`` ("", ZLIB, GZIP)."""

    compression: str
    inner: object = None
    op: str = "DecodeCompressed"

    def describe(self) -> str:
        what = self.inner.describe() if self.inner is not None else "bytes"
        return f"DecodeCompressed {self.compression or 'uncompressed'} of {what}"

    def smallest(self) -> "CompressedEncoding":
        return replace(self, inner=self.inner.smallest() if self.inner is not None else None)


@dataclass(frozen=True)
class ProtoEncoding:
    """A serialized ``message_type`` (binary or text format) with ``field_names`` set."""

    message_type: str
    field_names: tuple[str, ...]
    output_types: tuple[tf.DType, ...]
    descriptor_source: bytes = b"local://"  # raw attr bytes: ``bytes://`` carries a binary set
    message_format: str = "binary"
    zero: bool = False
    op: str = "DecodeProtoV2"

    def describe(self) -> str:
        src = self.descriptor_source
        where = "descriptor set in the graph" if src.startswith(b"bytes://") else src.decode("utf-8", "replace")
        return (f"DecodeProtoV2 {self.message_type} [{', '.join(self.field_names)}] "
                f"({self.message_format}, {where})")

    def smallest(self) -> "ProtoEncoding":
        return replace(self, zero=True)


@dataclass(frozen=True)
class UnicodeEncoding:
    """Text valid in ``input_encoding``; ``inner`` is what decodes the UTF-8 transcode next."""

    input_encoding: str
    decoder: str
    inner: object = None
    zero: bool = False
    op: str = "UnicodeDecode"

    def describe(self) -> str:
        inner = f" of {self.inner.describe()}" if self.inner is not None else ""
        return f"{self.decoder} strict {self.input_encoding}{inner}"

    def smallest(self) -> "UnicodeEncoding":
        return replace(self, zero=True, inner=self.inner.smallest() if self.inner is not None else None)


@dataclass(frozen=True)
class GuardEncoding:
    """Text every guard accepts: full matches of ``patterns``, ``length`` in [low, high),
    one of ``choices`` when set, none of ``excluded``."""

    patterns: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None  # exclusive
    choices: tuple[bytes, ...] | None = None
    excluded: tuple[bytes, ...] = ()
    sources: tuple[str, ...] = ()
    zero: bool = False
    op: str = "Guard"

    def describe(self) -> str:
        parts = [f"matches {p!r}" for p in self.patterns]
        if self.min_length is not None or self.max_length is not None:
            lo = self.min_length if self.min_length is not None else 0
            parts.append(f"length {lo}" if self.max_length == lo + 1
                         else f"length in [{lo}, {self.max_length if self.max_length is not None else 'inf'})")
        if self.choices is not None:
            shown = ", ".join(repr(c.decode("utf-8", "replace")) for c in self.choices[:5])
            parts.append(f"one of [{shown}{', ...' if len(self.choices) > 5 else ''}]")
        if self.excluded:
            parts.append(f"not {', '.join(repr(c.decode('utf-8', 'replace')) for c in self.excluded[:3])}")
        return "guarded: " + "; ".join(parts) + f" ({'; '.join(self.sources)})"

    def smallest(self) -> "GuardEncoding":
        return replace(self, zero=True)


Encoding = (ImageEncoding | CsvEncoding | NumberEncoding | Base64Encoding | RawEncoding
            | TensorProtoEncoding | JsonExampleEncoding | WavEncoding | CompressedEncoding
            | ProtoEncoding | UnicodeEncoding | GuardEncoding)
"""Every encoding an analysis can return; ``values/`` registers one encoder for each
(``values/encoder_registry.py``, checked by ``tests/test_decoders.py``)."""

__all__ = ["ImageEncoding", "CsvField", "CsvEncoding", "NumberEncoding", "Base64Encoding", "RawEncoding",
           "TensorProtoEncoding", "JsonExampleEncoding", "WavEncoding", "CompressedEncoding", "ProtoEncoding",
           "UnicodeEncoding", "GuardEncoding", "Encoding", "WAV_SAMPLE_RATE"]
