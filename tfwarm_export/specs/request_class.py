"""What makes two requests the same to TF Serving's caches: a request's *class*.

A class is (signature, request type, batch size after TF Serving's padding, the
exact size of every dimension of every input). Two requests of one class run the
same Session call with the same shapes, so the first one pays every per-shape
cost (kernel first use, XLA compile) and the next one finds it paid. A warmup
record warms exactly its own class. Bench (is a row covered?), check (what share
of traffic does the file warm?) and the load budget (which records warm nothing
new?) all use this one definition.

In the ``specs/`` leaf (it imports only ``specs/request_kinds.py``), so readers, the plan
and the reports can all use it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

from tfwarm_export.specs.request_kinds import LOG_TYPES, PREDICT


DEFAULT_SIGNATURE = "serving_default"

Padder = Callable[[int], int] | None
"""``n -> the batch TF Serving pads n rows to`` (``BatchingConfig.padded_size``); None: no batching."""


class RequestClass(NamedTuple):
    """One class of requests. ``shape`` is ``((alias, dims), ...)`` sorted by alias for Predict
    (the batch dimension already padded) and ``()`` for Classify/Regress/MultiInference, whose
    one input is ``batch_size`` serialized tf.Examples."""

    signature: str
    request_type: str
    batch_size: int | None
    shape: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"signature": self.signature, "request_type": self.request_type,
                "batch_size": self.batch_size, "shape": {a: list(d) for a, d in self.shape}}

    def label(self) -> str:
        """``serving_default predict b8 tokens[8,37]``: short enough for a table."""
        dims = " ".join(f"{a}[{','.join(map(str, d))}]" for a, d in self.shape)
        return " ".join(x for x in (self.signature, self.request_type, f"b{self.batch_size}", dims) if x)


def request_class(signature: str, request_type: str, shapes: Mapping[str, Sequence[int]],
                  padded: Padder = None) -> RequestClass:
    """The class of a request to ``signature`` whose inputs have ``shapes`` (alias -> full dims,
    batch first). For Classify/Regress/MultiInference, ``shapes`` holds the one examples input
    (``{"inputs": (n,)}``). Rank-0 inputs cannot be batched, so a request with one has no batch."""
    signature = signature or DEFAULT_SIGNATURE
    pad = padded or (lambda n: n)
    dims = {a: tuple(int(d) for d in s) for a, s in sorted(shapes.items())}
    if request_type != PREDICT:
        n = next((d[0] for d in dims.values() if d), 1)
        return RequestClass(signature, request_type, pad(n), ())
    if any(not d for d in dims.values()):
        batch = None
    else:
        batch = pad(next(iter(dims.values()))[0]) if dims else None
        if padded is not None and batch is not None:
            dims = {a: (batch,) + d[1:] for a, d in dims.items()}
    return RequestClass(signature, request_type, batch, tuple(dims.items()))


def class_of_log(log_proto, padded: Padder = None) -> RequestClass:
    """The class of one PredictionLog (a warmup record or a logged request)."""
    log_type = log_proto.WhichOneof("log_type")
    kind = LOG_TYPES.get(log_type, str(log_type))
    if log_type == "predict_log":
        req = log_proto.predict_log.request
        shapes = {a: [d.size for d in t.tensor_shape.dim] for a, t in req.inputs.items()}
        return request_class(req.model_spec.signature_name, kind, shapes, padded)
    if log_type in ("classify_log", "regress_log", "multi_inference_log"):
        req = getattr(log_proto, log_type).request
        if log_type == "multi_inference_log":
            name = "+".join(t.model_spec.signature_name for t in req.tasks)
        else:
            name = req.model_spec.signature_name
        which = req.input.WhichOneof("kind")
        n = len(getattr(req.input, which).examples) if which else 0
        return RequestClass(name or DEFAULT_SIGNATURE, kind, (padded or (lambda m: m))(n), ())
    return RequestClass("", kind, None, ())
