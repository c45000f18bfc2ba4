"""The batch decoder of REST bodies gives exactly what the one-body path gives.

Hypothesis draws batches mixing row and columnar bodies for a few signatures,
mostly well-formed (so the fast path converts sets of them together) with a
sprinkle of what TF Serving rejects or treats specially: wrong leaf types
(bools among ints, floats among ints, ints beyond float precision), b64 and
bad b64, NaN/Infinity, integers beyond 64 bits, ragged and deeper lists,
missing and extra inputs, empty lists, rank-0 inputs, wrong signature names,
classify ``examples`` bodies, and payloads that are not JSON objects.
"""
from __future__ import annotations

import base64
import gc
import json

import tensorflow as tf
from conftest import group_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfwarm_export.traffic.readers.rest_json_batch as rjb
from tfwarm_export.model.signatures import SignatureInfo, TensorSpec
from tfwarm_export.traffic import traffic_spec
from tfwarm_export.traffic.readers.rest_json import UNPAIRED_SURROGATE, decode_body
from tfwarm_export.traffic.readers.rest_json_batch import decode_bodies
from tfwarm_export.traffic.validate import RequestGroup, decode_each


def _sig(name: str, method: str = "tensorflow/serving/predict", **inputs) -> SignatureInfo:
    specs = {a: TensorSpec(a, f"{a}:0", dt, shape) for a, (dt, shape) in inputs.items()}
    return SignatureInfo(name, method, specs, {})


SIGS = {
    "serving_default": _sig("serving_default", x=(tf.float32, (None, 3)), ids=(tf.int64, (None, None)),
                            tag=(tf.string, (None,))),
    "score": _sig("score", x=(tf.float32, (None, 3))),
    "mixed": _sig("mixed", b=(tf.bool, (None,)), n=(tf.int32, (None, 2)), d=(tf.float64, (None,)),
                  u=(tf.uint8, (None,))),
    "img": _sig("img", s=(tf.string, (None,))),
    "grid": _sig("grid", g=(tf.float32, (None, 2, None))),
    "scalar": _sig("scalar", k=(tf.int32, ()), v=(tf.float32, (None,))),
    "half": _sig("half", h=(tf.float16, (None,))),
    "cls": _sig("cls", "tensorflow/serving/classify", inputs=(tf.string, (None,))),
}
SPEC = traffic_spec(SIGS, known=[*SIGS, "gone"])
# per input: leaf kind and the row shape (None: a length drawn per body)
ROWS = {"x": ("float", (3,)), "ids": ("int", (None,)), "tag": ("string", ()), "b": ("bool", ()),
        "n": ("int", (2,)), "d": ("float", ()), "u": ("int", ()), "s": ("string", ()),
        "g": ("float", (2, None)), "k": ("int", None), "v": ("float", ()), "h": ("float", ()),
        "inputs": ("string", ())}
ODD = [True, False, 1.0, 1, "s", None, {"b64": "%%%"}, {"b64": "YQ=="}, {"b64": "YQ==", "x": 1}, [1], [],
       2**63, 2**64, 2**70, -2**64, 2**24 + 1, 2**53 + 1, 1e39, float("nan"), float("inf"), 2**31, 300]
RAW = [b"{nope", b"[1, 2]", b"   ", b"null", "{\"signature_name\": \"score\", \"instances\": [[1, 2, 3]]}",
       b'{"signature_name": "score", "instances": [[1, 2, 3]], "instances": [[4, 5, 6]]}',
       b'\xef\xbb\xbf{"signature_name": "score", "instances": [[1, 2, 3]]}',
       '{"signature_name": "score", "instances": [[1, 2, 3]]}'.encode("utf-16"),
       b'{"signature_name": "score", "instances": [[NaN, Infinity, -Infinity]]}',
       b'{"signature_name": "score", "inputs": [[18446744073709551616, 1, 2]]}',
       b'{"signature_name": "score", "instances": [[1e400, 1, 2]]}']


def _leaf(draw, kind: str):
    if kind == "float":
        return draw(st.one_of(st.floats(-1e3, 1e3), st.integers(-100, 100)))
    if kind == "int":
        return draw(st.integers(-5, 300))
    if kind == "bool":
        return draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        return {"b64": base64.b64encode(draw(st.binary(max_size=3))).decode()}
    return draw(st.text(max_size=3))


def _value(draw, kind: str, shape: tuple):
    if not shape:
        return _leaf(draw, kind)
    return [_value(draw, kind, shape[1:]) for _ in range(shape[0])]


def _spots(v, out: list) -> list:
    """Every (container, key) holding a value inside ``v``, for a mutation."""
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for key, child in items:
        out.append((v, key))
        _spots(child, out)
    return out


def _mutate(draw, body: dict) -> None:
    spots = _spots(body, [])
    if not spots:
        return
    container, key = spots[draw(st.integers(0, len(spots) - 1))]
    how = draw(st.sampled_from(["odd", "odd", "drop", "extra", "wrap"]))
    if how == "odd":
        container[key] = draw(st.sampled_from(ODD))
    elif how == "drop":
        if isinstance(container, list) and len(container) > 1:
            del container[key]
        elif isinstance(container, dict):
            del container[key]
    elif how == "extra":
        if isinstance(container, dict):
            container["extra"] = 1
        else:
            container.append(container[key])
    else:
        container[key] = [container[key]]


@st.composite
def payloads(draw):
    if draw(st.integers(0, 14)) == 0:
        return draw(st.sampled_from(RAW))
    name = draw(st.sampled_from(["serving_default", "serving_default", "score", "score", "mixed", "img",
                                 "grid", "scalar", "half", "cls", "gone", "missing", "", None, 7]))
    sig = SIGS.get(name or "serving_default") or SIGS["serving_default"]
    body: dict = {} if name is None else {"signature_name": name}
    fmt = draw(st.sampled_from(["instances"] * 6 + ["inputs"] * 3 + ["both", "neither", "examples"]))
    batch = draw(st.integers(1, 3))
    shapes = {}
    for alias in sorted(sig.inputs):
        kind, shape = ROWS[alias]
        shapes[alias] = None if shape is None else tuple(d if d is not None else draw(st.integers(1, 3))
                                                       for d in shape)
    if fmt == "examples":
        body["examples"] = [{"f": draw(st.one_of(st.floats(0, 1), st.integers(0, 9), st.text(max_size=2),
                                                 st.booleans()))} for _ in range(batch)]
        if draw(st.booleans()):
            body["context"] = {"c": "de"}
    if fmt in ("instances", "both"):
        plain = len(sig.inputs) == 1 and draw(st.booleans())
        rows = []
        for _ in range(batch):
            row = {a: _value(draw, ROWS[a][0], s or ()) for a, s in shapes.items()}
            rows.append(next(iter(row.values())) if plain else row)
        body["instances"] = rows
    if fmt in ("inputs", "both"):
        cols = {a: _value(draw, ROWS[a][0], s) if s is None else
                [_value(draw, ROWS[a][0], s) for _ in range(batch)] for a, s in shapes.items()}
        plain = len(sig.inputs) == 1 and draw(st.booleans())
        body["inputs"] = next(iter(cols.values())) if plain else cols
    if draw(st.integers(0, 5)) == 0:
        _mutate(draw, body)
    text = json.dumps(body)
    how = draw(st.sampled_from(["bytes", "bytes", "bytes", "str", "dict"]))
    return text.encode() if how == "bytes" else text if how == "str" else json.loads(text)


def same(batch: list) -> tuple[list[RequestGroup], object]:
    want_groups, want_dropped = decode_each(decode_body, batch, SPEC, {})
    got_groups, got_dropped = decode_bodies(batch, SPEC, {})
    assert got_dropped == want_dropped
    assert group_rows(got_groups) == group_rows(want_groups)
    assert sum(g.requests for g in got_groups) == sum(g.requests for g in want_groups)
    for g in got_groups:  # strings are bytes in object arrays, as the one-body path gives
        for v in g.inputs.values():
            if v.dtype == object:
                assert {type(x) for x in v.ravel().tolist()} <= {bytes}
    return got_groups, got_dropped


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads(), min_size=10, max_size=60))
def test_batch_decoder_equals_the_one_body_path(batch):
    same(batch)


def _clean(i: int) -> dict:
    return {"instances": [{"x": [i, 0.5, -1.5], "ids": list(range(1 + i % 3)), "tag": f"t{i}"}
                          for _ in range(1 + i % 2)]}


def test_common_bodies_take_the_fast_path(monkeypatch):
    """Clean row and columnar bodies never go body by body; one odd body among
    them does, alone."""
    seen: list[int] = []
    original = rjb.decode_each
    monkeypatch.setattr(rjb, "decode_each", lambda *a: (seen.append(len(a[1])), original(*a))[1])
    clean = [json.dumps(_clean(i)).encode() for i in range(200)]
    clean += [json.dumps({"signature_name": "score", "inputs": [[i, 2, 3]] * (1 + i % 3)}) for i in range(50)]
    groups, dropped = same(clean)
    assert seen == [0] and not dropped
    assert sorted((g.signature, g.batch, g.requests) for g in groups if g.signature == "score") == [
        ("score", 1, 17), ("score", 2, 17), ("score", 3, 16)]
    seen.clear()
    odd = clean[:100] + [json.dumps({"instances": [{"x": [1, True, 3], "ids": [1], "tag": "a"}]}).encode()]
    groups, dropped = same(odd + clean[100:])
    assert seen == [1] and sum(dropped.values()) == 1


def test_orjson_refusals_and_big_integers_decide_as_json_does():
    """NaN/Infinity (orjson refuses) and integers beyond 64 bits (orjson reads a
    float) among fast-path bodies: float32 drops the integer, float64 too."""
    bodies = [json.dumps(_clean(i)).encode() for i in range(40)]
    bodies += [b'{"instances": [{"x": [NaN, Infinity, 1], "ids": [1], "tag": "a"}]}',
               b'{"instances": [{"x": [18446744073709551616, 1, 1], "ids": [1], "tag": "a"}]}',
               b'{"instances": [{"x": [1e19, 1, 1], "ids": [1], "tag": "a"}]}',
               b'{"signature_name": "mixed", "instances": [{"b": true, "n": [1, 2], "u": 1, '
               b'"d": 1180591620717411303424}]}',
               # singled out for the bool; the first leaf decides the reason, so decode_body
               # must see the integer as json reads it
               b'{"instances": [{"x": [18446744073709551616, true, 1], "ids": [1], "tag": "a"}]}']
    groups, dropped = same(bodies)
    assert sum(dropped.values()) == 3 and sum(g.requests for g in groups) == 42
    assert sum(n for why, n in dropped.items() if "without loss of precision" in why) == 3


def test_unpaired_surrogates_are_dropped_not_raised():
    """Python's json reads "\\ud800"; it has no UTF-8 form, so the body is dropped as
    invalid JSON on both paths (instances, columnar and tf.Example bodies alike)."""
    bodies = [json.dumps(_clean(i)).encode() for i in range(20)]
    bodies += [b'{"instances": [{"x": [1, 2, 3], "ids": [1], "tag": "\\ud800"}]}',
               b'{"signature_name": "score", "inputs": {"x": [[1, 2, 3]], "note": "\\udc00"}}',
               b'{"instances": [{"x": [1, 2, 3], "ids": [1], "tag": "a\\udfffb"}]}']
    groups, dropped = same(bodies)
    assert sum(g.requests for g in groups) == 21
    assert list(dropped) == [UNPAIRED_SURROGATE]
    assert sum(dropped.values()) == 2


def test_deep_nesting_is_dropped_not_raised():
    """Lists nested past any tensor's rank, or past Python's recursion limit, are
    drops with a reason on both paths."""
    bodies = [json.dumps(_clean(i)).encode() for i in range(5)]
    bodies += [b'{"instances": [{"x": ' + b"[" * 40 + b"1" + b"]" * 40 + b', "ids": [1], "tag": "a"}]}',
               b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]
    groups, dropped = same(bodies)
    assert sum(g.requests for g in groups) == 5 and sum(dropped.values()) == 2


def test_gc_is_resumed_as_it_was():
    body = [json.dumps(_clean(1)).encode()]
    decode_bodies(body, SPEC, {})
    assert gc.isenabled()
    gc.disable()
    try:
        decode_bodies(body, SPEC, {})
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_without_orjson_the_stdlib_parses(monkeypatch):
    monkeypatch.setattr(rjb, "_loads", json.loads)
    same([json.dumps(_clean(i)).encode() for i in range(30)] + RAW)


def test_jsonl_lines_are_split_from_blocks_as_gfile_lines_were(tmp_path, monkeypatch):
    """Blank lines skipped, a line longer than a block, no final newline; GFile's
    ReadLine drops every ``\\r`` (gzip files keep them)."""
    import gzip

    from tfwarm_export.traffic.readers import rest_json

    monkeypatch.setattr(rest_json, "_READ_BLOCK", 8)
    data = b'{"a": 1}\r\n\n  \n{"b": "x\ry"}\n' + b'{"c": "' + b"z" * 30 + b'"}\n\t\n{"d": 2}'
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    lines = [b'{"a": 1}', b'{"b": "xy"}', b'{"c": "' + b"z" * 30 + b'"}', b'{"d": 2}']
    assert list(rest_json.read_bodies(str(tmp_path / "a.jsonl"), "")) == lines
    assert list(rest_json.read_bodies(str(tmp_path / "a.jsonl.gz"), "GZIP")) == [
        b'{"a": 1}\r', b'{"b": "x\ry"}', *lines[2:]]
