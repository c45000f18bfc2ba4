"""Batch sizes to warm, from a list or a TF Serving ``BatchingParameters`` file.

With ``--enable_batching`` TF Serving runs warmup through its batching session,
which pads every batch up to the next ``allowed_batch_sizes`` entry. Each padded
size is a distinct shape (and, under XLA, a distinct compilation), so we warm one
record per allowed size. The text file is parsed with protobuf's own text_format
against a descriptor mirroring ``session_bundle_config.proto`` (the pip package of
tensorflow-serving-api does not ship that proto), as strictly as TF Serving's
``ParseProtoTextFile``: a misspelt field is an error naming the line, never ignored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf import message_factory

from tfwarm_export._support import fileargs
from tfwarm_export.errors import BatchingError
from tfwarm_export.serving.text_proto import parse_text_proto
from tfwarm_export.specs.batching import BatchRule

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1,)


def _batching_parameters_class():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="tfwarm_export/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    msg = fdp.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    fields = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
        ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue"),
        ("max_execution_batch_size", 9, ".google.protobuf.Int64Value"),
    ]
    for name, number, type_name in fields:
        msg.field.add(name=name, number=number, label=F.LABEL_OPTIONAL,
                      type=F.TYPE_MESSAGE, type_name=type_name)
    msg.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    msg.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL,
                  type=F.TYPE_BOOL)
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


@dataclass(frozen=True)
class BatchingConfig:
    """The parts of TF Serving's ``BatchingParameters`` that decide which shapes it runs.

    Attributes:
      max_batch_size: the largest batch TF Serving forms.
      allowed_batch_sizes: the sizes batches are padded up to (strictly increasing, the
        last equal to ``max_batch_size``); empty: batches are not padded.
      pad_variable_length_inputs: whether variable-length inputs are padded to a common length.
      max_execution_batch_size: the largest batch executed (large-batch splitting), if set.
      source: where the parameters were read from (for messages).
    """

    max_batch_size: int
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    max_execution_batch_size: int | None = None
    source: str = ""

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Sizes a batch can reach after padding: every allowed size, or the max."""
        return self.allowed_batch_sizes or (self.max_batch_size,)

    @property
    def rule(self) -> BatchRule:
        """The padding and merged-batch rule of these parameters (``specs.batching``)."""
        allowed = self.allowed_batch_sizes
        # a last allowed size below max_batch_size passed validation only with large batch
        # splitting on (it must then equal max_execution_batch_size)
        splits = bool(allowed) and allowed[-1] < self.max_batch_size
        return BatchRule(allowed, self.max_batch_size, allowed[-1] if splits else None)

    def padded_size(self, n: int) -> int:
        """The size TF Serving pads a batch of ``n`` up to (``BatchRule.padded``).

        Args:
          n: a batch size.

        Returns:
          The first allowed size >= ``n``; above the last one, that last size when large
          batches are split, else ``n`` itself (a request TF Serving refuses, see ``rejects``).
        """
        return self.rule.padded(n)

    def runs_at(self, n: int) -> tuple[int, ...]:
        """Every batch size a request of ``n`` rows runs in once merged (``BatchRule.runs_at``).

        Args:
          n: the request's batch size.

        Returns:
          The allowed sizes, ascending, from the one ``n`` pads to up to the largest;
          ``(n,)`` without allowed sizes, ``()`` for a request TF Serving refuses.
        """
        return self.rule.runs_at(n)

    def to_dict(self) -> dict:
        """The parameters as plain JSON-able data.

        Returns:
          dict: every field, by name.
        """
        return {
            "source": self.source,
            "max_batch_size": self.max_batch_size,
            "allowed_batch_sizes": list(self.allowed_batch_sizes),
            "pad_variable_length_inputs": self.pad_variable_length_inputs,
            "max_execution_batch_size": self.max_execution_batch_size,
        }


def parse_batching_parameters(text: str, source: str = "<string>") -> BatchingConfig:
    """Parse and validate text-format BatchingParameters as TF Serving would.

    As strictly as TF Serving's ``ParseProtoTextFile``: an unknown or misspelt field, a
    field given twice or a mistyped value is refused, naming the line. Allowed sizes
    must be strictly increasing and the last must equal ``max_batch_size``.

    Args:
      text: the file's contents.
      source: the file's name, for messages.

    Returns:
      The validated ``BatchingConfig``.

    Raises:
      BatchingError: the text is not a valid BatchingParameters, or breaks TF Serving's rules.

    Example:
        >>> parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4 "
        ...                           "allowed_batch_sizes: 8").batch_sizes
        (4, 8)
    """
    proto = parse_text_proto(
        text, BatchingParameters(), source, error=BatchingError,
        example="'max_batch_size { value: 32 }' and 'allowed_batch_sizes: 8'")
    if not proto.HasField("max_batch_size"):
        raise BatchingError(
            f"{source}: max_batch_size is not set. TF Serving then uses its own default; "
            "set 'max_batch_size { value: N }' so the warmed sizes match what is served."
        )
    max_bs = int(proto.max_batch_size.value)
    if max_bs < 1:
        raise BatchingError(f"{source}: max_batch_size must be >= 1, got {max_bs}.")
    allowed = tuple(int(s) for s in proto.allowed_batch_sizes)
    splitting = proto.HasField("enable_large_batch_splitting") and proto.enable_large_batch_splitting.value
    max_exec = int(proto.max_execution_batch_size.value) if proto.HasField("max_execution_batch_size") else None
    last_must_be = max_exec if (splitting and max_exec) else max_bs
    if allowed:
        if any(s < 1 for s in allowed):
            raise BatchingError(f"{source}: allowed_batch_sizes must be positive, got {list(allowed)}.")
        if any(b <= a for a, b in zip(allowed, allowed[1:])):
            raise BatchingError(
                f"{source}: allowed_batch_sizes {list(allowed)} must be strictly increasing "
                "(TF Serving refuses to load otherwise). Sort them and remove duplicates.")
        if allowed[-1] != last_must_be:
            what = "max_execution_batch_size" if last_must_be != max_bs else "max_batch_size"
            raise BatchingError(
                f"{source}: the last allowed_batch_sizes entry ({allowed[-1]}) must equal "
                f"{what} ({last_must_be}); TF Serving refuses to load otherwise. "
                f"Append {last_must_be} or change {what}.")
    return BatchingConfig(
        max_batch_size=max_bs,
        allowed_batch_sizes=allowed,
        pad_variable_length_inputs=bool(proto.pad_variable_length_inputs),
        max_execution_batch_size=max_exec,
        source=source,
    )


def load_batching_parameters(path: str | os.PathLike) -> BatchingConfig:
    """Read a ``--batching_parameters_file`` (a path, ``-`` or a pipe; read once).

    Args:
      path: the file TF Serving is given as ``--batching_parameters_file``.

    Returns:
      The parsed and validated ``BatchingConfig``.

    Raises:
      BatchingError: the file cannot be read, or breaks a rule ``parse_batching_parameters`` checks.
    """
    path = os.fspath(path)
    try:
        text = fileargs.read_text(path)
    except FileNotFoundError:
        raise BatchingError(f"batching parameters file {path} does not exist; pass the file "
                            "given to tensorflow_model_server --batching_parameters_file.") from None
    except UnicodeDecodeError:
        raise BatchingError(f"batching parameters file {path} is not UTF-8 text; it must be a "
                            "text-format BatchingParameters proto.") from None
    return parse_batching_parameters(text, source=fileargs.describe(path))


def resolve_batch_sizes(batch_sizes: Sequence[int] | None,
                        batching: BatchingConfig | None) -> tuple[int, ...]:
    """Decide the batch sizes to warm.

    Explicit sizes win but must respect ``max_batch_size``; otherwise the batching
    file's allowed sizes (or its max); otherwise ``DEFAULT_BATCH_SIZES`` (1).
    """
    if batch_sizes is not None:
        sizes = [int(s) for s in batch_sizes]
        if not sizes:
            raise BatchingError("batch_sizes is empty; pass at least one size, e.g. [1].")
        bad = [s for s in sizes if s < 1]
        if bad:
            raise BatchingError(f"batch sizes must be >= 1, got {bad}.")
        if batching is not None:
            too_big = [s for s in sizes if s > batching.max_batch_size]
            if too_big:
                raise BatchingError(
                    f"batch sizes {too_big} exceed max_batch_size {batching.max_batch_size} "
                    f"from {batching.source or 'the batching parameters'}; TF Serving rejects such "
                    "batches. Drop them or raise max_batch_size.")
            # Warm what TF Serving will actually run: the padded size (``padding_note`` says so).
            sizes = [batching.padded_size(s) for s in sizes]
        return tuple(sorted(set(sizes)))
    if batching is not None:
        return batching.batch_sizes
    return DEFAULT_BATCH_SIZES


def padded_sizes(batch_sizes: Sequence[int] | None,
                 batching: BatchingConfig | None) -> dict[int, int]:
    """Requested sizes that TF Serving pads to another size: ``{requested: padded}``."""
    if batch_sizes is None or batching is None:
        return {}
    return {int(s): batching.padded_size(int(s)) for s in sorted(set(batch_sizes))
            if batching.padded_size(int(s)) != int(s)}


def padding_note(batch_sizes: Sequence[int] | None, batching: BatchingConfig | None) -> str | None:
    """The plan note for sizes replaced by their padded size, or None when none were."""
    padded = padded_sizes(batch_sizes, batching)
    if not padded:
        return None
    pairs = ", ".join(f"{a} -> {b}" for a, b in padded.items())
    return (f"batch sizes padded: {pairs} (allowed_batch_sizes {list(batching.allowed_batch_sizes)} "
            f"of {batching.source or 'the batching parameters'}); TF Serving pads each batch up to "
            "the next allowed size, so that size is what runs and what is warmed")
