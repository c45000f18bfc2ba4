"""Strings that pass a guard: full matches of RE2 patterns, lengths, membership (``analysis/guards.py``).

Patterns are parsed with the standard library's regex parser (``re._parser``),
never a hand-written one; RE2-only spellings Python's parser reads differently
(POSIX classes ``[[:digit:]]``, ``\\pL``/``\\p{N}``, ``\\z``) are first rewritten
to their ASCII equivalents. Generation walks the parse tree with the rng
(branch choice, repeat counts, members of a class), so the same seed gives the
same string; every string is then checked with TensorFlow's own
``tf.strings.regex_full_match`` (RE2), which is the judge, and drawn again if it fails.
"""
from __future__ import annotations

import re
import string
from re import _constants as C  # noqa: N812 - the parser's opcode names
from re import _parser

import numpy as np
import tensorflow as tf

from tfwarm_export.specs.encodings import GuardEncoding
from tfwarm_export.errors import PlanError
from tfwarm_export.values.encoder_registry import register_encoder

MAX_EXTRA_REPEATS = 3
"""An open repeat (``*``, ``+``, ``{2,}``) adds at most this many copies past its minimum."""

_ATTEMPTS = 64
_ALPHABET = [chr(c) for c in range(32, 127)]  # printable ASCII, preferred for every class

_POSIX = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
          "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "word": "\\w",
          "punct": re.escape(string.punctuation), "print": " -~", "graph": "!-~", "cntrl": "\\x00-\\x1f"}
_UNICODE_CLASSES = {"L": "a-zA-Z", "Lu": "A-Z", "Ll": "a-z", "N": "0-9", "Nd": "0-9", "Latin": "a-zA-Z"}


def _re2_to_python(pattern: str) -> str:
    """RE2 spellings Python's parser lacks, as the ASCII classes they include."""
    pattern = re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), m.group(0)), pattern)

    def unicode_class(m: re.Match) -> str:
        chars = _UNICODE_CLASSES.get(m.group(1) or m.group(2))
        if chars is None:
            raise PlanError(f"regex class {m.group(0)!r} has no ASCII members to generate from")
        return chars if _inside_class(pattern, m.start()) else f"[{chars}]"

    pattern = re.sub(r"\\p(?:\{(\w+)\}|(\w))", unicode_class, pattern)
    return pattern.replace("\\z", "\\Z")


def _inside_class(pattern: str, pos: int) -> bool:
    depth, i = 0, 0
    while i < pos:
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "[":
            depth += 1
        elif pattern[i] == "]" and depth:
            depth -= 1
        i += 1
    return depth > 0


def _in_class(ch: str, items) -> bool:
    code = ord(ch)
    for op, av in items:
        if op is C.LITERAL and code == av:
            return True
        if op is C.RANGE and av[0] <= code <= av[1]:
            return True
        if op is C.CATEGORY:
            if ((av is C.CATEGORY_DIGIT and ch.isdigit()) or (av is C.CATEGORY_NOT_DIGIT and not ch.isdigit())
                    or (av is C.CATEGORY_SPACE and ch.isspace())
                    or (av is C.CATEGORY_NOT_SPACE and not ch.isspace())
                    or (av is C.CATEGORY_WORD and (ch.isalnum() or ch == "_"))
                    or (av is C.CATEGORY_NOT_WORD and not (ch.isalnum() or ch == "_"))):
                return True
    return False


def _pick_from_class(items, rng: np.random.Generator) -> str:
    negate = bool(items) and items[0][0] is C.NEGATE
    body = items[1:] if negate else items
    extra = [chr(av) for op, av in body if op is C.LITERAL] + [chr(av[0]) for op, av in body if op is C.RANGE]
    pool = sorted(set(_ALPHABET + ([] if negate else extra)))
    allowed = [ch for ch in pool if _in_class(ch, body) != negate and ch != "\n"]
    if not allowed:
        raise PlanError("a regex character class has no member to generate")
    return allowed[int(rng.integers(0, len(allowed)))]


def _emit(items, rng: np.random.Generator, out: list[str], groups: dict[int, str],
          extra: int = MAX_EXTRA_REPEATS) -> None:
    for op, av in items:
        if op is C.LITERAL:
            out.append(chr(av))
        elif op is C.NOT_LITERAL:
            out.append(_pick_from_class([(C.NEGATE, None), (C.LITERAL, av)], rng))
        elif op is C.ANY:
            out.append(_pick_from_class([(C.NEGATE, None), (C.LITERAL, 10)], rng))
        elif op is C.IN:
            out.append(_pick_from_class(list(av), rng))
        elif op is C.BRANCH:
            alts = av[1]
            _emit(alts[int(rng.integers(0, len(alts)))], rng, out, groups, extra)
        elif op is C.SUBPATTERN:
            group, _add, _del, sub = av
            start = len(out)
            _emit(sub, rng, out, groups, extra)
            if group is not None:
                groups[group] = "".join(out[start:])
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            top = lo + extra if hi is C.MAXREPEAT else min(hi, lo + extra)
            for _ in range(int(rng.integers(lo, top + 1))):
                _emit(sub, rng, out, groups, extra)
        elif op is C.AT:
            continue  # anchors: a full match already spans the string
        elif op is C.GROUPREF:
            out.append(groups.get(av, ""))
        else:  # lookaround, conditionals: not RE2 syntax
            raise PlanError(f"regex construct {op} is not RE2 syntax; no string is generated for it")


def generate(pattern: str, rng: np.random.Generator, extra: int = MAX_EXTRA_REPEATS) -> str:
    """One string that (Python's reading of) ``pattern`` matches in full, drawn with ``rng``."""
    try:
        tree = _parser.parse(_re2_to_python(pattern))
    except re.error as e:
        raise PlanError(f"cannot read regex {pattern!r} ({e})") from None
    out: list[str] = []
    _emit(list(tree), rng, out, {}, extra)
    return "".join(out)


def full_match(pattern: str, text: bytes) -> bool:
    """TensorFlow's verdict (RE2), the one the guarded graph applies."""
    return bool(tf.strings.regex_full_match(tf.constant(text), pattern).numpy())


def _ok(enc: GuardEncoding, text: bytes) -> bool:
    if enc.min_length is not None and len(text) < enc.min_length:
        return False
    if enc.max_length is not None and len(text) >= enc.max_length:
        return False
    if text in enc.excluded:
        return False
    return all(full_match(p, text) for p in enc.patterns)


def _word(enc: GuardEncoding, rng: np.random.Generator) -> str:
    lo = enc.min_length if enc.min_length is not None else (0 if enc.zero else 1)
    hi = enc.max_length if enc.max_length is not None else max(lo + 8, 9)
    n = lo if enc.zero else int(rng.integers(lo, max(hi, lo + 1)))
    letters = string.ascii_lowercase
    return "".join(letters[int(i)] for i in rng.integers(0, len(letters), size=n))


@register_encoder(GuardEncoding)
def guarded_string(enc: GuardEncoding, rng: np.random.Generator, row: int = 0) -> bytes:
    """A string every guard in ``enc`` accepts (the first listed choice when ``zero``)."""
    if enc.choices is not None:
        ok = [c for c in enc.choices if _ok(enc, c)]
        if not ok:
            raise PlanError(f"no value of {enc.describe()} passes every check")
        return ok[0] if enc.zero else ok[int(rng.integers(0, len(ok)))]
    for attempt in range(_ATTEMPTS):
        # Longer repeats once short ones keep missing a minimum length.
        extra = MAX_EXTRA_REPEATS if attempt < 16 else MAX_EXTRA_REPEATS + (enc.min_length or 0) + attempt % 8
        text = (generate(enc.patterns[0], rng, extra) if enc.patterns else _word(enc, rng)).encode("utf-8")
        if _ok(enc, text):
            return text
    raise PlanError(f"no string found in {_ATTEMPTS} draws that passes {enc.describe()}; give the "
                    "input's values with --override")


__all__ = ["generate", "guarded_string", "full_match", "MAX_EXTRA_REPEATS"]
