"""The duration format options take (``--load-budget 30s``): read by the CLI, the config's
validation and the budget, so it sits in the leaf that all of them may import."""
from __future__ import annotations

import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def parse_duration(text: Any, what: str = "load budget") -> float:
    """``30s``, ``2m``, ``500ms``, ``1.5h`` or a plain number of seconds (``20``) -> seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{what} must be a duration like 30s, 2m, 500ms or a number of seconds, got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text).lower())
        if not m or m.group(2) not in _UNITS and m.group(2) != "":
            raise ValueError(f"{what} {text!r} is not a duration: write it like 30s, 2m, 500ms, "
                             "1.5h or a number of seconds (20)")
        seconds = float(m.group(1)) * _UNITS.get(m.group(2), 1.0)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{what} must be a positive duration, got {text!r}")
    return seconds
