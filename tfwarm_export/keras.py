"""``WarmupExport``: a Keras callback that publishes warmed, versioned SavedModels.

It writes TF Serving's file-system layout, ``base_dir/<version>/``, where
``<version>`` is an all-digit directory name: TF Serving's
FileSystemStoragePathSource loads the highest one and ignores every other name.
Each version goes through ``tfwarm_export.saving.publish``: exported to a hidden
``.<version>.tmp-<id>`` directory in ``base_dir`` (invisible to TF Serving),
warmed and replayed there, and renamed into place only when everything passed;
on object stores it is staged locally and copied in with ``saved_model.pb``
last.

Saving follows ``keras.callbacks.ModelCheckpoint``: ``save_freq`` ("epoch" or
a number of batches), ``monitor``, ``mode``, ``save_best_only`` and
``initial_value_threshold`` mean the same thing there and here.

Versions increase monotonically, also across restarts: the next version is one
above the highest all-digit directory already in ``base_dir``. Hidden staging
directories left by a killed run are removed when training starts.

A failed warmup raises by default (``on_failure="raise"``), which stops
``fit``: a model TF Serving cannot warm up should fail loudly, not be skipped
while training carries on for hours. ``on_failure="warn"`` logs the error,
records it in ``failures`` and continues; nothing is published for that step
and the version number is not used up.
"""
from __future__ import annotations

import logging
import os
import re
import uuid
from types import ModuleType
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tfwarm_export.config import WarmupConfig
from tfwarm_export.errors import TfwarmError
from tfwarm_export.model.keras_flavor import default_keras, export_model, keras_of, keras_of_class
from tfwarm_export.model.signatures import SAVED_MODEL_MARKERS, is_saved_model
from tfwarm_export.saving import STAGING_RE, is_remote, publish, rmtree_quietly
from tfwarm_export.report import WarmupReport

log = logging.getLogger("tfwarm_export")

_VERSION_RE = re.compile(r"^\d+$")
_MAX_MODE_HINTS = ("acc", "auc", "fmeasure", "precision", "recall", "f1")


def list_versions(base_dir: str | os.PathLike) -> list[int]:
    """The all-digit version directories in ``base_dir``, ascending (what TF Serving would see).

    Args:
      base_dir: a model's base path (local or any ``tf.io.gfile`` scheme).

    Returns:
      The version numbers; empty when ``base_dir`` does not exist.

    Raises:
      tf.errors.OpError: the file system cannot be listed (e.g. no access to a bucket).
    """
    base_dir = os.fspath(base_dir)
    if not tf.io.gfile.isdir(base_dir):
        return []
    versions = []
    for name in tf.io.gfile.listdir(base_dir):
        name = name.rstrip("/")
        if _VERSION_RE.match(name) and tf.io.gfile.isdir(os.path.join(base_dir, name)):
            versions.append(int(name))
    return sorted(versions)


def clean_staging(base_dir: str | os.PathLike) -> list[str]:
    """Remove hidden staging directories (``.<n>.tmp-*``, ``.<n>.old-*``) left by a killed export.

    An ``.old-`` directory whose version is missing was set aside just before
    the new one would have been renamed in; it is renamed back rather than
    deleted (an interrupted prune of an old version is restored the same way;
    the next prune removes it again).

    Args:
      base_dir: a model's base path.

    Returns:
      The names removed or restored.

    Raises:
      OSError: a leftover cannot be renamed back.
    """
    base_dir = os.fspath(base_dir)
    if not tf.io.gfile.isdir(base_dir):
        return []
    handled = []
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(base_dir)):
        match = STAGING_RE.match(name)
        if not match or not _VERSION_RE.match(match["base"]):
            continue  # not a version's staging dir: not ours to touch
        path = os.path.join(base_dir, name)
        target = os.path.join(base_dir, match["base"])
        if match["kind"] == "old" and not tf.io.gfile.exists(target) and not is_remote(base_dir):
            os.rename(path, target)
            log.warning("restored %s from %s (an export was interrupted mid-swap)", target, path)
        else:
            rmtree_quietly(path)
            log.warning("removed %s left by an interrupted export", path)
        handled.append(name)
    return handled


def callback_base(module: ModuleType) -> type:
    """``module.callbacks.Callback``: the base a ``fit`` of that Keras accepts.

    Args:
      module: a Keras package (``keras`` or ``tf_keras``).

    Returns:
      Its ``Callback`` class.

    Raises:
      AttributeError: ``module`` is not a Keras package.
    """
    return module.callbacks.Callback


_VARIANTS: dict[tuple[type, type], type] = {}
_PARTS: dict[type, tuple[type, type]] = {}


def _variant(cls: type, base: type) -> type:
    """``cls`` mixed with one Keras's ``Callback`` (one class per pair, so isinstance works)."""
    key = (cls, base)
    if key not in _VARIANTS:
        variant = type(cls.__name__, (cls, base), {"__module__": cls.__module__,
                                                   "__qualname__": cls.__qualname__})
        _VARIANTS[key] = variant
        _PARTS[variant] = key
    return _VARIANTS[key]


class WarmupExport:
    """Export a warmed SavedModel to ``base_dir/<version>/`` during training.

    An instance is a ``Callback`` of the Keras that ``tf.keras`` routes to when it is
    built: Keras 3, or Keras 2 (``tf_keras`` under ``TF_USE_LEGACY_KERAS=1``, or TF
    2.14/2.15's ``tf.keras``). ``keras_module=`` picks another (``tf_keras``, ``keras``);
    when ``fit`` hands it a model of another Keras, it becomes that Keras's callback
    in ``set_model`` (before ``fit`` asks it anything else).

    Args:
      base_dir: the model's base path as given to TF Serving (``--model_base_path``).
      warmup: the ``WarmupConfig`` for every version.
      save_freq: ``"epoch"`` or an integer number of batches between exports.
      monitor: the metric ``save_best_only`` compares, as in
        ``keras.callbacks.ModelCheckpoint``.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (maximises metrics whose name suggests
        accuracy/AUC/precision/recall and minimises the rest).
      save_best_only: export only when ``monitor`` improved.
      initial_value_threshold: the value ``monitor`` must beat first.
      export_on_train_end: also export when training ends, unless the last
        export already holds the final weights (with ``save_best_only`` only
        if the final value is the best).
      max_to_keep: keep only this many newest versions (None: keep all). The
        version just published is never deleted.
      on_failure: ``"raise"`` (stop training) or ``"warn"`` (log and continue).
      export_format: passed to ``model.export``; only ``"tf_saved_model"`` is servable.
      export_kwargs: extra keyword arguments for ``model.export``
        (e.g. ``input_signature``).
      verbose: 1 prints a line per published version.
      keras_module: the Keras package whose ``Callback`` to subclass (default: ``tf.keras``'s).

    After training, ``reports`` maps each version this callback published to
    its ``WarmupReport`` and ``failures`` lists the errors skipped under
    ``on_failure="warn"``. Exports run on the training thread between steps
    (each costs one export plus a replay). In multi-worker training attach the
    callback on the chief only: two writers to one ``base_dir`` would race for
    version numbers.
    """

    def __init__(self, base_dir: str | os.PathLike, *, warmup: WarmupConfig | None = None,
                 save_freq: str | int = "epoch", monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False, initial_value_threshold: float | None = None,
                 export_on_train_end: bool = False, max_to_keep: int | None = None,
                 on_failure: str = "raise", export_format: str = "tf_saved_model",
                 export_kwargs: Mapping[str, Any] | None = None, verbose: int = 0,
                 keras_module: ModuleType | None = None):
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"save_freq must be 'epoch' or a positive integer of batches, got {save_freq!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if on_failure not in ("raise", "warn"):
            raise ValueError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be None or >= 1, got {max_to_keep}")
        if export_format != "tf_saved_model":
            raise ValueError(f"export_format={export_format!r} is not a TF SavedModel, which is the "
                             "only format TF Serving loads; use 'tf_saved_model'.")
        self.base_dir = os.fspath(base_dir)
        self.warmup = warmup or WarmupConfig()
        self.save_freq = save_freq
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.export_on_train_end = export_on_train_end
        self.max_to_keep = max_to_keep
        self.on_failure = on_failure
        self.export_format = export_format
        self.export_kwargs = dict(export_kwargs or {})
        self.verbose = verbose
        if mode == "auto":
            mode = "max" if any(h in monitor.lower() for h in _MAX_MODE_HINTS) else "min"
        self.mode = mode
        self.best = initial_value_threshold if initial_value_threshold is not None else (
            -np.inf if mode == "max" else np.inf)
        self.reports: dict[int, WarmupReport] = {}
        self.failures: list[TfwarmError] = []
        self._last_version = 0
        self._batches_since_save = 0
        self._dirty = False  # weights changed since the last export

    def __new__(cls, *args: Any, keras_module: ModuleType | None = None, **kwargs: Any):
        if cls not in _PARTS:  # WarmupExport or a user's subclass: pick the Keras now
            cls = _variant(cls, callback_base(keras_module or default_keras()))
        return object.__new__(cls)

    @property
    def keras_module(self) -> ModuleType:
        """The Keras package (``keras`` or ``tf_keras``) this callback belongs to."""
        return keras_of_class(_PARTS[type(self)][1])

    # -- Keras hooks --------------------------------------------------------------------------
    def set_model(self, model):
        module = keras_of(model)
        if module is not None and module is not self.keras_module:
            # fit() of another Keras: become its callback, keeping our state.
            state = dict(self.__dict__)
            self.__class__ = _variant(_PARTS[type(self)][0], callback_base(module))
            callback_base(module).__init__(self)
            self.__dict__.update({k: v for k, v in state.items() if k not in ("model", "_model")})
        super().set_model(model)

    def on_train_begin(self, logs=None):
        tf.io.gfile.makedirs(self.base_dir)
        clean_staging(self.base_dir)
        self._last_version = max([self._last_version, *list_versions(self.base_dir)])
        self._batches_since_save = 0

    def on_train_batch_end(self, batch, logs=None):
        self._dirty = True
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._maybe_export(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._maybe_export(logs)

    def on_train_end(self, logs=None):
        if self.export_on_train_end and self._dirty:
            self._maybe_export(logs)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def versions(self) -> list[int]:
        """The versions now in ``base_dir`` (including ones from earlier runs)."""
        return list_versions(self.base_dir)

    def _improved(self, logs: Mapping[str, Any] | None) -> bool:
        value = (logs or {}).get(self.monitor)
        if value is None:
            log.warning("WarmupExport: save_best_only needs metric %r, which is not in the logs "
                        "(available: %s); skipping this export.", self.monitor, sorted(logs or {}))
            return False
        value = float(value)
        better = value > self.best if self.mode == "max" else value < self.best
        if better:
            self.best = value
        return better

    def _maybe_export(self, logs: Mapping[str, Any] | None) -> None:
        if self.save_best_only and not self._improved(logs):
            return
        self.export_version()

    def export_version(self) -> int | None:
        """Publish the model's current weights as the next version.

        Returns:
          The version published; None if the export failed with ``on_failure="warn"``.
        """
        version = max([self._last_version, *list_versions(self.base_dir)]) + 1
        path = os.path.join(self.base_dir, str(version))
        def write(staged: str) -> None:
            export_model(self.model, staged, self.export_format, self.export_kwargs)

        try:
            report = publish(write, path, self.warmup, what="model.export")
        except TfwarmError as e:
            if self.on_failure == "raise":
                raise
            log.warning("WarmupExport: version %d was not published: %s", version, e)
            self.failures.append(e)
            return None
        self._last_version = version
        self._dirty = False
        self.reports[version] = report
        if self.verbose:
            print(f"WarmupExport: published {path} ({len(report.plan.records)} warmup records)")
        self._prune(keep=version)
        return version

    def _prune(self, keep: int) -> None:
        """Delete the oldest versions beyond ``max_to_keep``, never ``keep`` (the one just published)."""
        if self.max_to_keep is None:
            return
        versions = self.versions
        doomed = [v for v in versions[:-self.max_to_keep] if v != keep] if len(versions) > self.max_to_keep else []
        for v in doomed:
            path = os.path.join(self.base_dir, str(v))
            if not is_saved_model(path):
                continue  # not a model we would have written; leave it alone
            _delete_version(path)
            self.reports.pop(v, None)


def _delete_version(path: str) -> None:
    """Remove a version so TF Serving never sees it half-deleted.

    Locally it is first renamed to a hidden name (one atomic step out of TF
    Serving's view); on object stores ``saved_model.pb`` goes first, which
    makes the version incomplete before its variables disappear.
    """
    if is_remote(path):
        for m in SAVED_MODEL_MARKERS:
            if tf.io.gfile.exists(f"{path}/{m}"):
                tf.io.gfile.remove(f"{path}/{m}")
        rmtree_quietly(path)
        return
    parent, name = os.path.split(path)
    aside = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:12]}")
    os.rename(path, aside)
    rmtree_quietly(aside)


__all__ = ["WarmupExport", "callback_base", "list_versions", "clean_staging"]
