"""Value domains the graph implies: embedding table sizes, lookup keys, assert bounds.

An id past its embedding table fails ``Gather``; a string not among a lookup
table's keys maps to OOV; a guard ``assert_less`` fails the request. Each
analysis here follows a value forward from an input (or a parsed tf.Example
feature) and says which values are valid, or nothing when the graph does not say.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.index import (IDENTITY_OPS, MAIN, TABLE_FIND, TABLE_IMPORT,
                                          VARIABLE_CREATORS, GraphIndex, Node, Ref, index_for)
from tfwarm_export.analysis.parse_specs import (PARSER_OPS, ParserMatch, find_parsers, merge_specs,
                                                spec_from_parser)
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.example_spec import ExampleSpec

COMPARISONS = frozenset({"Less", "LessEqual", "Greater", "GreaterEqual"})

_VALUE_PASS_FIRST = frozenset({
    "Reshape", "ExpandDims", "Squeeze", "Transpose", "StridedSlice", "Slice", "Tile",
    "BroadcastTo", "ReverseV2", "Reverse", "Cast", "GatherV2", "Gather", "GatherNd", "Pad",
    "PadV2", "MirrorPad", "Unique", "UniqueV2", "UniqueWithCounts",
})

log = logging.getLogger("tfwarm_export")


def _value_passthrough(node: Node, pos: int) -> Sequence[int]:
    """Outputs that carry (a subset of) the input's values unchanged."""
    op = node.op
    if op in IDENTITY_OPS:
        return (0,) if pos == 0 else ()
    if op == "IdentityN":
        return (pos,)
    if op in _VALUE_PASS_FIRST:
        return (0,) if pos == 0 else ()
    if op == "ConcatV2":
        return (0,) if pos < len(node.inputs) - 1 else ()
    if op == "Concat":
        return (0,) if pos >= 1 else ()
    if op == "Pack":
        return (0,)
    if op == "Unpack":
        n = node.attr("num")
        return tuple(range(int(n.i))) if n is not None else (0,)
    if op in ("Split", "SplitV"):
        data_pos = 1 if op == "Split" else 0
        n = node.attr("num_split")
        return tuple(range(int(n.i))) if pos == data_pos and n is not None else ()
    if op in ("Select", "SelectV2"):
        return (0,) if pos in (1, 2) else ()
    if op in ("Switch", "RefSwitch"):  # TF1 control flow: data goes out either branch
        return (0, 1) if pos == 0 else ()
    if op in ("Merge", "RefMerge"):
        return (0,)
    if op == "SparseFillEmptyRows":
        return (1,) if pos == 1 else ()
    if op == "SparseToDense":
        return (0,) if pos == 2 else ()
    if op == "RaggedTensorToTensor":
        return (0,) if pos == 1 else ()
    if op == "SparseReorder":  # (indices, values, shape) -> (indices, values)
        return (1,) if pos == 1 else ()
    # Text standardization keeps vocabulary tokens as they are (they were
    # standardized the same way when the vocabulary was built).
    if op in ("StringLower", "StaticRegexReplace", "RegexReplace", "StringStrip"):
        return (0,) if pos == 0 else ()
    if op in ("StringSplitV2", "StringSplit"):
        return (1,) if pos == 0 else ()
    return ()


def _variable_shape(idx: GraphIndex, ref: Ref) -> tuple[list[int] | None, str]:
    """Shape and name of the variable/constant a gather's params come from."""
    def through(n: Node):
        return 0 if n.op in IDENTITY_OPS or n.op == "ReadVariableOp" else None

    found = []
    for r, node in idx.resolve_back(ref, through):
        if node.op in VARIABLE_CREATORS and node.attr("shape") is not None:
            s = node.attr("shape").shape
            if s.unknown_rank:
                return None, ""
            shape = [int(d.size) for d in s.dim]
            name = node.qualified_name
        elif node.op == "Const":
            shape = [int(d.size) for d in node.attr("value").tensor.tensor_shape.dim]
            name = f"Const {node.qualified_name}"
        else:
            return None, ""
        found.append((shape, name))
    if not found or any(f[0] != found[0][0] for f in found):
        return None, ""
    return found[0]


def _gather_bound(idx: GraphIndex, node: Node, pos: int) -> tuple[int, str] | None:
    """Rows of the table an index tensor at input ``pos`` of ``node`` selects from."""
    if pos != 1 or node.op not in ("Gather", "GatherV2", "ResourceGather"):
        return None
    batch_dims = int(node.attr("batch_dims").i) if node.attr("batch_dims") is not None else 0
    axis = batch_dims if node.op == "ResourceGather" else 0
    if node.op == "GatherV2" and len(node.inputs) > 2:
        a = idx.const_value(node.inputs[2])
        if a is None or a.size != 1:
            return None
        axis = int(a.ravel()[0])
    shape, name = _variable_shape(idx, node.inputs[0])
    if shape is None:
        return None
    if axis < 0:
        axis += len(shape)
    if not 0 <= axis < len(shape) or shape[axis] < 0:
        return None
    rows = shape[axis]
    return rows, f"{node.op} on {name!r} ({rows} rows)"


def _decode_keys(values: list, key_dtype: tf.DType) -> list:
    if key_dtype == tf.string:
        out = []
        for v in values:
            if isinstance(v, bytes):
                try:
                    out.append(v.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(v)
            else:
                out.append(str(v))
        return out
    if key_dtype.is_integer:
        return [int(v) for v in values]
    return list(values)


def _read_vocab(path: str, node: Node) -> list | None:
    """Keys InitializeTableFromTextFile reads from ``path`` (per its key_index/delimiter)."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            content = f.read()
    except (tf.errors.OpError, OSError) as e:
        log.warning("vocabulary file %s of %s cannot be read (%s); values reaching that lookup "
                    "are not constrained to its keys", path, node.name, getattr(e, "message", e))
        return None
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    size = int(node.attr("vocab_size").i) if node.attr("vocab_size") is not None else -1
    if size > 0:
        lines = lines[:size]
    key_index = int(node.attr("key_index").i) if node.attr("key_index") is not None else -2
    delim = node.attr("delimiter").s if node.attr("delimiter") is not None else b"\t"
    if key_index == -2:
        return lines
    if key_index == -1:
        return list(range(len(lines)))
    out = []
    for ln in lines:
        cols = ln.split(delim)
        if key_index >= len(cols):
            return None
        out.append(cols[key_index])
    return out


def _table_keys(idx: GraphIndex, find: Node, export_dir: str | None) -> tuple[list, str] | None:
    """Keys a ``LookupTableFind`` can hit: from Const imports or a vocabulary file."""
    creators = idx.table_creators(find.inputs[0])
    if len(creators) != 1:
        return None
    creator = creators[0]
    key_dtype = tf.dtypes.as_dtype(creator.attr("key_dtype").type) if creator.attr("key_dtype") else tf.string
    inits = idx.table_initializers().get(creator.key, [])
    keys: list = []
    sources = []
    for init in inits:
        if init.op in TABLE_IMPORT:
            v = idx.const_value(init.inputs[1]) if len(init.inputs) > 1 else None
            if v is None:
                return None
            keys += np.ravel(v).tolist()
            sources.append("constant keys")
        else:
            path = idx.resolve_path(init.inputs[1], export_dir) if len(init.inputs) > 1 else None
            if path is None:
                return None
            vocab = _read_vocab(path, init)
            if vocab is None:
                return None
            keys += vocab
            sources.append(f"vocabulary file {os.path.basename(path)}")
    if not keys:
        return None
    keys = _decode_keys(keys, key_dtype)
    seen, unique = set(), []
    for k in keys:
        if k not in seen:
            seen.add(k)
            unique.append(k)
    how = ", ".join(sorted(set(sources)))
    return unique, f"{find.op} on table {creator.qualified_name!r} ({len(unique)} keys, {how})"


def _bool_passthrough(node: Node, pos: int) -> Sequence[int]:
    if pos == 0 and (node.op in IDENTITY_OPS or node.op in ("All", "Reshape", "Squeeze", "ExpandDims")):
        return (0,)
    if node.op == "LogicalAnd":
        return (0,)
    if node.op == "Switch" and pos in (0, 1):  # TF1 tf.cond around the Assert
        return (0, 1)
    if node.op == "IdentityN":
        return (pos,)
    return ()


def _guards_assert(idx: GraphIndex, cmp: Node) -> bool:
    """Whether a comparison's result feeds an Assert (directly or as an AssertGuard cond)."""
    for node, pos in idx.walk_forward((cmp.scope, cmp.name, 0), _bool_passthrough):
        if node.op == "Assert" and pos == 0:
            return True
        if node.op in ("If", "StatelessIf") and pos == 0:
            for c in idx.calls.get(node.key, ()):
                if idx.function_has_op(c.function, ("Assert",)):
                    return True
    return False


def _assert_bound(idx: GraphIndex, node: Node, pos: int) -> tuple[str, float | int, str] | None:
    """('low'|'high', value, source) when ``node`` compares our value to a constant under an Assert."""
    if node.op not in COMPARISONS or pos not in (0, 1) or len(node.inputs) != 2:
        return None
    c = idx.const_value(node.inputs[1 - pos])
    if c is None or c.size != 1 or c.dtype.kind not in "iuf":
        return None
    if not _guards_assert(idx, node):
        return None
    c = c.ravel()[0].item()
    op = node.op
    if pos == 1:  # C op x  ==  x flipped-op C
        op = {"Less": "Greater", "LessEqual": "GreaterEqual", "Greater": "Less",
              "GreaterEqual": "LessEqual"}[op]
    is_int = isinstance(c, int)
    src = f"Assert at {node.qualified_name}"
    if op == "Less":
        return "high", c, src
    if op == "LessEqual":
        return "high", (c + 1 if is_int else float(np.nextafter(c, np.inf))), src
    if op == "Greater":
        return "low", (c + 1 if is_int else float(np.nextafter(c, np.inf))), src
    return "low", c, src


def _domain_for_value(idx: GraphIndex, start: Ref, export_dir: str | None) -> Domain | None:
    lows: list[tuple] = []
    highs: list[tuple] = []
    choice_sets: list[tuple[list, str]] = []
    seen = set()
    for node, pos in idx.walk_forward(start, _value_passthrough):
        if (node.key, pos) in seen:
            continue
        seen.add((node.key, pos))
        g = _gather_bound(idx, node, pos)
        if g is not None:
            lows.append((0, g[1]))
            highs.append(g)
            continue
        if node.op in TABLE_FIND and pos == 1:
            keys = _table_keys(idx, node, export_dir)
            if keys is not None:
                choice_sets.append(keys)
            continue
        b = _assert_bound(idx, node, pos)
        if b is not None:
            (lows if b[0] == "low" else highs).append((b[1], b[2]))
    low = max((v for v, _ in lows), default=None)
    high = min((v for v, _ in highs), default=None)
    sources = [s for _, s in lows + highs]
    if choice_sets:
        choices = choice_sets[0][0]
        for other, _ in choice_sets[1:]:
            allowed = set(other)
            choices = [c for c in choices if c in allowed]
        if low is not None or high is not None:
            choices = [c for c in choices if isinstance(c, (int, float))
                       and (low is None or c >= low) and (high is None or c < high)]
        if not choices:
            return None
        src = "; ".join(dict.fromkeys([s for _, s in choice_sets] + sources))
        return Domain(choices=tuple(choices), source=src)
    if low is None and high is None:
        return None
    if low is not None and high is not None and low >= high:
        return None  # contradictory bounds: say nothing rather than guess
    return Domain(low=low, high=high, source="; ".join(dict.fromkeys(sources)))


def value_domain(meta_graph_def, ref: Ref, export_dir: str | None = None) -> Domain | None:
    """The domain of any tensor ``ref`` (e.g. a decoder's output), or None."""
    return _domain_for_value(index_for(meta_graph_def), ref, export_dir)


def locate_parsers(idx: GraphIndex, spec: ExampleSpec) -> list[ParserMatch]:
    """Parser nodes named by ``spec.parser_nodes`` (or, failing that, any with the same keys)."""
    out = []
    for q in spec.parser_nodes:
        # Node names contain "/" too: try the main graph, then each function prefix.
        key = None
        if (MAIN, q) in idx.nodes:
            key = (MAIN, q)
        else:
            for f in idx.functions:
                if q.startswith(f + "/") and (f, q[len(f) + 1:]) in idx.nodes:
                    key = (f, q[len(f) + 1:])
                    break
        if key is not None:
            m = spec_from_parser(idx, idx.nodes[key])
            if m is not None:
                out.append(m)
    if out:
        return out
    wanted = {f.key for f in spec.context_features()} | {f.key for f in spec.feature_list_features()}
    for op in sorted(PARSER_OPS):
        for key in idx.by_op.get(op, ()):
            m = spec_from_parser(idx, idx.nodes[key])
            if m is not None and m.spec.kind == spec.kind and {k for _, k in m.values} == wanted:
                out.append(m)
    return out


def _feature_domains(idx: GraphIndex, matches: list[ParserMatch], spec: ExampleSpec | None,
                     export_dir: str | None) -> dict[str, Domain]:
    merged = merge_specs([m.spec for m in matches]) if spec is None else spec
    per_key: dict[str, list[Domain | None]] = {}
    for m in matches:
        for (fl, key), ref in m.values.items():
            dkey = merged.domain_key(key, fl)
            per_key.setdefault(dkey, []).append(_domain_for_value(idx, ref, export_dir))
    out = {}
    for k, doms in sorted(per_key.items()):
        found = [d for d in doms if d is not None]
        if found and all(d == found[0] for d in found):
            out[k] = found[0]
        elif found:
            out[k] = _intersect(found)
            if out[k] is None:
                del out[k]
    return out


def _intersect(domains: list[Domain]) -> Domain | None:
    """One domain that satisfies every parser reading the feature, or None."""
    if any(d.choices is not None for d in domains):
        choice = [d for d in domains if d.choices is not None]
        keep = [c for c in choice[0].choices if all(c in d.choices for d in choice[1:])]
        for d in domains:
            if d.choices is None:
                keep = [c for c in keep if isinstance(c, (int, float))
                        and (d.low is None or c >= d.low) and (d.high is None or c < d.high)]
        return Domain(choices=tuple(keep), source="; ".join(d.source for d in domains)) if keep else None
    lows = [d.low for d in domains if d.low is not None]
    highs = [d.high for d in domains if d.high is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    if low is not None and high is not None and low >= high:
        return None
    return Domain(low=low, high=high, source="; ".join(d.source for d in domains))


def find_value_domains(meta_graph_def, inputs: Mapping[str, str],
                       example_spec: ExampleSpec | None = None,
                       export_dir: str | None = None) -> dict[str, Domain]:
    """Value domains the graph implies, keyed by input alias or tf.Example feature key.

    * integer values reaching ``Gather``/``GatherV2``/``ResourceGather`` as
      indices -> ``[0, rows)`` of the gathered variable or constant;
    * values reaching ``LookupTableFind`` -> the table's keys (Const imports,
      or the vocabulary file an ``InitializeTableFromTextFile`` reads; pass
      ``export_dir`` to resolve asset files);
    * comparisons with a constant that feed an ``Assert`` -> that bound.

    ``inputs`` maps alias -> tensor name. A string input that is parsed as
    tf.Examples yields domains for its features instead of itself; with
    ``example_spec`` given, its parsers' features are analysed even when
    ``inputs`` is empty. Inputs with nothing inferable are absent.
    """
    idx = index_for(meta_graph_def)
    out: dict[str, Domain] = {}
    parsers_done: set = set()
    for alias, tensor in sorted(inputs.items()):
        start = idx.tensor_ref(tensor)
        if start is None:
            continue
        matches = find_parsers(idx, start)
        if matches:
            parsers_done.update(m.node.key for m in matches)
            out.update(_feature_domains(idx, matches, example_spec, export_dir))
            continue
        d = _domain_for_value(idx, start, export_dir)
        if d is not None:
            out[alias] = d
    if example_spec is not None:
        matches = [m for m in locate_parsers(idx, example_spec) if m.node.key not in parsers_done]
        if matches:
            for k, d in _feature_domains(idx, matches, example_spec, export_dir).items():
                out.setdefault(k, d)
    if example_spec is not None:
        keys = {example_spec.domain_key(f.key) for f in example_spec.context_features()}
        keys |= {example_spec.domain_key(f.key, True) for f in example_spec.feature_list_features()}
        out = {k: d for k, d in out.items() if k in keys or k in inputs}
    return out
