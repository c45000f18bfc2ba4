"""The ``tfwarm`` command, for SavedModels that already exist.

    tfwarm inspect DIR   show the plan (nothing is written)
    tfwarm add DIR       write assets.extra/tf_serving_warmup_requests and replay it
    tfwarm check DIR     validate any warmup file against TF Serving's rules, then replay it
    tfwarm bench DIR     measure cold vs warmed first-request latency, in fresh processes

Exit status: 0 success, 1 the file/model breaks a rule or replay failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfwarm_export.errors import ReplayError, TfwarmError  # noqa: E402


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _dim(text: str) -> tuple[str, int, list[int]]:
    # ALIAS:AXIS=SIZE[,SIZE...]   e.g. tokens:1=16,32,64
    try:
        target, sizes = text.split("=", 1)
        alias, axis = target.rsplit(":", 1)
        return alias, int(axis), _int_list(sizes)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--dim expects ALIAS:AXIS=SIZE[,SIZE...] (e.g. tokens:1=16,32), got {text!r}") from None


def _shape(text: str) -> tuple[str, list[int]]:
    try:
        alias, dims = text.split("=", 1)
        return alias, _int_list(dims)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shape expects ALIAS=D0,D1,... with -1 for the batch dim (e.g. x=-1,16), got {text!r}") from None


def _value(text: str) -> tuple[str, Any]:
    # ALIAS=JSON  e.g. ids=[0,1,2] (choices) | ids={"range":[0,100]} | mode="fast" (constant)
    try:
        alias, raw = text.split("=", 1)
        value = json.loads(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--value expects ALIAS=JSON: a list of choices, {{\"range\": [lo, hi]}}, or a constant; "
            f"got {text!r}") from None
    if isinstance(value, dict) and "range" in value:
        value = tuple(value["range"])
    return alias, value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("export_dir", help="SavedModel version directory (the one holding saved_model.pb)")
    p.add_argument("--tags", default="serve", help="MetaGraph tag set, comma-separated (default: serve)")
    p.add_argument("--batching-parameters", metavar="FILE",
                   help="TF Serving --batching_parameters_file (text BatchingParameters)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-sizes", type=_int_list, metavar="N,N,...",
                   help="batch sizes to warm (default: from --batching-parameters, else 1)")
    p.add_argument("--signatures", metavar="NAME,...", help="only these signatures (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for synthetic values (default 0)")
    p.add_argument("--model-name", default="", help="model_spec.name for every request")
    p.add_argument("--dim", type=_dim, action="append", default=[], metavar="ALIAS:AXIS=SIZE[,SIZE]",
                   help="size(s) for an unknown dimension; several sizes warm each (XLA shapes)")
    p.add_argument("--shape", type=_shape, action="append", default=[], metavar="ALIAS=D0,D1",
                   help="full shape for an input of unknown rank (-1 = batch dim)")
    p.add_argument("--value", type=_value, action="append", default=[], metavar="ALIAS=JSON",
                   help="override values: a JSON list of choices, {\"range\":[lo,hi]} or a constant")
    p.add_argument("--examples", metavar="GLOB",
                   help="TFRecord file(s) of tf.Example/SequenceExample to sample (GZIP auto-detected)")
    p.add_argument("--privacy", choices=["rows", "shapes_only"], default="rows",
                   help="rows: copy sampled rows into the file; shapes_only: learn shapes/ranges only")
    p.add_argument("--sample-size", type=int, default=256, help="rows kept from --examples (default 256)")
    p.add_argument("--max-scan", type=int, default=None, help="stop scanning --examples after N records")
    p.add_argument("--max-buckets", type=int, default=8,
                   help="most sizes warmed per variable dimension seen in the data (default 8)")
    p.add_argument("--multi-inference", action="store_true",
                   help="also write MultiInference records (needs --model-name)")
    p.add_argument("--include-stateful", action="store_true",
                   help="warm signatures that mutate variables/tables too")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfwarm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="show the warmup plan without writing anything")
    _common(p)
    _plan_options(p)
    p = sub.add_parser("add", help="write and replay the warmup file")
    _common(p)
    _plan_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing warmup file")
    p.add_argument("--no-replay", action="store_true", help="write without replaying (not recommended)")
    p = sub.add_parser("check", help="validate an existing warmup file, then replay it")
    _common(p)
    p.add_argument("--file", help="warmup file to check (default: DIR/assets.extra/tf_serving_warmup_requests)")
    p.add_argument("--no-replay", action="store_true", help="only the static checks")
    from tfwarm_export import bench

    bench.add_parser(sub)
    return parser


def _config(args: argparse.Namespace):
    from tfwarm_export.config import WarmupConfig

    dim_sizes: dict[str, dict[int, list[int]]] = {}
    for alias, axis, sizes in args.dim:
        dim_sizes.setdefault(alias, {})[axis] = sizes
    return WarmupConfig(
        batch_sizes=args.batch_sizes,
        batching_parameters=args.batching_parameters,
        signatures=args.signatures.split(",") if args.signatures else None,
        seed=args.seed,
        model_name=args.model_name,
        dim_sizes=dim_sizes,
        shapes={alias: dims for alias, dims in args.shape},
        overrides={alias: value for alias, value in args.value},
        tags=tuple(args.tags.split(",")),
        multi_inference=args.multi_inference,
        include_stateful=args.include_stateful,
        dataset=args.examples,
        privacy=args.privacy,
        dataset_sample_size=args.sample_size,
        dataset_max_scan=args.max_scan,
        max_buckets=args.max_buckets,
        overwrite=getattr(args, "overwrite", False),
        replay=not getattr(args, "no_replay", False),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "bench":
        from tfwarm_export import bench

        return bench.run_cli(args)
    import tfwarm_export as tw

    try:
        if args.command == "inspect":
            result = tw.plan(args.export_dir, _config(args))
            ok = True
        elif args.command == "add":
            result = tw.add_warmup(args.export_dir, _config(args))
            ok = result.ok or (args.no_replay and result.path is not None)  # written, as asked
        else:
            result = tw.check(args.export_dir, path=args.file, tags=tuple(args.tags.split(",")),
                              batching_parameters=args.batching_parameters, replay=not args.no_replay)
            ok = result.ok
    except ReplayError as e:
        if args.json and e.report is not None:
            print(e.report.to_json())
        print(f"tfwarm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except TfwarmError as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e), "type": type(e).__name__}))
        print(f"tfwarm {args.command}: error: {e}", file=sys.stderr)
        return 2
    print(result.to_json() if args.json else result.summary())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
