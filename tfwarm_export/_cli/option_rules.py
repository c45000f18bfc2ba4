"""Options that do not apply to the command as given: an error naming them (exit 2), never ignored.

argparse accepts every flag a subcommand registers; whether a flag means anything
depends on the others (fleet mode or one directory, a data source or none). Each
rule here names a flag, when it applies, and what to do instead, so a flag is
either honoured or refused.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


def _given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the user gave the flag (its argparse ``dest``): every flag checked here
    defaults to None/False/[]."""
    return getattr(args, dest, None) not in (None, False, [], ())


def _fleet(args: argparse.Namespace) -> bool:
    return getattr(args, "model_config_file", None) is not None


def _has_data(args: argparse.Namespace) -> bool:
    return any(_given(args, d) for d in ("examples", "traffic", "from_version"))


@dataclass(frozen=True)
class Rule:
    flag: str
    dest: str
    applies: Callable[[argparse.Namespace], bool]
    why: str


RULES: tuple[Rule, ...] = (
    Rule("--jobs", "jobs", _fleet,
         "applies only with --model-config-file (worker processes over a fleet's versions); one "
         "directory is worked on in this process"),
    Rule("--per-model-batching", "per_model_batching", _fleet,
         "applies only with --model-config-file; for one directory its batching_params.pbtxt is "
         "used when present (--ignore-per-model-batching-params turns that off)"),
    Rule("--per-model-batching", "per_model_batching", lambda a: not _given(a, "platform_config_file"),
         "does not apply with --platform-config-file: the platform config's "
         "enable_per_model_batching_params decides, as tensorflow_model_server ignores "
         "--enable_per_model_batching_params when given --platform_config_file"),
    Rule("--per-model-batching", "per_model_batching",
         lambda a: not _given(a, "ignore_per_model_batching_params"),
         "contradicts --ignore-per-model-batching-params; give one of them"),
    Rule("--runner", "runner", lambda a: _given(a, "traffic") or _given(a, "from_version"),
         "runs the selection of --traffic or --from-version as a Beam pipeline; give one of them"),
    Rule("--beam-arg", "beam_arg", lambda a: _given(a, "runner"),
         "sets a pipeline option of --runner; give --runner"),
    Rule("--max-scan", "max_scan", lambda a: _given(a, "examples"),
         "limits the records read from --examples (a traffic scan reads every request); give "
         "--examples"),
    Rule("--sample-size", "sample_size", _has_data,
         "sets the rows kept from --examples/--traffic/--from-version; give one of them"),
    Rule("--max-buckets", "max_buckets", _has_data,
         "sets the sizes warmed per dimension seen in --examples/--traffic/--from-version; give "
         "one of them"),
    Rule("--privacy", "privacy", _has_data,
         "decides what the file keeps of --examples/--traffic/--from-version rows; give one of them"),
    Rule("--progress", "progress", lambda a: not _given(a, "json"),
         "cannot be used with --json: JSON output is for programs and never draws progress "
         "bars; drop one of them"),
)


def misapplied(args: argparse.Namespace) -> list[str]:
    """One message per flag given where it does not apply (empty: every flag applies)."""
    return [f"{r.flag} {r.why}." for r in RULES if _given(args, r.dest) and not r.applies(args)]
