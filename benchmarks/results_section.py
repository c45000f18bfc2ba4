"""Rewrite one script's own section of benchmarks/RESULTS.md, leaving the rest as it is.

Each section sits between HTML comment markers named after its heading, so scripts
that write different sections (and the main suite's generated part) never clobber
each other: the section is replaced in place when present, appended otherwise.
"""
from __future__ import annotations

import os


def _markers(heading: str) -> tuple[str, str]:
    key = heading.lower().replace(" ", "-")
    return f"<!-- section:{key} -->", f"<!-- end:{key} -->"


def write(path: str, heading: str, body: str) -> None:
    start, end = _markers(heading)
    block = f"{start}\n## {heading}\n\n{body.rstrip()}\n{end}\n"
    text = open(path).read() if os.path.exists(path) else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
