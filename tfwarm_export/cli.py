"""The ``tfwarm`` command.

Subcommands: ``inspect`` (the plan), ``add`` (write and replay), ``check`` (validate
any warmup file), ``bench`` (latency with and without warmup). ``add`` and
``check`` also take a TF Serving model config (``--model-config-file``) and then
work on every version that config would serve.

Exit status: 0 success, 1 a model/file breaks a rule or a record failed replay,
2 bad input (missing model, bad option or file). No traceback reaches the user.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from tfwarm_export._cli import cli_args, option_rules
from tfwarm_export._support import fileargs

DESCRIPTION = """\
Ship TensorFlow SavedModels with a correct TF Serving warmup file.

  tfwarm inspect DIR       show the warmup plan (writes nothing)
  tfwarm add DIR           write assets.extra/tf_serving_warmup_requests, replaying every record
  tfwarm check DIR         check an existing warmup file against TF Serving's rules, then replay it
  tfwarm bench DIR         measure first-request latency: cold, after warmup, and steady

  tfwarm add   --model-config-file models.config    every version a TF Serving config serves
  tfwarm check --model-config-file models.config

Exit status: 0 success; 1 a model or file breaks a rule, or a record failed replay;
2 bad input (missing model, bad option or file). An unexpected error is exit 1,
reported in one line (please report it; -v shows the traceback).
Run 'tfwarm COMMAND --help' for the options of a command."""

FLEET_EPILOG = """\
With --model-config-file, DIR is left out: the versions come from the config's
base_path and model_version_policy, found as TF Serving finds them. Versions run
in worker processes (--jobs at a time), each loaded into a fresh graph and
session. One table is printed; the exit status is 1 if any version failed, and
its error is shown in full. The other options mean what they mean for one DIR
and apply to every version; a --platform-config-file decides batching (its
enable_per_model_batching_params included), warmup options and session config
for each, and decides whether an existing file is kept (the full check)."""


def _add_fleet_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fleet (a TF Serving model config instead of DIR)")
    g.add_argument("--model-config-file", metavar="FILE",
                   help="the file given to tensorflow_model_server --model_config_file "
                        "(text ModelServerConfig); '-' reads it from stdin")
    g.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes, each working on one version at a time (default 1)")
    g.add_argument("--per-model-batching", action="store_true",
                   help="use each version's batching_params.pbtxt instead of --batching-parameters, "
                        "as tensorflow_model_server --enable_per_model_batching_params does (with "
                        "--platform-config-file, its enable_per_model_batching_params decides)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfwarm", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show the warmup plan without writing anything",
                       description="Show the records 'tfwarm add' would write, and any signature "
                                   "it would skip with the reason. Nothing is written.")
    cli_args.add_model_args(p)
    cli_args.add_plan_args(p)
    cli_args.add_flags(p, cli_args.ITERATION_FLAGS)

    p = sub.add_parser("add", help="write the warmup file and replay every record",
                       description="Write DIR/assets.extra/tf_serving_warmup_requests. Every record "
                                   "is replayed the way TF Serving replays it before the file is "
                                   "kept; on any failure nothing is written and an existing file "
                                   "is kept.",
                       epilog=FLEET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_args.add_model_args(p, dir_optional=True)
    cli_args.add_plan_args(p)
    cli_args.add_flags(p, cli_args.WRITE_FLAGS)
    cli_args.add_flags(p, cli_args.ITERATION_FLAGS)
    _add_fleet_args(p)

    p = sub.add_parser("check", help="check an existing warmup file, then replay it",
                       description="Check a warmup file against TF Serving's rules (one line per "
                                   "problem), then replay every record.",
                       epilog=FLEET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_args.add_model_args(p, dir_optional=True)
    p.add_argument("--file", metavar="PATH",
                   help="warmup file to check (default: DIR/assets.extra/tf_serving_warmup_requests); "
                        "'-' reads it from stdin")
    p.add_argument("--no-replay", action="store_true", help="only the static checks")
    p.add_argument("--traffic", action="append", default=[], metavar="GLOB",
                   help="logged requests (any source add --traffic reads; repeatable): report the "
                        "share whose class the file warms, the uncovered classes and the cold hits left")
    _add_fleet_args(p)

    from tfwarm_export.bench import command as bench

    bench.add_parser(sub)
    return parser


def _single(args: argparse.Namespace) -> int:
    """``inspect``/``add``/``check`` on one version directory."""
    import tfwarm_export as tw

    if args.command == "inspect":
        result = tw.plan(args.export_dir, cli_args.config_from_args(args))
        ok = True
    elif args.command == "add":
        result = tw.add_warmup(args.export_dir, cli_args.config_from_args(args))
        ok = result.ok or (args.no_replay and result.path is not None)  # written, as asked
    else:
        config = cli_args.config_from_args(args)
        result = tw.check(args.export_dir, path=cli_args.local_file_arg(args.file), tags=tuple(config.tags),
                          batching_parameters=config.batching_parameters, replay=not args.no_replay,
                          platform_config=config.platform_config,
                          ignore_per_model_batching=config.ignore_per_model_batching,
                          op_libraries=config.op_libraries, traffic=args.traffic or None)
        if args.file and fileargs.is_stream(args.file):
            result.path = fileargs.describe(args.file)  # not the private copy it was read into
        ok = result.ok
    print(result.to_json() if args.json else result.summary())
    return 0 if ok else 1


def _fleet(args: argparse.Namespace) -> int:
    """``add``/``check`` on every version of a model config."""
    from tfwarm_export import fleet
    from tfwarm_export._support import progress

    config = cli_args.config_from_args(args)
    if args.command == "check":
        config = config.replace(replay=not args.no_replay)

    def done(row: fleet.VersionResult) -> None:
        if args.verbose and not args.json:
            progress.write(f"{row.model}/{row.version}: {row.status} ({row.seconds}s)")

    report = fleet.run_fleet(args.model_config_file, args.command, config, jobs=args.jobs or 1,
                             per_model_batching=args.per_model_batching, on_result=done)
    print(report.to_json() if args.json else report.summary(verbose=args.verbose))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fleet_mode = getattr(args, "model_config_file", None) is not None
    if args.command in ("add", "check"):
        if fleet_mode and args.export_dir:
            parser.error(f"{args.command}: give either DIR or --model-config-file, not both")
        if not fleet_mode and not args.export_dir:
            parser.error(f"{args.command}: give a SavedModel directory DIR (or --model-config-file)")
        if fleet_mode and getattr(args, "file", None):
            parser.error("check: --file names one warmup file; it cannot be used with --model-config-file")
        if fleet_mode and args.command == "check" and getattr(args, "traffic", None):
            parser.error("check: --traffic measures one file's coverage; it cannot be used with --model-config-file")
        if fleet_mode and args.jobs is not None and args.jobs < 1:
            parser.error(f"--jobs must be at least 1, got {args.jobs}")
    for problem in option_rules.misapplied(args):
        parser.error(f"{args.command}: {problem}")
    cli_args.setup_output(args)
    try:
        if args.command == "bench":
            from tfwarm_export.bench import command as bench

            return bench.run_cli(args)
        return _fleet(args) if fleet_mode else _single(args)
    except BrokenPipeError:  # e.g. `tfwarm inspect DIR | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except cli_args.INPUT_ERRORS as e:
        return cli_args.report_error(args.command, e, args.json)
    except KeyboardInterrupt:
        print(f"tfwarm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so plainly; the traceback only with -v
        if args.verbose:
            traceback.print_exc()
        print(f"tfwarm {args.command}: internal error: {type(e).__name__}: {e}. Please report it "
              "(rerun with -v for the traceback).", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
