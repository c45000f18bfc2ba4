"""Exceptions raised by tfwarm_export.

Every error names the input it is about and says what to do, because the
person reading it is usually looking at a failed export in a CI log.
"""
from __future__ import annotations

import re


class TfwarmError(Exception):
    """Base class: anything tfwarm_export refuses to do, with a reason."""


class SavedModelError(TfwarmError):
    """The SavedModel is missing, corrupt, or has no matching MetaGraph."""


class SignatureError(TfwarmError):
    """A signature is unknown, or cannot be fed the way TF Serving feeds it."""


class OpLibraryError(SavedModelError):
    """The graph uses ops this process cannot register (TF Text, TF-DF, custom kernels)."""


class BatchingError(TfwarmError):
    """Batch sizes or a BatchingParameters file are invalid."""


class ServingConfigError(TfwarmError):
    """A TF Serving config file (platform config, saved_model_config.pb) is invalid."""


class PlanError(TfwarmError):
    """The warmup plan cannot be built (too many records, unknown shapes...)."""


class DatasetError(TfwarmError):
    """A user dataset does not match the signature it is meant to feed."""


class WarmupFileError(TfwarmError):
    """A warmup file cannot be read, written, or breaks TF Serving's rules."""


class ReplayError(TfwarmError):
    """A warmup record failed when replayed the way TF Serving replays it.

    Args:
      message: what failed: the record, the signature, the input and the TensorFlow error.
      report (WarmupReport | None): the report with every record's result, when there is one.

    Attributes:
      report (WarmupReport | None): the report passed in.
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class OptionError(PlanError):
    """A ``WarmupConfig`` value is invalid, or two options contradict each other."""


class ConfigKeyError(PlanError):
    """An option key (override, dim size, shape, dataset field) names nothing in the model."""


class ModelConfigError(TfwarmError):
    """A TF Serving model config file cannot be read or names no usable model."""


def tf_error_text(error, limit: int = 400) -> str:
    """The informative part of a TensorFlow ``OpError``: without the "Graph execution
    error" banner, node traces, the eager ``{{function_node ...}}`` prefix and the
    ``[Op:...]`` suffix (plain text in, so this module needs no TensorFlow import)."""
    message = getattr(error, "message", None) or str(error)
    lines = [ln.strip() for ln in message.splitlines()]
    keep = [ln for ln in lines if ln and ln != "Graph execution error:" and not ln.startswith("[[")
            and not ln.startswith("Detected at node")]
    text = " ".join(keep) or message
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip() or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def unrestored_variable(text: str) -> str | None:
    """The variable a replay error says was never restored, if that is the error.

    TF Serving's loader (like the TF1 loader replay uses) restores variables through the
    SavedModel's ``saver_def``; a Keras 3 model written with ``tf.saved_model.save`` reads
    variables the restore never creates (keras-team/keras#19274), and every request fails.
    """
    m = re.search(r"Could not find variable ([^\s.]+(?:\.[^\s.]+)*)\. This could mean", text)
    return m.group(1) if m else None


def tf_error_node(error) -> tuple[str, str] | None:
    """``(function, node)`` of the node a TensorFlow ``OpError`` names (function "" when the
    message does not say), from its ``[[{{function_node F}}{{node N}}]]`` trace or ``node_def``.

    The innermost node is the one that rejected the value: TF lists it first.
    """
    message = getattr(error, "message", None) or str(error)
    m = re.search(r"\[\[((?:\{\{function_node [^}]*\}\})*)\{\{node ([^}]+)\}\}", message)
    if m:
        functions = re.findall(r"\{\{function_node ([^}]*)\}\}", m.group(1))
        return (functions[-1] if functions else "", m.group(2).strip())
    node_def = getattr(error, "node_def", None)
    name = getattr(node_def, "name", "") if node_def is not None else ""
    return ("", name) if name else None
