"""Command-line arguments shared by every ``tfwarm`` subcommand (``cli`` and ``bench``).

Flags that set a ``WarmupConfig`` field are declared once, as ``Flag`` entries in
``MODEL_FLAGS``, ``PLAN_FLAGS`` and ``WRITE_FLAGS``: the entry says the flag's
name(s), the field it sets, its argparse options and how the parsed value
becomes the field's value. ``config_from_args`` builds the config from whichever
of them a subcommand registered. Adding an option is one entry here.

File arguments may be pipes, process substitutions or ``-`` (stdin): each is read
once, here, and what was read is passed down (a parsed ``BatchingConfig``, a
spooled copy of a TFRecord stream), never the pipe's name.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from tfwarm_export._support import fileargs
from tfwarm_export.errors import BatchingError, DatasetError, PlanError, ReplayError, TfwarmError

GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- value parsers


def int_list(text: str) -> list[int]:
    """``1,8,32`` -> ``[1, 8, 32]``."""
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def duration_arg(text: str) -> float:
    """``--load-budget 30s|2m|500ms|20`` -> seconds; a bad value is argparse's usage error."""
    from tfwarm_export.specs.durations import parse_duration

    try:
        return parse_duration(text, "--load-budget")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def name_list(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``."""
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_dim(text: str) -> tuple[str, int, list[int]]:
    """``ALIAS:AXIS=SIZE[,SIZE...]``, e.g. ``tokens:1=16,32,64``."""
    try:
        target, sizes = text.split("=", 1)
        alias, axis = target.rsplit(":", 1)
        return alias, int(axis), int_list(sizes)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"expected ALIAS:AXIS=SIZE[,SIZE...] (e.g. tokens:1=16,32), got {text!r}") from None


def parse_shape(text: str) -> tuple[str, list[int]]:
    """``ALIAS=D0,D1,...`` with -1 for the batch dimension."""
    try:
        alias, dims = text.split("=", 1)
        return alias, int_list(dims)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"expected ALIAS=D0,D1,... with -1 for the batch dimension (e.g. x=-1,16), got {text!r}") from None


def parse_value(text: str) -> tuple[str, Any]:
    """``ALIAS=JSON``: a list of choices, ``{"range": [lo, hi]}`` or a constant."""
    try:
        alias, raw = text.split("=", 1)
        value = json.loads(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected ALIAS=JSON: a list of choices, {{"range": [lo, hi]}}, or a constant; '
            f"got {text!r}") from None
    if isinstance(value, dict) and "range" in value:
        value = tuple(value["range"])
    return alias, value


def parse_image_size(text: str) -> tuple[str | None, tuple[int, int]]:
    """``[ALIAS=]HxW``, e.g. ``224x224`` or ``image_bytes=320x240``."""
    alias, _, size = text.rpartition("=")
    try:
        h, _, w = size.lower().partition("x")
        hw = (int(h), int(w or h))
        if min(hw) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected [ALIAS=]HxW with positive sizes (e.g. 224x224 or image=320x240), got {text!r}") from None
    return alias or None, hw


def _image_sizes(given: Sequence[tuple[str | None, tuple[int, int]]]) -> Any:
    """One size for every image input (HxW), or a dict per alias (ALIAS=HxW)."""
    if not given:
        return None
    per_alias = {alias: hw for alias, hw in given if alias}
    if per_alias and len(per_alias) != len(given):
        raise PlanError("--image-size: give either one HxW for every image input or ALIAS=HxW for "
                        "each, not both.")
    return per_alias or given[-1][1]


# --------------------------------------------------------------------------- file arguments


def load_batching_arg(path: str):
    """``--batching-parameters FILE|-|<(...)`` -> a validated ``BatchingConfig`` (read once)."""
    from tfwarm_export.serving.batching import load_batching_parameters

    try:
        return load_batching_parameters(path)
    except OSError as e:
        raise BatchingError(f"cannot read batching parameters {fileargs.describe(path)}: {e}") from None


def examples_arg(value: str) -> Any:
    """``--examples``: a path or glob; or ``-``/a pipe holding TFRecord data or a list of paths.

    A stream is read once. TFRecord bytes (GZIP or framed records) are spooled to a
    temp file; text is a list of paths/globs, one per line (``#`` comments allowed).
    """
    if not fileargs.is_stream(value):
        return value
    try:
        data = fileargs.read_bytes(value)
    except OSError as e:
        raise DatasetError(f"cannot read --examples {fileargs.describe(value)}: {e}") from None
    if not data:
        raise DatasetError(f"--examples {fileargs.describe(value)} is empty; pipe TFRecord data or a "
                           "list of TFRecord paths into it.")
    if data[:2] == GZIP_MAGIC or b"\x00" in data[:16]:
        return fileargs.spooled_copy(data, suffix=".tfrecord")
    try:
        lines = [ln.strip() for ln in data.decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        return fileargs.spooled_copy(data, suffix=".tfrecord")
    paths = [ln for ln in lines if ln and not ln.startswith("#")]
    if not paths:
        raise DatasetError(f"--examples {fileargs.describe(value)} lists no paths.")
    return paths


def local_file_arg(value: str | None) -> str | None:
    """A binary file argument (e.g. ``check --file``): streams become a spooled temp copy."""
    if value is None or not fileargs.is_stream(value):
        return value
    return fileargs.spooled_copy(fileargs.read_bytes(value))


# --------------------------------------------------------------------------- the flag tables


@dataclass(frozen=True)
class Flag:
    """One command-line flag that sets a ``WarmupConfig`` field."""

    names: tuple[str, ...]
    field: str
    options: Mapping[str, Any] = field(default_factory=dict)
    convert: Callable[[Any], Any] | None = None
    """Parsed value -> config value; not called when the flag was not given (None)."""

    @property
    def dest(self) -> str:
        return self.options.get("dest") or self.names[0].lstrip("-").replace("-", "_")


def _dims(items: Sequence[tuple[str, int, list[int]]]) -> dict:
    out: dict[str, dict[int, list[int]]] = {}
    for alias, axis, sizes in items:
        out.setdefault(alias, {})[axis] = sizes
    return out


MODEL_FLAGS: list[Flag] = [
    Flag(("--tags",), "tags", dict(default="serve", metavar="TAG,...",
                                   help="MetaGraph tag set to load, comma-separated (default: serve)"),
         lambda v: tuple(name_list(v))),
    Flag(("--batching-parameters",), "batching_parameters", dict(
        metavar="FILE", help="the file given to tensorflow_model_server --batching_parameters_file; "
                             "'-' reads it from stdin"), load_batching_arg),
    Flag(("--op-library",), "op_libraries", dict(
        action="append", default=[], metavar="PATH",
        help="custom op kernel library (.so) loaded with tf.load_op_library before the model "
             "(TF Text / TF-DF ops TF Serving links are imported automatically); repeatable"), tuple),
    Flag(("--platform-config-file",), "platform_config", dict(
        metavar="FILE", help="the file given to tensorflow_model_server --platform_config_file: "
                             "replay under its batching, warmup options and session config")),
    Flag(("--ignore-per-model-batching-params",), "ignore_per_model_batching", dict(
        action="store_true", help="ignore DIR/batching_params.pbtxt (for servers run without "
                                  "--enable_per_model_batching_params)")),
]
"""Flags every subcommand takes: which MetaGraph, TF Serving's batching, op libraries."""

PLAN_FLAGS: list[Flag] = [
    Flag(("--batch-sizes",), "batch_sizes", dict(
        type=int_list, metavar="N,N,...",
        help="batch sizes to warm (default: from --batching-parameters, else 1)")),
    Flag(("--signatures",), "signatures", dict(
        type=name_list, metavar="NAME,...", help="warm only these signatures (default: all)")),
    Flag(("--seed",), "seed", dict(type=int, default=0, help="seed for generated values (default 0)")),
    Flag(("--model-name",), "model_name", dict(default="", help="model name put in every request")),
    Flag(("--dim",), "dim_sizes", dict(
        type=parse_dim, action="append", default=[], metavar="ALIAS:AXIS=SIZE[,SIZE]",
        help="size(s) for a dimension of unknown size; several sizes warm each one "
             "(XLA compiles once per shape)"), _dims),
    Flag(("--shape",), "shapes", dict(
        type=parse_shape, action="append", default=[], metavar="ALIAS=D0,D1",
        help="full shape for an input of unknown rank (-1 marks the batch dimension)"), dict),
    Flag(("--value",), "overrides", dict(
        type=parse_value, action="append", default=[], metavar="ALIAS=JSON",
        help='values for an input or tf.Example feature: a JSON list of choices, '
             '{"range":[lo,hi]} or a constant'), dict),
    Flag(("--examples",), "dataset", dict(
        metavar="GLOB", help="TFRecord file(s) of tf.Example/SequenceExample to sample values from "
                             "(GZIP detected); '-' or a pipe may carry the records or a list of paths"),
         examples_arg),
    Flag(("--traffic",), "traffic", dict(
        action="append", default=[], metavar="GLOB",
        help="logged requests to warm from (repeatable): REST JSON bodies (.json/.jsonl), "
             "PredictionLog or tf.Example TFRecords; globs, directories, gs://..., GZIP"),
         lambda v: list(v) or None),
    Flag(("--from-version",), "previous_version", dict(
        metavar="DIR", help="reuse another version's warmup records that still fit; plan the rest")),
    Flag(("--runner",), "runner", dict(
        metavar="RUNNER", help="select --traffic with an Apache Beam pipeline on this runner (needs "
                               "tfwarm_export[beam]). Work offline: DirectRunner, DaskRunner (a Dask "
                               "cluster: --beam-arg dask_client_address=tcp://HOST:8786), PortableRunner "
                               "(a running job service: --beam-arg job_endpoint=HOST:PORT). Need a cloud "
                               "or a pre-staged job server: DataflowRunner, FlinkRunner and SparkRunner "
                               "(a job-server jar), PrismRunner (its binary). See docs/distributed.md")),
    Flag(("--beam-arg",), "beam_args", dict(
        action="append", default=[], metavar="KEY=VALUE",
        help="Beam pipeline option for --runner (repeatable), e.g. dask_client_address=tcp://HOST:8786; "
             "runners other than Direct and Dask return the selection through "
             "temp_location=PATH, which every worker and this machine must reach"), tuple),
    Flag(("--privacy",), "privacy", dict(
        choices=["rows", "shapes_only"], default=None,
        help="rows (default): copy sampled rows into the warmup file; shapes_only: learn only "
             "shapes, ranges and vocabularies from the data")),
    Flag(("--sample-size",), "dataset_sample_size", dict(
        type=int, default=None,
        help="rows kept from --examples, and per stratum from --traffic (default 256)")),
    Flag(("--max-scan",), "dataset_max_scan", dict(
        type=int, default=None, help="stop reading --examples after N records")),
    Flag(("--max-buckets",), "max_buckets", dict(
        type=int, default=None, help="most sizes warmed per variable dimension seen in the data (default 8)")),
    Flag(("--image-size",), "image_size", dict(
        type=parse_image_size, action="append", default=[], metavar="[ALIAS=]HxW",
        help="size of the images written for inputs an image decoder reads (default: the graph's "
             "resize target, else 224x224)"), _image_sizes),
    Flag(("--multi-inference",), "multi_inference", dict(
        action="store_true", help="also write MultiInference records (needs --model-name)")),
    Flag(("--include-stateful",), "include_stateful", dict(
        action="store_true", help="also warm signatures that change variables or tables")),
]
"""Flags that decide what is planned (``inspect``, ``add``, ``bench``)."""

WRITE_FLAGS: list[Flag] = [
    Flag(("--overwrite",), "overwrite", dict(action="store_true", help="replace an existing warmup file")),
    Flag(("--no-replay",), "replay", dict(
        action="store_true", help="write without replaying the records first (not recommended)"),
         lambda v: not v),
    Flag(("--load-budget",), "load_budget", dict(
        type=duration_arg, default=None, metavar="DURATION",
        help="most time the file's replay may add to a model load (30s, 2m, 500ms, or seconds); "
             "when the full file takes longer, keep the records that remove the most "
             "traffic-weighted cold-start cost per second of load")),
]
"""Flags of ``add``: what happens to the file."""


ITERATION_FLAGS: list[Flag] = [
    Flag(("--iterations",), "iterations", dict(
        dest="record_iterations", type=int, default=None, metavar="N",
        help="write each record N times, within the 1000-record limit (default: "
             "tfwarm_export.config.DEFAULT_ITERATIONS; see benchmarks/RESULTS.md)")),
]
"""``inspect``/``add``: copies of each record (``bench --iterations`` means steady runs)."""


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    for flag in flags:
        options = dict(flag.options)
        options.setdefault("dest", flag.dest)
        parser.add_argument(*flag.names, **options)


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--progress`` and ``-v``: how results and diagnostics are shown."""
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout (nothing else goes to stdout)")
    p.add_argument("--progress", action="store_true",
                   help="show progress bars on stderr even when it is not a terminal "
                        "(never with --json)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show log messages and TensorFlow's own start-up output")


def add_model_args(p: argparse.ArgumentParser, dir_optional: bool = False) -> None:
    """The SavedModel directory, the model flags and the output flags."""
    p.add_argument("export_dir", nargs="?" if dir_optional else None, metavar="DIR",
                   help="SavedModel version directory (the one holding saved_model.pb)")
    add_flags(p, MODEL_FLAGS)
    add_output_args(p)


def add_plan_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, PLAN_FLAGS)


def config_from_args(args: argparse.Namespace, **changes: Any):
    """The ``WarmupConfig`` for every ``Flag`` registered on this subcommand.

    File arguments are read here, once. ``changes`` override fields afterwards.
    """
    from tfwarm_export.config import WarmupConfig

    values: dict[str, Any] = {}
    for flag in MODEL_FLAGS + PLAN_FLAGS + WRITE_FLAGS + ITERATION_FLAGS:
        if not hasattr(args, flag.dest):
            continue
        value = getattr(args, flag.dest)
        if value is None:
            continue
        values[flag.field] = flag.convert(value) if flag.convert else value
    values.update(changes)
    return WarmupConfig(**values)


# --------------------------------------------------------------------------- errors and output


def setup_output(args: argparse.Namespace) -> None:
    """Logging, progress bars and TensorFlow's captured start-up output, per the flags.

    Progress shows on a terminal or with ``--progress``, never with ``--json``.
    ``-v`` prints what TensorFlow wrote while it started (captured, see ``startup``).
    """
    import logging

    from tfwarm_export._support import progress
    from tfwarm_export._support import startup

    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
    startup.init_devices_quietly()
    if verbose and startup.captured_messages().strip():
        sys.stderr.write("TensorFlow start-up output (shown because of -v):\n" + startup.captured_messages())
    as_json = getattr(args, "json", False)
    progress.configure(not as_json and (getattr(args, "progress", False) or sys.stderr.isatty()))


def print_json(obj: Any) -> None:
    """JSON on stdout; stdout carries nothing else in ``--json`` mode."""
    print(obj if isinstance(obj, str) else json.dumps(obj, indent=2, sort_keys=True))


def report_error(command: str, error: BaseException, as_json: bool) -> int:
    """Print ``error`` the way the CLI does and return the exit status.

    1: the model or file breaks a rule / replay failed; 2: bad input
    (``TfwarmError``, ``ValueError``, unreadable files). Never a traceback.
    """
    if isinstance(error, ReplayError):
        if as_json and error.report is not None:
            print_json(error.report.to_json())
        code = 1
    else:
        if as_json:
            print_json({"ok": False, "error": str(error), "type": type(error).__name__})
        code = 2
    print(f"tfwarm {command}: error: {error}", file=sys.stderr)
    return code


INPUT_ERRORS = (TfwarmError, ValueError, OSError)
"""Errors that mean bad input (exit 2) rather than a bug."""
