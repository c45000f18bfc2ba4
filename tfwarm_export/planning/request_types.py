"""Which TF Serving API a signature is warmed through: Predict, Classify, Regress (or MultiInference).

TF Serving's own checks (``classifier.cc``, ``regressor.cc``): a classify/regress
signature those APIs would reject is warmed through Predict instead, with the reason.
"""
from __future__ import annotations

import tensorflow as tf

from tfwarm_export.model.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, SignatureInfo
from tfwarm_export.planning.plan_inputs import Skip
from tfwarm_export.specs.request_kinds import CLASSIFY, PREDICT, REGRESS


def _is_float(dtype: tf.DType) -> bool:
    return dtype.is_floating


def _classify_problem(sig: SignatureInfo) -> str | None:
    """Why the Classify API would reject ``sig``, or None if it accepts it."""
    if set(sig.inputs) != {"inputs"}:
        return f"Classify needs exactly one input named 'inputs', found {sorted(sig.inputs)}"
    if sig.inputs["inputs"].dtype != tf.string:
        return f"Classify feeds serialized tf.Examples, but 'inputs' is {sig.inputs['inputs'].dtype.name}"
    outs = set(sig.outputs)
    if not outs & {"classes", "scores"} or outs - {"classes", "scores"}:
        return f"Classify outputs must be 'classes' and/or 'scores', found {sorted(outs)}"
    for alias, want in (("classes", tf.string), ("scores", None)):
        spec = sig.outputs.get(alias)
        if spec is None:
            continue
        if want is tf.string and spec.dtype != tf.string:
            return f"Classify output 'classes' must be string, found {spec.dtype.name}"
        if want is None and not _is_float(spec.dtype):
            return f"Classify output 'scores' must be float, found {spec.dtype.name}"
        if spec.rank is not None and spec.rank != 2:
            return f"Classify output {alias!r} must be [batch, n], found shape {spec.shape_str()}"
    return None


def _regress_problem(sig: SignatureInfo) -> str | None:
    """Why the Regress API would reject ``sig``, or None if it accepts it."""
    if set(sig.inputs) != {"inputs"}:
        return f"Regress needs exactly one input named 'inputs', found {sorted(sig.inputs)}"
    if sig.inputs["inputs"].dtype != tf.string:
        return f"Regress feeds serialized tf.Examples, but 'inputs' is {sig.inputs['inputs'].dtype.name}"
    if set(sig.outputs) != {"outputs"}:
        return f"Regress needs exactly one output named 'outputs', found {sorted(sig.outputs)}"
    spec = sig.outputs["outputs"]
    if not _is_float(spec.dtype):
        return f"Regress output 'outputs' must be float, found {spec.dtype.name}"
    if spec.shape is not None and not (len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] in (1, None))):
        return f"Regress output must be [batch] or [batch, 1], found {spec.shape_str()}"
    return None


def choose_request_type(sig: SignatureInfo) -> tuple[str, str | None]:
    """The request type TF Serving can run for ``sig``, plus a note on any fallback.

    Classify/Regress signatures get their own request type when they meet that
    API's rules; otherwise the Predict API (which accepts classify and regress
    method names) still warms the same graph.
    """
    dense = all(s.encoding == "dense" for s in sig.inputs.values())
    if sig.method_name == PREDICT_METHOD:
        if not dense:
            bad = [a for a, s in sig.inputs.items() if s.encoding != "dense"]
            raise Skip(f"inputs {bad} are sparse/composite tensors; the Predict API feeds dense "
                        "tensors only, so TF Serving can never run this signature")
        return PREDICT, None
    if sig.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
        problem = (_classify_problem if sig.method_name == CLASSIFY_METHOD else _regress_problem)(sig)
        if problem is None:
            return (CLASSIFY if sig.method_name == CLASSIFY_METHOD else REGRESS), None
        if dense:
            return PREDICT, f"{problem}; warmed through the Predict API instead"
        raise Skip(problem)
    raise Skip(f"method_name {sig.method_name!r} is not predict/classify/regress; every TF Serving "
                "API refuses to run it")
