"""The selection as one combiner: the same code on one machine and on Apache Beam.

``TrafficScan`` is the accumulator over logged traffic (payloads decoded in
batches by each reader's batch decoder, rows buffered per layout, one
``select.Scanner`` per signature, drops counted by reason);
``SelectionCombiner`` puts it in Beam's ``CombineFn`` protocol, which the local
path calls in-process. Because every part of the accumulator merges (bottom-k
sketches, counters, statistics), the result does not depend on file order,
sharding or chunking.
"""
from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export.errors import DatasetError
from tfwarm_export.traffic.readers.files import PREDICTION_LOG, REST_JSON, TF_EXAMPLE
from tfwarm_export.traffic.readers.prediction_log import is_prediction_log
from tfwarm_export.traffic.readers.prediction_log_batch import decode_logs
from tfwarm_export.traffic.readers.rest_json_batch import decode_bodies
from tfwarm_export.traffic.readers.tfexample import decode_example_records
from tfwarm_export.specs.request_class import request_class
from tfwarm_export.traffic.rows import Chunk
from tfwarm_export.traffic.select import DataSample, Scanner
from tfwarm_export.traffic.stats import VOCAB_MIN_COUNT
from tfwarm_export.traffic.validate import RequestGroup, TrafficSpec, row_layout

_FLUSH_ROWS = 4096  # rows of one layout buffered before they are scanned as one chunk


def to_element(item: Any) -> "tuple[str, Any] | RecordBatch":
    """What the combiner takes, from whatever a pipeline holds: a ``(kind, payload)``
    pair or ``RecordBatch``, a PredictionLog (proto or bytes), a REST body (dict or
    JSON text), or a serialized tf.Example.

    Args:
      item: one element of a PCollection.

    Returns:
      A ``(kind, payload)`` pair (or a ``RecordBatch``) the selection combiner takes.

    Raises:
      TypeError: the element is none of those.
    """
    if isinstance(item, tuple) and len(item) == 2 and item[0] in (REST_JSON, PREDICTION_LOG, TF_EXAMPLE):
        return item
    if isinstance(item, RecordBatch):
        return item
    if isinstance(item, prediction_log_pb2.PredictionLog):
        return PREDICTION_LOG, item.SerializeToString()
    if isinstance(item, (dict, str)):
        return REST_JSON, item
    if isinstance(item, bytes):
        if item.lstrip()[:1] == b"{":
            return REST_JSON, item
        return (PREDICTION_LOG if is_prediction_log(item) else TF_EXAMPLE), item
    raise TypeError(f"cannot read a {type(item).__name__} as a warmup request; pass PredictionLog "
                    "protos, REST JSON bodies or serialized tf.Examples")


BATCH_DECODERS: dict[str, Callable[[Sequence, TrafficSpec, dict], tuple[list[RequestGroup], Counter]]] = {
    REST_JSON: decode_bodies,
    PREDICTION_LOG: decode_logs,
    TF_EXAMPLE: decode_example_records,
}
DECODE_BATCH = 4096          # payloads of one kind decoded together
_FLUSH_BYTES = 4 << 20       # buffered row bytes before the biggest layouts are scanned (bounds memory)


@dataclass
class RecordBatch:
    """Many payloads of one kind as one combiner element (readers hand these over,
    so a scan pays Python per thousand records, not per record)."""

    kind: str
    payloads: Sequence


class TrafficScan:
    """The accumulator over logged traffic: one ``Scanner`` per signature plus
    the drop counts. Elements are ``(kind, payload)`` (a REST body, a
    PredictionLog as bytes or proto, a tf.Example record) or a ``RecordBatch``.

    Payloads wait, per kind, until ``DECODE_BATCH`` of them are decoded together
    by the reader's batch decoder; decoded requests wait, per layout (signature,
    stratum, row shapes and dtypes), until ``_FLUSH_ROWS`` rows make one chunk.
    Neither wait changes a result: selection and statistics do not depend on
    how rows are chunked."""

    def __init__(self, spec: TrafficSpec):
        self.spec = spec
        self.scanners: dict[str, Scanner] = {}
        self.records = 0
        self.dropped: Counter = Counter()
        self._pending: dict[str, list] = {}
        self._buffer: dict[tuple, list[tuple[dict[str, np.ndarray], int]]] = {}
        self._rows: Counter = Counter()
        self._bytes = 0
        self._memo: dict = {}  # the decoders' per-layout validation verdicts (see decode_log)

    def _scanner(self, name: str) -> Scanner:
        sc = self.scanners.get(name)
        if sc is None:
            sig = self.spec.signatures[name]
            sc = self.scanners[name] = Scanner(
                sig.inputs, [a for a in sorted(sig.inputs) if a not in sig.defaults], name,
                self.spec.k, self.spec.seed, None, self.spec.vocab_cap, None, "sample")
        return sc

    def add(self, element: Any) -> None:
        """One element: anything ``to_element`` takes. Beam calls this per element, so
        the common ``(kind, payload)`` pair costs a type check and an append."""
        if type(element) is not tuple or len(element) != 2 or element[0] not in BATCH_DECODERS:
            element = to_element(element)
            if isinstance(element, RecordBatch):
                self.add_batch(element.kind, element.payloads)
                return
        kind, payload = element
        pending = self._pending.setdefault(kind, [])
        pending.append(payload)
        if len(pending) >= DECODE_BATCH:
            self._pending[kind] = []
            self.add_batch(kind, pending)

    def add_batch(self, kind: str, payloads: Sequence) -> None:
        """Decode ``payloads`` (all of ``kind``) together and buffer their rows.

        Objects that existed before the batch are frozen out of the cyclic GC
        meanwhile (``gc.freeze``; unfrozen after, both O(1)): a batch allocates
        enough to trigger full collections, and each would walk the hundreds of
        thousands of objects an imported TensorFlow holds (~0.1 s) to free none."""
        if not len(payloads):
            return
        if gc.get_freeze_count():  # the process froze objects itself: leave its GC state alone
            self._add_batch(kind, payloads)
            return
        gc.freeze()
        try:
            self._add_batch(kind, payloads)
        finally:
            gc.unfreeze()

    def _add_batch(self, kind: str, payloads: Sequence) -> None:
        self.records += len(payloads)
        groups, dropped = BATCH_DECODERS[kind](payloads, self.spec, self._memo)
        self.dropped.update(dropped)
        for group in groups:
            self._add_group(group)
        if self._bytes >= _FLUSH_BYTES:  # memory bound: scan the biggest layouts, keep the small
            for key in sorted(self._buffer, key=lambda k: (-self._rows[k], repr(k))):
                self._flush_key(key)
                if self._bytes < _FLUSH_BYTES // 2:
                    break

    def _add_group(self, g: RequestGroup) -> None:
        why = self.spec.rejected(g.batch or 1)
        if why is not None:  # never runs on the server: dropped and counted, like any misfit
            self.dropped[why] += g.requests
            return
        stratum = (g.request_type, self.spec.padded(g.batch or 1))
        if g.batch is None:  # a rank-0 value is shared by the rows, not stacked
            self._add_chunk(g.signature, stratum, g.inputs, g.requests)
            return
        key = (g.signature, stratum, row_layout(g.inputs))
        self._buffer.setdefault(key, []).append((g.inputs, g.requests))
        self._rows[key] += g.batch * g.requests
        self._bytes += sum(v.nbytes for v in g.inputs.values())
        if self._rows[key] >= _FLUSH_ROWS:
            self._flush_key(key)

    def _flush_key(self, key: tuple) -> None:
        parts = self._buffer.pop(key)
        self._rows.pop(key, None)
        self._bytes -= sum(v.nbytes for inputs, _ in parts for v in inputs.values())
        name, stratum, _ = key
        inputs = {a: (np.concatenate([p[a] for p, _ in parts]) if len(parts) > 1 else parts[0][0][a])
                  for a in parts[0][0]}
        self._add_chunk(name, stratum, inputs, sum(n for _, n in parts))

    def flush(self) -> None:
        """Decode what is pending and scan everything buffered."""
        pending, self._pending = self._pending, {}
        for kind in sorted(pending):
            self.add_batch(kind, pending[kind])
        for key in sorted(self._buffer, key=repr):
            self._flush_key(key)
        self._bytes = 0

    def _add_chunk(self, name: str, stratum: tuple[str, int], inputs: dict[str, np.ndarray],
                   requests: int) -> None:
        chunk = Chunk(0, {a: (f"input {a!r}", v) for a, v in sorted(inputs.items())},
                      user_batch=True, numbering="none",
                      label=f"a {stratum[0]} request to {name!r}", stratum=stratum, requests=requests)
        try:
            scanner = self._scanner(name)
            scanner.add(chunk)
        except DatasetError as why:
            self.dropped[str(why).split(". ")[0]] += requests
            return
        # every request of a chunk has one class: one layout, one padded batch (the stratum)
        if any(np.ndim(v) == 0 for v in inputs.values()):
            shapes = {a: np.shape(v) for a, v in inputs.items()}
        else:
            shapes = {a: (stratum[1],) + tuple(np.shape(v)[1:]) for a, v in inputs.items()}
        scanner.class_counts[request_class(name, stratum[0], shapes)] += requests

    def __getstate__(self) -> dict:
        self.flush()  # an accumulator travels (Beam) without a buffer
        return {**self.__dict__, "_memo": {}}

    def merge(self, other: "TrafficScan") -> "TrafficScan":
        self.flush()
        other.flush()
        self.records += other.records
        self.dropped.update(other.dropped)
        for name, sc in other.scanners.items():
            if name in self.scanners:
                self.scanners[name].merge(sc)
            else:
                self.scanners[name] = sc
        return self

    def finish(self, source: str, vocab_min_count: int = VOCAB_MIN_COUNT) -> "TrafficSelection":
        self.flush()
        samples = {}
        for name in sorted(self.scanners):
            sample = self.scanners[name].finish(source, self.spec.k, self.spec.seed, vocab_min_count,
                                                allow_empty=True)
            if sample is not None:
                samples[name] = sample
        return TrafficSelection(source=source, samples=samples, records=self.records,
                                dropped=dict(self.dropped))


class SelectionCombiner:
    """The selection as a combiner, in Beam's ``CombineFn`` protocol.

    ``tfwarm_export.beam`` hands it to ``beam.CombineGlobally``; the local path
    calls the same four methods in one process. Because the accumulator keeps
    a bottom-k of ``hash(seed, row)`` per stratum and mergeable statistics,
    both give the same selection whatever the sharding or file order.
    """

    def __init__(self, spec: TrafficSpec, source: str, vocab_min_count: int = VOCAB_MIN_COUNT):
        self.spec = spec
        self.source = source
        self.vocab_min_count = vocab_min_count

    def create_accumulator(self) -> TrafficScan:
        return TrafficScan(self.spec)

    def add_input(self, acc: TrafficScan, element: Any) -> TrafficScan:
        """``element``: anything ``to_element`` takes (Beam hands over raw items)."""
        acc.add(element)
        return acc

    def merge_accumulators(self, accs) -> TrafficScan:
        accs = iter(accs)
        first = next(accs)
        for acc in accs:
            first.merge(acc)
        return first

    def extract_output(self, acc: TrafficScan) -> "TrafficSelection":
        return acc.finish(self.source, self.vocab_min_count)


@dataclass
class TrafficSelection:
    """What a traffic scan selected: a ``DataSample`` per signature that any
    request fitted, and every dropped request counted by reason."""

    source: str
    samples: dict[str, DataSample]
    records: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def kept_requests(self) -> int:
        return sum(s.requests for s in self.samples.values())

    def drop_lines(self) -> list[str]:
        """One line per reason, most frequent first: "12,031 requests dropped: ..."."""
        return [f"{n:,} request(s) from {self.source} dropped: {why}"
                for why, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_dict(self) -> dict:
        return {"source": self.source, "records": self.records,
                "signatures": sorted(self.samples),
                "dropped": dict(sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])))}
