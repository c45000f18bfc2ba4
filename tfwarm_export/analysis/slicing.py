"""TensorFlow's ``StridedSlice`` as numpy indexing: constant folding and shape rules share it.

``x[:, None]``, ``tf.shape(x)[1]`` and ``known[None, :]`` all become a ``StridedSlice``
whose begin/end/strides are constants and whose masks say which of them count. The
same index tuple gives the folded value of a constant and, applied to a zero-stride
view of the right shape, the output shape (no memory for the data). A leaf module:
``index.py`` folds with it, the evaluator reads shapes with it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _bits(mask: int, n: int) -> list[bool]:
    return [bool(mask >> i & 1) for i in range(n)]


def strided_index(begin: Sequence[int], end: Sequence[int], strides: Sequence[int], begin_mask: int,
                  end_mask: int, ellipsis_mask: int, new_axis_mask: int, shrink_axis_mask: int) -> tuple:
    """The numpy index tuple TF's StridedSlice attrs describe."""
    n = len(begin)
    bm, em, el, nm, sm = (_bits(m, n) for m in (begin_mask, end_mask, ellipsis_mask, new_axis_mask,
                                                shrink_axis_mask))
    index: list = []
    for i in range(n):
        if el[i]:
            index.append(Ellipsis)
        elif nm[i]:
            index.append(None)
        elif sm[i]:
            index.append(int(begin[i]))
        else:
            index.append(slice(None if bm[i] else int(begin[i]), None if em[i] else int(end[i]),
                               int(strides[i])))
    return tuple(index)


def shrink_out_of_range(index: tuple, shape: Sequence[int]) -> bool:
    """Whether an integer (shrink-axis) entry of ``index`` is outside ``shape`` (TF's error)."""
    axis = 0
    rest = len(shape) - sum(1 for i in index if i is not None and i is not Ellipsis)
    for item in index:
        if item is None:
            continue
        if item is Ellipsis:
            axis += max(rest, 0)
            continue
        if isinstance(item, int):
            if axis >= len(shape) or not -shape[axis] <= item < shape[axis]:
                return True
        axis += 1
    return False


def strided_slice(x: np.ndarray, index: tuple) -> np.ndarray | None:
    """``x[index]``, or None when TensorFlow would refuse it (an index out of range)."""
    if shrink_out_of_range(index, x.shape):
        return None
    try:
        return x[index]
    except (IndexError, ValueError, TypeError):
        return None


def node_index(attr, begin, end, strides) -> tuple | None:
    """The index tuple of a StridedSlice node (``attr(name)`` reads its attrs), or None."""
    if begin is None or end is None or strides is None:
        return None
    b, e, s = (np.ravel(v).astype(np.int64).tolist() for v in (begin, end, strides))
    if not (len(b) == len(e) == len(s)) or 0 in s:
        return None
    masks = []
    for name in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        a = attr(name)
        masks.append(int(a.i) if a is not None else 0)
    return strided_index(b, e, s, *masks)


__all__ = ["strided_index", "strided_slice", "shrink_out_of_range", "node_index"]
