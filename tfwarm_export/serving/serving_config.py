"""The configuration TF Serving will load a model under: platform config, per-model
batching, ``saved_model_config.pb``, and the session ``ConfigProto`` built from them.

A replay only predicts a load when it runs under the server's settings, so this
module reads the three inputs TF Serving reads (all parsed as strictly as TF
Serving parses them: an unknown field is an error naming its line):

* ``--platform_config_file``: a text ``PlatformConfigMap`` whose ``tensorflow``
  entry's ``source_adapter_config`` is a ``google.protobuf.Any`` holding a
  ``SavedModelBundleSourceAdapterConfig`` (or the older
  ``SessionBundleSourceAdapterConfig``) around a ``SessionBundleConfig``;
* ``batching_params.pbtxt`` in the version directory, used instead of the common
  batching parameters with ``--enable_per_model_batching_params``
  (``GetPerModelBatchingParams`` in ``servables/tensorflow/bundle_factory_util.cc``);
* ``assets.extra/saved_model_config.pb`` (binary ``SavedModelConfig``), whose
  ``session_overrides`` rewrite the session's ``RewriterConfig`` when
  ``enable_saved_model_config`` is set (``saved_model_config_util.cc``).

Where the message definitions come from: ``tensorflow-serving-api`` ships none of
the messages below (``config/platform_config_pb2`` only from 2.21 on), so their
descriptors are built here with ``descriptor_pb2``, field for field (names, numbers,
types) from TF Serving's ``tensorflow_serving/config/platform_config.proto``
(``PlatformConfig``, ``PlatformConfigMap``),
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``
(``ModelWarmupOptions``, ``SessionBundleConfig``),
``saved_model_bundle_source_adapter.proto`` (``SavedModelBundleSourceAdapterConfig``),
``session_bundle_source_adapter.proto`` (``SessionBundleSourceAdapterConfig``) and
``saved_model_config.proto`` (``SavedModelConfig``, ``SessionOverrides``).
``BatchingParameters`` is ``batching.py``'s descriptor (one definition in the
project); ``ConfigProto`` and ``NamedTensorProto`` are TensorFlow's own. The two
grappler configs inside ``SessionOverrides`` (``RemoteOpRemapConfig``,
``BatchOpRewriteConfig``) are opaque here: only their presence matters, because
the optimizers that read them exist only inside the model server binary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import any_pb2, wrappers_pb2
from tensorflow.core.protobuf import config_pb2, named_tensor_pb2

from tfwarm_export.serving.batching import BatchingConfig, BatchingParameters, parse_batching_parameters
from tfwarm_export.errors import ServingConfigError

PER_MODEL_BATCHING_FILE = "batching_params.pbtxt"
SAVED_MODEL_CONFIG_FILE = os.path.join("assets.extra", "saved_model_config.pb")
TENSORFLOW_PLATFORM = "tensorflow"
PER_MODEL_NOTE = ("per-model batching params found; TF Serving uses them with "
                  "--enable_per_model_batching_params")

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "tensorflow.serving"


def _add_file_and_deps(pool: descriptor_pool.DescriptorPool, file_desc, done: set[str]) -> None:
    """Copy a compiled file (and what it imports) into ``pool``, dependencies first."""
    if file_desc.name in done:
        return
    for dep in file_desc.dependencies:
        _add_file_and_deps(pool, dep, done)
    pool.AddSerializedFile(file_desc.serialized_pb)
    done.add(file_desc.name)


def _message(fdp, name: str, fields: list[tuple]) -> None:
    """Add message ``name`` with (field name, number, type, type_name or None, label) fields."""
    msg = fdp.message_type.add(name=name)
    for fname, number, ftype, type_name, label in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    done: set[str] = set()
    for dep in (wrappers_pb2.DESCRIPTOR, any_pb2.DESCRIPTOR, config_pb2.DESCRIPTOR,
                named_tensor_pb2.DESCRIPTOR, BatchingParameters.DESCRIPTOR.file):
        _add_file_and_deps(pool, dep, done)
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg, i32, i64, u64, b, s = (_F.TYPE_MESSAGE, _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT64,
                                _F.TYPE_BOOL, _F.TYPE_STRING)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="tfwarm_export/serving_config.proto", package=_PKG, syntax="proto3",
        dependency=["google/protobuf/wrappers.proto", "google/protobuf/any.proto",
                    "tensorflow/core/protobuf/config.proto",
                    "tensorflow/core/protobuf/named_tensor.proto",
                    BatchingParameters.DESCRIPTOR.file.name])
    # session_bundle_config.proto
    _message(fdp, "ModelWarmupOptions", [
        ("num_request_iterations", 1, msg, ".google.protobuf.Int32Value", opt),
        ("num_model_warmup_threads", 2, msg, ".google.protobuf.Int32Value", opt),
        ("model_name", 3, s, None, opt),
        ("model_version", 4, i64, None, opt),
        ("enable_all_batch_sizes_warmup", 5, b, None, opt),
    ])
    _message(fdp, "SessionBundleConfig", [
        ("session_target", 1, s, None, opt),
        ("session_config", 2, msg, ".tensorflow.ConfigProto", opt),
        ("batching_parameters", 3, msg, f".{_PKG}.BatchingParameters", opt),
        ("session_run_load_threadpool_index", 4, msg, ".google.protobuf.Int32Value", opt),
        ("experimental_transient_ram_bytes_during_load", 5, u64, None, opt),
        ("saved_model_tags", 6, s, None, rep),
        ("experimental_fixed_input_tensors", 778, msg, ".tensorflow.NamedTensorProto", rep),
        ("enable_model_warmup", 779, b, None, opt),
        ("model_warmup_options", 780, msg, f".{_PKG}.ModelWarmupOptions", opt),
        ("enable_session_metadata", 781, b, None, opt),
        ("remove_unused_fields_from_bundle_metagraph", 782, b, None, opt),
        ("prefer_tflite_model", 783, b, None, opt),
        ("resource_estimation_uses_validation_result", 784, b, None, opt),
        ("num_tflite_interpreters", 785, i32, None, opt),
        ("num_tflite_interpreters_per_pool", 786, i32, None, opt),
        ("num_tflite_pools", 787, i32, None, opt),
        ("wrap_session_with_no_threading_params", 788, b, None, opt),
        ("enable_per_model_batching_params", 789, b, None, opt),
        ("enable_saved_model_config", 790, b, None, opt),
    ])
    # platform_config.proto (a map field is a repeated nested *Entry message with map_entry set)
    _message(fdp, "PlatformConfig", [
        ("source_adapter_config", 1, msg, ".google.protobuf.Any", opt)])
    pcm = fdp.message_type.add(name="PlatformConfigMap")
    pcm.field.add(name="platform_configs", number=1, type=msg, label=rep,
                  type_name=f".{_PKG}.PlatformConfigMap.PlatformConfigsEntry")
    entry = pcm.nested_type.add(name="PlatformConfigsEntry")
    entry.field.add(name="key", number=1, type=s, label=opt)
    entry.field.add(name="value", number=2, type=msg, label=opt, type_name=f".{_PKG}.PlatformConfig")
    entry.options.map_entry = True
    # saved_model_bundle_source_adapter.proto / session_bundle_source_adapter.proto
    _message(fdp, "SavedModelBundleSourceAdapterConfig", [
        ("legacy_config", 1000, msg, f".{_PKG}.SessionBundleConfig", opt)])
    _message(fdp, "SessionBundleSourceAdapterConfig", [
        ("config", 1, msg, f".{_PKG}.SessionBundleConfig", opt)])
    # saved_model_config.proto (the grappler configs are opaque placeholders, see module doc)
    _message(fdp, "RemoteOpRemapConfig", [])
    _message(fdp, "BatchOpRewriteConfig", [])
    _message(fdp, "RuntimeConfigProto", [])
    _message(fdp, "SessionOverrides", [
        ("remote_op_remap_config", 1, msg, f".{_PKG}.RemoteOpRemapConfig", opt),
        ("batch_op_rewriter_config", 2, msg, f".{_PKG}.BatchOpRewriteConfig", opt),
        ("disable_meta_optimizer", 3, b, None, opt),
    ])
    _message(fdp, "SavedModelConfig", [
        ("session_overrides", 1, msg, f".{_PKG}.SessionOverrides", opt),
        ("tfrt_runtime_config", 2, msg, f".{_PKG}.RuntimeConfigProto", opt),
        ("critical", 3, b, None, opt),
    ])
    pool.AddSerializedFile(fdp.SerializeToString())
    return pool


POOL = _build_pool()


def _cls(name: str):
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{_PKG}.{name}"))


PlatformConfigMap = _cls("PlatformConfigMap")
SessionBundleConfig = _cls("SessionBundleConfig")
ModelWarmupOptions = _cls("ModelWarmupOptions")
SavedModelBundleSourceAdapterConfig = _cls("SavedModelBundleSourceAdapterConfig")
SessionBundleSourceAdapterConfig = _cls("SessionBundleSourceAdapterConfig")
SavedModelConfig = _cls("SavedModelConfig")
_ADAPTERS = {
    SavedModelBundleSourceAdapterConfig.DESCRIPTOR.full_name: ("legacy_config", SavedModelBundleSourceAdapterConfig),
    SessionBundleSourceAdapterConfig.DESCRIPTOR.full_name: ("config", SessionBundleSourceAdapterConfig),
}


def _parse_error(path: str, what: str, e: text_format.ParseError, hint: str) -> ServingConfigError:
    line = e.GetLine()
    where = f"{path}, line {line}" if line else path
    return ServingConfigError(f"{where}: not a valid text-format {what}: {str(e).rstrip('.')}. TF Serving refuses "
                              f"this file too. {hint}")


def _read_text(path: str, what: str) -> str:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise ServingConfigError(f"{what} file {path} does not exist; pass the file given to "
                                 "tensorflow_model_server.")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ServingConfigError(f"{path} is not a text file; {what} is read as a text-format "
                                 "proto.") from None


def parse_platform_config(text: str, source: str = "<string>"):
    """The ``SessionBundleConfig`` for the ``tensorflow`` platform of a text ``PlatformConfigMap``."""
    pcm = PlatformConfigMap()
    try:
        text_format.Parse(text, pcm, descriptor_pool=POOL)
    except text_format.ParseError as e:
        raise _parse_error(source, "PlatformConfigMap", e,
                           "Check the field names against TF Serving's session_bundle_config.proto; "
                           "the adapter config is written as source_adapter_config { "
                           "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"
                           " { legacy_config { ... } } }.") from None
    if TENSORFLOW_PLATFORM not in pcm.platform_configs:
        raise ServingConfigError(
            f"{source}: no '{TENSORFLOW_PLATFORM}' entry in platform_configs (found "
            f"{sorted(pcm.platform_configs)}); TF Serving loads SavedModels through that platform.")
    any_msg = pcm.platform_configs[TENSORFLOW_PLATFORM].source_adapter_config
    type_name = any_msg.TypeName()
    if type_name not in _ADAPTERS:
        raise ServingConfigError(
            f"{source}: the tensorflow platform's source_adapter_config holds "
            f"{type_name or 'nothing'}; tfwarm replays the Session runtime, configured by "
            f"{' or '.join(sorted(_ADAPTERS))}.")
    attr, cls = _ADAPTERS[type_name]
    adapter = cls()
    any_msg.Unpack(adapter)
    return getattr(adapter, attr)


def load_platform_config(path: str | os.PathLike):
    """Read ``--platform_config_file``; returns its ``SessionBundleConfig``."""
    path = os.fspath(path)
    return parse_platform_config(_read_text(path, "platform config"), source=path)


def load_saved_model_config(export_dir: str):
    """``assets.extra/saved_model_config.pb`` (binary ``SavedModelConfig``), or None if absent."""
    import tensorflow as tf

    path = os.path.join(export_dir, SAVED_MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    proto = SavedModelConfig()
    try:
        proto.ParseFromString(data)
    except Exception:  # DecodeError: TF Serving fails the load with "Unable to parse"
        raise ServingConfigError(f"{path}: unable to parse SavedModelConfig (binary proto); TF "
                                 "Serving fails the model load on it with enable_saved_model_config. "
                                 "Rewrite it with SavedModelConfig.SerializeToString().") from None
    return proto


def per_model_batching_path(export_dir: str) -> str:
    return os.path.join(export_dir, PER_MODEL_BATCHING_FILE)


def load_per_model_batching(export_dir: str) -> BatchingConfig | None:
    """``batching_params.pbtxt`` of the version directory, parsed like any batching file."""
    import tensorflow as tf

    path = per_model_batching_path(export_dir)
    if not tf.io.gfile.exists(path):
        return None
    return parse_batching_parameters(_read_text(path, "per-model batching params"), source=path)


@dataclass
class ServerSettings:
    """What the model server will do with this model, and how faithfully replay copies it.

    ``applied`` lists settings the in-process replay reproduces; ``not_reproduced``
    those it cannot (with why); ``notes`` go into the plan; ``warnings`` are things
    the user must act on (e.g. warmup disabled).
    """

    source: str = ""
    batching: BatchingConfig | None = None
    session_config: Any = None  # tf ConfigProto for the replay Session
    warmup_enabled: bool = True
    num_request_iterations: int = 1
    num_model_warmup_threads: int = 1
    tags: tuple[str, ...] = ()
    model_name: str = ""
    applied: list[str] = field(default_factory=list)
    not_reproduced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "warmup_enabled": self.warmup_enabled,
                "batching": self.batching.to_dict() if self.batching else None,
                "num_request_iterations": self.num_request_iterations,
                "num_model_warmup_threads": self.num_model_warmup_threads,
                "tags": list(self.tags), "applied": list(self.applied),
                "not_reproduced": list(self.not_reproduced), "notes": list(self.notes),
                "warnings": list(self.warnings)}

    def summary_lines(self, notes: bool = False) -> list[str]:
        lines = [f"  warning: {w}" for w in self.warnings]
        if notes:
            lines += [f"  note: {n}" for n in self.notes]
        if self.source:
            lines.append(f"  server config from {self.source}:")
            lines += [f"    applied in replay: {a}" for a in self.applied]
            lines += [f"    not reproduced in-process: {n}" for n in self.not_reproduced]
        return lines


def _gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# ConfigProto fields the in-process Session honours as the server's would, and those it cannot.
_SESSION_APPLIED = {
    "intra_op_parallelism_threads": "TF's CPU thread pools are per process: honoured when this is "
                                    "the first Session of the process, as in the model server",
    "inter_op_parallelism_threads": "",
    "use_per_session_threads": "",
    "session_inter_op_thread_pool": "",
    "graph_options": "",
    "allow_soft_placement": "",
    "log_device_placement": "",
    "operation_timeout_in_ms": "",
    "placement_period": "",
    "device_filters": "",
    "isolate_session_state": "",
    "share_cluster_devices_in_session": "",
    "experimental": "",
}


def _session_fidelity(session_config, settings: ServerSettings) -> None:
    gpu = _gpu_available()
    for fd, value in session_config.ListFields():
        name = fd.name
        if name == "gpu_options" or (name == "device_count" and any(k == "GPU" for k in value)):
            if gpu:
                settings.applied.append(f"session_config.{name}")
            else:
                settings.not_reproduced.append(
                    f"session_config.{name}: no GPU on this machine, so GPU memory and device "
                    "options cannot be exercised; replay runs on CPU")
        elif name in ("cluster_def", "rpc_options"):
            settings.not_reproduced.append(f"session_config.{name}: distributed sessions are not "
                                           "replayed (replay is one local Session)")
        elif name in _SESSION_APPLIED:
            why = _SESSION_APPLIED[name]
            settings.applied.append(f"session_config.{name}" + (f" ({why})" if why else ""))
        else:
            settings.applied.append(f"session_config.{name} (passed to the Session as is)")


def _apply_saved_model_config(export_dir: str, session_config, settings: ServerSettings) -> None:
    """``UpdateRewriterConfig`` from TF Serving's saved_model_config_util.cc, where reproducible."""
    smc = load_saved_model_config(export_dir)
    if smc is None:
        settings.applied.append(f"enable_saved_model_config (no {SAVED_MODEL_CONFIG_FILE} in the "
                                "model: nothing to override)")
        return
    overrides = smc.session_overrides
    rewrite = session_config.graph_options.rewrite_options
    rewrite.disable_meta_optimizer = bool(overrides.disable_meta_optimizer)
    settings.applied.append(f"{SAVED_MODEL_CONFIG_FILE}: session_overrides.disable_meta_optimizer="
                            f"{str(bool(overrides.disable_meta_optimizer)).lower()} "
                            "(graph_options.rewrite_options)")
    for fname, optimizer in (("remote_op_remap_config", "RemoteOpConfigRewriter"),
                             ("batch_op_rewriter_config", "batch_op_rewriter")):
        if overrides.HasField(fname):
            settings.not_reproduced.append(
                f"{SAVED_MODEL_CONFIG_FILE}: session_overrides.{fname} configures grappler's "
                f"{optimizer}, which only the model server binary registers")
    if smc.HasField("tfrt_runtime_config"):
        settings.not_reproduced.append(f"{SAVED_MODEL_CONFIG_FILE}: tfrt_runtime_config applies to "
                                       "the TFRT runtime only; the Session runtime ignores it")


def resolve_server(export_dir: str, *, platform_config: Any = None, batching_parameters: Any = None,
                   ignore_per_model_batching: bool = False) -> ServerSettings:
    """The settings TF Serving would load ``export_dir`` with, decided as the server decides them.

    Batching: an explicit batching file stands for ``--enable_batching
    --batching_parameters_file``; otherwise the platform config's
    ``batching_parameters``. ``batching_params.pbtxt`` in the version directory
    replaces them (``--enable_per_model_batching_params``); without a platform
    config the tool assumes that flag is on when the file exists, unless
    ``ignore_per_model_batching``. With a platform config, its
    ``enable_per_model_batching_params`` decides, as in ``GetPerModelBatchingParams``.
    """
    settings = ServerSettings()
    sbc = None
    if platform_config is not None:
        if isinstance(platform_config, (str, os.PathLike)):
            settings.source = os.fspath(platform_config)
            sbc = load_platform_config(platform_config)
        elif isinstance(platform_config, SessionBundleConfig):
            settings.source = "SessionBundleConfig"
            sbc = platform_config
        else:
            raise ServingConfigError(
                f"platform_config must be a path to a --platform_config_file or a "
                f"SessionBundleConfig, got {type(platform_config).__name__}.")

    common = batching_parameters
    if common is not None and not isinstance(common, BatchingConfig):
        from tfwarm_export.serving.batching import load_batching_parameters

        common = load_batching_parameters(common)
    session_config = config_pb2.ConfigProto()
    if sbc is not None:
        _from_platform(sbc, export_dir, settings, session_config)
        if common is None and sbc.HasField("batching_parameters"):
            text = text_format.MessageToString(sbc.batching_parameters)
            common = parse_batching_parameters(
                text, source=f"{settings.source} (session_bundle_config.batching_parameters)")
        batching_on = common is not None
        if sbc.wrap_session_with_no_threading_params:
            if common is not None:
                settings.notes.append("wrap_session_with_no_threading_params is set: TF Serving does "
                                      "not wrap the session for batching, so neither is replay")
            common, batching_on = None, False
        per_model_on = sbc.enable_per_model_batching_params and not ignore_per_model_batching
    else:
        batching_on = True  # the per-model file implies batching when no platform config says otherwise
        per_model_on = not ignore_per_model_batching

    import tensorflow as tf

    batching = common
    per_model_path = per_model_batching_path(export_dir)
    if tf.io.gfile.exists(per_model_path):  # parsed only where TF Serving would read it
        if ignore_per_model_batching:
            settings.notes.append(f"{PER_MODEL_BATCHING_FILE} found but ignored "
                                  "(ignore_per_model_batching): the server runs without "
                                  "--enable_per_model_batching_params")
        elif sbc is not None and not sbc.enable_per_model_batching_params:
            settings.notes.append(f"{PER_MODEL_BATCHING_FILE} found, but the platform config does not "
                                  "set enable_per_model_batching_params, so TF Serving ignores it")
        elif sbc is not None and not batching_on:
            settings.notes.append(f"{PER_MODEL_BATCHING_FILE} found, but the platform config sets no "
                                  "batching_parameters; TF Serving reads the per-model file only when "
                                  "batching is enabled, so it is ignored")
        elif per_model_on:
            batching = load_per_model_batching(export_dir)
            settings.notes.append(PER_MODEL_NOTE + f" ({per_model_path}"
                                  + (f"; replaces {common.source}" if common is not None else "") + ")")
    elif sbc is not None and per_model_on and batching_on:
        settings.notes.append(f"enable_per_model_batching_params is set but {per_model_path} does not "
                              "exist: TF Serving then runs this model WITHOUT batching, and so does replay")
        batching = None
    settings.batching = batching
    settings.session_config = session_config
    return settings


def _from_platform(sbc, export_dir: str, settings: ServerSettings, session_config) -> None:
    """Fill ``settings`` from a ``SessionBundleConfig`` (everything but batching)."""
    src = settings.source
    settings.warmup_enabled = bool(sbc.enable_model_warmup)
    if not settings.warmup_enabled:
        settings.warnings.append(
            f"{src} does not set enable_model_warmup: true, so TF Serving ignores "
            "assets.extra/tf_serving_warmup_requests and the first requests stay cold. Add "
            "'enable_model_warmup: true' to its legacy_config.")
    opts = sbc.model_warmup_options
    if opts.HasField("num_request_iterations"):
        settings.num_request_iterations = max(1, int(opts.num_request_iterations.value))
        settings.applied.append(f"model_warmup_options.num_request_iterations: each record runs "
                                f"{settings.num_request_iterations} time(s)")
    if opts.HasField("num_model_warmup_threads"):
        settings.num_model_warmup_threads = max(1, int(opts.num_model_warmup_threads.value))
        settings.applied.append(f"model_warmup_options.num_model_warmup_threads: records replay on "
                                f"{settings.num_model_warmup_threads} thread(s)")
    if opts.enable_all_batch_sizes_warmup:
        settings.not_reproduced.append("model_warmup_options.enable_all_batch_sizes_warmup (the "
                                       "server's own dummy requests per batch size); tfwarm already "
                                       "writes one record per allowed batch size")
    if sbc.session_target:
        settings.not_reproduced.append(f"session_target {sbc.session_target!r}: replay runs a local "
                                       "Session")
    # Same message, two pools (TensorFlow's and this module's): copy through the wire format.
    session_config.ParseFromString(sbc.session_config.SerializeToString())
    _session_fidelity(sbc.session_config, settings)
    if sbc.enable_session_metadata:
        meta = session_config.experimental.session_metadata
        meta.name = opts.model_name or os.path.basename(os.path.dirname(os.path.normpath(export_dir)))
        version = os.path.basename(os.path.normpath(export_dir))
        meta.version = int(version) if version.isdigit() else 0
        settings.applied.append(f"enable_session_metadata (name {meta.name!r}, version {meta.version})")
    if sbc.enable_saved_model_config:
        _apply_saved_model_config(export_dir, session_config, settings)
    if sbc.saved_model_tags:
        settings.tags = tuple(sbc.saved_model_tags)
        settings.applied.append(f"saved_model_tags {list(settings.tags)}")
    if sbc.HasField("session_run_load_threadpool_index"):
        settings.not_reproduced.append("session_run_load_threadpool_index (restore/init ops' thread "
                                       "pool at load): the Python loader takes no RunOptions")
    if sbc.experimental_fixed_input_tensors:
        settings.not_reproduced.append("experimental_fixed_input_tensors (appended to every run by "
                                       "the server's curried session)")
    if sbc.prefer_tflite_model:
        settings.not_reproduced.append("prefer_tflite_model: replay runs the TensorFlow graph")
