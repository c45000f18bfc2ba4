"""TF Serving REST request bodies, decoded exactly as its REST layer does.

The reference is TF Serving's ``tensorflow_serving/util/json_tensor.cc``:

* ``{"signature_name": ..., "instances": [...]}`` (row format): a non-empty
  list; either every item is an object keyed by *all* the signature's inputs,
  or (single-input signatures only) every item is a plain value or list. Each
  item is one row; every row of an input must have the same shape.
* ``{"inputs": ...}`` (columnar format): an object with every input (other
  keys are ignored), or, for a single-input signature, one value or list.
  Values carry their own batch dimension.
* ``{"b64": "..."}`` is binary data, for string tensors only.
* Numbers follow the TensorInfo dtype: floats accept any number that converts
  without loss (ints up to 2**24 for float32, 2**53 for float64); ints need a
  JSON integer in range (``1.0`` is not one); bools need ``true``/``false``;
  ``NaN``/``Infinity`` are accepted for floats. Other dtypes (half, bfloat16,
  complex) have no JSON conversion and the request is dropped.
* ``{"examples": [...], "context": {...}}`` (Classify/Regress bodies): each
  example an object of feature -> value or list; ints become ``int64_list``,
  other numbers ``float_list``, strings and b64 ``bytes_list``, bools int64 0/1.
  The context is merged into every example, as TF Serving does.

Files: one body per line (``.jsonl``/``.ndjson``) or one body per ``.json`` file,
local or any ``tf.io.gfile`` scheme, plain or GZIP.
"""
from __future__ import annotations

import base64
import binascii
import json
from itertools import chain
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

from tfwarm_export.traffic.validate import (
    DEFAULT_SIGNATURE,
    Dropped,
    LoggedRequest,
    TrafficSpec,
    check_method,
    check_predict,
    example_alias,
    merge_context,
)

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")

_INT_RANGE = {tf.int32: (-2**31, 2**31 - 1), tf.int16: (-2**31, 2**31 - 1),
              tf.int8: (-2**31, 2**31 - 1), tf.uint8: (-2**31, 2**31 - 1),
              tf.int64: (-2**63, 2**63 - 1), tf.uint32: (0, 2**32 - 1), tf.uint64: (0, 2**64 - 1)}
_FLOAT_MAX_INT = {tf.float32: 2**24 - 1, tf.float64: 2**53 - 1}
JSON_KIND = {tf.string: "string", tf.bool: "bool", **{d: "float" for d in _FLOAT_MAX_INT},
         **{d: "int" for d in _INT_RANGE}}
_F32_MAX = float(np.finfo(np.float32).max)
_INT64_RANGE = (-2**63, 2**63 - 1)


def _type_name(v: Any) -> str:
    if v is None:
        return "Null"
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, dict):
        return "Object"
    if isinstance(v, list):
        return "Array"
    if isinstance(v, str):
        return "String"
    return "Number"


def _is_b64(v: Any) -> bool:
    return isinstance(v, dict) and len(v) == 1 and isinstance(v.get("b64"), str)


def _b64(v: dict) -> bytes:
    try:
        return base64.b64decode(v["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise Dropped("unable to base64 decode a {\"b64\": ...} value") from None


def leaf_value(v: Any, dtype: tf.DType, alias: str):
    """One JSON value as ``AddValueToTensor`` converts it, or Dropped."""
    def type_error():
        return Dropped(f"input {alias!r}: JSON {_type_name(v)} is not of expected type {dtype.name}")

    if dtype == tf.string:
        if isinstance(v, str):
            return v.encode("utf-8")
        if isinstance(v, dict):
            if not _is_b64(v):
                raise Dropped(f"input {alias!r}: JSON object not formatted correctly for base64 data")
            return _b64(v)
        raise type_error()
    if isinstance(v, dict):
        raise type_error()
    if dtype == tf.bool:
        if not isinstance(v, bool):
            raise type_error()
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise type_error()
    if dtype in _FLOAT_MAX_INT:
        if isinstance(v, int):
            if abs(v) > _FLOAT_MAX_INT[dtype]:
                raise Dropped(f"input {alias!r}: cannot convert a JSON integer to {dtype.name} "
                              "without loss of precision")
        elif np.isfinite(v) and dtype == tf.float32 and abs(v) > float(np.finfo(np.float32).max):
            raise Dropped(f"input {alias!r}: cannot convert a JSON number to float without loss of precision")
        return v
    if dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[dtype]
        if not isinstance(v, int) or not lo <= v <= hi:
            raise type_error()
        return v
    raise Dropped(f"input {alias!r}: TF Serving has no JSON conversion to {dtype.name}")


def nested_shape(v: Any) -> list[int]:
    """``GetDenseTensorShape``: the shape implied by following the first element."""
    shape = []
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        v = v[0]
    return shape


def _flatten(v: Any, shape: list[int], alias: str) -> list:
    """Leaves in order, with ``FillTensorProto``'s structure checks done a list at a time."""
    if len(shape) == 0:
        if isinstance(v, list):
            raise Dropped(f"input {alias!r}: a list is nested deeper than the tensor's rank")
        return [v]
    out: list = []
    stack = [(v, 0)]
    last = len(shape) - 1
    while stack:
        item, level = stack.pop()
        if not isinstance(item, list):
            raise Dropped(f"input {alias!r}: a JSON value is at the wrong nesting level (ragged list)")
        if len(item) != shape[level]:
            raise Dropped(f"input {alias!r}: lists at level {level} have different sizes (ragged list)")
        if level == last:
            if any(type(x) is list for x in item):
                raise Dropped(f"input {alias!r}: a list is nested deeper than the tensor's rank")
            out.extend(item)
        else:
            stack.extend((x, level + 1) for x in reversed(item))
    return out


def _flatten_regular(v: Any, shape: list[int]) -> list | None:
    """``_flatten`` for a regular nested list, a level at a time with C-speed
    ``map``/``chain`` (no Python loop per list); None when any structure check
    fails, so ``_flatten`` walks it and names the reason."""
    level = [v]
    for size in shape:
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return None
        level = list(chain.from_iterable(level))
    if list in set(map(type, level)):
        return None
    return level


def fast_leaves(flat: list, dtype: tf.DType, types: set | None = None) -> np.ndarray | None:
    """``flat`` as a 1-D array of ``dtype`` when whole-list type and range checks
    (one ``set(map(type, ...))``, numpy reductions) show every value converts;
    None when some value needs ``leaf_value``: a b64 string, or one TF Serving rejects.
    Shared by ``json_tensor`` and the batch decoder, so both convert alike
    (``types``: ``set(map(type, flat))`` when the caller has it already)."""
    if types is None:
        types = set(map(type, flat))
    kind = JSON_KIND.get(dtype)
    if kind == "string":
        if not types <= {str}:
            return None
        arr = np.empty(len(flat), dtype=object)
        arr[:] = list(map(str.encode, flat))
        return arr
    if kind == "bool":
        return np.array(flat, dtype=bool) if types <= {bool} else None
    if kind == "float":
        if not types <= {int, float}:
            return None
        try:
            floats = np.array(flat, dtype=np.float64)
        except OverflowError:  # an integer beyond any float: leaf_value names the loss of precision
            return None
        if floats.size:
            mags = np.abs(floats)
            top = float(np.max(mags, initial=0.0, where=np.isfinite(mags)))
            limit = _FLOAT_MAX_INT[dtype]
            # An int above ``limit`` converts to a float above it too (limit + 1 is a power
            # of two), so the exact per-int check is only needed when some value is large.
            if top > limit and int in types and max(abs(x) for x in flat if type(x) is int) > limit:
                return None
            if dtype == tf.float32 and top > _F32_MAX:
                return None
        return floats.astype(dtype.as_numpy_dtype, copy=False)
    if kind == "int":
        if not types <= {int}:
            return None
        lo, hi = _INT_RANGE[dtype]
        wide = np.uint64 if dtype == tf.uint64 else np.int64
        if wide is np.uint64 and flat and min(flat) < 0:  # older numpy wraps negatives silently
            return None
        try:
            arr = np.array(flat, dtype=wide)
        except OverflowError:  # beyond int64/uint64
            return None
        narrow = wide is np.int64 and (lo, hi) != _INT64_RANGE
        if narrow and arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
            return None
        if dtype in (tf.int8, tf.int16, tf.uint8):  # int_val is int32; the tensor casts (wraps)
            arr = arr.astype(np.int32)
        return arr.astype(dtype.as_numpy_dtype, copy=False)
    return None


def exact_leaves(flat: list, dtype: tf.DType, alias: str) -> np.ndarray:
    """``flat`` converted value by value (``leaf_value``): decodes b64 strings, or raises
    TF Serving's precise reason for the first value it rejects."""
    leaves = [leaf_value(x, dtype, alias) for x in flat]
    if dtype == tf.string:
        arr = np.empty(len(leaves), dtype=object)
        arr[:] = leaves
        return arr
    if dtype in (tf.int8, tf.int16, tf.uint8):
        return np.array(leaves, dtype=np.int64).astype(np.int32).astype(dtype.as_numpy_dtype)
    return np.array(leaves, dtype=dtype.as_numpy_dtype)


def json_tensor(v: Any, dtype: tf.DType, alias: str) -> np.ndarray:
    """A JSON value as the tensor TF Serving would build for an input of ``dtype``.

    Whole-list checks first (``fast_leaves``); only a list that fails them is
    walked value by value, to raise TF Serving's exact error."""
    shape = nested_shape(v)
    if len(shape) > MAX_RANK:
        raise Dropped(f"input {alias!r}: lists nested {len(shape)} deep, more dimensions than a "
                      f"tensor can have here ({MAX_RANK})")
    flat = _flatten_regular(v, shape) if shape else None
    if flat is None:
        flat = _flatten(v, shape, alias)
    arr = fast_leaves(flat, dtype)
    if arr is None:
        arr = exact_leaves(flat, dtype, alias)
    return arr.reshape(shape)


def _instances(items: list, sig, spec_dtype) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInstancesList``: the same checks, then one conversion per
    input over all instances (each instance is a row of the batch)."""
    if not items:
        raise Dropped("no values in 'instances' array")
    names = sorted(sig.inputs)
    first_obj = isinstance(items[0], dict) and not _is_b64(items[0])
    if not first_obj and len(names) > 1:
        raise Dropped(f"'instances' is a plain list, but signature {sig.name!r} has "
                      f"{len(names)} inputs: each instance must be an object keyed by them")
    columns: dict[str, list] = {}
    want = set(names)
    for item in items:
        is_obj = isinstance(item, dict) and not _is_b64(item)
        if first_obj != is_obj:
            raise Dropped("'instances' mixes objects and plain values")
        if not is_obj:
            columns.setdefault(names[0], []).append(item)
            continue
        for name, value in item.items():
            if name not in sig.inputs:
                raise Dropped(f"input {name!r} is not in signature {sig.name!r}")
            columns.setdefault(name, []).append(value)
        if item.keys() != want:
            missing = sorted(want - set(item))
            raise Dropped(f"instances must have every input of signature {sig.name!r}; "
                          f"input {missing[0]!r} is missing")
    out = {}
    for name, values in columns.items():
        first = nested_shape(values[0])
        if _flatten_regular(values, [len(values)] + first) is None and any(
                nested_shape(v) != first for v in values[1:]):
            raise Dropped(f"input {name!r}: instances have different shapes")
        out[name] = json_tensor(values, spec_dtype(name), name)
    return out


def _columnar(value: Any, sig, spec_dtype) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInputsMap``: extra keys are ignored, as TF Serving does."""
    names = sorted(sig.inputs)
    if not isinstance(value, dict) or _is_b64(value):
        if len(names) > 1:
            raise Dropped(f"'inputs' is a plain value/list, but signature {sig.name!r} has "
                          f"{len(names)} inputs: pass an object keyed by them")
        return {names[0]: json_tensor(value, spec_dtype(names[0]), names[0])}
    out = {}
    for name in names:
        if name not in value:
            raise Dropped(f"input {name!r} of signature {sig.name!r} is missing from 'inputs'")
        out[name] = json_tensor(value[name], spec_dtype(name), name)
    return out


def _feature_value(v: Any, name: str, feature: tf.train.Feature) -> None:
    """``AddValueToFeature``."""
    def kind_error():
        return Dropped(f"feature {name!r} mixes value types")

    def want(kind: str) -> Any:
        have = feature.WhichOneof("kind")
        if have not in (None, kind):
            raise kind_error()
        return getattr(feature, kind).value

    if v is None or isinstance(v, list):
        raise Dropped(f"feature {name!r} has an element with unexpected JSON type {_type_name(v)}")
    if isinstance(v, bool):
        want("int64_list").append(1 if v else 0)
    elif isinstance(v, dict):
        if not _is_b64(v):
            raise Dropped(f"feature {name!r} has an element with unexpected JSON type Object")
        want("bytes_list").append(_b64(v))
    elif isinstance(v, str):
        want("bytes_list").append(v.encode("utf-8"))
    elif isinstance(v, float):
        if np.isfinite(v) and abs(v) > float(np.finfo(np.float32).max):
            raise Dropped(f"feature {name!r}: cannot convert a JSON number to float without loss of precision")
        want("float_list").append(v)
    else:
        if v > 2**63 - 1:
            raise Dropped(f"feature {name!r} has a uint64 element; only int64 is supported")
        if v < -2**63:
            raise Dropped(f"feature {name!r}: JSON integer out of int64 range")
        want("int64_list").append(v)


def json_example(obj: Any) -> tf.train.Example:
    """``MakeExampleFromJsonObject``."""
    if not isinstance(obj, dict):
        raise Dropped(f"an example must be a JSON object, got {_type_name(obj)}")
    ex = tf.train.Example()
    for name, content in obj.items():
        feature = tf.train.Feature()
        for v in (content if isinstance(content, list) else [content]):
            _feature_value(v, name, feature)
        ex.features.feature[name].CopyFrom(feature)
    return ex


MAX_RANK = 32  # numpy's limit is 64; no served signature input comes near either
TOO_DEEP = "JSON nested too deeply for Python's parser (thousands of levels)"
def _parse_deep(raw: bytes | str) -> Any:
    """A body nested past Python's recursion limit, read by orjson (when installed)."""
    try:
        import orjson

        return orjson.loads(raw)
    except (ImportError, ValueError):
        raise Dropped(TOO_DEEP) from None


UNPAIRED_SURROGATE = ("not valid JSON: a string holds an unpaired UTF-16 surrogate escape "
                      "(\\ud800-\\udfff), which TF Serving's JSON parser rejects")


def decode_body(body: Any, spec: TrafficSpec, memo: dict | None = None) -> list[LoggedRequest]:
    """One REST body (text, bytes or parsed JSON) as the request(s) TF Serving would build."""
    try:
        return _decode_body(body, spec)
    except UnicodeEncodeError:  # Python's json accepts "\ud800"; it has no UTF-8 form
        raise Dropped(UNPAIRED_SURROGATE) from None


def _decode_body(body: Any, spec: TrafficSpec) -> list[LoggedRequest]:
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            raise Dropped("not valid JSON") from None
        except RecursionError:  # orjson parses without recursion: the batch path's reading
            body = _parse_deep(body)
    if not isinstance(body, dict):
        raise Dropped("a REST request body must be a JSON object")
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise Dropped("'signature_name' must be a string")
    sig = spec.signature(name or DEFAULT_SIGNATURE)
    if "examples" in body and "instances" not in body and "inputs" not in body:
        request_type = {"tensorflow/serving/classify": "classify",
                        "tensorflow/serving/regress": "regress"}.get(sig.method_name)
        if request_type is None:
            raise Dropped(f"a Classify/Regress body ('examples') for signature {sig.name!r}, whose "
                          f"method is {sig.method_name}")
        check_method(sig, request_type)
        alias = example_alias(sig)
        items = body["examples"]
        if not isinstance(items, list) or not items:
            raise Dropped("'examples' must be a non-empty list")
        context = None
        if "context" in body:
            context = json_example(body["context"]).SerializeToString(deterministic=True)
        serialized = [json_example(e).SerializeToString(deterministic=True) for e in items]
        arr = np.empty(len(serialized), dtype=object)
        arr[:] = merge_context(context, serialized)
        return [LoggedRequest(sig.name, request_type, {alias: arr})]
    check_method(sig, "predict")

    def spec_dtype(alias: str) -> tf.DType:
        return sig.inputs[alias].dtype

    if "instances" in body and "inputs" in body:
        raise Dropped("a body may have 'instances' or 'inputs', not both")
    if "instances" in body:
        if not isinstance(body["instances"], list):
            raise Dropped("'instances' must be a list")
        inputs = _instances(body["instances"], sig, spec_dtype)
    elif "inputs" in body:
        inputs = _columnar(body["inputs"], sig, spec_dtype)
    else:
        raise Dropped("missing 'inputs' or 'instances' key")
    check_predict(sig, {a: v.shape for a, v in inputs.items()})
    return [LoggedRequest(sig.name, "predict", inputs)]


_READ_BLOCK = 1 << 20  # bytes read at a time from a JSONL file


def read_bodies(path: str, compression: str) -> Iterator[bytes]:
    """The bodies in one file, streamed: one per line (JSONL), or the whole
    file as one body (``.json``). Blank lines are skipped.

    Lines are split from 1 MiB blocks (``bytes.split``: C speed), not read one
    by one through ``GFile.readline`` (several Python calls per line). A line
    is what ``GFile``'s line iterator gave before: up to ``\n``, with every
    ``\r`` dropped (TF's ``ReadLine`` skips them); gzip files keep them, as
    ``GzipFile``'s iterator did."""
    import gzip

    with tf.io.gfile.GFile(path, "rb") as f:
        raw: Any = gzip.GzipFile(fileobj=f) if compression == "GZIP" else f
        if is_single_body_file(path):
            yield raw.read()
            return
        drop_cr = compression != "GZIP"
        pending: list[bytes] = []  # the start of a line the next block ends
        while True:
            block = raw.read(_READ_BLOCK)
            if not block:
                break
            if drop_cr and b"\r" in block:
                block = block.replace(b"\r", b"")
            end = block.rfind(b"\n")
            if end < 0:
                pending.append(block)
                continue
            pending.append(block[:end])
            yield from filter(bytes.strip, b"".join(pending).split(b"\n"))
            pending = [block[end + 1:]]
        last = b"".join(pending)
        if last.strip():
            yield last


def is_single_body_file(path: str) -> bool:
    """``x.json`` (or ``x.json.gz``) holds one body; ``.jsonl``/``.ndjson`` one per line."""
    name = path[:-3] if path.endswith(".gz") else path
    return name.endswith(".json")
