"""TensorFlow's op catalogue for strings: what every string-taking op needs from its value.

Decoders were once added one case at a time, and each new library broke the
promise again. This module holds the whole registry instead: every op in
``tf.raw_ops`` that takes a string (a DT_STRING input, or a type attr that allows
string) is classified in ``op_catalogue_table.CATALOGUE`` as

- ``decoder``: the bytes must be a format, which the tool writes (``decoders``);
- ``format_free``: any bytes work (hash, join, split, lookups, plumbing);
- ``guard``: a predicate on the value (``RegexFullMatch``, ``StringLength``,
  ``Equal``) that an ``Assert``/``cond`` may enforce, or ``Substr``'s bounds;
- ``unsupported``: with the reason (a file path on the server, a resource
  handle, a serialized proto the tool has no encoder for, TPU-only).

``tests/test_op_catalogue.py`` fails when the installed TensorFlow has a
string-taking op that is not classified here, so an upgrade cannot add a gap
silently. ``find_string_uses`` walks a string input to the ops that read its
bytes; ``find_unsupported_use`` is the one the plan refuses with a clear error.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import op_def_registry

from tfwarm_export.analysis.decoders import content_passthrough
from tfwarm_export.analysis.index import index_for
from tfwarm_export.analysis.op_catalogue_table import CATALOGUE

DECODER, FORMAT_FREE, GUARD, UNSUPPORTED = "decoder", "format_free", "guard", "unsupported"
KINDS = (DECODER, FORMAT_FREE, GUARD, UNSUPPORTED)


@dataclass(frozen=True)
class OpClass:
    """What an op (or one of its inputs, ``arg``) needs from a string fed to it."""

    op: str
    kind: str
    why: str
    arg: str = ""


def classify(op: str, arg: str = "") -> OpClass | None:
    """The class of ``op`` (of its input ``arg`` where that differs), or None if uncatalogued."""
    entry = CATALOGUE.get(op)
    if entry is None:
        return None
    kind, why, args = entry
    if arg and arg in args:
        kind, why = args[arg]
    return OpClass(op, kind, why, arg)


def string_args(op_def) -> list[str]:
    """The input args of an OpDef that can carry a string tensor."""
    attrs = {a.name: a for a in op_def.attr}
    out = []
    for arg in op_def.input_arg:
        if arg.type == types_pb2.DT_STRING:
            out.append(arg.name)
            continue
        for name in (arg.type_attr, arg.type_list_attr):
            if name and name in attrs:
                allowed = list(attrs[name].allowed_values.list.type)
                if not allowed or types_pb2.DT_STRING in allowed:
                    out.append(arg.name)
                    break
    return out


def registry_op_names() -> list[str]:
    """Every public op name of the installed TensorFlow (``tf.raw_ops``)."""
    import tensorflow as tf

    return sorted(n for n in dir(tf.raw_ops) if not n.startswith("_"))


def string_taking_ops(names: Iterable[str] | None = None) -> list[str]:
    """The registered ops (of ``names``, default every ``tf.raw_ops`` name) that take a string."""
    out = []
    for name in (registry_op_names() if names is None else names):
        op_def = op_def_registry.get(name)
        if op_def is not None and string_args(op_def):
            out.append(name)
    return sorted(out)


def uncatalogued_ops(names: Iterable[str] | None = None) -> list[str]:
    """String-taking ops of the installed TensorFlow that the catalogue does not classify."""
    return [op for op in string_taking_ops(names) if op not in CATALOGUE]


def counts_by_kind(names: Iterable[str] | None = None) -> dict[str, int]:
    """How many of the installed TF's string-taking ops fall in each class."""
    c = Counter(CATALOGUE[op][0] for op in string_taking_ops(names) if op in CATALOGUE)
    return {k: c.get(k, 0) for k in KINDS}


@dataclass(frozen=True)
class StringUse:
    """One op that reads a string input's bytes: where, through which input arg, and its class."""

    node: str
    op: str
    arg: str
    kind: str
    why: str

    def describe(self) -> str:
        return f"{self.op} (node {self.node}, input {self.arg!r}; {self.kind}: {self.why})"


def _arg_at(groups: dict[str, list], pos: int) -> str:
    """The OpDef input arg that flattened input position ``pos`` belongs to ("" if unknown)."""
    start = 0
    for name, refs in groups.items():
        if start <= pos < start + len(refs):
            return name
        start += len(refs)
    return ""


def find_string_uses(meta_graph_def, tensor_name: str) -> list[StringUse]:
    """Every catalogued op that receives ``tensor_name``'s bytes unchanged.

    The walk carries the value through what moves strings without changing them
    (reshapes, slices, batching, ``map_fn``'s TensorLists, ``If``/``Case``/``While``
    and function calls), as the decoder walk does; ops outside the catalogue
    (custom kernels, TF Text) are not listed.
    """
    idx = index_for(meta_graph_def)
    start = idx.tensor_ref(tensor_name)
    if start is None:
        return []
    uses, seen = [], set()
    for node, pos in idx.walk_forward(start, content_passthrough):
        if (node.key, pos) in seen:
            continue
        seen.add((node.key, pos))
        c = classify(node.op, _arg_at(idx.input_groups(node), pos))
        if c is not None:
            uses.append(StringUse(node.qualified_name, node.op, c.arg, c.kind, c.why))
    return uses


def find_unsupported_use(meta_graph_def, tensor_name: str) -> StringUse | None:
    """The first op that needs what no value the tool writes can be (a file, a handle), or None."""
    return next((u for u in find_string_uses(meta_graph_def, tensor_name) if u.kind == UNSUPPORTED), None)


__all__ = ["DECODER", "FORMAT_FREE", "GUARD", "UNSUPPORTED", "KINDS", "OpClass", "StringUse", "classify",
           "string_args", "string_taking_ops", "uncatalogued_ops", "counts_by_kind", "registry_op_names",
           "find_string_uses", "find_unsupported_use"]
