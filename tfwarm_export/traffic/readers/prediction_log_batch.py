"""PredictionLog records decoded a thousand at a time, in TensorFlow's C++ proto decoder.

A request log holds millions of predict requests in a handful of layouts (the
same signature, aliases, dtypes and shapes over and over). Parsing each record
in Python and building numpy arrays per tensor costs far more than reading the
file. Here ``tf.io.decode_proto`` walks the records of a batch
(PredictionLog -> PredictLog -> PredictRequest -> inputs -> TensorProto) in one
graph call, the batch is grouped by layout with numpy, each layout is validated
once (``prediction_log.check_inputs``, the same check as the one-record path),
and the tensors of a layout become one array per input from their raw bytes.

Only what the fast path is sure of takes it: predict logs whose numeric tensors
carry ``tensor_content`` of the exact size and whose string tensors carry one
``string_val`` per element, with no rank-0 input. Everything else (classify,
regress and multi-inference logs, ``float_val``-style tensors, unparsable
records) goes through ``prediction_log.decode_log``, one record at a time, so
both paths give the same rows and the same drop reasons.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from collections import Counter
from typing import Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export.traffic.readers.prediction_log import STRING_ENUM, check_inputs, decode_log, remember
from tfwarm_export.traffic.hashing import mix
from tfwarm_export.traffic.validate import Dropped, RequestGroup, TrafficSpec, decode_each

_U64 = np.uint64
_HASH_BUCKETS = 2**63 - 1


def _descriptor_source() -> bytes:
    """The serving protos' FileDescriptorSet, for ``decode_proto`` (TensorFlow's own
    C++ descriptor pool does not hold the ``tensorflow.serving`` messages)."""
    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        fd.CopyToProto(fds.file.add())

    add(prediction_log_pb2.DESCRIPTOR)
    return b"bytes://" + fds.SerializeToString()


@functools.lru_cache(maxsize=1)
def _decoder():
    """One ``tf.function`` over a batch of serialized PredictionLogs."""
    source = _descriptor_source()

    def fields(x, message, names, types):
        return tf.io.decode_proto(x, message, names, types, descriptor_source=source)

    def first(t, fill):
        return tf.pad(t, [[0, 0], [0, 1]], constant_values=fill)[:, 0]

    def flat(values, counts):
        return tf.boolean_mask(values, tf.sequence_mask(counts, tf.shape(values)[1]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def decode(records):
        sizes, (log,) = fields(records, "tensorflow.serving.PredictionLog", ["predict_log"], [tf.string])
        _, (req,) = fields(first(log, ""), "tensorflow.serving.PredictLog", ["request"], [tf.string])
        sizes_req, (spec, inputs) = fields(first(req, ""), "tensorflow.serving.PredictRequest",
                                           ["model_spec", "inputs"], [tf.string, tf.string])
        _, (sig,) = fields(first(spec, ""), "tensorflow.serving.ModelSpec", ["signature_name"], [tf.string])
        n_inputs = sizes_req[:, 1]
        entries = flat(inputs, n_inputs)
        _, (key, value) = fields(entries, "tensorflow.serving.PredictRequest.InputsEntry",
                                 ["key", "value"], [tf.string, tf.string])
        key, value = first(key, ""), first(value, "")
        tsizes, (dtype, shape, content, strings) = fields(
            value, "tensorflow.TensorProto", ["dtype", "tensor_shape", "tensor_content", "string_val"],
            [tf.int32, tf.string, tf.string, tf.string])
        dtype, shape, content = first(dtype, 0), first(shape, ""), first(content, "")
        sig = first(sig, "")
        layout = tf.strings.join([key, tf.strings.as_string(dtype), shape], separator="\x00")
        return {
            "is_predict": sizes[:, 0] > 0,
            "signature": sig,
            "signature_hash": tf.strings.to_hash_bucket_fast(sig, _HASH_BUCKETS),
            "n_inputs": n_inputs,
            "key": key,
            "dtype": dtype,
            "shape": shape,
            "entry_hash": tf.strings.to_hash_bucket_fast(layout, _HASH_BUCKETS),
            "content": content,
            "content_len": tf.strings.length(content),
            "string_count": tsizes[:, 3],
            "strings": flat(strings, tsizes[:, 3]),
        }

    return decode


@dataclass
class DecodedLogs:
    """A batch of serialized PredictionLogs (a numpy array of bytes, or the string
    tensor a ``tf.data`` read gave, never copied into Python) and what ``predecode``
    read from them (``fields`` is None when some record is not a proto: the exact
    path decides)."""

    records: "np.ndarray | tf.Tensor"
    fields: dict[str, np.ndarray] | None

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def pick(self, idx: np.ndarray) -> list[bytes]:
        """The serialized records ``idx`` (for the exact path)."""
        if isinstance(self.records, np.ndarray):
            return self.records[idx].tolist()
        return tf.gather(self.records, idx).numpy().tolist()


def predecode(records: "Sequence | tf.Tensor") -> DecodedLogs:
    """Run the C++ decoder over a batch. TensorFlow releases the GIL meanwhile, so a
    reader can predecode the next batch in a thread while this one is scanned."""
    if not isinstance(records, (np.ndarray, tf.Tensor)):
        records = np.array(list(records), dtype=object)
    if isinstance(records, np.ndarray) and (
            not len(records) or set(map(type, records.tolist())) != {bytes}):
        return DecodedLogs(records, None)
    try:
        fields = {k: v.numpy() for k, v in _decoder()(tf.convert_to_tensor(records)).items()}
    except tf.errors.OpError:  # some record is not a proto at all
        fields = None
    return DecodedLogs(records, fields)


def decode_logs(payloads: "Sequence | DecodedLogs", spec: TrafficSpec,
                memo: dict) -> tuple[list[RequestGroup], Counter]:
    """Many serialized PredictionLogs at once, as ``RequestGroup``s plus drops by reason.

    The same result as ``decode_each(decode_log, records, spec, memo)``."""
    batch = payloads if isinstance(payloads, DecodedLogs) else predecode(payloads)
    out = batch.fields
    if out is None:
        return decode_each(decode_log, batch.pick(np.arange(len(batch))), spec, memo)

    n = len(batch)
    n_inputs = out["n_inputs"].astype(np.int64)
    slow = ~out["is_predict"] | (n_inputs == 0)
    rec_of = np.repeat(np.arange(n), n_inputs)
    entry_hash = out["entry_hash"].astype(_U64)
    # a record's layout: its signature and the set of its entries' (alias, dtype, shape)
    layout = mix(out["signature_hash"].astype(_U64) * _U64(31) + n_inputs.astype(_U64))
    np.add.at(layout, rec_of, mix(entry_hash))
    order = np.lexsort((entry_hash, rec_of))   # entries sorted by record, then by layout hash
    starts = np.concatenate([[0], np.cumsum(n_inputs)[:-1]]).astype(np.int64)
    string_off = np.concatenate([[0], np.cumsum(out["string_count"])[:-1]]).astype(np.int64)

    groups: list[RequestGroup] = []
    dropped: Counter = Counter()
    fallback: list[np.ndarray] = [np.nonzero(slow)[0]]
    for width in np.unique(n_inputs[~slow]).tolist():
        recs = np.nonzero(~slow & (n_inputs == width))[0]
        uniq, first, inverse = np.unique(layout[recs], return_index=True, return_inverse=True)
        entries = order[starts[recs][:, None] + np.arange(width)]  # (records, inputs)
        rep = entries[first[inverse]]                              # each record's representative
        same = ((out["key"][entries] == out["key"][rep]) & (out["dtype"][entries] == out["dtype"][rep])
                & (out["shape"][entries] == out["shape"][rep])).all(axis=1)
        same &= out["signature"][recs] == out["signature"][recs[first[inverse]]]
        bad = set(np.unique(inverse[~same]).tolist())  # a 64-bit hash collision, or a repeated map key
        members = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
        for g in range(len(uniq)):
            idx = members[bounds[g]:bounds[g + 1]]
            if g in bad:
                fallback.append(recs[idx])
                continue
            result = _group(recs[idx], entries[idx], batch, out, string_off, spec, memo)
            if result is None:
                fallback.append(recs[idx])
            elif isinstance(result, Dropped):
                dropped[str(result)] += len(idx)
            else:
                groups.append(result)
    rest = np.sort(np.concatenate(fallback))
    if len(rest):
        more, why = decode_each(decode_log, batch.pick(rest), spec, memo)
        groups += more
        dropped.update(why)
    return groups, dropped


def _group(recs: np.ndarray, entries: np.ndarray, batch: DecodedLogs, out: dict,
           string_off: np.ndarray, spec: TrafficSpec, memo: dict) -> RequestGroup | Dropped | None:
    """One layout's records (``entries``: their inputs, in the same column order) as a
    group, its drop reason, or None (take the exact path)."""
    rep = entries[0]
    keys, dtypes, shapes = out["key"], out["dtype"], out["shape"]
    sig = out["signature"][recs[0]]
    aliases = [k.decode("utf-8", "surrogateescape") for k in keys[rep].tolist()]
    if len(set(aliases)) != len(aliases):
        return None
    memo_key = ("batch", sig, tuple(sorted(zip(aliases, dtypes[rep].tolist(), shapes[rep].tolist()))))
    verdict = memo.get(memo_key)
    if verdict is None:
        try:
            (raw,) = batch.pick(recs[:1])
            req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
            verdict = check_inputs(req, spec)
        except Dropped as why:
            verdict = why
        remember(memo, memo_key, verdict)
    if isinstance(verdict, Dropped):
        return Dropped(str(verdict))
    name, layout = verdict
    inputs: dict[str, np.ndarray] = {}
    per_request = None  # rows in each request (check_predict made every input agree)
    for col, alias in enumerate(aliases):
        shape, size, np_dtype = layout[alias]
        if not shape:
            return None  # rank 0: shared by the rows, grouped one request at a time
        per_request = shape[0] if per_request is None else per_request
        idx = entries[:, col]
        rows = (len(recs) * shape[0],) + tuple(shape[1:])
        if np_dtype is not None:
            if np.any(out["content_len"][idx] != np_dtype.itemsize * size) or size == 0:
                return None
            inputs[alias] = np.frombuffer(b"".join(out["content"][idx].tolist()), np_dtype).reshape(rows)
        elif int(dtypes[idx[0]]) == STRING_ENUM:
            if np.any(out["string_count"][idx] != size) or size == 0:
                return None
            picked = out["strings"][(string_off[idx][:, None] + np.arange(size)).ravel()]
            inputs[alias] = picked.reshape(rows)
        else:
            return None
    return RequestGroup(name, "predict", per_request, inputs, len(recs))
