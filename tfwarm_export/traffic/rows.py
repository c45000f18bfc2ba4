"""Rows and columns: how user data is matched to a signature's inputs and cast
to its dtypes, the one conversion every reader shares.

A *row* is one example: ``{alias: np.ndarray}`` without the batch dimension;
strings are ``bytes`` in ``dtype=object`` arrays, as TF's numpy bridge does.
"""
from __future__ import annotations

import os  # noqa: F401
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from tfwarm_export.errors import DatasetError
from tfwarm_export.model.signatures import TensorSpec

SizeKey = tuple[str, int]  # (alias, axis); axis counts the batch dimension as 0
Row = dict[str, np.ndarray]
RngLike = np.random.Generator | int | None

FIX_STRUCTURE = ("Make each element a dict keyed by the signature's input aliases "
                 "(e.g. dataset.map(lambda x, y: {...})) or pass arrays in sorted alias order.")


# --------------------------------------------------------------------------- the sample


def as_rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng or 0)


def np_dtype(dtype: tf.DType):
    return object if dtype == tf.string else dtype.as_numpy_dtype


def fill_value(dtype: tf.DType):
    return b"" if dtype == tf.string else 0


def key_str(key: SizeKey) -> str:
    return f"{key[0]}[{key[1]}]"



# --------------------------------------------------------------------------- element matching


def _is_struct(x) -> bool:
    return isinstance(x, (Mapping, tuple, list))


def split_element(el, inputs: Mapping[str, TensorSpec], required: list[str],
                   sig_name: str, where: str) -> dict[str, tuple[str, Any]]:
    """Map one element (values or element_spec) to ``{alias: (field label, component)}``."""
    aliases = sorted(inputs)
    if isinstance(el, (tuple, list)) and not isinstance(el, Mapping):
        if len(el) in (2, 3) and (_is_struct(el[0]) or len(el) not in (len(aliases), len(required))):
            el = el[0]  # (x, y[, sample_weight]) as passed to Model.fit
    if isinstance(el, Mapping):
        keys = set(el)
        extra = sorted(str(k) for k in keys - set(aliases))
        if extra:
            raise DatasetError(
                f"{where}: field {extra[0]!r} is not an input of signature {sig_name!r} "
                f"(inputs: {aliases}); unknown extra key(s) {extra}. Drop them, e.g. "
                f"dataset.map(lambda d: {{k: d[k] for k in {aliases}}}), or rename them to aliases.")
        missing = [a for a in required if a not in keys]
        if missing:
            raise DatasetError(
                f"{where}: missing key {missing[0]!r} for signature {sig_name!r} input "
                f"{missing[0]!r} (element keys: {sorted(map(str, keys))}; required: {required}). "
                "Add the field to every element, or pick the signature it belongs to.")
        return {a: (f"key {a!r}", el[a]) for a in aliases if a in keys}
    if isinstance(el, (tuple, list)):
        if len(el) == len(aliases):
            names = aliases
        elif len(el) == len(required):
            names = required
        else:
            raise DatasetError(
                f"{where}: a tuple of {len(el)} items does not match signature {sig_name!r}, "
                f"which has {len(aliases)} inputs {aliases} ({len(required)} required). Tuples are "
                f"matched by position in sorted alias order. {FIX_STRUCTURE}")
        for i, item in enumerate(el):
            if _is_struct(item):
                raise DatasetError(
                    f"{where}: tuple position {i} is a nested {type(item).__name__}, expected a "
                    f"tensor for signature {sig_name!r} input {names[i]!r}. {FIX_STRUCTURE}")
        return {a: (f"tuple position {i}", v) for i, (a, v) in enumerate(zip(names, el))}
    if len(aliases) == 1 or len(required) == 1:
        alias = aliases[0] if len(aliases) == 1 else required[0]
        return {alias: ("the element", el)}
    raise DatasetError(
        f"{where}: a single tensor cannot feed signature {sig_name!r}, which has "
        f"{len(aliases)} inputs {aliases}. {FIX_STRUCTURE}")


def _component_rank(comp) -> int | None:
    if isinstance(comp, tf.TypeSpec):
        shape = getattr(comp, "shape", None)
        return None if shape is None else shape.rank
    if isinstance(comp, (tf.Tensor, tf.RaggedTensor, tf.SparseTensor)):
        return comp.shape.rank
    if isinstance(comp, np.ndarray):
        return comp.ndim
    return None


def decide_batched(comps: dict[str, tuple[str, Any]], inputs: Mapping[str, TensorSpec],
                    sig_name: str, where: str) -> bool | None:
    """Equal ranks mean a batch, one less means one example; None when undecidable."""
    votes: dict[bool, str] = {}
    for alias, (label, comp) in comps.items():
        spec_rank = inputs[alias].rank
        rank = _component_rank(comp)
        if spec_rank in (None, 0) or rank is None:
            continue
        if rank == spec_rank:
            votes.setdefault(True, alias)
        elif rank == spec_rank - 1:
            votes.setdefault(False, alias)
        else:
            spec = inputs[alias]
            raise DatasetError(
                f"{where}: field {label} has rank {rank} but signature {sig_name!r} input "
                f"{alias!r} has shape {spec.shape_str()} (rank {spec_rank}): wrong rank. An element "
                f"must have rank {spec_rank} (a batch) or {spec_rank - 1} (one example); "
                "reshape it in the dataset.")
    if len(votes) == 2:
        raise DatasetError(
            f"{where}: input {votes[True]!r} looks batched but {votes[False]!r} looks unbatched "
            f"for signature {sig_name!r}; batch every field the same way.")
    return next(iter(votes)) if votes else None


# --------------------------------------------------------------------------- columns


@dataclass
class Column:
    """One input's values for a chunk of rows: dense with a leading row axis,
    or a list of per-row arrays when rows differ in shape (ragged data)."""

    dense: np.ndarray | None = None
    rows: list[np.ndarray] | None = None

    @property
    def n(self) -> int:
        return len(self.dense) if self.dense is not None else len(self.rows)

    def row(self, i: int) -> np.ndarray:
        """A copy, so a kept row never pins the whole chunk in memory."""
        if self.dense is not None:
            return np.array(self.dense[i], dtype=self.dense.dtype)
        return self.rows[i].copy()

    def arrays(self) -> list[np.ndarray]:
        return [self.dense] if self.dense is not None else self.rows


def _ragged_rows(rt: tf.RaggedTensor) -> list[np.ndarray]:
    if rt.ragged_rank == 1:
        values = rt.flat_values.numpy()
        splits = rt.row_splits.numpy()
        return [values[a:b] for a, b in zip(splits[:-1], splits[1:])]
    rows = []
    for r in rt.to_list():
        try:
            rows.append(np.array(r))
        except ValueError:
            raise DatasetError("a ragged row is ragged inside (more than one variable dimension "
                               "per row), so it cannot be a dense request tensor; pad it with "
                               ".to_tensor() in the dataset.") from None
    return rows


def _py_array(value) -> np.ndarray:
    """np.asarray for Python data, but strings stay ``bytes``/``str`` objects:
    numpy's fixed-width 'S'/'U' dtypes silently drop trailing NUL bytes, which
    would corrupt serialized protos."""
    arr = np.asarray(value)
    if arr.dtype.kind in "SU" and not isinstance(value, np.ndarray):
        arr = np.array(value, dtype=object)
    return arr


def to_column(value, leading: bool, where: Callable[[], str], label: str) -> Column:
    """Numpy view of a component; ``leading`` says it already has a row axis.
    ``where()`` names the element, built only for an error."""
    if isinstance(value, (tf.SparseTensor, tf.compat.v1.SparseTensorValue)):
        raise DatasetError(f"{where()}: field {label} is a SparseTensor; the Predict API feeds dense "
                           "tensors. Densify it with tf.sparse.to_dense in a dataset.map().")
    if isinstance(value, tf.RaggedTensor):
        if not leading:
            raise DatasetError(f"{where()}: field {label} is a RaggedTensor row; make it dense "
                               "(.to_tensor()) in the dataset.")
        return Column(rows=_ragged_rows(value))
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    if isinstance(value, (bytes, str)):
        arr = np.empty((), dtype=object)
        arr[()] = value
        return Column(dense=arr if leading else arr[None])
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        try:
            arr = _py_array(value)
        except ValueError:  # inhomogeneous python lists: one array per row
            arr = None
        nested = (arr is not None and arr.dtype == object and arr.size
                  and isinstance(arr.flat[0], (list, tuple, np.ndarray)))
        if arr is None or nested:
            if not leading:
                raise DatasetError(f"{where()}: field {label} is a ragged nested list; pass arrays.")
            return Column(rows=[_py_array(r) for r in value])
        if (arr.dtype == object and arr.size
                and not isinstance(arr.flat[0], (bytes, str, np.bytes_, np.str_))):
            arr = np.array(arr.tolist())  # python numbers in an object array: re-infer
        value = arr
    arr = np.asarray(value)
    return Column(dense=arr if leading else arr[None])


def _kind(arr: np.ndarray) -> str:
    k = arr.dtype.kind
    if k in "SU" or (k == "O"):
        return "string"
    if k == "b":
        return "bool"
    if k in "iu":
        return "int"
    if k in "fc" or arr.dtype == np.dtype(tf.bfloat16.as_numpy_dtype) or arr.dtype == np.float16:
        return "float"
    return k


def _to_bytes_object(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "U":
        return np.char.encode(arr, "utf-8").astype(object)
    if arr.dtype.kind == "S":
        return arr.astype(object)
    if arr.size and isinstance(arr.flat[0], str):
        return np.frompyfunc(lambda s: s.encode("utf-8") if isinstance(s, str) else s, 1, 1)(arr).astype(object)
    return arr


def coerce(arr: np.ndarray, spec: TensorSpec, fail: Callable[[str, str], DatasetError]) -> np.ndarray:
    """Cast to the signature dtype where TF Serving would accept the value
    unchanged in meaning: ints->float yes, float->int and string<->number never."""
    want = spec.dtype
    got = _kind(arr)
    if want == tf.string:
        if got != "string":
            raise fail(f"dtype {arr.dtype} is numeric but the input is a string tensor",
                       "Feed bytes/str values (string vs numeric is never converted).")
        return _to_bytes_object(arr)
    if got == "string":
        raise fail(f"dtype {arr.dtype} holds strings but the input is {want.name}",
                   "Parse the strings to numbers in the dataset (string vs numeric is never converted).")
    if want == tf.bool:
        if got != "bool":
            raise fail(f"dtype {arr.dtype} is not bool", "Cast to bool in the dataset, e.g. x != 0.")
        return arr
    if want.is_integer:
        if got not in ("int", "bool"):
            raise fail(f"dtype {arr.dtype} cannot be cast to {want.name} without truncating",
                       "Round and cast in the dataset (tf.cast / np.astype) if the values are integral.")
        if arr.size and got == "int" and not np.can_cast(arr.dtype, want.as_numpy_dtype, "safe"):
            lo, hi = arr.min().item(), arr.max().item()
            if lo < want.min or hi > want.max:
                raise fail(f"values in [{lo}, {hi}] overflow {want.name}",
                           "Check the data, or the signature's dtype.")
        return arr.astype(want.as_numpy_dtype, copy=False)
    if want.is_floating or want.is_complex:
        if got == "float" and arr.dtype.kind == "c" and not want.is_complex:
            raise fail(f"dtype {arr.dtype} is complex but the input is {want.name}",
                       "Take the real part in the dataset if that is intended.")
        if got not in ("int", "bool", "float"):
            raise fail(f"dtype {arr.dtype} is not numeric", "Cast in the dataset.")
        return arr.astype(want.as_numpy_dtype, copy=False)
    raise fail(f"the input's dtype {want.name} cannot be fed from data",
               "Use the synthesized plan for this signature.")


# --------------------------------------------------------------------------- sources


@dataclass
class Chunk:
    """Rows from the source, each component with a leading row axis (or a
    ``Single`` element still without one).

    ``stratum`` is where a logged request came from (selection keeps rows per
    stratum). ``user_batch``: the components are a batch the user built, so a rank-0
    input is one value shared by every row. ``numbering`` says how errors name
    a row: "batch" (element ``index`` is that batch) or "rows" (consecutive
    elements/rows/records numbered from ``index``).
    """

    index: int
    comps: dict[str, tuple[str, Any]]
    user_batch: bool
    numbering: str = "rows"
    label: str = "element"
    stratum: tuple[str, int] = ("", 0)  # (request type, batch after TF Serving's padding); traffic only
    requests: int = 1                    # logged requests whose rows this chunk holds (traffic)

    def where(self, off: int | None = None) -> str:
        if self.numbering == "none":  # traffic: reasons are counted, so they must not name a position
            return self.label
        if self.numbering == "batch":
            return f"{self.label} {self.index}" + ("" if off is None else f" (row {off} of that batch)")
        return f"{self.label} {self.index + (off or 0)}"



@dataclass
class Single:
    """Marks a component of one unbatched element (no row axis yet)."""

    value: Any


def chunk_len(comps: dict[str, tuple[str, Any]]) -> int:
    for _, v in comps.values():
        if isinstance(v, (tf.Tensor, np.ndarray)) and len(v.shape):
            return int(v.shape[0])
        if isinstance(v, tf.RaggedTensor):
            return int(v.nrows())
    return 1



def example_alias(inputs: Mapping[str, TensorSpec], required: list[str]) -> str | None:
    """The input that takes serialized examples: the one string input a request must carry."""
    strings = [a for a in (required or sorted(inputs)) if inputs[a].dtype == tf.string]
    if len(strings) == 1 and len(required or sorted(inputs)) == 1:
        return strings[0]
    return None


