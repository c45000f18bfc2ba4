"""Export a model *with* its warmup file, all or nothing: ``save`` and ``export``.

Training scripts call these instead of ``tf.saved_model.save`` / Keras
``model.export``. The model is written to a staging directory, warmed and
replayed there, and only then published at ``export_dir``:

* Local paths: the staging directory is a hidden sibling
  (``.<basename>.tmp-<id>`` in the same parent), so publishing is one
  ``rename``. TF Serving only loads all-digit directory names, so it never sees
  the staging copy.
* Object stores (any ``scheme://`` path except ``file://``, e.g. ``gs://``):
  rename is a copy there, so the model is staged in a *local* temp directory
  (outside the watched base path), replayed there, then copied into place file
  by file with ``saved_model.pb`` written last, because TF Serving treats
  ``saved_model.pb`` as the marker that a version is complete.

Re-exporting into a directory that already holds a SavedModel replaces it
*wholesale* (a plain ``tf.saved_model.save`` would keep the old
``assets.extra/`` and so a stale warmup file of the earlier model). Locally the
old directory is renamed aside, the new one renamed in, and only then the old
one deleted; if the second rename fails the old one is put back. A directory
that exists but is not a SavedModel (no ``saved_model.pb``) and is not empty is
never replaced: deleting it wholesale could destroy unrelated files.

A failure at any step (writing, planning, replay, publishing) removes the
staging copy and leaves ``export_dir`` as it was; the error says which step
failed.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import uuid
from typing import Any, Callable

import tensorflow as tf

from tfwarm_export.api import add_warmup
from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.errors import ReplayError, TfwarmError
from tfwarm_export.model.keras_flavor import export_model, write_archive
from tfwarm_export.model.signatures import SAVED_MODEL_MARKERS, is_saved_model
from tfwarm_export.report import WarmupReport
from tfwarm_export.serving.warmup_file import warmup_path

log = logging.getLogger("tfwarm_export")

"""Files whose presence makes a directory a SavedModel (and, for TF Serving, a complete version)."""

STAGING_RE = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-[0-9a-f]{12}$")
"""The hidden names this module creates next to ``export_dir``: ``.<base>.tmp-<id>`` (staging)
and ``.<base>.old-<id>`` (a replaced model, set aside until the new one is in place)."""


def save(obj: Any, export_dir: str | os.PathLike, signatures: Any = None, options: Any = None, *,
         warmup: WarmupConfig | None = None) -> WarmupReport:
    """``tf.saved_model.save`` that also writes and replays the warmup file.

    Same arguments as ``tf.saved_model.save``. The model is written to a hidden staging
    directory next to ``export_dir``, warmed and replayed there, and renamed into place
    only when everything passed; ``export_dir`` is untouched if anything fails.

    Args:
      obj: the trackable object to save (a ``tf.Module``, a Keras model...).
      export_dir: the version directory to publish (``base_path/<version>``); a
        ``gs://`` path is staged locally and copied in with ``saved_model.pb`` last.
      signatures: as for ``tf.saved_model.save``.
      options: a ``tf.saved_model.SaveOptions``.
      warmup: the warmup options (default ``WarmupConfig()``).

    Returns:
      The ``WarmupReport`` of the published model.

    Raises:
      ReplayError: a record failed replay (``error.report`` holds the report); nothing published.
      SavedModelError: the saved model cannot be read back or loaded.
      PlanError: the warmup plan cannot be built (see ``plan`` for its other errors:
        ``ConfigKeyError``, ``SignatureError``, ``BatchingError``, ``ServingConfigError``,
        ``DatasetError``, ``OpLibraryError``).
      WarmupFileError: the staged warmup file cannot be written.
      TfwarmError: ``tf.saved_model.save`` wrote no ``saved_model.pb``.

    Example:
        >>> tfwarm_export.save(module, "models/ranker/8", signatures={"serving_default": module.score},
        ...                    warmup=tfwarm_export.WarmupConfig(batch_sizes=[1, 8]))  # doctest: +SKIP
    """
    def write(path: str) -> None:
        tf.saved_model.save(obj, path, signatures=signatures, options=options)

    return publish(write, export_dir, warmup, what="tf.saved_model.save")


def export(model: Any, filepath: str | os.PathLike, *, format: str = "tf_saved_model",
           warmup: WarmupConfig | None = None, **export_kwargs: Any) -> WarmupReport:
    """Keras ``model.export`` (or ``ExportArchive.write_out``) plus warmup, all or nothing.

    ``model`` is a ``keras.Model`` or a ``keras.export.ExportArchive``, of Keras 3
    or of Keras 2 (``tf_keras``, or TF 2.15's ``tf.keras``). Keras 3 models are
    exported with ``model.export(path, format=format, **export_kwargs)``; Keras 2
    ones with ``model.export(path, **export_kwargs)`` (Keras 2 takes no format; it
    always writes a SavedModel); an archive with ``archive.write_out(path,
    **export_kwargs)``. Only ``format="tf_saved_model"`` makes something TF
    Serving can load. Keras' ``verbose`` defaults to False where it exists.

    XLA endpoints: ``model.export(..., jit_compile=True)`` does not compile the
    serving function with XLA (Keras silently drops the flag). Build the
    endpoint yourself and pass the archive::

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            tf.function(lambda x: model(x, training=False), jit_compile=True),
            input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        tfwarm_export.export(archive, "export/1")

    The warmup plan then covers the ``serve`` endpoint like any other
    signature, and replay runs the XLA-compiled function, so the compile cost
    of each warmed batch size moves from the first requests to model load.

    Args:
      model: a ``keras.Model`` or ``keras.export.ExportArchive`` (Keras 3 or Keras 2).
      filepath: the version directory to publish (``base_path/<version>``).
      format: Keras 3's export format; only ``"tf_saved_model"`` is servable.
      warmup: the warmup options (default ``WarmupConfig()``).
      **export_kwargs: passed to ``model.export`` / ``archive.write_out``
        (e.g. ``input_signature=``).

    Returns:
      The ``WarmupReport`` of the published model.

    Raises:
      ReplayError: a record failed replay (``error.report`` holds the report); nothing published.
      SavedModelError: the export cannot be read back or loaded.
      PlanError: the warmup plan cannot be built (see ``plan`` for its other errors).
      WarmupFileError: the staged warmup file cannot be written.
      TfwarmError: the export wrote no ``saved_model.pb``.
      TypeError: a Keras 3 keyword (such as ``input_signature=``) given to a Keras 2 model.
      ValueError: a ``format`` other than ``"tf_saved_model"``.
    """
    kwargs = dict(export_kwargs)
    if _is_export_archive(model):
        if format != "tf_saved_model":
            raise ValueError(f"an ExportArchive always writes a TF SavedModel; format={format!r} "
                             "does not apply to it.")

        def write(path: str) -> None:
            write_archive(model, path, kwargs)

        what = "ExportArchive.write_out"
    else:
        if format != "tf_saved_model":
            raise ValueError(f"format={format!r} is not a TF SavedModel, so TF Serving cannot load "
                             "it and it has no warmup file; use format='tf_saved_model'.")

        def write(path: str) -> None:
            export_model(model, path, format, kwargs)

        what = "model.export"
    return publish(write, filepath, warmup, what=what)


def _is_export_archive(obj: Any) -> bool:
    """Duck-typed: ``keras.export.ExportArchive()`` returns a backend subclass of another base."""
    return (callable(getattr(obj, "write_out", None)) and callable(getattr(obj, "add_endpoint", None))
            and not callable(getattr(obj, "export", None)))


def publish(write: Callable[[str], None], export_dir: str | os.PathLike,
            config: WarmupConfig | None = None, *, what: str = "write",
            **options: Any) -> WarmupReport:
    """Run ``write(path)`` into a staging dir, add and replay warmup, then publish at ``export_dir``.

    The building block of ``save``/``export``, the Keras callback and the
    pipeline components: ``write`` is any function that writes a SavedModel to
    the path it is given (which does not exist yet). ``options`` are
    ``WarmupConfig`` fields merged over ``config``.
    """
    config = resolve_config(config, **options)
    export_dir = _normalize(export_dir)
    base = _basename(export_dir)
    existed = _check_replaceable(export_dir)
    remote = is_remote(export_dir)
    if remote:
        stage_root = tempfile.mkdtemp(prefix="tfwarm-stage-")
        staged = os.path.join(stage_root, base)
    else:
        parent = os.path.dirname(export_dir) or "."
        tf.io.gfile.makedirs(parent)
        stage_root = None
        staged = os.path.join(parent, f".{base}.tmp-{uuid.uuid4().hex[:12]}")
    step = f"writing the SavedModel ({what})"
    try:
        write(staged)
        if not is_saved_model(staged):
            raise TfwarmError(f"{what} wrote no saved_model.pb to the staging directory; is it a "
                              "TF SavedModel writer?")
        step = "adding and replaying the warmup file"
        report = add_warmup(staged, config)
        step = f"publishing the model at {export_dir}"
        if remote:
            _copy_in(staged, export_dir, existed)
        else:
            _swap_in(staged, export_dir)
    except BaseException as e:
        rmtree_quietly(stage_root or staged)
        if isinstance(e, TfwarmError):
            raise _with_context(e, step, export_dir, staged, existed) from None
        if isinstance(e, Exception):
            e.add_note(_failure_head(step, export_dir, existed))
        raise
    if stage_root:
        rmtree_quietly(stage_root)
    _retarget(report, staged, export_dir)
    log.info("exported %s with %d warmup record(s)", export_dir, len(report.plan.records))
    return report


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` lives on a filesystem where rename is not atomic (``gs://``, ``s3://``, ``ram://``...)."""
    path = os.fspath(path)
    return "://" in path and not path.startswith("file://")


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is one of this module's hidden staging/aside directory names."""
    return STAGING_RE.match(name) is not None


def _normalize(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{rest.rstrip('/')}"
    return os.path.normpath(path)


def _basename(export_dir: str) -> str:
    base = os.path.basename(export_dir)
    if not base or base in (".", "..") or export_dir.endswith("://"):
        raise ValueError(f"export_dir {export_dir!r} must name a directory inside a parent "
                         "(e.g. 'models/my_model/1'), since it is published by replacing it.")
    return base


def _check_replaceable(export_dir: str) -> bool:
    """True if a SavedModel is already there; raise if something else that we must not delete is."""
    if not tf.io.gfile.exists(export_dir):
        return False
    if not tf.io.gfile.isdir(export_dir):
        raise FileExistsError(f"{export_dir} exists and is a file; pass a directory path for the "
                              "SavedModel.")
    if is_saved_model(export_dir):
        return True
    if tf.io.gfile.listdir(export_dir):
        raise FileExistsError(
            f"{export_dir} exists, is not empty and holds no saved_model.pb, so it is not a "
            "SavedModel; exporting replaces the directory wholesale and would delete those files. "
            "Pass a new or empty directory (e.g. a numbered version under your model's base path).")
    return False


def _swap_in(staged: str, export_dir: str) -> None:
    """Rename ``staged`` to ``export_dir``; an existing one is set aside first and restored on failure."""
    if not os.path.exists(export_dir):
        os.rename(staged, export_dir)
        return
    if os.path.isdir(export_dir) and not os.listdir(export_dir):
        os.rmdir(export_dir)
        os.rename(staged, export_dir)
        return
    parent, base = os.path.split(export_dir)
    aside = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex[:12]}")
    os.rename(export_dir, aside)
    try:
        os.rename(staged, export_dir)
    except BaseException:
        os.rename(aside, export_dir)
        raise
    rmtree_quietly(aside)


def _copy_in(staged: str, export_dir: str, existed: bool) -> None:
    """Copy a local SavedModel to a remote ``export_dir``, ``saved_model.pb`` last.

    An existing model there is deleted first, its ``saved_model.pb`` before
    anything else, so TF Serving never sees a complete-looking mix of old and
    new files. A failed copy removes what it wrote (there is no marker, so TF
    Serving would not load it anyway).
    """
    if existed or tf.io.gfile.exists(export_dir):
        for m in SAVED_MODEL_MARKERS:
            marker = os.path.join(export_dir, m)
            if tf.io.gfile.exists(marker):
                tf.io.gfile.remove(marker)
        remove_tree(export_dir)
    markers: list[tuple[str, str]] = []
    try:
        tf.io.gfile.makedirs(export_dir)
        for root, dirs, files in os.walk(staged):
            rel = os.path.relpath(root, staged)
            dest_root = export_dir if rel == "." else f"{export_dir}/{rel.replace(os.sep, '/')}"
            for d in dirs:
                tf.io.gfile.makedirs(f"{dest_root}/{d}")
            for f in sorted(files):
                pair = (os.path.join(root, f), f"{dest_root}/{f}")
                if rel == "." and f in SAVED_MODEL_MARKERS:
                    markers.append(pair)
                else:
                    tf.io.gfile.copy(*pair, overwrite=True)
        for src, dst in markers:
            tf.io.gfile.copy(src, dst, overwrite=True)
    except BaseException:
        rmtree_quietly(export_dir)
        raise


def remove_tree(path: str) -> None:
    """``tf.io.gfile.rmtree`` that tolerates filesystems with implicit directories.

    Object-store-like filesystems (``ram://``, and some ``s3://`` setups) delete
    every object and then fail to find the "directory" itself; that is success.
    """
    try:
        tf.io.gfile.rmtree(path)
    except tf.errors.NotFoundError:
        if tf.io.gfile.exists(path) and tf.io.gfile.listdir(path):
            raise


def rmtree_quietly(path: str | None) -> None:
    if not path:
        return
    try:
        if is_remote(path):
            if tf.io.gfile.exists(path):
                remove_tree(path)
        else:
            shutil.rmtree(path, onerror=lambda _f, p, exc: log.warning(
                "could not remove %s: %s", p, exc[1]) if os.path.lexists(p) else None)
    except (tf.errors.OpError, OSError) as e:
        log.warning("could not remove %s: %s", path, e)


def _retarget(report: WarmupReport, staged: str, export_dir: str) -> None:
    """Point a report made on the staging copy at the published path."""
    report.export_dir = export_dir
    if report.path:
        report.path = warmup_path(export_dir)
    if report.plan.export_dir == staged:
        report.plan = dataclasses.replace(report.plan, export_dir=export_dir)


def _failure_head(step: str, export_dir: str, existed: bool) -> str:
    if existed and step.startswith("publishing") and is_remote(export_dir):
        kept = ("the SavedModel that was there had already been deleted (object stores cannot "
                "swap directories atomically); export again")
    elif existed:
        kept = "the SavedModel already there was left as it was"
    else:
        kept = "nothing was created there"
    return f"exporting {export_dir} failed while {step}; the staged copy was removed and {kept}."


def _with_context(e: TfwarmError, step: str, export_dir: str, staged: str, existed: bool
                  ) -> TfwarmError:
    """The same kind of error, saying which step failed and that nothing was published."""
    head = _failure_head(step, export_dir, existed)
    body = str(e).replace(staged, export_dir)
    if isinstance(e, ReplayError):
        if e.report is not None:
            _retarget(e.report, staged, export_dir)
            e.report.path = None
        return ReplayError(f"{head}\n{body}", e.report)
    try:
        return type(e)(f"{head}\n{body}")
    except TypeError:
        return TfwarmError(f"{head}\n{body}")


__all__ = ["save", "export", "publish", "is_remote", "is_staging_name"]
