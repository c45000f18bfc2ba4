"""Replay PredictionLogs in-process, the way TF Serving's warmup does.

TF Serving loads the SavedModel into a TF1-style Session (``LoadSavedModel``)
and, for each warmup record, validates the request against the SignatureDef,
feeds the signature's *tensor names* and fetches its outputs through that
Session (behind the batching session when batching is on). ``prepare`` encodes
those request rules; ``Replayer`` runs what ``prepare`` produced. A record that
passes here passes there; one that fails here would fail the model's load.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export._support import progress
from tfwarm_export._support.startup import capture_fd2, last_captured
from tfwarm_export.analysis import tensor_facts
from tfwarm_export.analysis.composites import DENSE_SHAPE, ROW_SPLITS, find_composites
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.errors import SavedModelError, tf_error_node, tf_error_text
from tfwarm_export.model.oplibs import ensure_ops
from tfwarm_export.serving.warmup_file import quiet_deprecations
from tfwarm_export.model.signatures import (CLASSIFY_METHOD, DEFAULT_SIGNATURE, PREDICT_METHOD,
                                      REGRESS_METHOD, read_saved_model_proto, select_meta_graph,
                                      tensor_spec_from_info)

RUNNABLE_LOG_TYPES = ("predict_log", "classify_log", "regress_log", "multi_inference_log")

_log = logging.getLogger("tfwarm_export.replay")


class RecordProblem(Exception):
    """Why TF Serving would reject one record (message only, no traceback).

    ``node``: ``(function, node name)`` of the graph node TensorFlow's error named, if any.
    """

    def __init__(self, message: str, node: tuple[str, str] | None = None):
        super().__init__(message)
        self.node = node


@dataclass
class PreparedRun:
    """A record turned into what TF Serving feeds: tensor name -> array, fetches, checks."""

    log_type: str
    signatures: tuple[str, ...]
    feeds: dict[str, np.ndarray]
    fetches: dict[str, str]  # "signature/alias" -> tensor name
    batch_size: int | None
    padded_to: int | None = None
    output_checks: list[Callable[[Mapping[str, np.ndarray], int | None], None]] = field(default_factory=list)
    # Checks TF Serving itself only enforces under batching: warnings without it.
    soft_checks: list[Callable[[Mapping[str, np.ndarray], int | None], None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def signature(self) -> str:
        return "+".join(self.signatures)


def _sig(meta_graph: meta_graph_pb2.MetaGraphDef, name: str) -> tuple[str, meta_graph_pb2.SignatureDef]:
    name = name or DEFAULT_SIGNATURE
    if name not in meta_graph.signature_def:
        raise RecordProblem(f'Serving signature key "{name}" not found (available: '
                            f'{sorted(k for k in meta_graph.signature_def if not k.startswith("__"))})')
    return name, meta_graph.signature_def[name]


def _compatible(shape: tuple, spec_shape: tuple | None) -> bool:
    if spec_shape is None:
        return True
    return len(shape) == len(spec_shape) and all(s is None or s == d for d, s in zip(shape, spec_shape))


def _serialized_examples(inp) -> np.ndarray:
    """The 1-D string tensor TF Serving builds from an Input proto."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        out = [e.SerializeToString(deterministic=True) for e in inp.example_list.examples]
    elif kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context.SerializeToString(deterministic=True)
        out = [ctx + e.SerializeToString(deterministic=True)
               for e in inp.example_list_with_context.examples]
    else:
        raise RecordProblem("Input is empty: the request carries no examples")
    if not out:
        raise RecordProblem("Input is empty: the request carries no examples")
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def _apply_batching(run: PreparedRun, batching: BatchingConfig | None) -> None:
    """Enforce the batching session's rules and pad to the allowed size, as TF Serving does."""
    if batching is None:
        return
    if not run.feeds:
        raise RecordProblem("batching: the run has no input tensors, and TF Serving's batching session "
                            "refuses it (\"Batching Run() must have at least one input tensor\")")
    dims = set()
    for name, value in run.feeds.items():
        if value.ndim == 0:
            raise RecordProblem(f"batching: input tensor {name} is rank 0; TF Serving's batching "
                                "session needs every input to have a batch dimension")
        dims.add(value.shape[0])
    if len(dims) > 1:
        raise RecordProblem(f"batching: inputs disagree on the batch (0th) dimension: {sorted(dims)}")
    (n,) = dims
    if n > batching.max_batch_size:
        raise RecordProblem(f"batching: batch of {n} exceeds max_batch_size {batching.max_batch_size}")
    padded = batching.padded_size(n)
    if padded < n:  # large batch splitting: the server runs it in pieces; replayed whole, as before
        padded = n
    if padded != n:
        for name, value in run.feeds.items():
            pad = np.repeat(value[:1], padded - n, axis=0)
            run.feeds[name] = np.concatenate([value, pad], axis=0)
    run.padded_to = padded


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int | None:
    """The request's batch size: the 0th dimension its batched inputs share (rank-0 inputs
    carry none), or None when there is no single one."""
    dims = {v.shape[0] for v in feeds.values() if v.ndim >= 1}
    return dims.pop() if len(dims) == 1 else None


def _composite_batch(meta_graph, sig, feeds: Mapping[str, np.ndarray]) -> int | None:
    """The request's batch when some inputs are parts of a ragged/sparse value: the number of
    rows its row_splits or dense_shape say (the parts' own 0th dimensions are not the batch)."""
    if len(feeds) < 2 or not meta_graph.object_graph_def.concrete_functions:
        return _batch_of(feeds)
    parts = find_composites(meta_graph, {a: (i.name, tf.dtypes.as_dtype(i.dtype))
                                         for a, i in sig.inputs.items() if i.dtype})
    if not parts:
        return _batch_of(feeds)
    dense = {i.name: feeds[i.name] for a, i in sig.inputs.items() if a not in parts and i.name in feeds}
    rows = set()
    for alias, part in parts.items():
        value = feeds.get(sig.inputs[alias].name)
        if value is None:
            continue
        if part.role == ROW_SPLITS and part.level == 1 and value.ndim == 1 and value.size:
            rows.add(int(value.size) - 1)
        elif part.role == DENSE_SHAPE and value.ndim == 1 and value.size:
            rows.add(int(value[0]))
    rows |= {v.shape[0] for v in dense.values() if v.ndim >= 1}
    return rows.pop() if len(rows) == 1 else None


def _prepare_predict(log, meta_graph) -> PreparedRun:
    request = log.predict_log.request
    name, sig = _sig(meta_graph, request.model_spec.signature_name)
    if sig.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise RecordProblem(f"signature {name!r} has method_name {sig.method_name!r}; Predict runs "
                            "only predict/classify/regress signatures")
    extra = sorted(set(request.inputs) - set(sig.inputs))
    missing = sorted(set(sig.inputs) - set(request.inputs) - set(sig.defaults))
    if extra or missing:
        raise RecordProblem(f"signature {name!r}: input aliases do not match: extra {extra}, missing "
                            f"{missing}; expected {sorted(sig.inputs)} (aliases, not tensor names)")
    feeds: dict[str, np.ndarray] = {}
    for alias, info in sig.inputs.items():
        spec = tensor_spec_from_info(alias, info)
        if spec.encoding != "dense":
            raise RecordProblem(f"signature {name!r}: input {alias!r} is {spec.encoding}; Predict "
                                "cannot feed it")
        if alias not in request.inputs:
            feeds[spec.name] = tf.make_ndarray(sig.defaults[alias])
            continue
        proto = request.inputs[alias]
        if proto.dtype != info.dtype:
            got = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
            # TF Serving does not compare dtypes; Session::Run needs the graph tensor's dtype,
            # which a legacy SignatureDef may misstate (or leave DT_INVALID).
            graph = tensor_facts.graph_tensor(meta_graph, spec.name, infer=False)
            if graph is None or graph.dtype is None or graph.dtype.as_datatype_enum != proto.dtype:
                raise RecordProblem(f"signature {name!r}: input {alias!r} has dtype {got}, the signature "
                                    f"expects {spec.dtype.name}")
        try:
            value = tf.make_ndarray(proto)
        except Exception as e:  # malformed TensorProto content
            raise RecordProblem(f"signature {name!r}: tensor parsing error for {alias!r}: {e}") from None
        if not _compatible(value.shape, spec.shape):
            raise RecordProblem(f"signature {name!r}: input {alias!r} has shape {list(value.shape)}, "
                                f"incompatible with the signature's {spec.shape_str()}")
        feeds[spec.name] = value
    wanted = list(request.output_filter) or sorted(sig.outputs)
    for alias in wanted:
        if alias not in sig.outputs:
            raise RecordProblem(f"signature {name!r}: output_filter alias {alias!r} not in "
                                f"{sorted(sig.outputs)}")
    fetches = {f"{name}/{a}": sig.outputs[a].name for a in wanted}
    return PreparedRun("predict_log", (name,), feeds, fetches, _composite_batch(meta_graph, sig, feeds),
                       soft_checks=[_check_output_batch])


def _check_output_batch(outputs: Mapping[str, np.ndarray], batch: int | None) -> None:
    if batch is None:
        return
    for key, value in sorted(outputs.items()):
        if value.ndim == 0 or value.shape[0] != batch:
            raise RecordProblem(f"output {key} has shape {list(value.shape)}, whose 0th dimension is "
                                f"not the request's batch size {batch}")


def _classify_output_check(name: str) -> Callable:
    def check(outputs: Mapping[str, np.ndarray], n: int | None) -> None:
        for alias, want in (("classes", "string"), ("scores", "float")):
            key = f"{name}/{alias}"
            if key not in outputs:
                continue
            value = outputs[key]
            ok = value.dtype == object if want == "string" else np.issubdtype(value.dtype, np.floating)
            if not ok:
                raise RecordProblem(f"classify {name!r}: {alias} must be {want}, got {value.dtype}")
            if value.ndim != 2:
                raise RecordProblem(f"classify {name!r}: expected {alias} of shape [batch_size, "
                                    f"num_classes], got {list(value.shape)}")
            _check_example_batch("classify", name, alias, value, n)
    return check


def _check_example_batch(kind: str, name: str, alias: str, value: np.ndarray, n: int | None) -> None:
    """Classify/Regress: the output batch must equal the number of examples sent."""
    if value.shape[0] != n:
        raise RecordProblem(f"{kind} {name!r}: {alias} batch size {value.shape[0]} does not match "
                            f"the {n} input examples")


def _regress_output_check(name: str) -> Callable:
    def check(outputs: Mapping[str, np.ndarray], n: int | None) -> None:
        value = outputs[f"{name}/outputs"]
        if not np.issubdtype(value.dtype, np.floating):
            raise RecordProblem(f"regress {name!r}: outputs must be float, got {value.dtype}")
        if not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
            raise RecordProblem(f"regress {name!r}: expected outputs of shape [batch_size] or "
                                f"[batch_size, 1], got {list(value.shape)}")
        _check_example_batch("regress", name, "outputs", value, n)
    return check


def _example_signature(meta_graph, sig_name: str, method: str):
    name, sig = _sig(meta_graph, sig_name)
    short = "classify" if method == CLASSIFY_METHOD else "regress"
    if sig.method_name != method:
        raise RecordProblem(f"signature {name!r} has method_name {sig.method_name!r}; a {short} request "
                            f"needs {method}")
    if set(sig.inputs) != {"inputs"}:
        raise RecordProblem(f"{short} signature {name!r} needs exactly one input named 'inputs', has "
                            f"{sorted(sig.inputs)}")
    info = sig.inputs["inputs"]
    # TF Serving's Classify/Regress never read this dtype; they feed strings to the tensor,
    # so what matters is the graph's dtype (legacy exports record float for a string placeholder).
    graph = (tensor_facts.graph_tensor(meta_graph, info.name, infer=False)
             if info.dtype != tf.string.as_datatype_enum else None)
    if info.dtype != tf.string.as_datatype_enum and (graph is None or graph.dtype != tf.string):
        raise RecordProblem(f"{short} signature {name!r}: input 'inputs' is "
                            f"{tf.dtypes.as_dtype(info.dtype).name}, but {short} feeds serialized "
                            "tf.Example strings")
    if method == CLASSIFY_METHOD:
        outs = set(sig.outputs)
        if not outs & {"classes", "scores"}:
            raise RecordProblem(f"classify signature {name!r} has neither 'classes' nor 'scores' outputs")
        fetches = {f"{name}/{a}": sig.outputs[a].name for a in sorted(outs & {"classes", "scores"})}
        return name, info.name, fetches, _classify_output_check(name)
    if "outputs" not in sig.outputs or len(sig.outputs) != 1:
        raise RecordProblem(f"regress signature {name!r} needs exactly one output named 'outputs', has "
                            f"{sorted(sig.outputs)}")
    return name, info.name, {f"{name}/outputs": sig.outputs["outputs"].name}, _regress_output_check(name)


def _prepare_examples(log, meta_graph) -> PreparedRun:
    log_type = log.WhichOneof("log_type")
    if log_type == "multi_inference_log":
        request = log.multi_inference_log.request
        if not request.tasks:
            raise RecordProblem("MultiInference request has no tasks")
        names = {t.model_spec.name for t in request.tasks}
        if len(names) != 1 or "" in names:
            raise RecordProblem(f"MultiInference tasks must share one non-empty model name, got {sorted(names)}")
        tasks = [(t.model_spec.signature_name, t.method_name) for t in request.tasks]
        for sig_name, method in tasks:
            if method not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise RecordProblem(f"MultiInference task {sig_name!r} has method {method!r}; only "
                                    "classify and regress are supported")
        inp = request.input
    else:
        request = getattr(log, log_type).request
        method = CLASSIFY_METHOD if log_type == "classify_log" else REGRESS_METHOD
        tasks = [(request.model_spec.signature_name, method)]
        inp = request.input
    examples = _serialized_examples(inp)
    feeds: dict[str, np.ndarray] = {}
    fetches: dict[str, str] = {}
    checks = []
    names = []
    for sig_name, method in tasks:
        name, tensor, f, check = _example_signature(meta_graph, sig_name, method)
        if feeds and tensor not in feeds:
            raise RecordProblem("MultiInference: the input tensor must be the same for all signatures")
        if name in names:
            raise RecordProblem(f"MultiInference: duplicate signature {name!r}")
        feeds[tensor] = examples
        fetches.update(f)
        checks.append(check)
        names.append(name)
    return PreparedRun(log_type, tuple(names), feeds, fetches, len(examples), output_checks=checks)


def prepare(log: prediction_log_pb2.PredictionLog, meta_graph: meta_graph_pb2.MetaGraphDef,
            batching: BatchingConfig | None = None) -> PreparedRun:
    """Validate ``log`` as TF Serving would before running it. Raises RecordProblem."""
    log_type = log.WhichOneof("log_type")
    if log_type not in RUNNABLE_LOG_TYPES:
        raise RecordProblem(f"log type {log_type or 'unset'!r} is not replayed by TF Serving warmup "
                            f"(only {', '.join(RUNNABLE_LOG_TYPES)}); it fails the model load")
    run = _prepare_predict(log, meta_graph) if log_type == "predict_log" else _prepare_examples(log, meta_graph)
    _apply_batching(run, batching)
    if batching is not None:  # the batching session splits every output along dim 0
        run.output_checks += run.soft_checks
        run.soft_checks = []
    return run


@dataclass
class RecordResult:
    """How one record fared; timings are of the first and second run of it."""

    index: int
    signature: str
    log_type: str
    batch_size: int | None
    ok: bool
    error: str = ""
    first_ms: float | None = None
    second_ms: float | None = None
    padded_to: int | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # alias -> how its values were made
    warnings: list[str] = field(default_factory=list)
    failed_function: str = ""  # where TensorFlow's error says the record failed ("" = main graph)
    failed_node: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Replayer:
    """A SavedModel loaded the way TF Serving loads it: a graph in a Session."""

    def __init__(self, export_dir: str, tags: Sequence[str] = ("serve",),
                 batching: BatchingConfig | None = None, session_config=None,
                 op_libraries: Sequence[str] = ()):
        """``session_config``: the ``ConfigProto`` TF Serving builds the Session with
        (``serving_config.resolve_server``); None is TF's default, as the server's flags give.
        ``op_libraries``: kernel libraries loaded before the model (see ``oplibs``)."""
        self.export_dir = export_dir
        self.batching = batching
        # TF Serving's model server links TF Text/TF-DF ops; list and load them before loading.
        ensure_ops(select_meta_graph(read_saved_model_proto(export_dir), list(tags), export_dir),
                   op_libraries, export_dir)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config)
        failure = None
        # The load runs the model's restore and init ops; kernels loaded from provider libraries
        # (ydf-tf's SimpleML ops) log INFO lines to fd 2 there whatever TF_CPP_MIN_LOG_LEVEL says.
        # Captured like TensorFlow's start-up (shown with ``tfwarm -v``), outside the timed part.
        with capture_fd2():
            start = time.perf_counter()
            try:
                with self.graph.as_default(), quiet_deprecations():
                    self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), export_dir)
            except Exception as e:  # raised below, once fd 2 is back: the error is ours to word
                failure = e
            self.load_ms = (time.perf_counter() - start) * 1000
        _log.debug("model load output (%s):\n%s", export_dir, last_captured())
        if failure is not None:
            self.session.close()
            raise SavedModelError(f"TensorFlow cannot load {export_dir} with tags {list(tags)}: "
                                  f"{getattr(failure, 'message', failure)}") from None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Replayer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, prepared: PreparedRun) -> tuple[dict[str, np.ndarray], float]:
        """Run one prepared record; returns outputs (sliced back to the request's batch) and ms."""
        keys = sorted(prepared.fetches)
        start = time.perf_counter()
        try:
            values = self.session.run([prepared.fetches[k] for k in keys], feed_dict=prepared.feeds)
        except tf.errors.OpError as e:
            raise RecordProblem(f"TensorFlow error: {type(e).__name__}: {tf_error_text(e)}",
                                node=tf_error_node(e)) from None
        except (ValueError, TypeError) as e:  # the Session's own feed checks (shape/dtype vs placeholder)
            raise RecordProblem(f"signature {prepared.signature!r}: the Session refused the feed: {e}") from None
        ms = (time.perf_counter() - start) * 1000
        outputs = dict(zip(keys, (np.asarray(v) for v in values)))
        n = prepared.batch_size
        if prepared.padded_to is not None and prepared.padded_to != n:
            for key, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != prepared.padded_to:
                    raise RecordProblem(f"batching: output {key} has shape {list(value.shape)}; the "
                                        f"batching session needs 0th dimension {prepared.padded_to}")
                outputs[key] = value[:n]
        elif self.batching is not None:
            for key, value in outputs.items():
                if value.ndim == 0:
                    raise RecordProblem(f"batching: output {key} is rank 0; the batching session "
                                        "needs a batch dimension on every output")
        for check in prepared.output_checks:
            check(outputs, n)
        for check in prepared.soft_checks:
            try:
                check(outputs, n)
            except RecordProblem as e:
                note = f"{e} (fine without batching; TF Serving's batching session would reject it)"
                if note not in prepared.warnings:
                    prepared.warnings.append(note)
        return outputs, ms

    def run_record(self, index: int, prepared: PreparedRun, iterations: int = 2,
                   compare_outputs: bool = False) -> RecordResult:
        """Run one prepared record ``iterations`` times; failures become a failed result.

        ``compare_outputs`` (parallel replay): warn when identical runs of the record
        give different outputs, i.e. it reads state that changes while it runs.
        """
        result = RecordResult(index, prepared.signature, prepared.log_type, prepared.batch_size, True,
                              padded_to=prepared.padded_to)
        try:
            timings, first = [], None
            for _ in range(max(1, iterations)):
                outputs, ms = self.run(prepared)
                timings.append(ms)
                if compare_outputs and first is None:
                    first = outputs
                elif compare_outputs and not _same_outputs(first, outputs):
                    note = ("identical runs of this record returned different outputs during parallel "
                            "warmup: the signature reads state that changes while it runs (another "
                            "signature's writes, its own, or random ops), so it is not safe to run "
                            "concurrently with them")
                    if note not in prepared.warnings:
                        prepared.warnings.append(note)
            result.warnings = list(prepared.warnings)
            result.first_ms = round(timings[0], 3)
            result.second_ms = round(timings[1], 3) if len(timings) > 1 else None
        except RecordProblem as e:
            result.ok, result.error = False, str(e)
            if e.node is not None:
                result.failed_function, result.failed_node = e.node
        return result

    def replay(self, logs: Sequence[prediction_log_pb2.PredictionLog], *, iterations: int = 2,
               threads: int = 1) -> list[RecordResult]:
        """Prepare and run each log ``iterations`` times (first/second timings).

        ``threads`` > 1 runs records concurrently, as TF Serving's
        ``num_model_warmup_threads`` does (each thread takes the next record).
        """
        results: list[RecordResult | None] = [None] * len(logs)
        runnable = []
        for i, log in enumerate(logs):
            log_type = log.WhichOneof("log_type") or "unset"
            try:
                runnable.append((i, prepare(log, self.meta_graph, self.batching)))
            except RecordProblem as e:
                results[i] = RecordResult(i, signature_name(log), log_type, None, False, str(e))
        for result in self.run_all(runnable, iterations=iterations, threads=threads):
            results[result.index] = result
        return [r for r in results if r is not None]

    def run_all(self, runnable: Sequence[tuple[int, PreparedRun]], *, iterations: int = 2,
                threads: int = 1) -> list[RecordResult]:
        """Run prepared records in order, or on ``threads`` threads (outputs compared across runs)."""
        if threads <= 1:
            return [self.run_record(i, prepared, iterations)
                    for i, prepared in progress.bar(runnable, desc="replay", unit="record")]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="warmup") as pool:
            done = pool.map(lambda item: self.run_record(item[0], item[1], iterations, True), runnable)
            return list(progress.bar(done, total=len(runnable), desc=f"replay ({threads} threads)",
                                     unit="record"))


def _same_outputs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    for key, x in a.items():
        y = b.get(key)
        if y is None or x.shape != y.shape:
            return False
        if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating):
            if not np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def signature_name(log: prediction_log_pb2.PredictionLog) -> str:
    log_type = log.WhichOneof("log_type")
    if log_type in ("predict_log", "classify_log", "regress_log"):
        return getattr(log, log_type).request.model_spec.signature_name or DEFAULT_SIGNATURE
    if log_type == "multi_inference_log":
        return "+".join(t.model_spec.signature_name for t in log.multi_inference_log.request.tasks)
    return ""
