"""Pipeline steps that warm a trained model: TFX and Kubeflow Pipelines v2.

All logic is in ``run_warmup_component``, a plain function that needs neither
TFX nor KFP (so it is tested and usable from any orchestrator). The TFX and KFP
components are thin wrappers, defined only when their SDK is importable.

Output layouts (``layout=``):

* ``"serving"`` (default, used by the KFP component): ``output_uri/<version>/``
  is the model, i.e. ``output_uri`` is a TF Serving ``--model_base_path`` (also
  what KServe's TensorFlow runtime expects under ``storageUri``). ``version``
  defaults to the Unix time in seconds, as TFX's Pusher versions pushes, so
  versions copied into one shared base path keep increasing.
* ``"tfx"`` (used by the TFX component): ``output_uri/Format-Serving/`` is the
  model, the layout of a TFX Trainer's ``Model`` artifact, so the output can go
  straight into TFX's ``Pusher`` (which then writes ``<base>/<version>/``).

The report is written as JSON to ``output_uri/tfwarm_report.json``, next to
the model and never inside it (TF Serving ignores non-numeric names in a base
path, and Pusher copies only ``Format-Serving``). On a failed warmup the report
(with the failing records) is still written and the error is raised, which
fails the pipeline step; no model is written to ``output_uri``.

The input model may be a SavedModel directory, a TFX ``Model`` artifact
(``Format-Serving/`` inside) or a TF Serving base path (the highest numeric
version is used). ``examples_uri`` may be a TFRecord file, a directory of them,
or a TFX ``Examples`` artifact (``Split-<split>/`` inside); its records are used
as the warmup ``dataset``.

No ``from __future__ import annotations`` here: TFX and KFP read the component
functions' annotations as real objects.
"""
import json
import logging
import os
import time
from typing import Any, Sequence

import tensorflow as tf

from tfwarm_export.config import WarmupConfig, resolve_config
from tfwarm_export.errors import SavedModelError, TfwarmError
from tfwarm_export.model.signatures import is_saved_model
from tfwarm_export.saving import publish
from tfwarm_export.report import WarmupReport

log = logging.getLogger("tfwarm_export")

REPORT_NAME = "tfwarm_report.json"
TFX_SERVING_DIR = "Format-Serving"
LAYOUTS = ("serving", "tfx")


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if "://" in base else os.path.join(base, *parts)


def resolve_model_dir(model_uri: str) -> str:
    """The SavedModel directory inside ``model_uri`` (itself, ``Format-Serving/``, or its newest version).

    Args:
      model_uri: a SavedModel directory, a TFX ``Model`` artifact or a TF Serving base path.

    Returns:
      The directory holding ``saved_model.pb``.

    Raises:
      SavedModelError: none of the three layouts holds a SavedModel.
    """
    model_uri = os.fspath(model_uri)
    if is_saved_model(model_uri):
        return model_uri
    tfx_dir = _join(model_uri, TFX_SERVING_DIR)
    if is_saved_model(tfx_dir):
        return tfx_dir
    if tf.io.gfile.isdir(model_uri):
        versions = sorted((int(n.rstrip("/")) for n in tf.io.gfile.listdir(model_uri)
                           if n.rstrip("/").isdigit()), reverse=True)
        for v in versions:
            candidate = _join(model_uri, str(v))
            if is_saved_model(candidate):
                return candidate
    raise SavedModelError(
        f"no SavedModel found at {model_uri}: expected saved_model.pb there, in "
        f"{TFX_SERVING_DIR}/ (a TFX Model artifact) or in a numeric version directory (a TF "
        "Serving base path).")


def resolve_examples(examples_uri: str, split: str = "train") -> list[str]:
    """TFRecord files for ``examples_uri``: a file, a directory of files, or a TFX ``Examples`` artifact.

    Args:
      examples_uri: a TFRecord file, a directory of them, or an ``Examples`` artifact.
      split: the artifact's split to read (``Split-<split>/``).

    Returns:
      The files' paths, sorted.

    Raises:
      TfwarmError: ``examples_uri`` does not exist or holds no files.
    """
    examples_uri = os.fspath(examples_uri)
    if not tf.io.gfile.exists(examples_uri):
        raise TfwarmError(f"examples_uri {examples_uri} does not exist.")
    if not tf.io.gfile.isdir(examples_uri):
        return [examples_uri]
    split_dir = _join(examples_uri, f"Split-{split}")
    folder = split_dir if tf.io.gfile.isdir(split_dir) else examples_uri
    files = sorted(_join(folder, n) for n in tf.io.gfile.listdir(folder)
                   if not n.endswith("/") and not n.startswith(".")
                   and not tf.io.gfile.isdir(_join(folder, n)))
    if not files:
        splits = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(examples_uri) if n.startswith("Split-"))
        hint = f" (splits there: {splits}; pass examples_split=...)" if splits else ""
        raise TfwarmError(f"no TFRecord files in {folder}{hint}.")
    return files


def copy_tree(src: str, dst: str) -> None:
    """Copy a directory tree with ``tf.io.gfile`` (works across local, gs://, ram://...).

    Args:
      src: the directory to copy.
      dst: where to copy it (created; existing files are overwritten).

    Raises:
      tf.errors.OpError: a file cannot be read or written.
    """
    for root, dirs, files in tf.io.gfile.walk(src):
        rel = os.path.relpath(root, src) if "://" not in src else root[len(src.rstrip("/")):].strip("/")
        dest = dst if rel in ("", ".") else _join(dst, rel)
        tf.io.gfile.makedirs(dest)
        for d in dirs:
            tf.io.gfile.makedirs(_join(dest, d.rstrip("/")))
        for f in files:
            tf.io.gfile.copy(_join(root, f), _join(dest, f), overwrite=True)


def run_warmup_component(model_uri: str, output_uri: str, *, examples_uri: str | None = None,
                         examples_split: str = "train", layout: str = "serving",
                         version: int | None = None, config: WarmupConfig | None = None,
                         **options: Any) -> WarmupReport:
    """Copy the model to ``output_uri`` in a servable layout, add and replay warmup, write the report.

    ``options`` are ``WarmupConfig`` fields merged over ``config``. Without a
    ``config``, ``overwrite`` defaults to True (a warmup file already in the
    input model is regenerated); with ``examples_uri`` and no dataset given,
    ``dataset`` is its TFRecord files. ``version`` (serving layout) defaults to
    the Unix time in seconds, like TFX's Pusher.
    Raises the ``TfwarmError`` (``ReplayError`` with ``.report``) after writing
    the report JSON, so the pipeline step fails with the reason on record.

    Args:
      model_uri: a SavedModel directory, a TFX ``Model`` artifact or a TF Serving base path.
      output_uri: where the warmed model goes (a base path, or a TFX ``Model`` artifact).
      examples_uri: TFRecord examples to warm with (a file, a directory, an ``Examples`` artifact).
      examples_split: the ``Examples`` artifact's split.
      layout: ``"serving"`` (``output_uri/<version>/``) or ``"tfx"`` (``output_uri/Format-Serving/``).
      version: the version directory's number (serving layout; default: Unix time).
      config: the warmup options.
      **options: ``WarmupConfig`` fields merged over ``config``.

    Returns:
      The ``WarmupReport`` (also written to ``output_uri/tfwarm_report.json``).

    Raises:
      SavedModelError: no SavedModel at ``model_uri``.
      ReplayError: a record failed replay; the report JSON is written, the model is not.
      TfwarmError: any other refusal (see ``add_warmup``), after writing the report JSON.
      ValueError: ``layout`` is not ``"serving"`` or ``"tfx"``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    model_uri, output_uri = os.fspath(model_uri), os.fspath(output_uri)
    report_path = _join(output_uri, REPORT_NAME)
    try:
        source = resolve_model_dir(model_uri)
        if config is None:
            options.setdefault("overwrite", True)
        if examples_uri and "dataset" not in options and (config is None or config.dataset is None):
            options["dataset"] = resolve_examples(examples_uri, examples_split)
        config = resolve_config(config, **options)
        if layout == "tfx":
            target = _join(output_uri, TFX_SERVING_DIR)
        else:
            target = _join(output_uri, str(version if version is not None else int(time.time())))
        report = publish(lambda staged: copy_tree(source, staged), target, config,
                         what=f"copying {source}")
    except TfwarmError as e:
        report = getattr(e, "report", None)
        payload = report.to_dict() if isinstance(report, WarmupReport) else {"ok": False}
        payload["error"] = str(e)
        _write_json(report_path, payload)
        raise
    payload = report.to_dict()
    payload["source_model"] = source
    _write_json(report_path, payload)
    log.info("warmed %s -> %s (%d records); report at %s", source, target,
             len(report.plan.records), report_path)
    return report


def _write_json(path: str, payload: dict) -> None:
    parent = path.rsplit("/", 1)[0] if "://" in path else os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(payload, indent=2, sort_keys=True, default=str))


def options_from_json(options_json: str) -> dict[str, Any]:
    """Parse a component's ``options_json`` parameter (other ``WarmupConfig`` fields as JSON).

    Args:
      options_json: a JSON object, or empty.

    Returns:
      The options, by field name.

    Raises:
      ValueError: the text is not a JSON object.
    """
    options = json.loads(options_json or "{}")
    if not isinstance(options, dict):
        raise ValueError(f"options_json must be a JSON object, got {options_json!r}")
    return options


# --------------------------------------------------------------------------------------------
# TFX: a Python-function component, defined only when tfx is installed.
# --------------------------------------------------------------------------------------------
try:  # pragma: no cover - tfx is an optional extra and not installed in CI
    from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
    from tfx.dsl.component.experimental.decorators import component as _tfx_component
    from tfx.types.standard_artifacts import Examples as _TfxExamples
    from tfx.types.standard_artifacts import Model as _TfxModel
except ImportError:  # pragma: no cover
    TfxWarmup = None
else:  # pragma: no cover
    @_tfx_component
    def TfxWarmup(
        model: InputArtifact[_TfxModel],
        warmed_model: OutputArtifact[_TfxModel],
        examples: InputArtifact[_TfxExamples] = None,
        batch_sizes: Parameter[str] = "",
        signatures: Parameter[str] = "",
        seed: Parameter[int] = 0,
        examples_split: Parameter[str] = "train",
        options_json: Parameter[str] = "{}",
    ) -> None:
        """TFX step between Trainer and Pusher: ``warmed_model`` is ``model`` plus a replayed warmup file.

        ``batch_sizes``/``signatures`` are comma-separated (empty: defaults);
        ``options_json`` holds any other ``WarmupConfig`` fields as a JSON object.
        The output uses the Trainer layout (``Format-Serving/``), so Pusher
        takes it as is.
        """
        options = options_from_json(options_json)
        options["seed"] = seed
        if batch_sizes:
            options["batch_sizes"] = [int(b) for b in batch_sizes.split(",") if b.strip()]
        if signatures:
            options["signatures"] = [s.strip() for s in signatures.split(",") if s.strip()]
        report = run_warmup_component(
            model.uri, warmed_model.uri, examples_uri=examples.uri if examples is not None else None,
            examples_split=examples_split, layout="tfx", **options)
        warmed_model.set_int_custom_property("warmup_records", len(report.plan.records))
        warmed_model.set_int_custom_property("warmup_ok", int(report.ok))


# --------------------------------------------------------------------------------------------
# Kubeflow Pipelines v2: a lightweight Python component built on demand.
# --------------------------------------------------------------------------------------------
try:
    from kfp import dsl as _kfp_dsl
    from kfp.dsl import Dataset, Input, Model, Output
except ImportError:
    _kfp_dsl = None


if _kfp_dsl is not None:
    def tfwarm_add_warmup(
        model: Input[Model],
        warmed_model: Output[Model],
        examples: Input[Dataset] = None,
        batch_sizes: list = [],
        signatures: list = [],
        seed: int = 0,
        version: int = 1,
        examples_split: str = "train",
        options_json: str = "{}",
    ):
        """Warm ``model`` for TF Serving: ``warmed_model`` is a base path holding ``<version>/``."""
        try:
            from tfwarm_export.components import options_from_json, run_warmup_component
        except ImportError as e:
            raise RuntimeError(
                "tfwarm_export is not installed in this component's image; build the image with "
                "`pip install tfwarm_export[kfp]` and pass it as base_image=, or name the package in "
                f"packages_to_install=. ({e})") from None
        options = options_from_json(options_json)
        options["seed"] = seed
        if batch_sizes:
            options["batch_sizes"] = [int(b) for b in batch_sizes]
        if signatures:
            options["signatures"] = [str(s) for s in signatures]
        report = run_warmup_component(
            model.path, warmed_model.path, examples_uri=examples.path if examples is not None else None,
            examples_split=examples_split, layout="serving", version=version, **options)
        warmed_model.metadata["version"] = version
        warmed_model.metadata["warmup_records"] = len(report.plan.records)
        warmed_model.metadata["warmup_ok"] = report.ok
        print(report.summary())


def kfp_warmup_component(base_image: str = "python:3.11", packages_to_install: Sequence[str] = (),
                         install_kfp_package: bool = False, **component_kwargs: Any):
    """A KFP v2 ``@dsl.component`` that runs ``run_warmup_component`` (layout ``"serving"``).

    Inputs: ``model: Input[Model]``, optional ``examples: Input[Dataset]``;
    output ``warmed_model: Output[Model]`` (``<version>/`` inside, plus
    ``tfwarm_report.json``); parameters ``batch_sizes`` / ``signatures``
    (lists), ``seed``, ``version``, ``examples_split`` and ``options_json``
    (other ``WarmupConfig`` fields as JSON). The image must have TensorFlow,
    tfwarm_export and kfp installed (e.g. ``pip install tfwarm_export[kfp]``),
    which is why nothing is pip-installed at run time by default.

    Args:
      base_image: the component's container image.
      packages_to_install: pip packages installed when the step starts.
      install_kfp_package: let KFP install itself at run time.
      **component_kwargs: other ``kfp.dsl.component`` arguments.

    Returns:
      component (kfp.dsl.base_component.BaseComponent): the component (call it inside a
        ``@dsl.pipeline``).

    Raises:
      ImportError: kfp is not installed (``pip install tfwarm_export[kfp]``).
    """
    if _kfp_dsl is None:
        raise ImportError("kfp is not installed; `pip install tfwarm_export[kfp]` (kfp>=2.7) to build "
                          "the Kubeflow Pipelines component.")
    return _kfp_dsl.component(tfwarm_add_warmup, base_image=base_image,
                              packages_to_install=list(packages_to_install) or None,
                              install_kfp_package=install_kfp_package, **component_kwargs)


__all__ = ["run_warmup_component", "resolve_model_dir", "resolve_examples", "copy_tree",
           "options_from_json", "kfp_warmup_component", "TfxWarmup", "REPORT_NAME", "TFX_SERVING_DIR"]
