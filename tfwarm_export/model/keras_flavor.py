"""Which Keras wrote a model, and how that Keras exports a SavedModel.

TF Serving users run Keras 3 (``keras`` >= 3, TF >= 2.16), Keras 2 as ``tf.keras``
(TF <= 2.15 ships the ``keras`` 2.x package) and Keras 2 as ``tf_keras`` (TF >= 2.16
with ``TF_USE_LEGACY_KERAS=1``, also usable on 2.15). Their ``Model.export`` differ:
Keras 3 takes ``format=`` (and, in later 3.x releases, ``verbose=``), Keras 2 only the path;
their ``Callback`` base classes differ too, and a ``fit`` refuses another Keras's
callback.

Keras decides as follows, and so do we: ``tf.keras`` is the Keras TensorFlow routes to
(``TF_USE_LEGACY_KERAS`` read by TF's lazy loader), and a model belongs to the Keras
its class comes from.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
from types import ModuleType
from typing import Any, Callable, Iterator

KERAS_PACKAGES = ("keras", "tf_keras")
"""The top-level packages a Keras model class can come from."""


def keras_of(obj: Any) -> ModuleType | None:
    """The Keras package (``keras`` or ``tf_keras``) ``obj``'s class comes from, or None."""
    for klass in type(obj).__mro__:  # a user's subclass lives elsewhere; its Keras base does not
        module = keras_of_class(klass)
        if module is not None:
            return module
    return None


def default_keras() -> ModuleType:
    """The Keras package ``tf.keras`` routes to now (what a training script gets).

    Read through TensorFlow itself, so ``TF_USE_LEGACY_KERAS`` means exactly what it
    means to TensorFlow (it is read once, at the first use of ``tf.keras``).
    """
    import tensorflow as tf

    module = keras_of_class(tf.keras.Model)
    if module is None:  # pragma: no cover - every TF we support routes tf.keras to a package
        raise RuntimeError(f"tf.keras.Model comes from {tf.keras.Model.__module__}, not a Keras package")
    return module


def keras_of_class(klass: type) -> ModuleType | None:
    """The Keras package ``klass`` itself is defined in, or None."""
    root = (klass.__module__ or "").split(".")[0]
    return importlib.import_module(root) if root in KERAS_PACKAGES else None


def is_keras3(module: ModuleType) -> bool:
    return module.__name__ == "keras" and module.__version__.split(".")[0] == "3"


def describe(module: ModuleType) -> str:
    """``Keras 3.15.1``, ``tf_keras 2.21.0`` or ``Keras 2.15.0 (tf.keras)`` for messages."""
    if module.__name__ == "tf_keras":
        return f"tf_keras {module.__version__}"
    return f"Keras {module.__version__}" + ("" if is_keras3(module) else " (tf.keras)")


def supported_kwargs(fn: Callable) -> set[str] | None:
    """Keyword names ``fn`` accepts, or None when it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def call_export(method: Callable, path: str, what: str, module: ModuleType | None,
                kwargs: dict[str, Any], quiet: dict[str, Any]) -> None:
    """``method(path, **kwargs, **quiet)``, dropping ``quiet`` options this Keras lacks.

    ``quiet`` holds our defaults (``verbose=False``), passed only where accepted;
    a user keyword this Keras does not take is a one-line error naming it and the Keras.
    """
    accepted = supported_kwargs(method)
    if accepted is not None:
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            keras_name = describe(module) if module is not None else "this Keras"
            raise TypeError(f"{what} of {keras_name} does not take {', '.join(unknown)} "
                            f"(it takes: {', '.join(sorted(accepted - {'self', 'filepath'})) or 'only the path'}).")
        quiet = {k: v for k, v in quiet.items() if k in accepted}
    method(path, **{**quiet, **kwargs})


@contextlib.contextmanager
def quiet_keras2(module: ModuleType) -> Iterator[None]:
    """Keras 2's ``verbose=False``: its export prints "Saved artifact at ..." unless
    interactive logging is off (then it goes to absl's INFO log)."""
    utils = getattr(module, "utils", None)
    if utils is None or not hasattr(utils, "disable_interactive_logging"):
        yield
        return
    was_on = utils.is_interactive_logging_enabled()
    utils.disable_interactive_logging()
    try:
        yield
    finally:
        if was_on:
            utils.enable_interactive_logging()


def export_model(model: Any, path: str, format: str, kwargs: dict[str, Any]) -> None:
    """Write ``model`` as a TF SavedModel with the ``export`` of the Keras it belongs to.

    Keras 3: ``model.export(path, format=..., verbose=False, ...)``. Keras 2
    (``tf_keras`` or TF 2.15's ``tf.keras``): ``model.export(path)``, which writes the
    same ``serve``/``serving_default`` endpoint through its own ``ExportArchive``.
    """
    module = keras_of(model)
    if module is not None and not is_keras3(module):
        with quiet_keras2(module):
            call_export(model.export, path, "Model.export", module, kwargs, {})
        return
    call_export(model.export, path, "Model.export", module, {"format": format, **kwargs}, {"verbose": False})


def write_archive(archive: Any, path: str, kwargs: dict[str, Any]) -> None:
    """``archive.write_out(path)`` of a Keras 3 or Keras 2 ``ExportArchive``, quietly."""
    module = keras_of(archive)
    if module is not None and not is_keras3(module):
        with quiet_keras2(module):
            call_export(archive.write_out, path, "ExportArchive.write_out", module, kwargs, {})
        return
    call_export(archive.write_out, path, "ExportArchive.write_out", module, kwargs, {"verbose": False})


__all__ = ["KERAS_PACKAGES", "keras_of", "keras_of_class", "default_keras", "is_keras3",
           "describe", "supported_kwargs", "call_export", "quiet_keras2", "export_model",
           "write_archive"]
