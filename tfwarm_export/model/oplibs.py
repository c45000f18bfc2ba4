"""Op libraries: make every op the SavedModel's graph uses available before loading it.

TF Serving's ``tensorflow_model_server`` links the TF Text ops and the TF Decision
Forests inference ops, so models using them load there; a plain ``import
tensorflow`` has neither. Before a model is loaded (replay, ``check``, ``bench``)
the graph's unregistered ops are listed; user kernels (``op_libraries=[...]``, CLI
``--op-library``) are loaded with ``tf.load_op_library``; then each missing op's
providers (``OP_PROVIDERS``: every package known to register it, e.g. TF-DF *and*
``ydf-tf`` for the SimpleML ops) are tried in order and the first installed one is
imported. Anything still missing is one clear error naming the ops and the provider
that exists for the installed TensorFlow version.
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
class OpProvider:
    """A pip package whose import registers the kernels of some ops.

    Several packages can provide the same op (the SimpleML inference ops come from
    TF-DF and from ``ydf-tf``); which one exists depends on the TensorFlow version,
    so each provider says which TF releases it has wheels for.
    """

    title: str
    module: str
    pip: str
    prefixes: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    first_tf: tuple[int, int] | None = None
    last_tf: tuple[int, int] | None = None
    served_by: str = ""

    def provides(self, op: str) -> bool:
        return op in self.names or op.startswith(self.prefixes)

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:  # a dotted module whose parent package is absent
            return False

    def exists_for(self, tf_version: tuple[int, int]) -> bool:
        """Whether a wheel of this provider is built for that TensorFlow release."""
        return ((self.first_tf is None or tf_version >= self.first_tf)
                and (self.last_tf is None or tf_version <= self.last_tf))

    def releases(self) -> str:
        lo = ".".join(map(str, self.first_tf)) if self.first_tf else ""
        hi = ".".join(map(str, self.last_tf)) if self.last_tf else ""
        if lo and hi:
            return f"TensorFlow {lo} to {hi}"
        return f"TensorFlow {lo} and later" if lo else (f"TensorFlow {hi} and earlier" if hi else "")


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

# The inference ops in ydf-tf's inference.so (2.21.0.post1): the names TF-DF's exports use.
_SIMPLEML_INFERENCE_OPS = frozenset({
    "SimpleMLCreateModelResource", "SimpleMLInferenceLeafIndexOpWithHandle", "SimpleMLInferenceOp",
    "SimpleMLInferenceOpWithHandle", "SimpleMLLoadModelFromPath", "SimpleMLLoadModelFromPathWithHandle",
})

_SERVED = "the stock tensorflow_model_server links these ops (TF Serving >= 2.11), so it serves this model"

OP_PROVIDERS: tuple[OpProvider, ...] = (
    OpProvider("TF Text", "tensorflow_text", "tensorflow-text", ("TFText>",), _TF_TEXT_OPS,
               served_by="the stock tensorflow_model_server links TF Text (SentencePiece included), "
                         "so it serves this model"),
    # ydf-tf first: YDF is TF-DF's successor, and the only provider from TensorFlow 2.20 on.
    OpProvider("ydf-tf", "ydf_tf", "ydf ydf-tf", (), _SIMPLEML_INFERENCE_OPS, first_tf=(2, 18),
               served_by=_SERVED),
    OpProvider("TF Decision Forests", "tensorflow_decision_forests", "tensorflow-decision-forests",
               ("SimpleML", "YggdrasilDecisionForests"), last_tf=(2, 19), served_by=_SERVED),
    OpProvider("ScaNN (TF Recommenders' retrieval index)", "scann.scann_ops.py.scann_ops", "scann",
               ("Scann>", "Addons>Scann"),
               served_by="the stock tensorflow_model_server does not link ScaNN: serve it with a "
                         "model server built with ScaNN (the tf-serving-scann image)"),
)
"""Packages that register ops a SavedModel may use, preferred first among those providing one op."""


def tf_release(version: str | None = None) -> tuple[int, int]:
    """(major, minor) of a TensorFlow version string (the installed one by default)."""
    parts = (version or tf.__version__).split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def providers_of(op: str) -> list[OpProvider]:
    return [p for p in OP_PROVIDERS if p.provides(op)]


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


def _import(provider: OpProvider) -> str | None:
    """Import a provider; the reason when it is installed but cannot be imported."""
    try:
        importlib.import_module(provider.module)
    except Exception as e:  # a wheel built for another TF raises anything from ImportError to NotFoundError
        return f"{provider.pip.split()[-1]} is installed but cannot be imported ({type(e).__name__}: {e})"
    return None


def _overlap(a: OpProvider, b: OpProvider) -> bool:
    """Whether two providers register some op name in common (they cannot both load)."""
    return any(a.provides(op) for op in b.names) or any(b.provides(op) for op in a.names)


def ensure_ops(meta_graph: meta_graph_pb2.MetaGraphDef, op_libraries: Sequence[str] = (),
               export_dir: str = "") -> list[str]:
    """Make every op of ``meta_graph`` available; returns what was loaded or imported.

    User libraries are loaded first; then, for each op still missing, the first
    installed provider of it is imported (one provider per op: two packages
    registering the same op names cannot both load). Ops no provider claims (a TF
    Text release newer than our table) make every installed provider with a prefix
    family be tried once. Raises OpLibraryError naming the ops still missing, the
    provider that exists for this TensorFlow, and what TF Serving needs.
    """
    done = load_op_libraries(op_libraries)
    missing = unregistered_ops(meta_graph)
    if not missing:
        return done
    import_errors: list[str] = []
    tried: set[str] = set()

    def attempt(provider: OpProvider) -> None:
        if provider.module in tried or not provider.installed():
            return
        tried.add(provider.module)
        problem = _import(provider)
        if problem:
            import_errors.append(problem)
        else:
            done.append(provider.module)

    for op in missing:
        for provider in providers_of(op):
            if op_def_registry.get(op) is not None:
                break
            attempt(provider)
    if any(not providers_of(op) for op in missing):
        for provider in OP_PROVIDERS:
            if provider.prefixes and not any(p.module in done and _overlap(p, provider)
                                             for p in OP_PROVIDERS if p is not provider):
                attempt(provider)
    missing = unregistered_ops(meta_graph)
    if missing:
        raise OpLibraryError(missing_message(missing, export_dir, import_errors))
    return done


def missing_message(missing: Sequence[str], export_dir: str = "", import_errors: Sequence[str] = (),
                    tf_version: str | None = None, installed: Iterable[str] | None = None) -> str:
    """The error for ops no library registered: per op family, the provider to install for this TF.

    ``tf_version`` and ``installed`` (provider modules) default to this process's.
    """
    version = tf_version or tf.__version__
    release = tf_release(version)
    have = set(installed) if installed is not None else {p.module for p in OP_PROVIDERS if p.installed()}
    where = f"{export_dir} uses" if export_dir else "the model uses"
    lines = [f"{where} op(s) that TensorFlow {version} has not registered: {list(missing)}."]
    groups: dict[tuple[str, ...], list[str]] = {}
    for op in missing:
        groups.setdefault(tuple(p.module for p in providers_of(op)), []).append(op)
    for modules, ops in groups.items():
        if not modules:
            lines.append(f"{ops} are custom ops: load their kernel library with op_libraries=['path/to/"
                         "_ops.so'] (CLI: --op-library PATH). A stock TF Serving model server cannot load "
                         "this model either: it needs a model server built with these ops linked in.")
            continue
        providers = [p for p in OP_PROVIDERS if p.module in modules]
        fitting = [p for p in providers if p.exists_for(release)]
        if fitting:
            p = fitting[0]
            broken = " (it is installed but did not register them)" if p.module in have else ""
            others = [f"{o.title} ({o.releases()})" for o in providers if o is not p]
            also = f"; also provided by {', '.join(others)}" if others else ""
            lines.append(f"{ops} come from {p.title}: pip install {p.pip} (the release built for "
                         f"TensorFlow {version}){broken}{also}. TF Serving needs these ops too; "
                         f"{p.served_by}.")
        else:
            known = ", ".join(f"{p.title} (pip install {p.pip}; {p.releases()})" for p in providers)
            lines.append(f"{ops} come from {known}; none is built for TensorFlow {version}: use a "
                         "TensorFlow release one of them supports, or load a kernel library built for "
                         "this one with --op-library PATH.")
    lines += import_errors
    return " ".join(lines)
