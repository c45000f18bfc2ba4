"""The worker plugin ``tests/test_dask.py`` installs, in a module of its own.

Workers unpickle the plugin by its module's name, so that module must import cleanly
in a worker process: this one imports only ``sys`` and ``distributed`` (``test_dask``
imports ``conftest``, a name the repository root's Sybil conftest shadows there).
"""
from __future__ import annotations

import sys

import distributed


class TrafficOpens(distributed.WorkerPlugin):
    """Records, in each worker process, every open() of a file under ``root`` and
    the Dask task that made it (``sys.addaudithook``; the workers are ours and
    are stopped with the cluster)."""

    name = "tfwarm-traffic-opens"

    def __init__(self, root: str):
        self.root = root
        self.opened: list[tuple[str, str]] = []

    def setup(self, worker):
        from distributed.worker import thread_state

        root, opened = self.root, self.opened

        def hook(event, args):
            if event == "open" and isinstance(args[0], str) and args[0].startswith(root):
                opened.append((str(getattr(thread_state, "key", None)), args[0]))

        sys.addaudithook(hook)
