"""Guards: checks on an input that fail (``Assert``) or steer (``tf.cond``/``tf.where``) a request.

A model that validates its strings (``tf.debugging.Assert(regex_full_match(date,
"(19|20)\\d\\d-..."))`` before ``substr``/``to_number``, ``assert_equal(
strings.length(code), 6)``, "country is one of US/DE/JP") fails every random
string, and the empty-string retry too. This module follows an input forward
(through ``tf.map_fn`` plumbing, ``If``/``Case`` branches and function calls,
as ``decoders.py`` does) to the checks it reaches and collects what they need:

* ``RegexFullMatch``/``StaticRegexFullMatch`` with a constant pattern;
* ``StringLength`` compared with constants;
* ``Equal`` with a constant (or a constant set, via ``reduce_any``/``LogicalOr``) under an
  ``Assert``: membership; ``NotEqual``: an excluded value;
* for numbers, comparisons with constants under ``tf.cond``/``tf.where``
  (``Assert`` bounds are ``value_domains.py``'s).

A check counts when its boolean reaches an ``Assert`` condition, an ``If``
condition or a ``Select`` condition without a ``LogicalNot`` on the way (a
negated check is left alone). The result is a ``GuardEncoding`` for strings
(``values/regex_strings.py`` writes matching text) or a plain ``Domain``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.decoders import content_passthrough
from tfwarm_export.analysis.index import IDENTITY_OPS, GraphIndex, Node, Ref, index_for
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.encodings import GuardEncoding

REGEX_OPS = frozenset({"RegexFullMatch", "StaticRegexFullMatch"})
_ORDER = frozenset({"Less", "LessEqual", "Greater", "GreaterEqual"})
_FLIP = {"Less": "Greater", "LessEqual": "GreaterEqual", "Greater": "Less", "GreaterEqual": "LessEqual"}
_BOOL_PASS = frozenset({"All", "Any", "LogicalAnd", "LogicalOr", "Reshape", "Squeeze", "ExpandDims",
                        "StridedSlice", "Pack", "ConcatV2", "TensorListFromTensor", "TensorListGetItem",
                        "TensorListSetItem", "TensorListStack"})
_LENGTH_PASS = frozenset({"Cast", "Reshape", "Squeeze", "ExpandDims", "Max", "Min"})


@dataclass
class _Found:
    patterns: list[str] = field(default_factory=list)
    low: list[tuple[float, str]] = field(default_factory=list)
    high: list[tuple[float, str]] = field(default_factory=list)
    len_low: list[int] = field(default_factory=list)
    len_high: list[int] = field(default_factory=list)
    choices: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _bool_passthrough(node: Node, pos: int) -> Sequence[int]:
    if node.op in IDENTITY_OPS or node.op in _BOOL_PASS:
        return (0,)
    if node.op == "IdentityN":
        return (pos,)
    if node.op in ("Switch", "RefSwitch") and pos == 0:
        return (0, 1)
    if node.op in ("Merge", "RefMerge"):
        return (0,)
    return ()


def guard_of(idx: GraphIndex, ref: Ref) -> str | None:
    """What a boolean guards, positively: "Assert at ...", "tf.cond at ...", "tf.where at ...".

    A ``tf.cond`` with an ``Assert`` in a branch (TF2's "AssertGuard") is an Assert.
    """
    for node, pos in idx.walk_forward(ref, _bool_passthrough):
        if node.op == "Assert" and pos == 0:
            return f"Assert at {node.qualified_name}"
        if node.op in ("If", "StatelessIf") and pos == 0:
            if any(idx.function_has_op(c.function, ("Assert",)) for c in idx.calls.get(node.key, ())):
                return f"Assert at {node.qualified_name}"
            return f"tf.cond at {node.qualified_name}"
        if node.op in ("Switch", "RefSwitch") and pos == 1:  # TF1 cond on this predicate
            return f"tf.cond at {node.qualified_name}"
        if node.op in ("Select", "SelectV2") and pos == 0:
            return f"tf.where at {node.qualified_name}"
    return None


def _const(idx: GraphIndex, node: Node, pos: int) -> np.ndarray | None:
    if len(node.inputs) != 2 or pos not in (0, 1):
        return None
    return idx.const_value(node.inputs[1 - pos])


def _bound(op: str, c, is_int: bool) -> tuple[str, float]:
    """('low'|'high', value) with an exclusive high: x op c."""
    if op == "Less":
        return "high", c
    if op == "LessEqual":
        return "high", (c + 1 if is_int else float(np.nextafter(c, np.inf)))
    if op == "Greater":
        return "low", (c + 1 if is_int else float(np.nextafter(c, np.inf)))
    return "low", c


def _length_checks(idx: GraphIndex, node: Node, found: _Found) -> None:
    """Comparisons of ``StringLength``'s output with constants under a guard."""
    def through(n: Node, pos: int) -> Sequence[int]:
        return (0,) if pos == 0 and (n.op in IDENTITY_OPS or n.op in _LENGTH_PASS) else ()

    for cmp, pos in idx.walk_forward((node.scope, node.name, 0), through):
        c = _const(idx, cmp, pos)
        if c is None or c.size != 1 or c.dtype.kind not in "iu":
            continue
        value = int(c.ravel()[0])
        if cmp.op not in _ORDER and cmp.op != "Equal":
            continue
        where = guard_of(idx, (cmp.scope, cmp.name, 0))
        if where is None:
            continue
        found.sources.append(f"StringLength at {where}")
        if cmp.op == "Equal":
            found.len_low.append(value)
            found.len_high.append(value + 1)
            continue
        side, v = _bound(cmp.op if pos == 0 else _FLIP[cmp.op], value, True)
        (found.len_low if side == "low" else found.len_high).append(int(v))


def _collect(idx: GraphIndex, start: Ref) -> _Found:
    found = _Found()
    seen = set()
    for node, pos in idx.walk_forward(start, content_passthrough):
        if (node.key, pos) in seen:
            continue
        seen.add((node.key, pos))
        if node.op in REGEX_OPS and pos == 0:
            if node.op == "StaticRegexFullMatch":
                pattern = node.attr("pattern").s
            else:
                v = idx.const_value(node.inputs[1]) if len(node.inputs) > 1 else None
                pattern = v.ravel()[0] if v is not None and v.size == 1 else None
            where = guard_of(idx, (node.scope, node.name, 0)) if pattern is not None else None
            if where is not None:
                text = pattern.decode("utf-8") if isinstance(pattern, bytes) else str(pattern)
                if text not in found.patterns:
                    found.patterns.append(text)
                found.sources.append(f"{node.op} at {where}")
        elif node.op == "StringLength" and pos == 0:
            unit = node.attr("unit")
            if unit is None or unit.s in (b"BYTE", b"UTF8_CHAR"):  # we write ASCII: both count alike
                _length_checks(idx, node, found)
        elif node.op in ("Equal", "NotEqual") or node.op in _ORDER:
            c = _const(idx, node, pos)
            if c is None or c.size == 0:
                continue
            where = guard_of(idx, (node.scope, node.name, 0))
            if where is None:
                continue
            if node.op == "Equal":
                # Equality steering a cond/where (``where(s == "", "unk", s)``) is a special case,
                # not a rule every value must meet: only an Assert makes it membership.
                if not where.startswith("Assert"):
                    continue
                found.choices += [x for x in np.ravel(c).tolist() if x not in found.choices]
                found.sources.append(f"membership at {where}")
            elif node.op == "NotEqual":
                found.excluded += np.ravel(c).tolist()
                found.sources.append(f"exclusion at {where}")
            elif c.size == 1 and c.dtype.kind in "iuf" and not where.startswith("Assert"):
                v = c.ravel()[0].item()
                side, b = _bound(node.op if pos == 0 else _FLIP[node.op], v, isinstance(v, int))
                (found.low if side == "low" else found.high).append((b, where))
    return found


def _string_guard(found: _Found) -> GuardEncoding | None:
    if not (found.patterns or found.len_low or found.len_high or found.choices or found.excluded):
        return None
    as_bytes = lambda v: v if isinstance(v, bytes) else str(v).encode("utf-8")  # noqa: E731
    lo = max(found.len_low) if found.len_low else None
    hi = min(found.len_high) if found.len_high else None
    excluded = tuple(dict.fromkeys(as_bytes(v) for v in found.excluded))
    choices = None
    if found.choices:
        choices = tuple(c for c in dict.fromkeys(as_bytes(v) for v in found.choices)
                        if c not in excluded and (lo is None or len(c) >= lo) and (hi is None or len(c) < hi))
    return GuardEncoding(tuple(found.patterns), lo, hi, choices, excluded,
                         tuple(dict.fromkeys(found.sources)))


def _number_guard(found: _Found, dtype: tf.DType) -> Domain | None:
    low = max((v for v, _ in found.low), default=None)
    high = min((v for v, _ in found.high), default=None)
    if found.choices:
        keep = [c for c in found.choices if isinstance(c, (int, float)) and c not in found.excluded
                and (low is None or c >= low) and (high is None or c < high)]
        return Domain(choices=tuple(keep), source="; ".join(dict.fromkeys(found.sources))) if keep else None
    if low is None and high is None or (low is not None and high is not None and low >= high):
        return None
    return Domain(low=low, high=high, source="; ".join(dict.fromkeys(w for _, w in found.low + found.high)))


def find_guard_domain(meta_graph_def, tensor_name: str, dtype: tf.DType) -> Domain | None:
    """A ``Domain`` whose values pass every guard ``tensor_name`` reaches, or None.

    Strings get ``Domain(encoding=GuardEncoding)``, numbers a range or a choice list.
    """
    idx = index_for(meta_graph_def)
    start = idx.tensor_ref(tensor_name)
    if start is None:
        return None
    found = _collect(idx, start)
    if dtype != tf.string:
        return _number_guard(found, dtype)
    enc = _string_guard(found)
    if enc is None or enc.choices == ():  # no listed value passes the other checks
        return None
    small = enc.smallest()
    return Domain(encoding=enc, source=enc.describe(),
                  safe=Domain(encoding=small, source="smallest " + small.describe()))


__all__ = ["find_guard_domain", "guard_of", "REGEX_OPS"]
