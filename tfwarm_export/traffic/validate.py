"""Does a logged request still fit the model? One check shared by every traffic reader.

A request from last month's logs, or from the previous version's warmup file,
was valid for the model that served it. Against the new export it may name a
signature that is gone, an alias that was renamed, a dtype or a fixed dimension
that changed, or a request type the signature's method no longer accepts. Each
such request is *dropped*, and the reason is counted: the reasons never name a
position or a value, so a million requests dropped for one cause are one line
("input 'age' is not in signature 'serving_default'").

TF Serving's own rules, as enforced here:
* an empty ``signature_name`` means ``serving_default``;
* Classify needs a classify signature, Regress a regress one; Predict accepts
  predict, classify and regress signatures (``predict_util.cc``);
* Predict inputs are signature aliases: every alias without a default must be
  present and no other may be; dtypes must equal the TensorInfo's (TF Serving
  feeds the tensor as is; a wrong one fails inside ``Session::Run``); shapes
  must be compatible, and every batched input shares the 0th dimension.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.model.signatures import SignatureInfo
from tfwarm_export.specs.batching import BatchRule

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
METHOD_OF = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}
DEFAULT_SIGNATURE = "serving_default"


class Dropped(Exception):
    """A request that does not fit; ``str()`` is the reason that is counted."""


@dataclass(frozen=True)
class TrafficSpec:
    """What a traffic scan needs to know of the model, and nothing else: small and
    picklable, so Beam can ship it to every worker."""

    signatures: Mapping[str, SignatureInfo]
    known: tuple[str, ...] = ()          # every signature of the export (for clearer reasons)
    allowed_batch_sizes: tuple[int, ...] = ()
    k: int = 256
    seed: int = 0
    vocab_cap: int = 1000
    rule: BatchRule | None = None
    """The server's batching (``specs.batching``); None: ``allowed_batch_sizes`` alone."""

    @property
    def batch_rule(self) -> BatchRule:
        return self.rule if self.rule is not None else BatchRule(tuple(self.allowed_batch_sizes))

    def padded(self, n: int) -> int:
        """The batch TF Serving pads ``n`` rows to (``n`` itself without batching)."""
        return self.batch_rule.padded(n)

    def rejected(self, n: int) -> str | None:
        """Why TF Serving refuses a request of ``n`` rows (the counted drop reason), or None."""
        rule = self.batch_rule
        if rule.rejects(n):
            return (f"batch above max_batch_size {rule.max_batch_size}: TF Serving's batching "
                    "refuses such a request")
        return None

    def signature(self, name: str) -> SignatureInfo:
        name = name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            if name in self.known:
                raise Dropped(f"signature {name!r} is not warmed (it was skipped or not selected)")
            raise Dropped(f"signature {name!r} is not in the model")
        return sig


@dataclass
class LoggedRequest:
    """One decoded request for one signature: ``inputs`` alias -> array with the
    signature's dtype (serialized tf.Examples under ``inputs`` for classify/regress)."""

    signature: str
    request_type: str  # "predict" | "classify" | "regress" | "multi_inference" | "examples"
    inputs: dict[str, np.ndarray]


@dataclass
class RequestGroup:
    """Requests of one shape, decoded together: what a batch decoder hands the scan.

    Every request in a group has the same signature, request type and ``batch``
    (rows per request; None when an input is rank 0, and then the group holds
    one request: a rank-0 value is shared by the rows, not stacked), and for
    each alias the same dtype and row shape, so ``inputs`` holds all their rows
    concatenated on axis 0. A group of a thousand requests
    is one chunk for hashing and statistics, never a thousand.
    """

    signature: str
    request_type: str
    batch: int | None
    inputs: dict[str, np.ndarray]
    requests: int


def row_layout(inputs: Mapping[str, np.ndarray]) -> tuple:
    """Each input's alias, row shape and dtype: what rows must share to be stacked."""
    return tuple((a, v.shape[1:], v.dtype.str) for a, v in sorted(inputs.items()))


def layout_key(req: LoggedRequest, index: int = 0) -> tuple:
    """What requests must share to be one group (see ``RequestGroup``); a request
    with a rank-0 input is a group of its own (``index`` tells it apart)."""
    if any(not v.shape for v in req.inputs.values()):
        return (req.signature, req.request_type, None, ("rank-0", index))
    batch = next((v.shape[0] for _, v in sorted(req.inputs.items())), 0)
    return (req.signature, req.request_type, batch, row_layout(req.inputs))


def group_requests(requests: Iterable[LoggedRequest]) -> list[RequestGroup]:
    """Decoded requests as groups, in a deterministic order."""
    buckets: dict[tuple, list[LoggedRequest]] = {}
    for i, req in enumerate(requests):
        buckets.setdefault(layout_key(req, i), []).append(req)
    out = []
    for key in sorted(buckets, key=repr):
        reqs = buckets[key]
        inputs = ({a: np.concatenate([r.inputs[a] for r in reqs]) for a in reqs[0].inputs}
                  if key[2] is not None else dict(reqs[0].inputs))
        out.append(RequestGroup(key[0], key[1], key[2], inputs, len(reqs)))
    return out


Decoder = Callable[[object, "TrafficSpec", dict], list[LoggedRequest]]


def decode_each(decode: Decoder, payloads: Sequence, spec: "TrafficSpec",
                memo: dict) -> tuple[list[RequestGroup], Counter]:
    """A batch decoder from a one-payload decoder: decode each, count drops, group."""
    dropped: Counter = Counter()
    decoded: list[LoggedRequest] = []
    for payload in payloads:
        try:
            decoded.extend(decode(payload, spec, memo))
        except Dropped as why:
            dropped[str(why)] += 1
    return group_requests(decoded), dropped


def check_method(sig: SignatureInfo, request_type: str) -> None:
    """Classify/Regress requests need a signature of that method."""
    want = METHOD_OF.get(request_type)
    if want is not None and sig.method_name != want:
        raise Dropped(f"{request_type} request for signature {sig.name!r}, whose method is "
                      f"{sig.method_name or 'unset'}; TF Serving's {request_type.capitalize()} API rejects it")
    if request_type == "predict" and sig.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise Dropped(f"signature {sig.name!r} has method {sig.method_name!r}, which Predict rejects")


def example_alias(sig: SignatureInfo) -> str:
    """The input that takes serialized tf.Examples for Classify/Regress/MultiInference."""
    if set(sig.inputs) != {"inputs"} or sig.inputs["inputs"].dtype != tf.string:
        raise Dropped(f"signature {sig.name!r} does not take serialized tf.Examples under one "
                      f"string input 'inputs' (inputs: {sorted(sig.inputs)})")
    return "inputs"


def check_predict(sig: SignatureInfo, shapes: Mapping[str, tuple[int, ...]],
                  dtypes: Mapping[str, tf.DType] | None = None) -> None:
    """Aliases, dtypes and shapes (alias -> shape) of a Predict request against ``sig``."""
    inputs = shapes
    for alias in sorted(inputs):
        if alias not in sig.inputs:
            raise Dropped(f"input {alias!r} is not in signature {sig.name!r}")
    missing = [a for a in sig.required_inputs if a not in inputs]
    if missing:
        raise Dropped(f"input {missing[0]!r} of signature {sig.name!r} is missing")
    batch = set()
    for alias in sorted(inputs):
        spec = sig.inputs[alias]
        if spec.encoding != "dense":
            raise Dropped(f"input {alias!r} of signature {sig.name!r} is {spec.encoding}; "
                          "the Predict API cannot feed it")
        got = (dtypes or {}).get(alias)
        if got is not None and got != spec.dtype:
            raise Dropped(f"input {alias!r} is {got.name}, signature {sig.name!r} needs {spec.dtype.name}")
        shape = tuple(inputs[alias])
        if spec.shape is not None:
            if len(shape) != len(spec.shape):
                raise Dropped(f"input {alias!r} has rank {len(shape)}, signature {sig.name!r} "
                              f"needs {spec.shape_str()}")
            for axis, (d, want) in enumerate(zip(shape, spec.shape)):
                if want is not None and d != want:
                    raise Dropped(f"input {alias!r} axis {axis} is {d}, signature {sig.name!r} "
                                  f"needs {spec.shape_str()}")
        if len(shape) >= 1:
            batch.add(shape[0])
    if len(batch) > 1:
        raise Dropped(f"inputs of signature {sig.name!r} disagree on the batch size")


def batch_of(inputs: Mapping[str, np.ndarray]) -> int:
    """Rows in a request: the 0th dimension its batched inputs share (1 if none is batched)."""
    for arr in inputs.values():
        if np.ndim(arr) >= 1:
            return int(np.shape(arr)[0])
    return 1


def merge_context(context: bytes | None, examples: Sequence[bytes]) -> list[bytes]:
    """``ExampleListWithContext`` as TF Serving feeds it: each example merged over the context."""
    if not context:
        return list(examples)
    out = []
    for raw in examples:
        ex = tf.train.Example.FromString(context)
        ex.MergeFromString(raw)
        out.append(ex.SerializeToString(deterministic=True))
    return out
