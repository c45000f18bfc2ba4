"""Generated benchmark documents: RESULTS.md sections and the doc-page blocks copied from them.

Every figure in ``benchmarks/RESULTS.md`` and in the documentation's benchmark blocks
(``readme-*``, in the docs/ pages ``BLOCK_PAGES`` names) is written by the run that
measured it. Each benchmark script owns one section of
RESULTS.md (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``, the one
marker scheme) and rewrites only that one, so the scripts can run separately
without erasing each other. A section may hold a ``readme-*`` block;
``sync_readme`` copies those blocks verbatim into the matching markers of the docs
pages, so no page carries a hand-copied number (the site's Results page includes
RESULTS.md itself, with ``pymdownx.snippets``). Machine facts (CPU model and
count, GPUs, load) are measured, never assumed (``machine_facts``).

``publish`` stores the numbers a section is written from in
``benchmarks/results/NAME.json`` and writes the section with the script's
``render(data)``; ``tests/test_benchmark_docs.py`` renders every section again
from its stored numbers (without running anything) and fails on any difference.

    python benchmarks/results_doc.py --sync-readme   # re-copy the blocks into the docs pages
    python benchmarks/results_doc.py --check         # exit 1 if a page and RESULTS.md differ
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "RESULTS.md")
BLOCK_PAGES = {"readme-suite": "docs/benchmarks/index.md", "readme-sampling": "docs/data.md",
               "readme-traffic": "docs/data.md", "readme-fleet": "docs/fleets.md"}
"""``readme-*`` block -> the documentation page (relative to the repository) that shows it.
(The blocks are named ``readme-*`` because the README held them before the docs site.)"""
README = "the docs pages (" + ", ".join(sorted(set(BLOCK_PAGES.values()))) + ")"
"""Where ``sync_readme`` copies the blocks, in words (the benchmark scripts print it)."""
DATA_DIR = os.path.join(HERE, "results")
README_BLOCKS = {"readme-suite": "benchmarks/run_suite.py", "readme-sampling": "benchmarks/bench_sampling.py",
                 "readme-traffic": "benchmarks/bench_traffic.py", "readme-fleet": "benchmarks/fleet_example.py"}
SECTIONS = {"suite": "run_suite", "sampling": "bench_sampling", "traffic": "bench_traffic",
            "traffic-dask": "bench_traffic",
            "xla-traffic": "bench_xla_traffic", "iterations": "bench_iterations", "fleet": "fleet_example",
            "budget": "bench_budget"}
"""Section of RESULTS.md -> the script (module in benchmarks/) that measures and renders it."""


def data_path(name: str) -> str:
    """Where section ``name``'s numbers are stored."""
    return os.path.join(DATA_DIR, f"{name}.json")


def load_data(name: str) -> dict | None:
    """The stored numbers of section ``name`` (None if it was never published with them)."""
    import json

    try:
        with open(data_path(name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def publish(name: str, data: dict, render, results_path: str = RESULTS) -> str:
    """Store ``data`` (JSON) and write section ``name`` as ``render(data)``; returns the text.

    The text is rendered from the JSON as read back, so what the test re-renders
    is exactly what was written. Only a run that writes the real RESULTS.md stores
    its numbers (a run writing elsewhere, e.g. a trial, leaves them alone).
    """
    import json

    stored = json.loads(json.dumps(data))  # key order kept: renders iterate some dicts
    text = render(stored)
    if os.path.abspath(results_path) == os.path.abspath(RESULTS):
        os.makedirs(DATA_DIR, exist_ok=True)
        tmp = data_path(name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stored, f, indent=1)
            f.write("\n")
        os.replace(tmp, data_path(name))
    write_section(results_path, name, text)
    return text


def placeholder(name: str) -> str:
    """What a README block says while RESULTS.md has no such block: no figure at all."""
    return f"Not generated yet: run `python {README_BLOCKS[name]}`.\n"


def markers(name: str) -> tuple[str, str]:
    """The comment lines that delimit section ``name``."""
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def _pattern(name: str) -> re.Pattern:
    begin, end = markers(name)
    return re.compile(re.escape(begin) + r"\n(.*?)" + re.escape(end), re.S)


def read_section(text: str, name: str) -> str | None:
    """The text between the ``name`` markers (without them), or None if absent."""
    m = _pattern(name).search(text)
    return None if m is None else m.group(1)


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` set to ``body`` (appended at the end if absent)."""
    begin, end = markers(name)
    body = body if body.endswith("\n") else body + "\n"
    block = f"{begin}\n{body}{end}"
    if _pattern(name).search(text) is None:
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    return _pattern(name).sub(lambda _m: block, text, count=1)


def write_section(path: str, name: str, body: str, title: str = "# Benchmark results") -> str:
    """Rewrite section ``name`` of the file at ``path``; other sections are kept as they are."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if "<!-- BEGIN " not in text:  # empty, or a legacy hand-assembled file: start over
        text = (f"{title}\n\nEvery section below is generated by the script it names; edit the "
                "scripts, not this file.\n")
    text = replace_section(text, name, body)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def block_pages() -> list[str]:
    """The docs pages that hold ``readme-*`` blocks (absolute paths)."""
    return [os.path.join(ROOT, p) for p in sorted(set(BLOCK_PAGES.values()))]


def sync_readme(results_path: str = RESULTS, readme_path: str | None = None) -> list[str]:
    """Copy every ``readme-*`` block of RESULTS.md into the markers of ``readme_path`` (default:
    every page of ``BLOCK_PAGES``); returns the blocks copied."""
    with open(results_path) as f:
        results = f.read()
    copied = []
    for page in [readme_path] if readme_path else block_pages():
        with open(page) as f:
            text = f.read()
        for name in README_BLOCKS:
            if read_section(text, name) is None:
                continue
            body = read_section(results, name)
            text = replace_section(text, name, placeholder(name) if body is None else body)
            if body is not None and name not in copied:
                copied.append(name)
        tmp = page + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, page)
    return copied


def readme_differs(results_path: str = RESULTS, readme_path: str | None = None) -> list[str]:
    """Blocks of ``readme_path`` (default: every page of ``BLOCK_PAGES``) whose text is not
    exactly RESULTS.md's (hand-edited or stale); a block RESULTS.md lacks must be the
    placeholder, which holds no figure. (Blocks a page lacks are not compared; the test
    requires every one of them on its page.)"""
    with open(results_path) as f:
        results = f.read()
    differ = []
    for page in [readme_path] if readme_path else block_pages():
        with open(page) as f:
            text = f.read()
        differ += [name for name in README_BLOCKS if read_section(text, name) is not None
                   and read_section(text, name) != (read_section(results, name) or placeholder(name))
                   and name not in differ]
    return differ


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU model"


def machine_facts() -> dict:
    """What this run ran on, measured: CPUs (model, logical, usable by this process), GPUs, load."""
    import tensorflow as tf

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpu_model": _cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "gpus": gpus, "load_1min": load, "machine": platform.machine(), "system": platform.system(),
            "python": platform.python_version(), "tensorflow": tf.__version__}


def machine_sentence(start: dict, end: dict | None = None) -> str:
    """The sentence every generated section carries: what it ran on, measured."""
    return f"Machine (measured by the run): {machine_line(start, end)}."


def machine_line(start: dict, end: dict | None = None) -> str:
    """One sentence of measured machine facts (load at the start and, if given, at the end)."""
    cpus = (f"{start['usable_cpus']} usable of {start['logical_cpus']} logical CPUs"
            if start["usable_cpus"] != start["logical_cpus"] else f"{start['logical_cpus']} logical CPUs")
    gpu = (f"GPUs visible to TensorFlow: {', '.join(start['gpus'])}" if start["gpus"]
           else "no GPU visible to TensorFlow (CPU only)")
    load = ""
    if start.get("load_1min") is not None:
        load = f"; 1-minute load average {start['load_1min']:.1f} at the start"
        if end and end.get("load_1min") is not None:
            load += f", {end['load_1min']:.1f} at the end"
        load += (" (load above the CPU count means other work shared the machine, so expect noise)"
                 if max(start["load_1min"], (end or start).get("load_1min") or 0) > start["usable_cpus"]
                 else "")
    return (f"{start['cpu_model']}, {cpus}, {start['machine']} {start['system']}; {gpu}; "
            f"Python {start['python']}, TensorFlow {start['tensorflow']}{load}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sync-readme", action="store_true", help="copy RESULTS.md's blocks into the docs pages")
    ap.add_argument("--check", action="store_true", help="exit 1 if the docs pages' blocks differ")
    args = ap.parse_args(argv)
    if args.sync_readme:
        print("copied:", ", ".join(sync_readme()) or "nothing")
    if args.check:
        stale = readme_differs()
        if stale:
            print(f"blocks in {README} differ from {RESULTS}: {stale}; run "
                  "`python benchmarks/results_doc.py --sync-readme`", file=sys.stderr)
            return 1
        print(f"the blocks in {README} match RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
