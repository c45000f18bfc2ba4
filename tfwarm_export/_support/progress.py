"""Progress bars for long work (dataset scans, replay, bench rows, fleet versions).

One switch for the whole process: off by default (library use and ``--json``
stay silent); the CLI turns it on when stderr is a terminal or with
``--progress``. Bars go to stderr only, through ``tqdm``.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm import tqdm

_enabled = False


def configure(enabled: bool) -> None:
    """Show (True) or hide (False) every bar this process draws from now on."""
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


def bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
        unit: str = "it", leave: bool = False) -> Any:
    """A ``tqdm`` bar on stderr, or a disabled one (still iterable and updatable)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=not _enabled, dynamic_ncols=True)


def write(message: str) -> None:
    """Print a line to stderr without tearing an active bar."""
    if _enabled:
        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)
