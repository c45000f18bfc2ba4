"""Strict text-format proto parsing, the way TF Serving reads its config files.

TF Serving reads ``--batching_parameters_file``, per-model ``batching_params.pbtxt``,
``--platform_config_file`` and ``--model_config_file`` with
``ParseProtoTextFile`` (``tensorflow_serving/util/proto_util.h``), i.e. C++
``TextFormat::ParseFromString``: an unknown or misspelt field, a repeated
non-repeated field or a value of the wrong type makes the server refuse to
start. A lenient parse here would warm shapes the server never runs (or warm
nothing for a file the server rejects), so we refuse exactly what it refuses,
and say which line.
"""
from __future__ import annotations

from typing import Type, TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from tfwarm_export.errors import TfwarmError

M = TypeVar("M", bound=Message)


def parse_text_proto(text: str, message: M, source: str = "<string>", *,
                     error: Type[TfwarmError] = TfwarmError, example: str = "") -> M:
    """Parse ``text`` into ``message`` (in place, and returned) or raise ``error``.

    The error names ``source``, the line number and the line itself, says what
    protobuf objected to, and that TF Serving refuses the same file at start-up.
    ``example`` (a valid line or two) is appended as the fix.
    """
    try:
        # Parse (not Merge): a non-repeated field given twice is an error, as in C++.
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        line_no = e.GetLine()
        reason = str(e)
        # protobuf prefixes "LINE:COL : "; we restate the position in words.
        if line_no is not None and reason.startswith(f"{line_no}:"):
            reason = reason.split(" : ", 1)[-1]
        reason = reason.rstrip(".")
        lines = text.splitlines()
        where = source
        col = e.GetColumn() or 1
        if line_no is not None and 1 <= line_no <= len(lines):
            where = f"{source}:{line_no}:{col} (line {line_no}: {lines[line_no - 1].strip()!r})"
        elif line_no is not None:
            where = f"{source}:{line_no}:{col} (line {line_no})"
        name = message.DESCRIPTOR.name
        hint = f" Expected lines like {example}." if example else ""
        raise error(f"{where}: not a text-format {name} proto: {reason}. TF Serving parses this "
                    f"file strictly and refuses to start with it; fix or remove that line."
                    f"{hint}") from None
    return message


__all__ = ["parse_text_proto"]
