"""Per-input options (``overrides``, ``dim_sizes``, ``shapes``, ``image_size``), resolved once.

The user keys each option by ``"signature/alias"`` or a bare ``"alias"`` (or a tf.Example
feature key); the signature-qualified key wins. ``resolve_inputs`` applies that rule once, at
the edge (``context.resolve``), so the planner reads one typed ``InputOptions`` per input
instead of looking into the raw configuration at every use.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from tfwarm_export.config import WarmupConfig
from tfwarm_export.model.signatures import ModelSignatures


@dataclasses.dataclass(frozen=True)
class InputOptions:
    """The options the user gave one input (or one tf.Example feature) of one signature.

    Attributes:
      override: the user's values (``overrides``), or None.
      dims: axis -> size(s) (``dim_sizes``); empty when not given.
      shape: the user's shape (``shapes``), or None.
      image_size: the size of images the input's decoder reads (``image_size``), or None.
    """

    override: Any = None
    dims: Mapping[Any, Any] = dataclasses.field(default_factory=dict)
    shape: Any = None
    image_size: Any = None


@dataclasses.dataclass(frozen=True)
class ResolvedInputs:
    """Every (signature, alias or feature) the options name, mapped to its ``InputOptions``;
    a name no option mentions gets ``default`` (nothing given, a scalar ``image_size`` kept)."""

    by_input: Mapping[tuple[str, str], InputOptions]
    default: InputOptions = InputOptions()

    def get(self, signature: str, name: str) -> InputOptions:
        return self.by_input.get((signature, name), self.default)


def lookup(mapping: Mapping[str, Any], sig: str, alias: str) -> Any:
    """A per-input option: "signature/alias" wins over "alias"."""
    for key in (f"{sig}/{alias}", alias):
        if key in mapping:
            return mapping[key]
    return None


def _named(keys, signatures) -> set[str]:
    """The input names a key may stand for: itself, and what follows a signature's prefix."""
    names = set()
    for key in (k for k in keys if isinstance(k, str)):
        names.add(key)
        names.update(key[len(s) + 1:] for s in signatures if key.startswith(f"{s}/"))
    return names


def resolve_inputs(model: ModelSignatures, config: WarmupConfig) -> ResolvedInputs:
    """The per-input options of ``config`` for every signature of ``model``, resolved once."""
    image = config.image_size
    per_image = isinstance(image, Mapping)
    options = [config.overrides, config.dim_sizes, config.shapes] + ([image] if per_image else [])
    names = _named([k for m in options for k in (m or {})], list(model.signatures))
    by_input = {}
    for sig in model.signatures:
        for name in sorted(names):
            by_input[(sig, name)] = InputOptions(
                override=lookup(config.overrides, sig, name),
                dims=lookup(config.dim_sizes, sig, name) or {},
                shape=lookup(config.shapes, sig, name),
                image_size=lookup(image, sig, name) if per_image else image)
    return ResolvedInputs(by_input=by_input, default=InputOptions(image_size=None if per_image else image))


__all__ = ["InputOptions", "ResolvedInputs", "lookup", "resolve_inputs"]
