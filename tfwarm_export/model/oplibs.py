"""Op libraries: make every op the SavedModel's graph uses available before loading it.

TF Serving's ``tensorflow_model_server`` links the TF Text ops and the TF Decision
Forests inference ops, so models using them load there; a plain ``import
tensorflow`` has neither. Before a model is loaded (replay, ``check``, ``bench``)
the graph's unregistered ops are listed; the op packages TF Serving links are
imported when installed and needed, user kernels (``op_libraries=[...]``, CLI
``--op-library``) are loaded with ``tf.load_op_library``; anything still missing
is one clear error naming the ops and who provides them.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import op_def_registry

from tfwarm_export.errors import OpLibraryError


@dataclass(frozen=True)
class OpPackage:
    """A Python package whose import registers ops that TF Serving's model server links."""

    module: str
    pip: str
    title: str
    prefixes: tuple[str, ...]
    names: frozenset[str]

    def provides(self, op: str) -> bool:
        return op in self.names or op.startswith(self.prefixes)

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


# Ops registered by ``import tensorflow_text`` (2.21); newer ones use the "TFText>" prefix.
_TF_TEXT_OPS = frozenset({
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap",
    "PhraseTokenize", "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentenceFragmentsV2",
    "SentencepieceDetokenizeOp", "SentencepieceIdToStringOp", "SentencepieceOp",
    "SentencepieceStringToIdOp", "SentencepieceTokenizeOp", "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp", "SplitMergeTokenizeWithOffsets", "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
})

SERVING_OP_PACKAGES: tuple[OpPackage, ...] = (
    OpPackage("tensorflow_text", "tensorflow-text", "TF Text", ("TFText>",), _TF_TEXT_OPS),
    OpPackage("tensorflow_decision_forests", "tensorflow-decision-forests", "TF Decision Forests",
              ("SimpleML", "YggdrasilDecisionForests"), frozenset()),
)
"""The op packages TF Serving's model server links (tensorflow_serving/model_servers/BUILD)."""

_LOADED_LIBRARIES: dict[str, object] = {}


def graph_ops(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """Every op type in the main graph and in every library function (calls excluded)."""
    library = meta_graph.graph_def.library
    functions = {f.signature.name for f in library.function}
    ops = {n.op for n in meta_graph.graph_def.node}
    for f in library.function:
        ops.update(n.op for n in f.node_def)
    return ops - functions


def unregistered_ops(meta_graph: meta_graph_pb2.MetaGraphDef) -> list[str]:
    """Op types the graph uses that this process has no kernel registration for."""
    return sorted(op for op in graph_ops(meta_graph) if op_def_registry.get(op) is None)


def load_op_libraries(paths: Iterable[str]) -> list[str]:
    """``tf.load_op_library`` each path once; a missing or broken library is an OpLibraryError."""
    loaded = []
    for path in paths:
        path = os.fspath(path)
        key = os.path.abspath(path)
        if key in _LOADED_LIBRARIES:
            continue
        if not os.path.isfile(path):
            raise OpLibraryError(f"op library {path!r} does not exist; pass the path of a compiled "
                                 "kernel library (.so) with op_libraries=[...] / --op-library PATH.")
        try:
            _LOADED_LIBRARIES[key] = tf.load_op_library(path)
        except (tf.errors.NotFoundError, tf.errors.OpError, OSError, RuntimeError) as e:
            raise OpLibraryError(f"op library {path!r} cannot be loaded by TensorFlow {tf.__version__}: "
                                 f"{getattr(e, 'message', e)}. Rebuild it against this TensorFlow "
                                 "version.") from None
        loaded.append(path)
    return loaded


def _import(package: OpPackage) -> str | None:
    """Import an op package; the reason when it is installed but cannot be imported."""
    try:
        importlib.import_module(package.module)
    except Exception as e:  # a wheel built for another TF raises anything from ImportError to NotFoundError
        return f"{package.module} is installed but cannot be imported ({type(e).__name__}: {e})"
    return None


def ensure_ops(meta_graph: meta_graph_pb2.MetaGraphDef, op_libraries: Sequence[str] = (),
               export_dir: str = "") -> list[str]:
    """Make every op of ``meta_graph`` available; returns what was loaded or imported.

    Raises OpLibraryError naming the ops still missing, which package provides them,
    and what TF Serving needs for the same model.
    """
    done = load_op_libraries(op_libraries)
    missing = unregistered_ops(meta_graph)
    if not missing:
        return done
    import_errors = []
    for package in SERVING_OP_PACKAGES:
        wanted = any(package.provides(op) for op in missing)
        unattributed = not any(p.provides(op) for op in missing for p in SERVING_OP_PACKAGES)
        if (wanted or unattributed) and package.installed():
            problem = _import(package)
            if problem:
                import_errors.append(problem)
            else:
                done.append(package.module)
    missing = unregistered_ops(meta_graph)
    if missing:
        raise OpLibraryError(_missing_message(missing, export_dir, import_errors))
    return done


def _missing_message(missing: list[str], export_dir: str, import_errors: list[str]) -> str:
    where = f"{export_dir} uses" if export_dir else "the model uses"
    lines = [f"{where} op(s) that TensorFlow {tf.__version__} has not registered: {missing}."]
    custom = list(missing)
    for package in SERVING_OP_PACKAGES:
        ops = [op for op in missing if package.provides(op)]
        if not ops:
            continue
        custom = [op for op in custom if op not in ops]
        lines.append(f"{ops} come from {package.title}: pip install {package.pip} (the release built "
                     f"for TensorFlow {tf.__version__}). TF Serving needs these ops too; the stock "
                     f"tensorflow_model_server links {package.title}, so it serves this model.")
    if custom:
        lines.append(f"{custom} are custom ops: load their kernel library with op_libraries=['path/to/"
                     "_ops.so'] (CLI: --op-library PATH). A stock TF Serving model server cannot load "
                     "this model either: it needs a model server built with these ops linked in.")
    lines += import_errors
    return " ".join(lines)
