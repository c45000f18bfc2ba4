"""One measurement in a brand-new interpreter: a benchmark script re-run as its own ``_worker``.

A fresh process pays every process-wide and per-shape cost again, as a freshly loaded
model version does; the worker writes its result as JSON for the parent to read.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(script: str, export_dir: str, batching_path: str, warmup: str, tmp: str, tag: str,
               timeout_s: float = 900) -> dict:
    """Run ``python SCRIPT _worker EXPORT_DIR BATCHING WARMUP OUT`` and return OUT's JSON."""
    out = os.path.join(tmp, f"result-{tag}.json")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, os.path.abspath(script), "_worker", export_dir,
                           batching_path, warmup, out], env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {tag} failed: {proc.stderr.strip().splitlines()[-3:]}")
    with open(out) as f:
        return json.load(f)
