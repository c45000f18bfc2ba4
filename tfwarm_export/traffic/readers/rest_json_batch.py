"""REST bodies thousands at a time: the batch decoder of the traffic scan.

``decode_body`` spends Python per body and per input (shape walks, type sets,
one small numpy array each). Logged traffic repeats a few layouts, so here the
bodies of one signature and format are converted *together*: every input's
values across all bodies are flattened a nesting level at a time
(``chain``/``map``, C speed), each level's list lengths checked per body with
numpy, the leaves type-checked and converted once (``fast_leaves``, the
function ``json_tensor`` uses), and the bodies then split by layout into
``RequestGroup``s with one gather per input.

Exactness is kept by construction, not by reimplementing every rule: each
check here is one that ``decode_body`` would pass for every body in the set.
When a check fails (a ragged list, a wrong type, an empty list, a missing
input...), the bodies that fail it are singled out (with numpy where the check
is, else one Python pass over that level or block of leaves) and go body by
body through ``decode_body``, which names the reason; the rest is converted
again. Shape and alias verdicts (``check_predict``) are taken
once per layout and remembered in the scan's ``memo``.

Parsing uses ``orjson`` when installed, else ``json``. orjson refuses what
only the stdlib accepts (``NaN``, ``Infinity``, a BOM, UTF-16, lone
surrogates): those lines are parsed again with ``json``. It also reads an
integer beyond 64 bits as a float where ``json`` keeps an int: such a float
has magnitude >= 2**63, so a float input holding one has its bodies parsed
again with ``json`` before they are converted (integer, string and bool
inputs reject any float, and those bodies go to ``decode_body``).
"""
from __future__ import annotations

import gc
import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.model.signatures import SignatureInfo
from tfwarm_export.traffic.readers.rest_json import (JSON_KIND, TOO_DEEP, leaf_value, nested_shape, decode_body,
                                                    exact_leaves, fast_leaves)
from tfwarm_export.traffic.validate import (
    DEFAULT_SIGNATURE,
    Dropped,
    RequestGroup,
    TrafficSpec,
    check_method,
    check_predict,
    decode_each,
)

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # optional speed-up: the stdlib gives the same bodies, slower
    _loads = json.loads

_MEMO_CAP = 4096        # layouts whose check_predict verdict is remembered
_BIG_FLOAT = 2.0 ** 63  # orjson reads integers beyond 64 bits as floats at least this large
_ROWS, _COLUMNS = "instances", "inputs"
_LEAF_TYPES = {"string": {str}, "bool": {bool}, "float": {int, float}, "int": {int}}
_BLOCK = 512            # leaves whose types are checked together when looking for bad ones
_DIGITS = bytes(ord("9") if c in b"0123456789" else ord(" ") for c in range(256))  # for translate
_DIGIT_RUN = b"9" * 19
_COUNTED = object()     # in place of a body already counted as dropped (``None`` is JSON null)


@dataclass(frozen=True, eq=False)
class _SigFacts:
    """What the fast path needs of one signature, worked out once per batch."""

    sig: SignatureInfo
    names: tuple[str, ...]       # sorted aliases
    dtypes: tuple[tf.DType, ...]
    kinds: tuple[str, ...]       # per alias: "string", "bool", "float" or "int"


@dataclass
class _Batch:
    """One call's payloads, what was parsed of them, and what was decided."""

    payloads: list
    bodies: list                 # parsed body per payload (or _COUNTED)
    exact: set[int]              # payloads parsed by ``json`` (or handed over parsed)
    memo: dict
    groups: list[RequestGroup] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    slow: list = field(default_factory=list)  # what decode_body decides, one by one

    def for_decode_body(self, i: int) -> Any:
        """What ``decode_body`` gets for payload ``i``: the parsed body where it is
        what ``json`` parses (orjson differs only on integers of 19+ digits), so
        the body is not parsed twice; else the raw payload."""
        raw = self.payloads[i]
        if i in self.exact or (type(raw) is bytes and _DIGIT_RUN not in raw.translate(_DIGITS)):
            return self.bodies[i]
        return raw


class _Reparse(Exception):
    """A float input holds a value orjson may have read from a >64-bit integer."""


class _Bad(Exception):
    """Bodies (a mask over the set) that would not decode like the rest."""

    def __init__(self, bodies: np.ndarray):
        super().__init__()
        self.bodies = bodies


class _BadLeaves(Exception):
    """Leaves (a mask over one input's leaves) that TF Serving rejects."""

    def __init__(self, leaves: np.ndarray):
        super().__init__()
        self.leaves = leaves


def decode_bodies(payloads: Sequence, spec: TrafficSpec,
                  memo: dict) -> tuple[list[RequestGroup], Counter]:
    """Many payloads (raw lines, text or parsed bodies) as ``RequestGroup``s, and
    the drops counted by reason: the same as ``decode_each(decode_body, ...)``.

    The cyclic GC is paused meanwhile: a batch's parsed bodies (~10 lists and
    dicts each) all live until they are converted, so collections would find
    thousands of survivors and promote them, and every few batches a full
    collection would walk the whole heap (hundreds of thousands of objects once
    TensorFlow is imported: ~0.1 s each). They are freed by reference counting
    before the GC resumes."""
    if not gc.isenabled():
        return _decode_all(list(payloads), spec, memo)
    gc.disable()
    try:
        return _decode_all(list(payloads), spec, memo)
    finally:
        gc.enable()


def _decode_all(payloads: list, spec: TrafficSpec, memo: dict) -> tuple[list[RequestGroup], Counter]:
    """``decode_bodies``, with the parsed bodies local to it."""
    batch = _parse(payloads, memo)
    sets: dict[str, tuple[_SigFacts, dict[str, list[int]]]] = {}
    for (name, rows, columns), idx in _partition(batch).items():
        facts = _sig_facts(spec, name) if name is not None else None
        if type(facts) is str:
            batch.dropped[facts] += len(idx)
        elif facts is None or rows == columns:  # neither (or both, or "examples"): decode_body's reasons
            batch.slow.extend(map(batch.for_decode_body, idx))
        else:  # one set per signature and format, whatever name reached it ("" is the default)
            facts, by_format = sets.setdefault(facts.sig.name, (facts, {}))
            by_format.setdefault(_ROWS if rows else _COLUMNS, []).extend(idx)
    for facts, by_format in sets.values():
        for fmt, idx in by_format.items():
            _decode_set(batch, idx, fmt, facts)
    slow_groups, slow_dropped = decode_each(decode_body, batch.slow, spec, memo)
    batch.dropped.update(slow_dropped)
    return batch.groups + slow_groups, batch.dropped


def _parse(payloads: list, memo: dict) -> _Batch:
    """Parse every payload: orjson over the whole batch in one ``map``, and the
    stdlib for what orjson refuses (or for payloads that are not exactly text)."""
    batch = _Batch(payloads, [], set(), memo)
    bodies, n = batch.bodies, len(payloads)
    text = set(map(type, payloads)) <= {bytes, str}
    while len(bodies) < n:
        if text:
            try:  # list.extend keeps what was parsed before a refusal
                bodies.extend(map(_loads, islice(payloads, len(bodies), None)))
                break
            except (ValueError, RecursionError):  # orjson refused one: the stdlib decides below
                pass
        i = len(bodies)
        raw = payloads[i]
        batch.exact.add(i)
        if type(raw) is bytes or type(raw) is str:
            try:
                bodies.append(json.loads(raw))
            except ValueError:
                batch.dropped["not valid JSON"] += 1
                bodies.append(_COUNTED)
            except RecursionError:
                batch.dropped[TOO_DEEP] += 1
                bodies.append(_COUNTED)
        else:  # parsed already, or something decode_body refuses (it names why)
            bodies.append(raw)
    return batch


def _partition(batch: _Batch) -> dict[tuple, list[int]]:
    """Body indices by (signature_name, has "instances", has "inputs"); the name is
    None where it is not a str. Payloads that are not JSON objects go to ``slow``.
    C-speed maps over the batch, then one dict append per body."""
    bodies = batch.bodies
    if set(map(type, bodies)) == {dict}:
        idx: Sequence[int] = range(len(bodies))
        objs = bodies
    else:
        idx = [i for i, b in enumerate(bodies) if type(b) is dict]
        batch.slow.extend(batch.payloads[i] for i, b in enumerate(bodies)
                          if b is not _COUNTED and type(b) is not dict)
        objs = [bodies[i] for i in idx]
    names = list(map(dict.get, objs, repeat("signature_name"), repeat(DEFAULT_SIGNATURE)))
    if set(map(type, names)) != {str}:
        names = [n if type(n) is str else None for n in names]
    keys = list(zip(names, map(dict.__contains__, objs, repeat(_ROWS)),
                    map(dict.__contains__, objs, repeat(_COLUMNS))))
    if len(set(keys)) == 1:  # the usual batch: one signature, one format
        return {keys[0]: list(idx)}
    parts: dict[tuple, list[int]] = {}
    for i, key in zip(idx, keys):
        part = parts.get(key)
        if part is None:
            parts[key] = [i]
        else:
            part.append(i)
    return parts


def _sig_facts(spec: TrafficSpec, name: str) -> _SigFacts | str | None:
    """The facts for a ``signature_name``; a str is the drop reason every body naming
    it gets (``decode_body`` checks the name first); None sends its bodies to
    ``decode_body`` (a method Predict rejects, or inputs the fast path does not take:
    non-dense, no JSON conversion, or an alias ``b64``, which makes ``{"b64": ...}``
    ambiguous)."""
    try:
        sig = spec.signature(name or DEFAULT_SIGNATURE)
    except Dropped as why:
        return str(why)
    try:
        check_method(sig, "predict")
    except Dropped:
        return None
    names = tuple(sorted(sig.inputs))
    specs = [sig.inputs[a] for a in names]
    if (not names or "b64" in names or any(s.encoding != "dense" for s in specs)
            or any(s.dtype not in JSON_KIND for s in specs)):
        return None
    return _SigFacts(sig, names, tuple(s.dtype for s in specs), tuple(JSON_KIND[s.dtype] for s in specs))


def _decode_set(batch: _Batch, idx: list[int], fmt: str, facts: _SigFacts) -> None:
    """Convert the bodies ``idx`` together. Bodies a check singles out go to
    ``decode_body``, and the rest is converted again."""
    while idx:
        try:
            groups, dropped = _convert(batch, idx, fmt, facts)
        except _Reparse:
            idx = _reparse(batch, idx)
            continue
        except UnicodeEncodeError:  # an unpaired surrogate somewhere: decode_body names the bodies
            batch.slow.extend(map(batch.for_decode_body, idx))
            return
        except _Bad as bad:
            out = bad.bodies.tolist() if bad.bodies.any() else [True] * len(idx)
            batch.slow.extend(batch.for_decode_body(i) for i, o in zip(idx, out) if o)
            idx = [i for i, o in zip(idx, out) if not o]
            continue
        batch.groups.extend(groups)
        batch.dropped.update(dropped)
        return


def _reparse(batch: _Batch, idx: list[int]) -> list[int]:
    """Parse the orjson-parsed bodies among ``idx`` again with ``json``."""
    kept = []
    for i in idx:
        if i not in batch.exact:
            try:
                batch.bodies[i] = json.loads(batch.payloads[i])
            except (ValueError, RecursionError):
                batch.slow.append(batch.payloads[i])
                continue
            batch.exact.add(i)
        kept.append(i)
    return kept


def _starts(counts: np.ndarray) -> np.ndarray:
    """Where each body's run begins on a level where body i holds ``counts[i]`` nodes."""
    starts = np.zeros(len(counts), dtype=np.intp)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _bodies_of(nodes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per body: does it hold one of the flagged ``nodes`` (body i holds ``counts[i]``)?"""
    return np.logical_or.reduceat(nodes, _starts(counts))


def _minority(is_a: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bodies to single out where nodes of two kinds meet: those holding both, and
    those holding only the kind fewer bodies hold (TF Serving may accept those
    bodies too; ``decode_body`` decides, and the rest stay on the fast path)."""
    starts = _starts(counts)
    some, every = np.logical_or.reduceat(is_a, starts), np.logical_and.reduceat(is_a, starts)
    only_a, only_b = every, ~some
    return (some & ~every) | (only_a if only_a.sum() <= only_b.sum() else only_b)


def _columns(bodies: list[dict], fmt: str, names: tuple[str, ...]) -> tuple[list[list], np.ndarray]:
    """Each input's values across ``bodies`` (one per instance, or one per body in the
    columnar format) and how many each body holds; ``_Bad`` for bodies that are
    not well-formed for their format."""
    n = len(bodies)
    if fmt == _ROWS:
        lists = list(map(itemgetter(_ROWS), bodies))
        if set(map(type, lists)) != {list}:
            raise _Bad(np.fromiter((type(v) is not list for v in lists), dtype=bool, count=n))
        counts = np.fromiter(map(len, lists), dtype=np.intp, count=n)
        if not counts.all():
            raise _Bad(counts == 0)
        values = list(chain.from_iterable(lists))
    else:
        values = list(map(itemgetter(_COLUMNS), bodies))
        counts = np.ones(n, dtype=np.intp)
    types = set(map(type, values))
    if dict not in types:  # plain values: one-input signatures only
        if len(names) > 1:
            raise _Bad(np.ones(n, dtype=bool))
        return [values], counts
    if len(types) > 1:  # objects and plain values
        is_obj = np.fromiter((type(v) is dict for v in values), dtype=bool, count=len(values))
        raise _Bad(_minority(is_obj, counts) if len(names) == 1 else _bodies_of(~is_obj, counts))
    if fmt == _ROWS:  # an instance object holds exactly the inputs; a columnar one may hold more
        lens = np.fromiter(map(len, values), dtype=np.intp, count=len(values))
        if (lens != len(names)).any():
            raise _Bad(_bodies_of(lens != len(names), counts))
    columns = []
    for a in names:
        try:
            columns.append(list(map(itemgetter(a), values)))
        except KeyError:
            missing = np.fromiter((a not in v for v in values), dtype=bool, count=len(values))
            raise _Bad(_bodies_of(missing, counts)) from None
    return columns, counts


def _levels(values: list, counts: np.ndarray,
            min_rank: int) -> tuple[list, list[np.ndarray], np.ndarray]:
    """Flatten one input's values as many levels as the first one is deep (at least
    ``min_rank``): the leaves, each body's dimensions below its values (one array
    per level) and its number of leaves. ``_Bad`` for bodies with a non-list or an
    empty list on those levels, or lists of different lengths on one level (TF
    Serving's ragged and "different shapes" checks); a list left among the leaves
    is a wrong leaf type."""
    dims: list[np.ndarray] = []
    level = values
    for depth in range(max(min_rank, len(nested_shape(values[0])))):
        if set(map(type, level)) != {list}:
            is_list = np.fromiter((type(x) is list for x in level), dtype=bool, count=len(level))
            raise _Bad(_bodies_of(~is_list, counts) if depth < min_rank else _minority(is_list, counts))
        lens = np.fromiter(map(len, level), dtype=np.intp, count=len(level))
        if not lens.all():
            raise _Bad(_bodies_of(lens == 0, counts))
        if lens.min() == lens.max():
            per_body = np.full(len(counts), lens[0], dtype=np.intp)
        else:
            starts = _starts(counts)
            per_body = np.minimum.reduceat(lens, starts)
            ragged = per_body != np.maximum.reduceat(lens, starts)
            if ragged.any():
                raise _Bad(ragged)
        dims.append(per_body)
        counts = counts * per_body
        level = list(chain.from_iterable(level))
    return level, dims, counts


def _leaves(flat: list, dtype: tf.DType, alias: str, kind: str, exact: bool) -> np.ndarray:
    """All bodies' leaves of one input as one array; ``_BadLeaves`` when some fail."""
    types = set(map(type, flat))
    arr = fast_leaves(flat, dtype, types)
    if arr is None and kind == "string" and types <= {str, dict}:
        try:  # b64 strings are decoded one by one
            arr = exact_leaves(flat, dtype, alias)
        except Dropped:
            pass
    if arr is None:
        raise _BadLeaves(_bad_leaves(flat, dtype, alias, kind))
    if kind == "float" and not exact and float in types:
        with np.errstate(invalid="ignore"):
            if bool((np.abs(arr) >= _BIG_FLOAT).any()):
                raise _Reparse
    return arr


def _bad_leaves(flat: list, dtype: tf.DType, alias: str, kind: str) -> np.ndarray:
    """Which leaves ``leaf_value`` rejects. Types are looked at leaf by leaf only in
    blocks whose type set does not fit; values (ranges, b64) one by one only when
    the leaves of fitting types fail ``fast_leaves`` together."""
    ok = _LEAF_TYPES[kind]
    bad = np.zeros(len(flat), dtype=bool)
    for start in range(0, len(flat), _BLOCK):
        block = flat[start:start + _BLOCK]
        if not set(map(type, block)) <= ok:
            bad[start:start + len(block)] = [type(x) not in ok for x in block]
    if kind == "string":  # b64 objects, decoded one by one
        for i in np.flatnonzero(bad).tolist():
            bad[i] = type(flat[i]) is not dict or _rejects(flat[i], dtype, alias)
        return bad
    good = np.flatnonzero(~bad)
    fit = flat if len(good) == len(flat) else [flat[i] for i in good.tolist()]
    if fit and fast_leaves(fit, dtype) is None:
        bad[good] = [_rejects(x, dtype, alias) for x in fit]
    return bad


def _rejects(x: Any, dtype: tf.DType, alias: str) -> bool:
    """Does ``leaf_value`` (the one-body path's rule for one value) reject ``x``?"""
    try:
        leaf_value(x, dtype, alias)
    except Dropped:
        return True
    return False


def _convert(batch: _Batch, idx: list[int], fmt: str,
             facts: _SigFacts) -> tuple[list[RequestGroup], Counter]:
    """The groups and drops of bodies ``idx`` (one signature and format); ``_Bad``
    for bodies that would not decode alike (see ``_decode_set``)."""
    columns, counts = _columns(list(map(batch.bodies.__getitem__, idx)), fmt, facts.names)
    exact = batch.exact.issuperset(idx)
    leaves, dims, leaf_counts = [], [], []
    for alias, dtype, kind, values in zip(facts.names, facts.dtypes, facts.kinds, columns):
        # a columnar value is a tensor of rank >= 1 here (a rank-0 one is a group of its own)
        flat, below, n = _levels(values, counts, 1 if fmt == _COLUMNS else 0)
        try:
            leaves.append(_leaves(flat, dtype, alias, kind, exact))
        except _BadLeaves as bad:
            raise _Bad(_bodies_of(bad.leaves, n)) from None
        dims.append(below)
        leaf_counts.append(n)
    # Each body's layout: (instances,) + every input's dims below its values.
    key_cols = ([counts] if fmt == _ROWS else []) + [d for ds in dims for d in ds]
    order, starts = _group_order(key_cols)
    runs = [_sorted_runs(arr, n, order, len(starts) > 1) for arr, n in zip(leaves, leaf_counts)]
    groups, dropped = [], Counter()
    bounds = starts + [len(idx)]
    for lo, hi in zip(bounds, bounds[1:]):
        first = int(order[lo])
        row = [int(c[first]) for c in key_cols]
        head = row[:1] if fmt == _ROWS else []  # rows: every input is (instances,) + its dims
        shapes, pos = {}, len(head)
        for alias, ds in zip(facts.names, dims):
            shapes[alias] = tuple(head + row[pos:pos + len(ds)])
            pos += len(ds)
        why = _verdict(facts.sig, shapes, batch.memo)
        n = hi - lo
        if why is not None:
            dropped[why] += n
            continue
        inputs = {alias: arr[offsets[lo]:offsets[hi]].reshape((shape[0] * n,) + shape[1:])
                  for (alias, shape), (arr, offsets) in zip(shapes.items(), runs)}
        groups.append(RequestGroup(facts.sig.name, "predict", shapes[facts.names[0]][0], inputs, n))
    return groups, dropped


def _group_order(key_cols: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """An order of the bodies with equal layouts adjacent, and where each layout
    starts in it. The layout columns (positive ints) are packed into one int64
    code when they fit, so one 1-D sort does it."""
    code = key_cols[0].astype(np.int64)
    span = int(code.max()) + 1
    for col in key_cols[1:]:
        size = int(col.max()) + 1
        span *= size
        if span >= 2 ** 62:
            code = np.unique(np.stack(key_cols, axis=1), axis=0, return_inverse=True)[1].reshape(-1)
            break
        code = code * size + col
    if code.min() == code.max():
        return np.arange(len(code)), [0]
    order = np.argsort(code, kind="stable")
    ordered = code[order]
    return order, [0] + (np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist()


def _sorted_runs(arr: np.ndarray, leaf_counts: np.ndarray, order: np.ndarray,
                 gather: bool) -> tuple[np.ndarray, list[int]]:
    """``arr``'s per-body runs of leaves rearranged into ``order`` (one fancy index;
    none when ``gather`` is False, i.e. one layout), and where each run starts."""
    runs = leaf_counts[order] if gather else leaf_counts
    offsets = np.zeros(len(runs) + 1, dtype=np.intp)
    np.cumsum(runs, out=offsets[1:])
    if gather:
        starts = np.zeros(len(leaf_counts), dtype=np.intp)
        np.cumsum(leaf_counts[:-1], out=starts[1:])
        shift = np.repeat(starts[order] - offsets[:-1], runs)
        arr = arr[np.arange(int(offsets[-1]), dtype=np.intp) + shift]
    return arr, offsets.tolist()


def _verdict(sig: SignatureInfo, shapes: dict[str, tuple], memo: dict) -> str | None:
    """``check_predict`` for one layout, remembered per scan: None, or the drop reason."""
    key = ("rest_json", sig.name, tuple(shapes.items()))
    if key in memo:
        return memo[key]
    try:
        check_predict(sig, shapes)
        why = None
    except Dropped as e:
        why = str(e)
    if len(memo) >= _MEMO_CAP:
        memo.clear()
    memo[key] = why
    return why
