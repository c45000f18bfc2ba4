"""The batch sizes TF Serving's batching session runs a request at: the one rule, everywhere.

From TF Serving's source (``batching_session.cc``, TF's ``batching_util``:
``shared_batch_scheduler.h``, ``batch_scheduler_utils.cc``):

* **Merged batches.** The scheduler merges concurrent tasks of one input shape into
  a batch of up to ``max_batch_size`` rows (``max_execution_batch_size`` with large
  batch splitting), then pads it up to the next ``allowed_batch_sizes`` entry
  (``GetNextAllowedBatchSize``). Under load a request of ``n`` rows therefore runs
  in a batch of *any* allowed size from the one ``n`` pads to upward: every such
  size is a distinct shape to the model (and, under XLA, a distinct compile).
* **Above the largest allowed size.** A task larger than ``max_batch_size``
  (``input_batch_size_limit``) is refused ("Task size ... is larger than maximum
  input batch size"): it never runs. With ``enable_large_batch_splitting`` a task up
  to ``max_batch_size`` is split into pieces of at most ``max_execution_batch_size``
  (the last allowed size), each merged and padded as above.
  ``GetNextAllowedBatchSize`` would return ``n`` unpadded past the last entry, but the
  scheduler never forms such a batch, so no size above the last entry ever runs.

A leaf: it imports nothing from the package, so planning, traffic validation,
coverage, the load budget and ``check`` share it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchRule:
    """What decides the batch a request runs at. ``allowed`` empty: no padding (and, without
    ``max_batch_size``, no batching at all: a request runs at its own size)."""

    allowed: tuple[int, ...] = ()
    max_batch_size: int | None = None
    max_execution_batch_size: int | None = None

    @property
    def splits(self) -> bool:
        """Large batch splitting: tasks above ``max_execution_batch_size`` are cut in pieces."""
        return (self.max_execution_batch_size is not None and self.max_batch_size is not None
                and self.max_execution_batch_size < self.max_batch_size)

    def rejects(self, n: int) -> bool:
        """True when TF Serving refuses a request of ``n`` rows (above ``max_batch_size``)."""
        return self.max_batch_size is not None and n > self.max_batch_size

    def padded(self, n: int) -> int:
        """The batch a request of ``n`` rows runs at when it runs alone: the next allowed size.

        A split request's pieces run at the last allowed size (its remainder is merged with
        other requests, see ``runs_at``). Without allowed sizes, ``n`` itself. Call
        ``rejects`` first: a refused request runs at no size (``n`` is returned for it).
        """
        for size in self.allowed:
            if size >= n:
                return size
        return self.allowed[-1] if self.allowed and self.splits else n

    def runs_at(self, n: int) -> tuple[int, ...]:
        """Every batch size a request of ``n`` rows can run in under load (merged batches):
        each allowed size from the one it pads to upward; ``(n,)`` without allowed sizes."""
        if not self.allowed:
            return (n,)
        if self.rejects(n):
            return ()
        piece = n
        if self.splits and n > self.allowed[-1]:
            piece = n % self.allowed[-1] or self.allowed[-1]  # the remainder pads smallest
        low = self.padded(piece)
        return tuple(s for s in self.allowed if s >= low)

    def merged_sizes(self, sizes) -> tuple[int, ...]:
        """The batch sizes a set of requests of ``sizes`` rows runs at, merged: the union of
        ``runs_at``, which is every allowed size from the smallest padded one upward."""
        out: set[int] = set()
        for n in sizes:
            out.update(self.runs_at(int(n)))
        return tuple(sorted(out))


NO_BATCHING = BatchRule()
"""Requests run at their own size."""

__all__ = ["BatchRule", "NO_BATCHING"]
