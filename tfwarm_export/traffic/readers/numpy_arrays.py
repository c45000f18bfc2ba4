"""In-memory arrays: a numpy array, a dict or tuple of them, or a pandas DataFrame."""
from __future__ import annotations

from typing import Iterator, Mapping

from tfwarm_export.traffic.rows import Chunk, Column, split_element, to_column

NUMPY_CHUNK_ROWS = 65536  # bounds temporaries when scanning large in-memory arrays


def numpy_chunks(data, inputs, required, sig_name) -> tuple[str, Iterator[Chunk]]:
    """In-memory data: the leading axis of every array is the row axis."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy") and not isinstance(data, Mapping):
        data = {str(c): data[c].to_numpy() for c in data.columns}  # a pandas DataFrame
    comps = split_element(data, inputs, required, sig_name, "the arrays")
    source = "numpy " + ("{" + ", ".join(sorted(comps)) + "}" if isinstance(data, Mapping)
                         else type(data).__name__)

    def gen() -> Iterator[Chunk]:
        columns = {a: (lbl, to_column(v, True, lambda: "the arrays", lbl)) for a, (lbl, v) in comps.items()}
        lengths = [c.n for _, c in columns.values() if not (c.dense is not None and c.dense.ndim == 0)]
        n = max(lengths, default=1)  # unequal lengths are reported by the scanner
        for start in range(0, n, NUMPY_CHUNK_ROWS):
            stop = min(start + NUMPY_CHUNK_ROWS, n)
            part = {}
            for a, (lbl, col) in columns.items():
                if col.dense is not None and col.dense.ndim == 0:
                    part[a] = (lbl, col)
                elif col.dense is not None:
                    part[a] = (lbl, Column(dense=col.dense[start:stop]))
                else:
                    part[a] = (lbl, Column(rows=col.rows[start:stop]))
            yield Chunk(start, part, user_batch=True, numbering="rows", label="row")

    return source, gen()


