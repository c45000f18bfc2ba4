"""Synthesized tf.Example / SequenceExample records conform to their ExampleSpec.

Records are checked by parsing them with the very feature spec the
ExampleSpec stands for (``tf.io.parse_example`` and friends, eagerly); the
end-to-end runs through real SavedModels live in test_graph.py.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tfwarm_export.specs.domains import Domain  # noqa: E402
from tfwarm_export.specs.example_spec import (DenseFeature, ExampleSpec, RaggedFeature,  # noqa: E402
                                        SparseFeature)
from tfwarm_export.values.examples import (feature_values, synthesize_example_protos,  # noqa: E402
                                    synthesize_examples)

SPEC = ExampleSpec(
    "example",
    dense=(DenseFeature("x", tf.float32, (2, 3)),
           DenseFeature("id", tf.int64, (), np.array(0)),
           DenseFeature("name", tf.string, (1,), np.array([b"?"], dtype=object)),
           DenseFeature("seq", tf.float32, (None, 2), np.array(0.0, np.float32), allow_missing=True)),
    sparse=(SparseFeature("tags", tf.string),),
    ragged=(RaggedFeature("r", tf.int64, tf.int32),),
    parser_op="ParseExampleV2",
)

SEQ_SPEC = ExampleSpec(
    "sequence_example",
    dense=(DenseFeature("cid", tf.int64, ()), DenseFeature("k", tf.float32, (1,), np.array([1.0]))),
    sparse=(SparseFeature("cs", tf.string),),
    feature_list_dense=(DenseFeature("tok", tf.int64, ()),
                        DenseFeature("k", tf.float32, (3,), allow_missing=True)),
    feature_list_sparse=(SparseFeature("sp", tf.float32),),
    feature_list_ragged=(RaggedFeature("rg", tf.string),),
    parser_op="ParseSequenceExampleV2",
)


def _parse(spec: ExampleSpec, records: list[bytes]):
    if spec.is_sequence:
        context, sequence = spec.to_tf_features()
        return tf.io.parse_sequence_example(tf.constant(records), context_features=context,
                                            sequence_features=sequence)
    return tf.io.parse_example(tf.constant(records), spec.to_tf_features())


def _counts(protos, key) -> list[int | None]:
    """Number of values of ``key`` per Example (None when the feature is absent)."""
    out = []
    for p in protos:
        feats = p.features.feature if isinstance(p, tf.train.Example) else p.context.feature
        if key not in feats:
            out.append(None)
            continue
        f = feats[key]
        out.append(len(getattr(f, f.WhichOneof("kind")).value) if f.WhichOneof("kind") else 0)
    return out


def test_deterministic_for_a_seed():
    a = synthesize_examples(SPEC, 6, np.random.default_rng(42))
    b = synthesize_examples(SPEC, 6, np.random.default_rng(42))
    c = synthesize_examples(SPEC, 6, np.random.default_rng(43))
    assert a == b and a != c
    assert all(isinstance(r, bytes) for r in a)
    s1 = synthesize_examples(SEQ_SPEC, 4, np.random.default_rng(1))
    assert s1 == synthesize_examples(SEQ_SPEC, 4, np.random.default_rng(1))


def test_required_present_optional_sometimes_omitted():
    protos = synthesize_example_protos(SPEC, 6, np.random.default_rng(0))
    assert _counts(protos, "x") == [6] * 6  # prod((2, 3)) in every record
    ids = _counts(protos, "id")
    assert ids[0] == 1 and ids[1] is None and None in ids and 1 in ids
    assert ids == [1, None] * 3  # every other record: deterministic
    names = _counts(protos, "name")
    assert names[0] == 1 and None in names
    # A variable-length dense feature: multiples of the inner size, sometimes none.
    seq = [n for n in _counts(protos, "seq") if n is not None]
    assert all(n % 2 == 0 for n in seq) and seq[0] > 0
    assert _counts(synthesize_example_protos(SPEC, 1, np.random.default_rng(0)), "id") == [1]


def test_varlen_lengths_vary_and_include_zero():
    protos = synthesize_example_protos(SPEC, 12, np.random.default_rng(5))
    for key in ("tags", "r"):
        lengths = [n or 0 for n in _counts(protos, key)]
        assert lengths[0] > 0 and lengths[1] == 0
        assert len(set(lengths)) >= 3, lengths


def test_records_parse_with_the_spec():
    for count in (1, 2, 7):
        records = synthesize_examples(SPEC, count, np.random.default_rng(count))
        parsed = _parse(SPEC, records)
        assert parsed["x"].shape == (count, 2, 3)
        assert parsed["id"].shape == (count,)
        assert parsed["name"].shape == (count, 1)
        assert parsed["tags"].dense_shape[0] == count
        assert parsed["r"].shape[0] == count
        assert np.all(np.isfinite(parsed["x"].numpy()))


def test_sequence_examples_parse_with_the_spec():
    records = synthesize_examples(SEQ_SPEC, 6, np.random.default_rng(3))
    context, feature_lists, lengths = _parse(SEQ_SPEC, records)
    assert context["cid"].shape == (6,)
    assert feature_lists["tok"].shape[0] == 6
    assert lengths["tok"].numpy()[1] == 0 and lengths["tok"].numpy()[0] > 0
    protos = synthesize_example_protos(SEQ_SPEC, 6, np.random.default_rng(3))
    assert all("tok" in p.feature_lists.feature_list for p in protos)  # required list
    assert any("k" not in p.feature_lists.feature_list for p in protos)  # allow_missing list
    assert all(len(f.float_list.value) == 3 for p in protos
               for f in p.feature_lists.feature_list["k"].feature)


def test_values_drawn_from_domains():
    domains = {
        "id": Domain(low=3, high=6, source="test"),
        "name": Domain(choices=("cat", "dog"), source="test"),
        "tags": Domain(choices=(b"a", b"b"), source="test"),
        "r": Domain(constant=7),
        "x": Domain(fn=lambda rng, shape: np.full(shape, 0.5)),
        "seq": Domain(low=-2.0, high=-1.0),
    }
    protos = synthesize_example_protos(SPEC, 20, np.random.default_rng(0), domains)
    vals = {k: [v for p in protos if k in p.features.feature
                for v in getattr(p.features.feature[k], p.features.feature[k].WhichOneof("kind")).value]
            for k in domains}
    assert set(vals["id"]) <= {3, 4, 5} and len(set(vals["id"])) > 1
    assert set(vals["name"]) == {b"cat", b"dog"}
    assert set(vals["tags"]) <= {b"a", b"b"} and vals["tags"]
    assert set(vals["r"]) == {7}
    assert set(vals["x"]) == {0.5}
    assert all(-2.0 <= v < -1.0 for v in vals["seq"]) and vals["seq"]


def test_optional_feature_kept_when_its_default_is_outside_the_domain():
    spec = ExampleSpec("example", dense=(
        DenseFeature("color", tf.string, (), np.array(b"", dtype=object)),
        DenseFeature("id", tf.int64, (), np.array(-1)),
        DenseFeature("ok", tf.int64, (), np.array(2))))
    domains = {"color": Domain(choices=("red", "blue")), "id": Domain(low=0, high=5),
               "ok": Domain(low=0, high=5)}
    protos = synthesize_example_protos(spec, 4, np.random.default_rng(0), domains)
    assert None not in _counts(protos, "color")
    assert None not in _counts(protos, "id")
    assert None in _counts(protos, "ok")


def test_one_sided_domain_bounds():
    rng = np.random.default_rng(0)
    assert all(v < 4 for v in feature_values(tf.int64, 50, rng, Domain(high=4)))
    assert all(0 <= v < 4 for v in feature_values(tf.int64, 50, rng, Domain(high=4)))
    assert all(v >= 100 for v in feature_values(tf.int64, 50, rng, Domain(low=100)))
    assert all(-20 <= v < -10 for v in feature_values(tf.int64, 50, rng, Domain(high=-10)))
    with pytest.raises(ValueError):
        feature_values(tf.float32, 2, rng, Domain(constant=float("nan")))


def test_domain_key_disambiguates_feature_lists():
    assert SEQ_SPEC.domain_key("k") == "k"
    assert SEQ_SPEC.domain_key("k", feature_list=True) == "feature_lists/k"
    assert SEQ_SPEC.domain_key("tok", feature_list=True) == "tok"
    domains = {"feature_lists/k": Domain(constant=9.0), "k": Domain(constant=1.5)}
    protos = synthesize_example_protos(SEQ_SPEC, 3, np.random.default_rng(0), domains)
    fl = [v for p in protos for f in p.feature_lists.feature_list["k"].feature for v in f.float_list.value]
    assert fl and set(fl) == {9.0}
    ctx = [v for p in protos if "k" in p.context.feature for v in p.context.feature["k"].float_list.value]
    assert ctx and set(ctx) == {1.5}


def test_spec_to_dict_is_json_and_specs_compare():
    d = SPEC.to_dict()
    json.dumps(d)
    json.dumps(SEQ_SPEC.to_dict())
    assert d["dense"][2]["default"] == ["?"] and d["dense"][0]["required"] is True
    same = ExampleSpec("example", dense=(DenseFeature("id", tf.int64, (), np.array(0)),))
    other = ExampleSpec("example", dense=(DenseFeature("id", tf.int64, (), np.array(1)),))
    assert same == ExampleSpec("example", dense=(DenseFeature("id", tf.int64, (), np.array(0)),))
    assert same != other
    assert hash(same) == hash(ExampleSpec("example", dense=(DenseFeature("id", tf.int64, (), np.array(0)),)))
    assert SPEC.required_keys() == ["x"] and SEQ_SPEC.required_keys() == ["cid", "tok"]


# --------------------------------------------------------------------------- property test
_DTYPES = st.sampled_from([tf.float32, tf.int64, tf.string])


@st.composite
def _dense_features(draw, key):
    dtype = draw(_DTYPES)
    kind = draw(st.sampled_from(["required", "default", "varlen"]))
    if kind == "varlen":
        inner = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
        pad = {tf.float32: np.array(0.0, np.float32), tf.int64: np.array(0),
               tf.string: np.array(b"", dtype=object)}[dtype]
        return DenseFeature(key, dtype, (None,) + inner, pad, allow_missing=True)
    shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    if kind == "required":
        return DenseFeature(key, dtype, shape)
    n = int(np.prod(shape)) if shape else 1
    default = {tf.float32: np.zeros(n, np.float32), tf.int64: np.ones(n, np.int64),
               tf.string: np.array([b"d"] * n, dtype=object)}[dtype].reshape(shape)
    return DenseFeature(key, dtype, shape, default)


@st.composite
def _specs(draw):
    n_dense, n_sparse, n_ragged = draw(st.integers(0, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dense = tuple(draw(_dense_features(f"d{i}")) for i in range(n_dense))
    sparse = tuple(SparseFeature(f"s{i}", draw(_DTYPES)) for i in range(n_sparse))
    ragged = tuple(RaggedFeature(f"r{i}", draw(_DTYPES)) for i in range(n_ragged))
    return ExampleSpec("example", dense, sparse, ragged)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_specs(), count=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_any_spec_yields_parseable_deterministic_records(spec, count, seed):
    records = synthesize_examples(spec, count, np.random.default_rng(seed))
    assert records == synthesize_examples(spec, count, np.random.default_rng(seed))
    assert len(records) == count
    if not (spec.dense or spec.sparse or spec.ragged):
        return
    parsed = _parse(spec, records)
    for f in spec.dense:
        if not f.variable_length:
            assert tuple(parsed[f.key].shape) == (count,) + tuple(f.shape)
    protos = [tf.train.Example.FromString(r) for r in records]
    for f in spec.dense:
        if f.required:
            assert _counts(protos, f.key) == [f.inner_size] * count
        elif count > 1:
            assert _counts(protos, f.key)[1] is None
