"""The planner's own types: one input's plan before batch sizes are crossed with it, and one
(batch, variant, bucket) item that becomes a record. Dataclasses, so each step of
``plan.py`` says what it takes and returns (they were dict bags and bare 4-tuples)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tfwarm_export.model.signatures import TensorSpec
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.example_spec import ExampleSpec

TENSOR, EXAMPLES, COMPOSITE = "tensor", "examples", "composite"


@dataclass(frozen=True)
class FeedPlan:
    """How one input is filled, whatever batch size it is fed at.

    ``shape`` is the declared shape (batch first; after the user's ``shapes``);
    ``variants`` the non-batch sizes to warm; ``defaulted`` the axes sized by
    ``DEFAULT_DIM_SIZE``. A composite part carries its ``component`` and the batch
    dimension its spec fixes (``batch_dim``)."""

    spec: TensorSpec
    shape: tuple[int | None, ...]
    variants: tuple[tuple[int, ...], ...]
    kind: str = TENSOR
    domain: Domain | None = None
    example_spec: ExampleSpec | None = None
    feature_domains: Mapping[str, Domain] = field(default_factory=dict)
    defaulted: tuple[int, ...] = ()
    component: Any = None
    batch_dim: int | None = None

    @property
    def rank(self) -> int:
        """Rank as the batching session sees it (a composite part always has a batch)."""
        return 1 if self.kind == COMPOSITE else len(self.shape)

    def variant(self, i: int) -> tuple[int, ...]:
        """The ``i``-th non-batch sizes (the last one when there are fewer)."""
        return self.variants[min(i, len(self.variants) - 1)]


@dataclass(frozen=True)
class PlanItem:
    """One record to build: its batch, shape variant, sizes from the data (``bucket``:
    ``{(alias, axis): size}``) and, for an exact class, how often the data has it."""

    batch: int | None
    variant: int
    bucket: Mapping[tuple[str, int], int] = field(default_factory=dict)
    count: int = 0
    exact: bool = False
