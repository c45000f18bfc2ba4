"""Strict option keys: every key must name a signature, input alias or tf.Example feature.

A mistyped key in ``overrides``, ``dim_sizes``, ``shapes``, ``image_size``, ``signatures``
or a dataset dict used to be ignored, so the user believed a fix was applied that never
was. Planning calls ``validate_keys`` before anything else: an unknown key is an
error that lists the valid keys and the nearest one ("did you mean 'tokens'?"),
and nothing is written.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

import tensorflow as tf

from tfwarm_export import analysis
from tfwarm_export.config import WarmupConfig
from tfwarm_export.errors import ConfigKeyError, SignatureError
from tfwarm_export.model.signatures import CLASSIFY_METHOD, REGRESS_METHOD, ModelSignatures, SignatureInfo

MAX_LISTED = 40
"""Valid keys listed in an error message at most (the nearest match is always named)."""


def suggest(key: str, valid: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest valid key, or ``""``."""
    match = difflib.get_close_matches(key, sorted(set(valid)), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


def _listing(valid: Iterable[str]) -> str:
    keys = sorted(set(valid))
    shown = ", ".join(repr(k) for k in keys[:MAX_LISTED])
    more = f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
    return f"[{shown}{more}]"


def _unknown(option: str, key: str, what: str, valid: Iterable[str], model: ModelSignatures) -> ConfigKeyError:
    valid = list(valid)
    return ConfigKeyError(
        f"{option} key {key!r} names no {what} of {model.export_dir}.{suggest(key, valid)} "
        f"Valid keys: {_listing(valid)}. Nothing was written.")


def _example_features(model: ModelSignatures, sig: SignatureInfo) -> set[str]:
    """Override keys for tf.Example features parsed from this signature's string inputs."""
    keys: set[str] = set()
    for spec in sig.inputs.values():
        if spec.dtype != tf.string:
            continue
        if sig.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD) and spec.rank not in (None, 0, 1):
            continue
        example_spec = analysis.find_example_spec(model.meta_graph, spec.name)
        if example_spec is None:
            continue
        keys.update(example_spec.domain_key(f.key) for f in example_spec.context_features())
        keys.update(example_spec.domain_key(f.key, True) for f in example_spec.feature_list_features())
    return keys


def _alias_keys(model: ModelSignatures) -> set[str]:
    keys: set[str] = set()
    for name, sig in model.signatures.items():
        for alias in sig.inputs:
            keys.update((alias, f"{name}/{alias}"))
    return keys


def _matching_inputs(model: ModelSignatures, key: str):
    """(signature, alias) pairs a ``"alias"`` or ``"signature/alias"`` key addresses."""
    for name, sig in model.signatures.items():
        for alias in sig.inputs:
            if key in (alias, f"{name}/{alias}"):
                yield name, alias


def check_signatures(model: ModelSignatures, names: Iterable[str] | None) -> None:
    if names is None:
        return
    if isinstance(names, str):
        raise SignatureError(f"signatures must be a list of names, got the string {names!r}; "
                             f"write signatures=[{names!r}].")
    for name in names:
        if name not in model.signatures:
            raise SignatureError(
                f"signature {name!r} not found in {model.export_dir} (tags {list(model.tags)}); "
                f"available: {sorted(model.signatures)}.{suggest(name, model.signatures)} "
                "Pass one of those names.")


def check_overrides(model: ModelSignatures, overrides: Mapping[str, Any]) -> None:
    aliases = _alias_keys(model)
    unknown = [k for k in overrides if k not in aliases]
    if not unknown:
        return
    valid = set(aliases)
    for name, sig in model.signatures.items():
        features = _example_features(model, sig)
        valid.update(features)
        valid.update(f"{name}/{f}" for f in features)
    for key in unknown:
        if key not in valid:
            raise _unknown("overrides", str(key), "input alias or tf.Example feature", valid, model)


def check_shapes(model: ModelSignatures, shapes: Mapping[str, Any]) -> None:
    aliases = _alias_keys(model)
    for key in shapes:
        if key not in aliases:
            raise _unknown("shapes", str(key), "input alias", aliases, model)


def check_dim_sizes(model: ModelSignatures, dim_sizes: Mapping[str, Any],
                    shapes: Mapping[str, Any]) -> None:
    """Keys must be aliases; axes must be non-batch axes of a matching input."""
    aliases = _alias_keys(model)
    for key, axes in dim_sizes.items():
        if key not in aliases:
            raise _unknown("dim_sizes", str(key), "input alias", aliases, model)
        if not isinstance(axes, Mapping):
            raise ConfigKeyError(f"dim_sizes[{key!r}] must map axis -> size(s), e.g. {{1: 16}}; "
                                 f"got {axes!r}.")
        ranks = []
        for name, alias in _matching_inputs(model, key):
            shape = shapes.get(f"{name}/{alias}", shapes.get(alias, model.signatures[name].inputs[alias].shape))
            ranks.append(None if shape is None else len(shape))
        for axis in axes:
            try:
                a = int(axis)
            except (TypeError, ValueError):
                raise ConfigKeyError(f"dim_sizes[{key!r}] axis {axis!r} is not an integer.") from None
            if a < 1:
                raise ConfigKeyError(f"dim_sizes[{key!r}] axis {a}: axis 0 is the batch dimension, "
                                     "set by batch_sizes=; name an axis >= 1.")
            if ranks and all(r is not None and a >= r for r in ranks):
                raise ConfigKeyError(f"dim_sizes[{key!r}] axis {a} does not exist: the input has rank "
                                     f"{max(ranks)} (axes 1..{max(ranks) - 1} can be sized).")


def _check_size(option: str, size: Any) -> None:
    hw = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if not (isinstance(hw, (tuple, list)) and len(hw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw)):
        raise ConfigKeyError(f"{option} must be (height, width) or one int, both positive; got {size!r}.")


def check_image_size(model: ModelSignatures, image_size: Any) -> None:
    """One size, or ``{alias | signature/alias | tf.Example feature: size}``."""
    if image_size is None:
        return
    if not isinstance(image_size, Mapping):
        _check_size("image_size", image_size)
        return
    aliases = _alias_keys(model)
    valid = set(aliases)
    if any(k not in aliases for k in image_size):
        for name, sig in model.signatures.items():
            features = _example_features(model, sig)
            valid.update(features)
    for key, size in image_size.items():
        if key not in valid:
            raise _unknown("image_size", str(key), "input alias or tf.Example feature", valid, model)
        _check_size(f"image_size[{key!r}]", size)


def check_dataset(model: ModelSignatures, dataset: Any, wanted: Iterable[str]) -> None:
    """A dict dataset is ``{signature: data}`` or ``{alias: array}``; every key must be one."""
    if not isinstance(dataset, Mapping) or not dataset:
        return
    keys = [str(k) for k in dataset]
    if any(k in model.signatures for k in keys):
        for k in keys:
            if k not in model.signatures:
                raise _unknown("dataset", k, "signature (the other keys name signatures)",
                               model.signatures, model)
        return
    aliases = {a for name in wanted for a in model.signatures[name].inputs}
    for k in keys:
        if k not in aliases:
            raise _unknown("dataset", k, "input alias or signature",
                           aliases | set(model.signatures), model)


def validate_keys(model: ModelSignatures, config: WarmupConfig) -> None:
    """Raise before planning if any key of ``config`` names nothing in ``model``."""
    check_signatures(model, config.signatures)
    check_overrides(model, config.overrides or {})
    check_shapes(model, config.shapes or {})
    check_dim_sizes(model, config.dim_sizes or {}, config.shapes or {})
    check_image_size(model, config.image_size)
    wanted = list(config.signatures) if config.signatures is not None else sorted(model.signatures)
    check_dataset(model, config.dataset, wanted)
