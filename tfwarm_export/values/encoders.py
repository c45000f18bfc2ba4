"""Valid encodings for the decoders a string input feeds (the values side of ``analysis.decoders``).

Random strings fail ``DecodeJpeg``, ``DecodeCSV`` or ``StringToNumber``, so a
string input that reaches one gets bytes that op accepts: images made with
``tf.io.encode_jpeg``/``encode_png`` (and Pillow for GIF, BMP and WebP, which TF
cannot write), CSV lines typed per field, decimal strings, web-safe base64 of
the inner encoding, raw bytes and serialized ``TensorProto``s (JSON tf.Examples are
built in ``examples.py`` from the same tf.Example synthesis).
Pixels are smooth seeded noise, so a 224x224 JPEG stays a few KB, and
everything derives from the rng: the same seed gives the same bytes. Each encoder
is registered by its encoding's type (``encoder_registry.py``), which also gives
``encode_one``/``encode_array`` (kept importable from here).
"""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import tensorflow as tf

from tfwarm_export.errors import PlanError
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.encodings import (Base64Encoding, CsvEncoding, CsvField, ImageEncoding, NumberEncoding,
                                           RawEncoding, TensorProtoEncoding)
from tfwarm_export.values.encoder_registry import (encode_array, encode_inner, encode_one, random_word,
                                                   register_encoder)

JPEG_QUALITY = 75


# --------------------------------------------------------------------------- images


def _bilinear_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (low, high) and weights of a half-pixel-centred bilinear resize, step for step in
    float32 as TensorFlow's ResizeBilinear kernel computes them (scale, floor, clamp, lerp)."""
    scale = np.float32(in_size) / np.float32(out_size)
    x = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(x)
    low = np.maximum(floor, 0).astype(np.int64)
    high = np.minimum(np.ceil(x), in_size - 1).astype(np.int64)
    return low, high, (x - floor).astype(np.float32)


def noise_image(height: int, width: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth seeded noise, uint8 [h, w, c]: a coarse random grid upsampled bilinearly.

    Smooth pixels compress like photos do (a 224x224 JPEG is a few KB) while
    still exercising every decoder path (IDCT, filtering, colour conversion).
    The upsampling is numpy's, one IEEE float32 operation at a time, so the pixels
    do not depend on which CPU kernels TensorFlow picks on the machine (a Beam
    worker); it reproduces ``tf.image.resize(..., "bilinear")`` bit for bit, so the
    bytes are the ones that call gave.
    """
    gh, gw = max(2, -(-height // 16)), max(2, -(-width // 16))
    grid = rng.integers(0, 256, size=(gh, gw, channels)).astype(np.float32)
    y0, y1, wy = _bilinear_taps(height, gh)
    x0, x1, wx = _bilinear_taps(width, gw)
    wx, wy = wx[None, :, None], wy[:, None, None]
    top = grid[y0][:, x0] + (grid[y0][:, x1] - grid[y0][:, x0]) * wx
    bottom = grid[y1][:, x0] + (grid[y1][:, x1] - grid[y1][:, x0]) * wx
    img = top + (bottom - top) * wy
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _pillow(fmt: str, what: str):
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is an install requirement
        raise PlanError(f"writing {fmt} images for {what} needs Pillow, which TensorFlow cannot replace "
                        "(it has no {fmt} encoder): pip install Pillow") from e
    return Image


def encode_image(pixels: np.ndarray, fmt: str, what: str = "an image decoder") -> bytes:
    """``pixels`` (uint8 [h, w, c]) as ``fmt``: JPEG/PNG through tf.io, GIF/BMP/WEBP through Pillow."""
    channels = pixels.shape[-1]
    if fmt == "JPEG":
        return tf.io.encode_jpeg(pixels[..., :3] if channels == 4 else pixels, quality=JPEG_QUALITY).numpy()
    if fmt == "PNG":
        return tf.io.encode_png(pixels).numpy()
    Image = _pillow(fmt, what)
    # fromarray infers L / RGB / RGBA from the array's shape (uint8 [h, w] / [h, w, 3|4]).
    img = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels))
    if fmt == "GIF" and img.mode != "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    if fmt == "WEBP":
        img.save(buf, format="WEBP", quality=80, method=0)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


@register_encoder(ImageEncoding)
def _image(enc: ImageEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    pixels = noise_image(enc.height, enc.width, enc.channels, rng)
    if enc.formats[0] in ("PNG", "GIF"):  # lossless: 8 levels per channel keep a 224x224 PNG ~16 KB
        pixels = pixels // 32 * 32 + 16
    return encode_image(pixels, enc.formats[0], enc.op)


# --------------------------------------------------------------------------- text


def _scalar(domain: Domain | None, dtype: tf.DType, rng: np.random.Generator) -> Any:
    """One value of ``dtype`` from ``domain`` (or a small default range)."""
    if domain is not None:
        if domain.constant is not None:
            return np.ravel(np.asarray(domain.constant, dtype=object))[0]
        if domain.choices:
            return domain.choices[int(rng.integers(0, len(domain.choices)))]
        if domain.fn is not None:
            return np.ravel(np.asarray(domain.fn(rng, (1,)), dtype=object))[0]
    low = domain.low if domain is not None else None
    high = domain.high if domain is not None else None
    if dtype == tf.string:
        return random_word(rng)
    if dtype.is_integer:
        lo = int(np.ceil(low)) if low is not None else (0 if high is None or high > 0 else int(high) - 10)
        hi = int(np.ceil(high)) if high is not None else lo + 10
        return int(rng.integers(lo, max(hi, lo + 1)))
    lo = float(low) if low is not None else (0.0 if high is None or high > 0 else float(high) - 10.0)
    hi = float(high) if high is not None else lo + 10.0
    v = round(float(rng.uniform(lo, hi)), 2)
    return v if v < hi else lo


def format_number(value: Any, dtype: tf.DType) -> str:
    """A decimal string ``StringToNumber`` parses as ``dtype`` (ints never get a ".0")."""
    if dtype.is_integer:
        return str(int(value))
    text = f"{float(value):.6g}"
    return text


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _csv_field(f: CsvField, enc: CsvEncoding, row: int, rng: np.random.Generator,
               fill: bool = False) -> str:
    if f.dtype is None:  # a column select_cols skips: any text
        return "x"
    if not f.required and not fill and (enc.defaults_only or row % 2 == 1):
        return enc.na_value  # missing: the op fills the default
    if enc.defaults_only:
        if f.domain is not None and f.domain.choices:
            return _text(f.domain.choices[0])
        if f.domain is not None and f.domain.low is not None:
            return format_number(f.domain.low, f.dtype) if f.dtype != tf.string else _text(f.domain.low)
        return "0"
    value = _scalar(f.domain, f.dtype, rng)
    if f.dtype == tf.string:
        text = _text(value)
        if enc.use_quote_delim and (row % 3 == 2 or enc.delim in text or '"' in text):
            return '"' + text.replace('"', '""') + '"'
        return text
    return format_number(value, f.dtype)


def csv_line(enc: CsvEncoding, row: int, rng: np.random.Generator) -> bytes:
    """One record for ``DecodeCSV``: every field typed, optional ones empty in odd rows."""
    line = enc.delim.join(_csv_field(f, enc, row, rng) for f in enc.fields)
    if not line:  # one column left empty: an empty line has no fields at all
        line = enc.na_value or ('""' if enc.use_quote_delim else _csv_field(enc.fields[0], enc, 0, rng, fill=True))
    return line.encode("utf-8")


@register_encoder(CsvEncoding)
def _csv(enc: CsvEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    return csv_line(enc, row, rng)


@register_encoder(NumberEncoding)
def _number(enc: NumberEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    if enc.zero:
        low = enc.domain.low if enc.domain is not None and enc.domain.low is not None else 0
        return format_number(low, enc.dtype).encode()
    return format_number(_scalar(enc.domain, enc.dtype, rng), enc.dtype).encode()


# --------------------------------------------------------------------------- binary


def _small_values(dtype: tf.DType, n: int, rng: np.random.Generator, zero: bool) -> np.ndarray:
    np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    if zero:
        return np.array([b""] * n, dtype=object) if dtype == tf.string else np.zeros(n, np_dtype)
    if dtype == tf.string:
        return np.array([random_word(rng).encode() for _ in range(n)], dtype=object)
    if dtype == tf.bool:
        return rng.integers(0, 2, size=n).astype(bool)
    if dtype.is_floating or dtype.is_complex:
        return (np.round(rng.uniform(-1, 1, size=n) * 64) / 64).astype(np_dtype)
    return rng.integers(0, 8, size=n).astype(np_dtype)


@register_encoder(Base64Encoding)
def _base64(enc: Base64Encoding, rng: np.random.Generator, row: int = 0) -> bytes:
    return base64.urlsafe_b64encode(encode_inner(enc.inner, rng, row))


@register_encoder(RawEncoding)
def _raw(enc: RawEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    values = _small_values(enc.dtype, enc.count, rng, enc.zero)
    order = "<" if enc.little_endian else ">"
    data = values.astype(np.dtype(enc.dtype.as_numpy_dtype).newbyteorder(order)).tobytes()
    if enc.fixed_length is not None:
        data = data[:enc.fixed_length].ljust(enc.fixed_length, b"\0")
    return data


@register_encoder(TensorProtoEncoding)
def _tensor_proto(enc: TensorProtoEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    n = int(np.prod(enc.shape, dtype=np.int64))
    values = _small_values(enc.dtype, n, rng, enc.zero).reshape(enc.shape)
    return tf.make_tensor_proto(values, dtype=enc.dtype).SerializeToString(deterministic=True)


__all__ = ["encode_array", "encode_one", "encode_image", "noise_image", "csv_line", "format_number"]
