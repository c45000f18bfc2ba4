"""Read a SavedModel's signatures statically, from ``saved_model.pb``.

TF Serving never runs Python: it reads the MetaGraphDef and feeds the tensor
names in each SignatureDef. Reading the proto (rather than ``tf.saved_model.load``)
means we see exactly what TF Serving sees, for TF1 builder exports and TF2 saves
alike.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from tfwarm_export.analysis import tensor_facts
from tfwarm_export.errors import SavedModelError, SignatureError

DEFAULT_TAGS: tuple[str, ...] = ("serve",)
DEFAULT_SIGNATURE = "serving_default"
INIT_OP_SIGNATURE = "__saved_model_init_op"

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

Shape = tuple  # tuple[int | None, ...]; None for an unknown dimension


SAVED_MODEL_MARKERS = ("saved_model.pb", "saved_model.pbtxt")
"""Either file makes a directory a SavedModel, for TF's loader and TF Serving alike."""


def is_saved_model(path: str) -> bool:
    """Whether ``path`` (a local path or a ``scheme://`` URI) holds a SavedModel."""
    join = (lambda m: path.rstrip("/") + "/" + m) if "://" in path else (lambda m: os.path.join(path, m))
    return any(tf.io.gfile.exists(join(m)) for m in SAVED_MODEL_MARKERS)


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output, as TF Serving sees it.

    ``shape`` is None when the rank is unknown; otherwise a tuple whose entries
    are None for unknown dimensions. ``encoding`` is "dense" for a plain tensor
    name, or "coo_sparse"/"composite" for encodings the Predict API cannot feed.
    """

    alias: str
    name: str
    dtype: tf.DType
    shape: Shape | None
    encoding: str = "dense"
    recovered: str = ""  # what was taken from the graph instead of the TensorInfo, and why
    problem: str = ""  # why the TensorInfo cannot be used as is (e.g. DT_INVALID, not recoverable)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def shape_str(self) -> str:
        if self.shape is None:
            return "<unknown rank>"
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"

    def to_dict(self) -> dict:
        return {
            "alias": self.alias,
            "tensor": self.name,
            "dtype": self.dtype.name,
            "shape": None if self.shape is None else list(self.shape),
            "encoding": self.encoding,
            **({"recovered": self.recovered} if self.recovered else {}),
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass(frozen=True)
class SignatureInfo:
    """A SignatureDef with inputs/outputs decoded and defaults as numpy arrays."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    defaults: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def required_inputs(self) -> list[str]:
        """Aliases a request must carry: every input without a default."""
        return [a for a in sorted(self.inputs) if a not in self.defaults]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "method_name": self.method_name,
            "inputs": [self.inputs[a].to_dict() for a in sorted(self.inputs)],
            "outputs": [self.outputs[a].to_dict() for a in sorted(self.outputs)],
            "defaults": sorted(self.defaults),
        }


@dataclass(frozen=True)
class ModelSignatures:
    """Everything about one MetaGraph that planning and replay need."""

    export_dir: str
    tags: tuple[str, ...]
    signatures: Mapping[str, SignatureInfo]
    meta_graph: meta_graph_pb2.MetaGraphDef

    def recoveries(self, names: Sequence[str] | None = None) -> list[str]:
        """One line per input whose dtype or shape came from the graph, for the plan's notes."""
        return [f"{s.name}/{spec.alias}: {spec.recovered}" for s in self.signatures.values()
                if names is None or s.name in names
                for spec in s.inputs.values() if spec.recovered]

    def get(self, name: str) -> SignatureInfo:
        try:
            return self.signatures[name]
        except KeyError:
            raise SignatureError(
                f"signature {name!r} not found in {self.export_dir} (tags {list(self.tags)}); "
                f"available: {sorted(self.signatures)}. Pass one of those names."
            ) from None


def _shape_from_proto(proto) -> Shape | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def tensor_spec_from_info(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    """The TensorInfo as written. A missing ``tensor_shape`` is an unknown shape (old TF1
    exports omit it), never a scalar; a missing dtype is reported in ``problem``."""
    encoding = info.WhichOneof("encoding") or "name"
    name = info.name if encoding == "name" else ""
    if encoding == "coo_sparse":
        name = info.coo_sparse.values_tensor_name
    problem = ""
    try:
        dtype = tf.dtypes.as_dtype(info.dtype) if info.dtype else None
    except TypeError:
        dtype = None
    if dtype is None:
        problem = f"its TensorInfo has no valid dtype ({info.dtype})"
    return TensorSpec(
        alias=alias,
        name=name,
        # float32 only fills the field; ``problem`` marks it unusable until the graph says.
        dtype=dtype if dtype is not None else tf.float32,
        shape=_shape_from_proto(info.tensor_shape) if info.HasField("tensor_shape") else None,
        encoding={"name": "dense", "coo_sparse": "coo_sparse"}.get(encoding, "composite"),
        problem=problem,
    )


def _reconcile(meta_graph: meta_graph_pb2.MetaGraphDef, info: meta_graph_pb2.TensorInfo,
               spec: TensorSpec) -> TensorSpec:
    """Align an input's spec with the graph tensor it names: ``Session::Run`` follows the graph.

    A missing shape is recovered from the placeholder or TF shape inference; a dtype the
    graph contradicts (or DT_INVALID) becomes the graph's dtype; ``recovered`` says so.
    """
    if spec.encoding != "dense":
        return spec
    shape_missing = not info.HasField("tensor_shape")
    needs_inference = shape_missing or bool(spec.problem)
    facts = tensor_facts.graph_tensor(meta_graph, spec.name, infer=needs_inference)
    if facts is None:
        if spec.problem:
            return dataclasses.replace(spec, problem=spec.problem + " and the graph has no tensor "
                                       f"{spec.name!r} to read it from")
        return spec
    changes: dict = {}
    said = []
    if facts.dtype is not None and (spec.problem or facts.dtype != spec.dtype):
        declared = "DT_INVALID" if spec.problem else spec.dtype.name
        changes.update(dtype=facts.dtype, problem="")
        said.append(f"dtype {facts.dtype.name} from the graph ({facts.source}); the SignatureDef "
                    f"says {declared}, but Session.run only accepts {facts.dtype.name}")
    if shape_missing:
        changes["shape"] = facts.shape
        said.append("no tensor_shape in the SignatureDef; shape "
                    + ("unknown" if facts.shape is None else
                       "(" + ", ".join("?" if d is None else str(d) for d in facts.shape) + ")")
                    + f" from the graph ({facts.source})")
    if not changes:
        return spec
    return dataclasses.replace(spec, recovered="; ".join(said), **changes)


def signature_from_def(name: str, sig: meta_graph_pb2.SignatureDef,
                       meta_graph: meta_graph_pb2.MetaGraphDef | None = None) -> SignatureInfo:
    """Decode one SignatureDef; with ``meta_graph``, inputs are reconciled with the graph."""
    defaults = {}
    for alias, proto in sig.defaults.items():
        try:
            defaults[alias] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as e:
            raise SavedModelError(f"signature {name!r}: the default value of input {alias!r} cannot "
                                  f"be decoded ({e}); re-export the model.") from None
    inputs = {a: tensor_spec_from_info(a, i) for a, i in sorted(sig.inputs.items())}
    if meta_graph is not None:
        inputs = {a: _reconcile(meta_graph, sig.inputs[a], s) for a, s in inputs.items()}
    return SignatureInfo(
        name=name,
        method_name=sig.method_name,
        inputs=inputs,
        outputs={a: tensor_spec_from_info(a, i) for a, i in sorted(sig.outputs.items())},
        defaults=defaults,
    )


def read_saved_model_proto(export_dir: str) -> saved_model_pb2.SavedModel:
    """Parse ``saved_model.pb`` (or ``.pbtxt``) with a clear error when absent or corrupt."""
    export_dir = os.fspath(export_dir)
    pb_path = os.path.join(export_dir, "saved_model.pb")
    txt_path = os.path.join(export_dir, "saved_model.pbtxt")
    proto = saved_model_pb2.SavedModel()
    if tf.io.gfile.exists(pb_path):
        try:
            with tf.io.gfile.GFile(pb_path, "rb") as f:
                proto.ParseFromString(f.read())
        except (pb_message.DecodeError, ValueError) as e:
            raise SavedModelError(
                f"{pb_path} is not a valid SavedModel proto ({e}). The export may be "
                "truncated or corrupt: re-export the model."
            ) from None
        return proto
    if tf.io.gfile.exists(txt_path):
        try:
            with tf.io.gfile.GFile(txt_path, "r") as f:
                text_format.Parse(f.read(), proto)
        except text_format.ParseError as e:
            raise SavedModelError(f"{txt_path} cannot be parsed ({e}); re-export the model.") from None
        return proto
    hint = ""
    if tf.io.gfile.isdir(export_dir):
        versions = sorted(d.rstrip("/") for d in tf.io.gfile.listdir(export_dir) if d.rstrip("/").isdigit())
        if versions:
            hint = (f" It looks like a model base path: pass a version directory such as "
                    f"{os.path.join(export_dir, versions[-1])}.")
    else:
        hint = " The directory does not exist."
    raise SavedModelError(
        f"no SavedModel at {export_dir}: neither saved_model.pb nor saved_model.pbtxt is there.{hint}"
    )


def select_meta_graph(proto: saved_model_pb2.SavedModel, tags: Sequence[str], export_dir: str):
    """Pick the MetaGraph whose tag set equals ``tags``, as TF Serving's loader does."""
    wanted = set(tags)
    for mg in proto.meta_graphs:
        if set(mg.meta_info_def.tags) == wanted:
            return mg
    available = [sorted(mg.meta_info_def.tags) for mg in proto.meta_graphs]
    raise SavedModelError(
        f"{export_dir} has no MetaGraph with tags {sorted(wanted)}; available tag sets: "
        f"{available}. Pass tags=... (CLI: --tags) matching the one TF Serving should load."
    )


def read_signatures(export_dir: str, tags: Sequence[str] = DEFAULT_TAGS) -> ModelSignatures:
    """Read every servable SignatureDef of ``export_dir`` for the MetaGraph ``tags``.

    Statically, from ``saved_model.pb``, as TF Serving sees them: nothing is loaded into
    a session. Legacy TF1 exports get their missing shapes and dtypes from the graph.

    Args:
      export_dir: the SavedModel version directory.
      tags: the MetaGraph tag set (TF Serving loads ``("serve",)``).

    Returns:
      The model's signatures (``ModelSignatures``: inputs with aliases, tensor names,
      dtypes and shapes; method names; defaults) and its MetaGraph.

    Raises:
      SavedModelError: no SavedModel at ``export_dir``, a corrupt one, or no MetaGraph
        with ``tags``.
    """
    export_dir = os.fspath(export_dir)
    tags = tuple(tags) or DEFAULT_TAGS
    proto = read_saved_model_proto(export_dir)
    mg = select_meta_graph(proto, tags, export_dir)
    sigs = {
        name: signature_from_def(name, sig, mg)
        for name, sig in sorted(mg.signature_def.items())
        if name != INIT_OP_SIGNATURE
    }
    return ModelSignatures(export_dir=export_dir, tags=tags, signatures=sigs, meta_graph=mg)
