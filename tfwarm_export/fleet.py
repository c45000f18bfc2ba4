"""Fleet warmup: every model version a TF Serving ``--model_config_file`` would load.

A deployment is a text ``ModelServerConfig`` listing models, each with a
``base_path`` and a ``model_version_policy``. Before the config is rolled, every
version the server will load must carry a valid warmup file. This module finds
those versions exactly as TF Serving's file-system source does
(``file_system_storage_path_source.cc``):

* the children of ``base_path`` (read through ``tf.io.gfile``, so ``gs://`` and
  other schemes work; on object stores only the first path component counts);
* only names that parse as an int64 (``strings::safe_strto64``: optional spaces,
  optional ``-``, digits) are versions; ``00000123`` is version 123, and of two
  names for one number the later in sorted order wins;
* ``latest { num_versions }`` (the default, and ``num_versions`` is at least 1)
  takes the highest numbers, ``all`` every numeric child, ``specific`` the listed
  numbers that exist.

TF Serving picks a numeric directory even when it holds no ``saved_model.pb``
and then fails to load it (an export still being written, say). Such a version
is reported as failed, with that reason, rather than silently passed over.

Each version is warmed (``add``) or checked (``check``) in a worker process (up to
``jobs`` of them, each starting TensorFlow once), never in the caller's: every
version loads into a fresh graph and session of its own, a failure is that
version's row, and a crashed worker fails only the version in hand.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Callable, Sequence

from tfwarm_export._support import fileargs
from tfwarm_export.errors import ModelConfigError, TfwarmError

PER_MODEL_BATCHING_FILE = "batching_params.pbtxt"
"""TF Serving's per-model batching file (``--enable_per_model_batching_params``), read
from the version directory; without it that model runs unbatched."""

TENSORFLOW_PLATFORM = "tensorflow"
ADD, CHECK = "add", "check"
WARMED, KEPT, REWARMED, CHECKED, FAILED = "warmed", "kept", "rewarmed", "ok", "FAILED"
OK_STATUSES = (WARMED, KEPT, REWARMED, CHECKED)
_VERSION_RE = re.compile(r"[ \t\n\v\f\r]*-?[0-9]+[ \t\n\v\f\r]*")  # ASCII only, like safe_strto64
_INT64_MAX = 2**63 - 1

log = logging.getLogger("tfwarm_export.fleet")


# --------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class ServedModel:
    """One ``config { ... }`` entry of the model config list.

    Attributes:
      name: the model's name.
      base_path: its base path (local or any ``tf.io.gfile`` scheme).
      platform: its ``model_platform`` (only ``"tensorflow"`` is warmed).
      policy: the version policy: ``"latest"``, ``"all"`` or ``"specific"``.
      num_versions: how many of the newest versions ``latest`` serves.
      versions: the versions ``specific`` serves.
    """

    name: str
    base_path: str
    platform: str
    policy: str  # "latest", "all" or "specific"
    num_versions: int = 1
    versions: tuple[int, ...] = ()


def parse_model_config(text: str, source: str = "<string>") -> list[ServedModel]:
    """Parse a text ``ModelServerConfig`` with the serving protos; list its models.

    Args:
      text: the contents of a ``--model_config_file``.
      source: its name, for messages.

    Returns:
      One ``ServedModel`` per ``config`` entry, in file order.

    Raises:
      ModelConfigError: the text is not a valid ModelServerConfig, has no
        ``model_config_list``, or an entry lacks a name or a base path.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise ModelConfigError(
            f"{source}: not a text-format ModelServerConfig ({e}). Expected the file given to "
            "tensorflow_model_server --model_config_file: model_config_list { config { name: ... "
            "base_path: ... } }.") from None
    if proto.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError(f"{source}: custom_model_config is not supported; list the models "
                               "in model_config_list.")
    models = []
    for entry in proto.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ModelConfigError(f"{source}: every model needs a name and a base_path; got "
                                   f"name {entry.name!r}, base_path {entry.base_path!r}.")
        policy = entry.model_version_policy
        choice = policy.WhichOneof("policy_choice") or "latest"
        if choice == "latest_once":
            choice = "latest"
        models.append(ServedModel(
            name=entry.name, base_path=entry.base_path,
            platform=entry.model_platform or TENSORFLOW_PLATFORM, policy=choice,
            num_versions=max(int(policy.latest.num_versions), 1) if choice == "latest" else 0,
            versions=tuple(int(v) for v in policy.specific.versions) if choice == "specific" else ()))
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelConfigError(f"{source}: model name(s) {dupes} appear more than once; TF Serving "
                               "refuses such a config.")
    if not models:
        raise ModelConfigError(f"{source}: model_config_list lists no models.")
    return models


def load_model_config(path: str | os.PathLike) -> list[ServedModel]:
    """Read a model config file (a path, ``gs://...``, ``-`` or a pipe; read once).

    Args:
      path: the file given to ``tensorflow_model_server --model_config_file``.

    Returns:
      Its models, as ``parse_model_config`` lists them.

    Raises:
      ModelConfigError: the file does not exist, cannot be read, or is invalid.
    """
    try:
        text = fileargs.read_text(path)
    except FileNotFoundError:
        raise ModelConfigError(f"model config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelConfigError(f"cannot read model config file {fileargs.describe(path)}: {e}") from None
    return parse_model_config(text, fileargs.describe(path))


def parse_version(name: str) -> int | None:
    """The version number of a child directory name, as ``strings::safe_strto64`` reads it.

    Args:
      name: a directory name in a base path.

    Returns:
      The version (``"00000123"`` is 123); None for a name TF Serving does not take as
      a version (not all digits, or outside int64).

    Never raises.
    """
    if not _VERSION_RE.fullmatch(name):
        return None
    value = int(name)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


# --------------------------------------------------------------------------- versions


@dataclass
class VersionResult:
    """One row of the fleet table: a version, what was done and how it went.

    Attributes:
      model: the model's name.
      version: the version number (None for a row about the model as a whole).
      path: the version directory.
      status: ``warmed``, ``kept``, ``checked``... or ``FAILED``.
      records: records in the version's warmup file.
      seconds: how long the version took.
      error: why it failed (the full message).
      notes: notes of its plan and report.
      warnings: its warnings (e.g. warmup disabled in the platform config).
      log: log lines the worker captured for it.
    """

    model: str
    version: int | None
    path: str
    status: str = FAILED
    records: int | None = None
    seconds: float | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def to_dict(self) -> dict:
        """The row as plain JSON-able data.

        Returns:
          dict: every field, plus ``ok``.
        """
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class VersionTarget:
    """A version directory TF Serving would load.

    Attributes:
      model: the model's name.
      version: the version number.
      path: the version directory.
    """

    model: str
    version: int
    path: str


def servable_versions(model: ServedModel) -> tuple[list[VersionTarget], list[VersionResult]]:
    """The version directories TF Serving would load for ``model``, plus failed rows for
    what it would look for and not find.

    Args:
      model: one model of the config.

    Returns:
      ``(targets, failed)``: the versions its policy serves, and rows for what cannot be
      served (a missing base path, a version the policy names that is absent, a numeric
      directory without ``saved_model.pb``, another platform).

    Never raises: what TF Serving could not load becomes a failed row.
    """
    import tensorflow as tf

    base = model.base_path
    if model.platform != TENSORFLOW_PLATFORM:
        return [], [VersionResult(model.name, None, base, FAILED, error=(
            f"model_platform {model.platform!r} is not a TensorFlow SavedModel; tfwarm warms "
            f"model_platform \"{TENSORFLOW_PLATFORM}\" only."))]
    try:
        exists = tf.io.gfile.exists(base)
        children = tf.io.gfile.listdir(base) if exists else []
    except tf.errors.OpError as e:
        return [], [VersionResult(model.name, None, base, FAILED,
                                  error=f"cannot list base_path {base}: {e.message}")]
    if not exists:
        return [], [VersionResult(model.name, None, base, FAILED, error=(
            f"base_path {base} does not exist; TF Serving cannot load model {model.name!r}."))]
    names = sorted({c.split("/")[0] for c in children if c.split("/")[0]})
    by_version: dict[int, str] = {}
    numbered: list[tuple[int, str]] = []
    for child in names:
        v = parse_version(child)
        if v is not None:
            numbered.append((v, child))
            by_version[v] = child  # later duplicate wins, as in TF Serving
    if model.policy == "all":
        chosen = numbered
    elif model.policy == "specific":
        chosen = [(v, c) for v, c in sorted(by_version.items()) if v in model.versions]
    else:
        chosen = sorted(by_version.items(), reverse=True)[:model.num_versions]
    failed = []
    if model.policy == "specific":
        for v in sorted(set(model.versions) - set(by_version)):
            failed.append(VersionResult(model.name, v, tf.io.gfile.join(base, str(v)), FAILED, error=(
                f"version {v} is listed in the 'specific' version policy but there is no "
                f"directory for it under {base}; TF Serving waits for it and never serves it.")))
    if not numbered:
        failed.append(VersionResult(model.name, None, base, FAILED, error=(
            f"no numeric version directory under {base} (found {names[:10]}); TF Serving serves "
            f"only directories named by a number, e.g. {tf.io.gfile.join(base, '1')}.")))
    targets = [VersionTarget(model.name, v, tf.io.gfile.join(base, child))
               for v, child in sorted(chosen, reverse=True)]
    return targets, failed


# --------------------------------------------------------------------------- one version (worker)


def _batching_for(path: str, batching: Any, per_model_batching: bool) -> tuple[Any, str]:
    """The batching TF Serving applies to this version, and a note saying which."""
    if not per_model_batching:
        return batching, ""
    import tensorflow as tf

    from tfwarm_export.serving.batching import load_batching_parameters

    own = tf.io.gfile.join(path, PER_MODEL_BATCHING_FILE)
    if tf.io.gfile.exists(own):
        return load_batching_parameters(own), f"batching from {PER_MODEL_BATCHING_FILE}"
    return None, f"no {PER_MODEL_BATCHING_FILE}: unbatched, as TF Serving runs it"


def _server_for(target: VersionTarget, config: Any, per_model_batching: bool) -> tuple[dict, str]:
    """The ``check``/``add_warmup`` options that load this version as the fleet's server would.

    With a platform config, that config decides for every version exactly as for one
    directory (``resolve_server``: its batching, warmup options, session config, tags and
    ``enable_per_model_batching_params``). Without one, the fleet stands for a server
    started with flags: ``--batching_parameters_file`` for every model and, with
    ``per_model_batching``, each version's own ``batching_params.pbtxt`` instead.
    """
    if config.platform_config is not None:
        return dict(batching_parameters=config.batching_parameters, platform_config=config.platform_config,
                    ignore_per_model_batching=config.ignore_per_model_batching), ""
    batching, note = _batching_for(target.path, config.batching_parameters, per_model_batching)
    # The batching is decided here; the version's own file must not be picked up again.
    return dict(batching_parameters=batching, platform_config=None, ignore_per_model_batching=True), note


def run_version(target: VersionTarget, action: str, config: Any, per_model_batching: bool = False
                ) -> VersionResult:
    """Warm (``add``) or ``check`` one version directory; failures become the row's error.

    The same options give the same result as ``tfwarm add/check DIR`` on that version:
    the check that decides whether an existing file is kept is the full ``check``
    under the same server settings (platform config included).

    Args:
      target: the version directory.
      action: ``"add"`` or ``"check"``.
      config: the resolved ``WarmupConfig`` applied to every version.
      per_model_batching: use the version's ``batching_params.pbtxt`` (without a platform config).

    Returns:
      The version's row; a failure is its ``status`` and ``error``.

    Never raises: every ``TfwarmError`` (and any other error) becomes the row's error.
    """
    from tfwarm_export import api
    from tfwarm_export.context import resolve
    from tfwarm_export.model.signatures import is_saved_model

    row = VersionResult(target.model, target.version, target.path)
    start = time.perf_counter()
    try:
        if not is_saved_model(target.path):
            raise TfwarmError(
                f"{target.path} holds no saved_model.pb: it is not a SavedModel (an export still "
                "being written?). TF Serving picks it by its number and then fails to load it; "
                "finish or remove that export.")
        server, note = _server_for(target, config, per_model_batching)
        if note:
            row.notes.append(note)
        # the edge for this version: its server and model resolved once, for check and add alike
        context = resolve(config.replace(**server), target.path)

        def server_notes(settings: Any) -> None:
            """With a platform config, what it decided for this version (batching, per-model file)."""
            if config.platform_config is not None and settings is not None:
                row.notes.extend(n for n in settings.notes if n not in row.notes)

        def check() -> Any:
            report = api.check(target.path, context=context.with_config(traffic=None, previous_version=None))
            row.warnings = list(report.warnings)
            server_notes(report.server)
            return report

        if action == CHECK:
            report = check()
            row.records = report.num_records
            if not report.ok:
                raise TfwarmError("\n".join(report.problems))
            row.status = CHECKED
        else:
            _add_version(target, config, context, row, check, server_notes)
    except TfwarmError as e:
        row.status, row.error = FAILED, str(e)
    except Exception as e:  # a bug or a TF crash surfaced as Python: still only this row fails
        row.status, row.error = FAILED, f"{type(e).__name__}: {e}"
    finally:
        row.seconds = round(time.perf_counter() - start, 3)
    return row


def _add_version(target: VersionTarget, config: Any, context: Any, row: VersionResult,
                 check: Callable[[], Any], server_notes: Callable[[Any], None]) -> None:
    """``add`` for one version: keep an existing file that passes ``check``, else (re)warm."""
    import tensorflow as tf

    from tfwarm_export import api
    from tfwarm_export.serving.warmup_file import warmup_path

    status = WARMED
    if not config.overwrite and tf.io.gfile.exists(warmup_path(target.path)):
        try:
            report = check()
        except TfwarmError as e:
            problems = [str(e)]
        else:
            if report.ok:
                row.status, row.records = KEPT, report.num_records
                row.notes.append("existing warmup file passes check (--overwrite redoes it)")
                return
            problems = report.problems
        row.notes.append(f"existing warmup file failed check ({problems[0]}); replaced")
        status = REWARMED
    report = api.add_warmup(target.path, context=context.with_config(overwrite=True))
    row.warnings = list(report.warnings)
    server_notes(report.plan.server)
    row.status, row.records = status, len(report.plan.records) * report.plan.copies


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _worker(conn, action: str, config: Any, per_model_batching: bool) -> None:
    """Process entry: start TF quietly once, then run versions until told to stop (None).

    Each version loads into a fresh graph and session of its own (``Replayer``),
    so a worker reused for several versions shares nothing between them but the
    process; a crash fails only the version in hand (the parent starts a new worker).
    """
    from tfwarm_export._support import startup

    startup.import_tensorflow_quietly()
    startup.init_devices_quietly()
    handler = _ListHandler()
    logger = logging.getLogger("tfwarm_export")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    while True:
        try:
            target = conn.recv()
        except EOFError:
            break
        if target is None:
            break
        handler.lines = []
        row = run_version(target, action, config, per_model_batching)
        row.log = handler.lines
        conn.send(row)
    conn.close()


# --------------------------------------------------------------------------- the fleet


@dataclass
class FleetReport:
    """Every version of every model: what was done and how it went.

    Attributes:
      source: the model config it came from.
      action: ``"add"`` or ``"check"``.
      results: one row per version (and per model that could not be listed).
      wall_s: the run's wall time.
    """

    source: str
    action: str
    results: list[VersionResult] = field(default_factory=list)
    wall_s: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failures(self) -> list[VersionResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict:
        """The report as plain JSON-able data (what ``--json`` prints).

        Returns:
          dict: ``ok``, the action, the source and every row.
        """
        return {"model_config": self.source, "action": self.action, "ok": self.ok,
                "wall_s": self.wall_s, "versions": [r.to_dict() for r in self.results]}

    def to_json(self) -> str:
        """The report as JSON.

        Returns:
          str: ``to_dict()`` as indented JSON.
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def table(self) -> list[str]:
        """The fleet table: one line per version.

        Returns:
          list[str]: a header and a row per version (model, version, records, status, time).
        """
        rows = [("MODEL", "VERSION", "RECORDS", "STATUS", "TIME")]
        for r in self.results:
            rows.append((r.model, "-" if r.version is None else str(r.version),
                         "-" if r.records is None else str(r.records), r.status,
                         "-" if r.seconds is None else f"{r.seconds:.1f}s"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        align = ["<", ">", ">", "<", ">"]
        return ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
                for row in rows]

    def summary(self, verbose: bool = False) -> str:
        """The report for people: the table, each failure in full, the totals.

        Args:
          verbose: also each version's notes and captured log lines.

        Returns:
          str: several lines, as ``tfwarm add --model-config-file`` prints them.
        """
        lines = [f"tfwarm {self.action} --model-config-file {self.source}", ""] + self.table()
        for r in self.results:
            if r.notes:
                lines.append(f"  {r.model}/{r.version}: " + "; ".join(r.notes))
            for w in r.warnings:
                lines.append(f"  {r.model}/{r.version}: WARNING: {w}")
        for r in self.failures:
            where = r.model if r.version is None else f"{r.model} version {r.version}"
            lines += ["", f"{where} ({r.path}) failed:", *("  " + ln for ln in r.error.splitlines())]
        if verbose:
            for r in self.results:
                if r.log:
                    lines += ["", f"log of {r.model}/{r.version}:", *("  " + ln for ln in r.log)]
        good = len(self.results) - len(self.failures)
        lines += ["", f"{good} of {len(self.results)} version(s) ok"
                      + (f", {len(self.failures)} failed" if self.failures else "")
                      + (f" in {self.wall_s:.1f}s" if self.wall_s is not None else "")]
        return "\n".join(lines)


def run_fleet(models: Sequence[ServedModel] | str | os.PathLike, action: str = ADD, config: Any = None, *,
              jobs: int = 1, per_model_batching: bool = False, source: str | None = None,
              on_result: Callable[[VersionResult], None] | None = None, **options: Any) -> FleetReport:
    """Warm (``action="add"``) or check every version a model config would serve.

    ``models`` is a config file path or the parsed ``parse_model_config`` list;
    ``config``/``options`` are ``WarmupConfig`` fields applied to every version, with
    the same meaning as for one directory: a ``platform_config`` decides batching
    (its ``enable_per_model_batching_params`` included), warmup options and session
    config for every version. Without one, ``batching_parameters`` is TF Serving's
    one ``--batching_parameters_file`` and ``per_model_batching`` uses each version's
    ``batching_params.pbtxt`` instead, as ``--enable_per_model_batching_params`` does. Up to ``jobs`` worker processes
    run versions at once, each version in a fresh graph and session. Existing files that pass ``check`` are kept
    unless ``overwrite``. Never raises for one version: its row says why it failed.

    Args:
      models: a model config file path, or the ``parse_model_config`` list.
      action: ``"add"`` (warm) or ``"check"``.
      config: ``WarmupConfig`` for every version; None: the defaults.
      jobs: worker processes (each version in a fresh process, graph and session).
      per_model_batching: use each version's ``batching_params.pbtxt``.
      source: the config's name in the report (default: the path).
      on_result: called with each row as it completes (progress).
      **options: ``WarmupConfig`` fields merged over ``config``.

    Returns:
      The ``FleetReport``: one row per version; ``ok`` when every one succeeded.

    Raises:
      ModelConfigError: the model config cannot be read or is invalid.
      BatchingError: the batching file is invalid.
      TfwarmError: ``per_model_batching`` given with a platform config, or with
        ``ignore_per_model_batching``.
      ValueError: ``action`` is not ``"add"``/``"check"``, or ``jobs`` < 1.

    Example:
        >>> report = fleet.run_fleet("models.config", "add", batch_sizes=[1, 8], jobs=2)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    if action not in (ADD, CHECK):
        raise ValueError(f"action must be {ADD!r} or {CHECK!r}, got {action!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    config = _fleet_config(config, per_model_batching, options)
    if isinstance(models, (str, os.PathLike)):
        source = source or fileargs.describe(models)
        models = load_model_config(models)
    report = FleetReport(source=source or "<models>", action=action)
    start = time.perf_counter()
    order = {m.name: i for i, m in enumerate(models)}
    targets: list[VersionTarget] = []
    for model in models:
        found, failed = servable_versions(model)
        targets += found
        report.results += failed
    _run_workers(targets, action, config, per_model_batching, jobs, report, on_result)
    report.results.sort(key=lambda r: (order.get(r.model, len(order)),
                                       -(r.version if r.version is not None else -2**63)))
    report.wall_s = round(time.perf_counter() - start, 3)
    return report


def _fleet_config(config: Any, per_model_batching: bool, options: dict) -> Any:
    """The options every version shares, checked once: contradictions, the batching and
    platform files read here (one error, not one per version), picklable for the workers."""
    from tfwarm_export.serving.batching import BatchingConfig, load_batching_parameters
    from tfwarm_export.config import resolve_config

    config = resolve_config(config, **options)
    if per_model_batching and config.platform_config is not None:
        raise TfwarmError("per_model_batching (--per-model-batching) does not apply with a platform config: "
                          "its enable_per_model_batching_params decides, as tensorflow_model_server "
                          "ignores --enable_per_model_batching_params when given --platform_config_file. "
                          "Set it in the platform config, or drop one of the two.")
    if per_model_batching and config.ignore_per_model_batching:
        raise TfwarmError("per_model_batching (--per-model-batching) and ignore_per_model_batching "
                          "(--ignore-per-model-batching-params) contradict each other; give one.")
    if isinstance(config.platform_config, (str, os.PathLike)):
        from tfwarm_export.serving.serving_config import load_platform_config

        load_platform_config(config.platform_config)  # a bad file is one error here, not one per version
    if config.batching_parameters is not None and not isinstance(config.batching_parameters, BatchingConfig):
        config = config.replace(batching_parameters=load_batching_parameters(config.batching_parameters))
    try:
        pickle.dumps(config)
    except Exception as e:
        raise TfwarmError(f"fleet workers are separate processes, so the options must be picklable; "
                          f"{e}. Use plain values, module-level functions and file paths (not lambdas "
                          "or in-memory datasets).") from None
    return config


def _run_workers(targets: list[VersionTarget], action: str, config: Any, per_model_batching: bool,
                 jobs: int, report: FleetReport, on_result: Callable[[VersionResult], None] | None) -> None:
    """Up to ``jobs`` spawned workers take the versions one at a time; a dead worker's
    version becomes a failed row and the worker is replaced."""
    from tfwarm_export._support import progress

    ctx = multiprocessing.get_context("spawn")

    def start_worker() -> list:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, action, config, per_model_batching),
                           name="tfwarm-fleet-worker", daemon=True)
        proc.start()
        child.close()
        return [proc, parent, None]  # process, pipe, version in hand

    pending = list(targets)
    workers = [start_worker() for _ in range(min(jobs, len(pending)))]

    def assign(worker: list) -> None:
        worker[2] = pending.pop(0) if pending else None
        if worker[2] is not None:
            worker[1].send(worker[2])

    for worker in workers:
        assign(worker)
    with progress.bar(total=len(targets), desc=f"fleet {action}", unit="version", leave=True) as bar:
        while any(w[2] is not None for w in workers):
            busy = {w[1]: w for w in workers if w[2] is not None}
            for conn in wait(list(busy)):
                worker = busy[conn]
                proc, _, target = worker
                try:
                    row = conn.recv()
                except (EOFError, OSError):
                    proc.join()
                    row = VersionResult(target.model, target.version, target.path, FAILED, error=(
                        f"the worker process died (exit code {proc.exitcode}) while on {target.path}; "
                        "run `tfwarm add` on that directory alone to see why."))
                    conn.close()
                    workers[workers.index(worker)] = worker = start_worker()
                report.results.append(row)
                bar.update(1)
                if on_result is not None:
                    on_result(row)
                assign(worker)
    for proc, conn, _ in workers:
        try:
            conn.send(None)
        except OSError:
            pass
        conn.close()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
