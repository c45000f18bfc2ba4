"""What ``privacy="shapes_only"`` may learn from sampled encoded strings, and fresh look-alikes.

Sampled image bytes, CSV lines and number strings are user data: copying them
into the warmup file ships them inside the model artifact. Random strings, on
the other hand, fail the model's decoder. So from the sampled values this
module learns only the *form*: image format, size and channels (and whether
they come wrapped in web-safe base64), a CSV line's delimiter, field count and
per-field type/range/optionality, a number string's type, range and decimals.
It then writes new encodings of that form (noise pixels, fresh numbers, words
seen at least twice as with the other vocabularies), never a sampled value.
"""
from __future__ import annotations

import base64
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from tfwarm_export.values.encoders import encode_image, noise_image

MIN_COUNT = 2  # a CSV string value must be seen this often to be emitted (like vocabularies)
_DELIMS = (",", ";", "\t", "|")
_INT = re.compile(r"^[+-]?\d+$")
_B64 = re.compile(rb"^[A-Za-z0-9_-]+={0,2}$")
_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 3, "CMYK": 3, "YCbCr": 3, "I;16": 1, "1": 1}


def _draw(counts: Counter, rng: np.random.Generator):
    keys = sorted(counts)
    w = np.array([counts[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


# --------------------------------------------------------------------------- images


def image_form(value: bytes) -> tuple[str, int, int, int] | None:
    """(format, height, width, channels) of an encoded image, from its header only."""
    fmt = ("JPEG" if value[:3] == b"\xff\xd8\xff" else "PNG" if value[:4] == b"\x89PNG"
           else "GIF" if value[:4] == b"GIF8" else "BMP" if value[:2] == b"BM"
           else "WEBP" if value[:4] == b"RIFF" and value[8:12] == b"WEBP" else None)
    if fmt is None:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(value)) as img:  # lazy: reads the header, not the pixels
            w, h = img.size
            channels = _CHANNELS.get(img.mode, 3)
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is not an image to learn
        return None
    if fmt in ("JPEG", "GIF") and channels not in (1, 3):
        channels = 3
    return fmt, int(h), int(w), channels


@dataclass(frozen=True)
class LearnedImages:
    forms: tuple[tuple[tuple[str, int, int, int], int], ...]  # (form, count)
    base64: bool = False

    def describe(self) -> str:
        (fmt, h, w, c), _ = max(self.forms, key=lambda fc: fc[1])
        return f"{'base64 of ' if self.base64 else ''}{fmt} images (e.g. {h}x{w}x{c}), learned from data"

    def one(self, rng: np.random.Generator, row: int) -> bytes:
        fmt, h, w, c = _draw(Counter(dict(self.forms)), rng)
        pixels = noise_image(h, w, c, rng)
        data = encode_image(pixels, fmt, "a sampled image input")
        return base64.urlsafe_b64encode(data) if self.base64 else data


def _learn_images(values: Sequence[bytes]) -> LearnedImages | None:
    forms = Counter()
    for v in values:
        form = image_form(v)
        if form is None:
            return None
        forms[form] += 1
    return LearnedImages(tuple(sorted(forms.items()))) if forms else None


def _learn_base64_images(values: Sequence[bytes]) -> LearnedImages | None:
    if not all(_B64.match(v) for v in values):
        return None
    try:
        inner = [base64.urlsafe_b64decode(v + b"=" * (-len(v) % 4)) for v in values]
    except ValueError:
        return None
    learned = _learn_images(inner)
    return LearnedImages(learned.forms, base64=True) if learned else None


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class NumberForm:
    """Decimal strings: integer or not, their range and how many decimals they show."""

    integer: bool
    low: float
    high: float
    decimals: int
    empty: float = 0.0  # share of empty values (CSV fields)

    def value(self, rng: np.random.Generator, avoid: frozenset = frozenset()) -> str:
        for _ in range(8):
            if self.integer:
                text = str(int(rng.integers(int(self.low), int(self.high), endpoint=True)))
            else:
                text = f"{rng.uniform(self.low, self.high):.{self.decimals}f}"
            if text not in avoid:
                return text
        return text


def _number_form(texts: Sequence[str]) -> NumberForm | None:
    filled = [t.strip() for t in texts if t.strip()]
    if not filled:
        return None
    try:
        nums = [float(t) for t in filled]
    except ValueError:
        return None
    if not all(np.isfinite(nums)):
        return None
    integer = all(_INT.match(t) for t in filled)
    decimals = max((len(t.split(".", 1)[1]) for t in filled if "." in t and "e" not in t.lower()), default=0)
    return NumberForm(integer, min(nums), max(nums), decimals if not integer else 0,
                      empty=1 - len(filled) / len(texts))


@dataclass(frozen=True)
class LearnedNumbers:
    form: NumberForm
    seen: frozenset

    def describe(self) -> str:
        kind = "integers" if self.form.integer else f"decimals ({self.form.decimals} places)"
        return f"number strings: {kind} in [{self.form.low:g}, {self.form.high:g}], learned from data"

    def one(self, rng: np.random.Generator, row: int) -> bytes:
        return self.form.value(rng, self.seen).encode()


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvColumn:
    number: NumberForm | None  # None: a text column
    words: tuple[bytes, ...] = ()  # text values seen >= MIN_COUNT times
    lengths: tuple[tuple[int, int], ...] = ((4, 1),)
    empty: float = 0.0


@dataclass(frozen=True)
class LearnedCsv:
    delim: str
    columns: tuple[CsvColumn, ...]
    quoted: bool
    seen: frozenset

    def describe(self) -> str:
        kinds = ",".join("text" if c.number is None else ("int" if c.number.integer else "float")
                         + ("?" if c.empty else "") for c in self.columns)
        return f"CSV lines: {len(self.columns)} fields [{kinds}] delim {self.delim!r}, learned from data"

    def one(self, rng: np.random.Generator, row: int) -> bytes:
        fields = []
        for col in self.columns:
            # Optional fields are left empty in odd rows at least, so the default path warms.
            if col.empty and (row % 2 == 1 or rng.random() < col.empty):
                fields.append("")
                continue
            if col.number is not None:
                fields.append(col.number.value(rng, self.seen))
                continue
            if col.words:
                text = col.words[int(rng.integers(len(col.words)))].decode("utf-8", "replace")
            else:
                text = rng.choice(_LETTERS, max(1, _draw(Counter(dict(col.lengths)), rng))).tobytes().decode()
            if self.quoted or self.delim in text or '"' in text:
                text = '"' + text.replace('"', '""') + '"'
            fields.append(text)
        return self.delim.join(fields).encode("utf-8")


def _learn_csv(texts: Sequence[str]) -> LearnedCsv | None:
    for delim in _DELIMS:
        if not all(delim in t for t in texts):
            continue
        try:
            rows = list(csv.reader(texts, delimiter=delim))
        except csv.Error:
            continue
        if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
            continue
        columns = []
        for j in range(len(rows[0])):
            cells = [r[j] for r in rows]
            filled = [c for c in cells if c.strip()]
            empty = 1 - len(filled) / len(cells)
            number = _number_form(cells)
            if number is not None:
                columns.append(CsvColumn(number, empty=empty))
                continue
            counts = Counter(c.encode("utf-8") for c in filled)
            words = tuple(sorted(w for w, n in counts.items() if n >= MIN_COUNT))
            lengths = tuple(sorted(Counter(len(c) for c in filled).items())) or ((4, 1),)
            columns.append(CsvColumn(None, words, lengths, empty))
        seen = frozenset(c.strip() for r in rows for c in r)
        return LearnedCsv(delim, tuple(columns), any('"' in t for t in texts), seen)
    return None


# --------------------------------------------------------------------------- entry point


Learned = LearnedImages | LearnedNumbers | LearnedCsv


def learn_encoding(values: Iterable) -> Learned | None:
    """The encoded form all sampled ``values`` share, or None (then nothing is learned here)."""
    raw = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values]
    raw = [v for v in raw if v]
    if not raw:
        return None
    learned = _learn_images(raw) or _learn_base64_images(raw)
    if learned is not None:
        return learned
    try:
        texts = [v.decode("utf-8") for v in raw]
    except UnicodeDecodeError:
        return None
    form = _number_form(texts)
    if form is not None:
        return LearnedNumbers(form, frozenset(t.strip() for t in texts))
    return _learn_csv(texts)


def learn_from_rows(rows: Sequence[dict], alias: str) -> Learned | None:
    """``learn_encoding`` over every value of ``alias`` in sampled rows."""
    return learn_encoding(v for row in rows if alias in row for v in np.ravel(row[alias]).tolist())


def draw(learned: Learned, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Fresh values of ``shape`` in the learned form (rows vary so optional CSV fields empty)."""
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, dtype=object)
    out[:] = [learned.one(rng, i) for i in range(n)]
    return out.reshape(shape)


__all__ = ["learn_encoding", "learn_from_rows", "draw", "image_form", "LearnedImages",
           "LearnedNumbers", "LearnedCsv"]
