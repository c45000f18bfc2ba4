"""Value domains: which values an input (or a tf.Example feature) may take.

A tensor of the right dtype and shape is not enough for many models: an
embedding lookup fails on an id past its table, a lookup table maps unknown
strings to OOV. A ``Domain`` says what to draw from; it comes either from graph
analysis (``tfwarm_export.analysis``) or from a user override.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Domain:
    """Where values for one input come from.

    Exactly one of ``constant``, ``choices``, ``fn`` or the ``low``/``high``
    range is used, in that order of precedence. ``high`` is exclusive.
    ``source`` says why (shown in the plan), e.g. "Gather on table 'emb' (1000 rows)".
    ``user`` marks a domain the user gave (kept as is on the safe-value retry).
    ``safe`` is the domain the safe-value retry uses instead of zeros/empty
    strings (e.g. a decoder's smallest valid encoding); None: the generic rule.
    ``encoding`` (a ``specs/encodings.py`` type) says the input is bytes a
    graph decoder reads (a JPEG, a CSV line...); it takes precedence over the rest.

    Attributes:
      low: the range's low end (inclusive).
      high: the range's high end (exclusive).
      choices: values drawn from uniformly.
      constant: the one value used.
      fn: ``fn(rng, shape)`` returning the value (a NumPy array or nested list).
      source: why this domain, shown in the plan.
      user: the user gave it (kept on the safe-value retry).
      safe: the domain the safe-value retry uses; None: zeros / empty strings.
      encoding: a graph decoder's encoding (image, CSV line, number string...).

    Example:
        ``overrides={"ids": tfwarm_export.Domain(low=0, high=1000)}`` keeps ids in range.
    """

    low: float | int | None = None
    high: float | int | None = None
    choices: tuple | None = None
    constant: Any = None
    fn: Callable[[np.random.Generator, tuple], Any] | None = None
    source: str = ""
    user: bool = False
    safe: "Domain | None" = None
    encoding: Any = None

    @classmethod
    def from_user(cls, value: Any, source: str = "user override") -> "Domain":
        """Interpret an override: a Domain, a callable ``fn(rng, shape)``, a
        ``range``/``(low, high)`` tuple, a list of choices, or a constant."""
        if isinstance(value, Domain):
            return dataclasses.replace(value, user=True, source=value.source or source)
        if callable(value):
            return cls(fn=value, source=source, user=True)
        if isinstance(value, range):
            return cls(low=value.start, high=value.stop, source=source, user=True)
        if isinstance(value, tuple) and len(value) == 2 and all(
                isinstance(v, (int, float, np.integer, np.floating)) for v in value):
            return cls(low=value[0], high=value[1], source=source, user=True)
        if isinstance(value, (list, set, frozenset)):
            return cls(choices=tuple(sorted(value) if isinstance(value, (set, frozenset)) else value),
                       source=source, user=True)
        return cls(constant=value, source=source, user=True)

    def describe(self) -> str:
        """The domain in words, as the plan and report show it.

        Returns:
          str: e.g. ``range [0, 100) (GatherV2 on 'emb' (100 rows))``.
        """
        if self.encoding is not None:
            return self.source or self.encoding.describe()
        if self.constant is not None:
            what = f"constant {self.constant!r}"
        elif self.choices is not None:
            shown = ", ".join(repr(c) for c in self.choices[:5])
            more = f", ... ({len(self.choices)} values)" if len(self.choices) > 5 else ""
            what = f"one of [{shown}{more}]"
        elif self.fn is not None:
            what = f"callable {getattr(self.fn, '__name__', 'fn')}"
        else:
            what = f"range [{self.low}, {self.high})"
        return f"{what} ({self.source})" if self.source else what
