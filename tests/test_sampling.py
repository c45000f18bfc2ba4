"""Sampling user data for warmup (issue #5): every input form, the reservoir,
size distributions/buckets, mismatch errors and shapes_only privacy.

All data is real tf.data / numpy / TFRecord; TF is never mocked.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from hypothesis import given, settings, strategies as st

from tfwarm_export.errors import DatasetError
from tfwarm_export.traffic import DataSample, Stratum, choose_buckets, row_hashes, sample_dataset
from tfwarm_export.traffic.rows import Column
from tfwarm_export.traffic.select import size_class
from tfwarm_export.model.signatures import SignatureInfo, TensorSpec, read_signatures

PREDICT = "tensorflow/serving/predict"


def spec(alias, dtype, shape):
    return TensorSpec(alias=alias, name=f"{alias}:0", dtype=dtype, shape=shape)


def sig_of(*specs, defaults=None, name="serving_default"):
    return SignatureInfo(name=name, method_name=PREDICT, inputs={s.alias: s for s in specs},
                         outputs={}, defaults=defaults or {})


# ids: variable-length int64 tokens; x: fixed float features
TWO = sig_of(spec("ids", tf.int64, (None, None)), spec("x", tf.float32, (None, 3)))
ONE = sig_of(spec("x", tf.float32, (None, 3)))
EXAMPLES = sig_of(spec("examples", tf.string, (None,)))


def ragged_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    ids = [np.arange(i * 100, i * 100 + int(rng.integers(1, 9)), dtype=np.int64) for i in range(n)]
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return ids, x


def ragged_ds(ids, x):
    return tf.data.Dataset.from_generator(
        lambda: ({"ids": i, "x": r} for i, r in zip(ids, x)),
        output_signature={"ids": tf.TensorSpec([None], tf.int64), "x": tf.TensorSpec([3], tf.float32)})


def row_keys(sample: DataSample, alias="x"):
    """Identify rows by their first value (all test data makes that unique)."""
    return sorted(float(r[alias].ravel()[0]) for r in sample.rows)


def make_example(i: int, n_tokens: int = 3) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "age": tf.train.Feature(float_list=tf.train.FloatList(value=[12345.678 + 1.25 * i])),
        "uid": tf.train.Feature(int64_list=tf.train.Int64List(value=[10_000 + 7919 * i])),
        "tokens": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[b"tok%d" % (j % 4) for j in range(n_tokens)])),
        "email": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"user%d@x.org" % i])),
    })).SerializeToString()


def write_records(path, records, gzip_it=False):
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gzip_it else "")
    with tf.io.TFRecordWriter(str(path), opts) as w:
        for r in records:
            w.write(r)
    return str(path)


# --------------------------------------------------------------------------- tf.data forms


def test_unbatched_dict_dataset_rows_and_sizes():
    ids, x = ragged_data()
    s = sample_dataset(ragged_ds(ids, x), TWO, k=16, seed=3)
    # k rows per stratum; the strata here are the length classes of ids (1, 2-3, 4-7, 8)
    per_class = Counter(size_class(len(i)) for i in ids)
    assert s.scanned == 60 and s.strata == len(per_class)
    assert s.sample_size == sum(min(16, c) for c in per_class.values())
    assert set(s.rows[0]) == {"ids", "x"}
    assert s.rows[0]["x"].shape == (3,) and s.rows[0]["x"].dtype == np.float32
    assert s.rows[0]["ids"].dtype == np.int64 and s.rows[0]["ids"].ndim == 1
    assert s.size_counts[("ids", 1)] == Counter(len(i) for i in ids)
    assert len(set(row_keys(s))) == s.sample_size
    # every kept row is an intact copy of a source row
    for r in s.rows:
        src = int(r["x"][0]) // 3
        np.testing.assert_array_equal(r["ids"], ids[src])


def test_batched_and_unbatched_views_give_the_same_sample():
    # Algorithm L depends on row order only, not on chunking
    x = np.arange(300, dtype=np.float32).reshape(100, 3)
    unbatched = tf.data.Dataset.from_tensor_slices({"x": x})
    batched = unbatched.batch(7)
    a = sample_dataset(unbatched, ONE, k=10, seed=5)
    b = sample_dataset(batched, ONE, k=10, seed=5)
    c = sample_dataset({"x": x}, ONE, k=10, seed=5)
    assert a.scanned == b.scanned == c.scanned == 100
    assert row_keys(a) == row_keys(b) == row_keys(c)


def test_batched_ragged_dataset():
    ids, x = ragged_data()
    ds = ragged_ds(ids, x).ragged_batch(8)
    s = sample_dataset(ds, TWO, k=100)
    assert s.scanned == 60 and s.sample_size == 60
    assert s.size_counts[("ids", 1)] == Counter(len(i) for i in ids)


def test_tuple_elements_match_sorted_aliases():
    ids, x = ragged_data(20)
    padded = np.zeros((20, 8), dtype=np.int64)
    for i, row in enumerate(ids):
        padded[i, :len(row)] = row
    ds = tf.data.Dataset.from_tensor_slices((padded, x))  # sorted aliases: ids, x
    s = sample_dataset(ds, TWO, k=5)
    assert s.rows[0]["ids"].dtype == np.int64 and s.rows[0]["x"].shape == (3,)


def test_single_tensor_for_one_input_signature():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    s = sample_dataset(tf.data.Dataset.from_tensor_slices(x), ONE, k=4)
    assert s.scanned == 10 and s.rows[0]["x"].shape == (3,)


@pytest.mark.parametrize("form", ["dict_xy", "tensor_xy", "tensor_xyw", "tuple_x"])
def test_fit_style_x_y_pairs(form):
    ids, x = ragged_data(12)
    y = np.zeros(12, dtype=np.float32)
    if form == "dict_xy":
        ds, sig = tf.data.Dataset.from_tensor_slices(({"x": x}, y)), ONE
    elif form == "tensor_xy":
        ds, sig = tf.data.Dataset.from_tensor_slices((x, y)), ONE
    elif form == "tensor_xyw":
        ds, sig = tf.data.Dataset.from_tensor_slices((x, y, y)).batch(4), ONE
    else:
        padded = np.zeros((12, 8), dtype=np.int64)
        ds, sig = tf.data.Dataset.from_tensor_slices(((padded, x), y)), TWO
    s = sample_dataset(ds, sig, k=5)
    assert s.scanned == 12
    assert s.rows[0]["x"].shape == (3,)


def test_inputs_with_defaults_may_be_absent():
    sig = sig_of(spec("x", tf.float32, (None, 3)), spec("temp", tf.float32, ()),
                 defaults={"temp": np.float32(1.0)})
    x = np.ones((5, 3), dtype=np.float32)
    s = sample_dataset(tf.data.Dataset.from_tensor_slices({"x": x}), sig, k=3)
    assert s.aliases == ["x"]
    assert set(s.batches(4)) == {"x"}


def test_int_to_float_cast_is_accepted():
    s = sample_dataset({"x": np.arange(9, dtype=np.int32).reshape(3, 3)}, ONE, k=3)
    assert s.rows[0]["x"].dtype == np.float32


def test_infinite_dataset_needs_max_scan():
    ds = tf.data.Dataset.from_tensor_slices(np.ones((4, 3), np.float32)).repeat()
    with pytest.raises(DatasetError, match="max_scan"):
        sample_dataset(ds, ONE)
    s = sample_dataset(ds, ONE, k=3, max_scan=50)
    assert s.scanned == 50


def test_infinite_dataset_error_names_the_real_option(tmp_path):
    """The advice must be an option that exists: dataset_max_scan= (CLI --max-scan)."""
    from models import sequence_model

    d = sequence_model(tmp_path / "s" / "1")
    ds = tf.data.Dataset.from_tensor_slices(np.ones((4, 3), np.int32)).repeat()
    with pytest.raises(DatasetError) as e:
        tw.plan(d, dataset=ds)
    assert "dataset_max_scan=N" in str(e.value) and "--max-scan" in str(e.value)
    assert tw.plan(d, dataset=ds, dataset_max_scan=20).samples["serving_default"].scanned == 20


# --------------------------------------------------------------------------- numpy forms


def test_numpy_forms():
    ids, x = ragged_data(30)
    s = sample_dataset({"ids": ids, "x": x}, TWO, k=8)  # ragged list of arrays
    assert s.scanned == 30 and s.size_counts[("ids", 1)] == Counter(len(i) for i in ids)
    assert sample_dataset(x, ONE, k=8).scanned == 30
    padded = np.zeros((30, 5), dtype=np.int32)
    t = sample_dataset((padded, x), TWO, k=8)  # tuple in sorted alias order
    assert t.rows[0]["ids"].dtype == np.int64 and t.size_counts[("ids", 1)] == Counter({5: 30})
    u = sample_dataset(({"x": x}, np.zeros(30)), ONE, k=8)  # (x, y)
    assert u.scanned == 30


def test_numpy_strings_are_bytes_objects_and_keep_trailing_nuls():
    sig = sig_of(spec("s", tf.string, (None,)))
    s = sample_dataset(tf.data.Dataset.from_tensor_slices([b"a\x00", b"b\x00"]), sig, k=2)
    assert sorted(r["s"].item() for r in s.rows) == [b"a\x00", b"b\x00"]
    blobs = [b"x\x00", b"\x08\x00"]  # e.g. a serialized proto ending in a zero varint
    u = sample_dataset({"s": blobs}, sig, k=2)
    assert sorted(r["s"].item() for r in u.rows) == sorted(blobs)
    w = sample_dataset({"s": [[b"a\x00"], [b"b", b"c\x00"]]}, sig_of(spec("s", tf.string, (None, None))), k=2)
    assert sorted(r["s"].tolist() for r in w.rows) == [[b"a\x00"], [b"b", b"c\x00"]]
    t = sample_dataset({"s": np.array(["é", "b"])}, sig, k=2)
    assert t.rows[0]["s"].dtype == object
    assert sorted(r["s"].item() for r in t.rows) == [b"b", "é".encode()]


# --------------------------------------------------------------------------- TFRecord


def test_tfrecord_plain_gzip_glob_and_list(tmp_path):
    recs = [make_example(i) for i in range(40)]
    plain = write_records(tmp_path / "a.tfrecord", recs[:20])
    gz = write_records(tmp_path / "b.tfrecord", recs[20:], gzip_it=True)
    assert open(gz, "rb").read(2) == b"\x1f\x8b" and open(plain, "rb").read(2) != b"\x1f\x8b"

    s = sample_dataset(plain, EXAMPLES, k=100)
    assert s.scanned == 20 and sorted(r["examples"].item() for r in s.rows) == sorted(recs[:20])
    assert s.rows[0]["examples"].shape == () and s.rows[0]["examples"].dtype == object

    g = sample_dataset(gz, EXAMPLES, k=100)
    assert g.scanned == 20 and sorted(r["examples"].item() for r in g.rows) == sorted(recs[20:])

    both = sample_dataset(str(tmp_path / "*.tfrecord"), EXAMPLES, k=100)
    assert both.scanned == 40 and "GZIP" in both.source and "plain" in both.source
    assert sorted(r["examples"].item() for r in both.rows) == sorted(recs)
    assert sample_dataset([gz, plain], EXAMPLES, k=5).scanned == 40

    ex = both.example_stats["examples"]
    assert set(ex.context) == {"age", "uid", "tokens", "email"}
    assert ex.context["tokens"].kind == "bytes_list" and ex.context["tokens"].lengths == Counter({3: 40})
    assert ex.context["uid"].values.low == 10_000 and ex.context["uid"].values.high == 10_000 + 7919 * 39
    batch = both.batches(6)
    assert batch["examples"].shape == (6,)
    tf.io.parse_example(batch["examples"], {"age": tf.io.FixedLenFeature([1], tf.float32)})


def test_tfrecord_zlib_needs_explicit_compression(tmp_path):
    recs = [make_example(i) for i in range(5)]
    path = str(tmp_path / "z.rec")
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="ZLIB")) as w:
        for r in recs:
            w.write(r)
    s = sample_dataset(path, EXAMPLES, compression="ZLIB")
    assert sorted(r["examples"].item() for r in s.rows) == sorted(recs)


def test_tfrecord_errors(tmp_path):
    with pytest.raises(DatasetError, match="no TFRecord files match"):
        sample_dataset(str(tmp_path / "nothing-*.rec"), EXAMPLES)
    with pytest.raises(DatasetError, match="does not exist"):
        sample_dataset(str(tmp_path / "missing.rec"), EXAMPLES)
    path = write_records(tmp_path / "a.rec", [make_example(0)])
    with pytest.raises(DatasetError, match="single string input") as e:
        sample_dataset(path, TWO)
    assert "ids: int64" in str(e.value) and "tf.data.Dataset" in str(e.value)
    bad = tmp_path / "bad.rec"
    bad.write_bytes(b"this is not a tfrecord file at all, really not")
    with pytest.raises(DatasetError, match="record 0"):
        sample_dataset(str(bad), EXAMPLES)


def test_real_savedmodel_with_serialized_examples(half_plus_two_src, tmp_path):
    """TF Serving's half_plus_two: a classify signature with an unknown-rank string input."""
    sig = read_signatures(str(half_plus_two_src)).get("classify_x_to_y")
    recs = [tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float(i) + 0.5]))}))
        .SerializeToString() for i in range(10)]
    path = write_records(tmp_path / "x.rec.gz", recs, gzip_it=True)
    s = sample_dataset(path, sig, k=4)
    assert s.scanned == 10 and s.example_stats["inputs"].context["x"].kind == "float_list"
    syn = s.synthesize(3, rng=1)["inputs"]
    parsed = tf.io.parse_example(syn, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"].numpy()
    assert parsed.shape == (3, 1) and ((parsed >= 0.5) & (parsed <= 9.5)).all()
    assert not set(parsed.ravel().tolist()) & {float(i) + 0.5 for i in range(10)}


def test_real_tf2_savedmodel(tmp_path):
    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens"),
                                      tf.TensorSpec([None, 2], tf.float32, name="dense")])
        def serve(self, tokens, dense):
            return {"y": tf.reduce_sum(tf.cast(tokens, tf.float32), 1) + tf.reduce_sum(dense, 1)}

    m = M()
    tf.saved_model.save(m, str(tmp_path / "m"), signatures={"serving_default": m.serve})
    sig = read_signatures(str(tmp_path / "m")).get("serving_default")
    tokens = [np.arange(n, dtype=np.int32) for n in (2, 5, 5, 9)]
    s = sample_dataset({"tokens": tokens, "dense": np.ones((4, 2), np.float32)}, sig, k=8)
    assert s.size_counts == {("tokens", 1): Counter({2: 1, 5: 2, 9: 1})}
    batch = s.batches(3, {("tokens", 1): 5}, rng=0)
    assert batch["tokens"].shape == (3, 5) and batch["dense"].shape == (3, 2)
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
    assert out["y"].shape == (3,)


# --------------------------------------------------------------------------- bottom-k selection


def _bottom_k(hashes: np.ndarray, k: int, chunk_sizes: list[int]) -> list[int]:
    s, i = Stratum(k), 0
    sizes = iter(chunk_sizes * (len(hashes) + 1))
    while i < len(hashes):
        m = min(next(sizes), len(hashes) - i)
        s.offer(hashes[i:i + m], lambda off, base=i: (base + off).tolist())
        i += m
    return [v for _, v in s.items()]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       chunks=st.lists(st.integers(1, 97), min_size=1, max_size=6), shards=st.integers(1, 5))
def test_bottom_k_is_order_chunk_and_shard_free(n, k, seed, chunks, shards):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, max(2, n // 2), size=n).astype(np.int64)  # with duplicates
    cols = {"x": Column(dense=values.reshape(n, 1))}
    hashes = row_hashes(cols, n, seed)
    kept = _bottom_k(hashes, k, chunks)
    distinct = sorted(set(hashes.tolist()))
    assert sorted(hashes[kept].tolist()) == distinct[:k]      # the k smallest distinct hashes
    perm = rng.permutation(n)
    assert sorted(hashes[perm][_bottom_k(hashes[perm], k, [1])].tolist()) == distinct[:k]
    parts = [Stratum(k) for _ in range(shards)]                # shard, then merge
    for j, part in enumerate(parts):
        idx = np.arange(j, n, shards)
        part.offer(hashes[idx], lambda off, idx=idx: idx[off].tolist())
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert [h for h, _ in merged.items()] == distinct[:k]


def test_row_hashes_depend_on_content_seed_and_shape_not_on_batching():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    dense = row_hashes({"x": Column(dense=x)}, 4, 7)
    ragged = row_hashes({"x": Column(rows=list(x))}, 4, 7)
    alone = [row_hashes({"x": Column(dense=x[i:i + 1])}, 1, 7)[0] for i in range(4)]
    assert dense.tolist() == ragged.tolist() == [int(h) for h in alone]
    assert len(set(dense.tolist())) == 4
    assert row_hashes({"x": Column(dense=x)}, 4, 8).tolist() != dense.tolist()
    assert row_hashes({"y": Column(dense=x)}, 4, 7).tolist() != dense.tolist()
    flat = row_hashes({"x": Column(dense=x.reshape(4, 3, 1))}, 4, 7)
    assert flat.tolist() != dense.tolist()  # same bytes, other shape
    s = np.array([[b"ab", b"c"], [b"a", b"bc"]], dtype=object)
    hs = row_hashes({"s": Column(dense=s)}, 2, 0)
    assert hs[0] != hs[1]


def test_selection_is_uniform_over_seeds():
    n, k, trials = 30, 5, 2000
    counts = np.zeros(n)
    x = np.arange(n, dtype=np.int64).reshape(n, 1)
    for seed in range(trials):
        counts[_kept_rows(x, k, seed)] += 1
    expected = trials * k / n
    sd = np.sqrt(trials * (k / n) * (1 - k / n))
    assert np.all(np.abs(counts - expected) < 5 * sd), counts
    assert ((counts - expected) ** 2 / expected).sum() < 70  # chi-square, 29 dof: p ~ 1e-6


def _kept_rows(x, k, seed):
    s = Stratum(k)
    s.offer(row_hashes({"x": Column(dense=x)}, len(x), seed), lambda off: off.tolist())
    return [v for _, v in s.items()]


def test_sample_dataset_is_deterministic_and_seed_dependent():
    x = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    a = sample_dataset(x, ONE, k=20, seed=1)
    assert row_keys(a) == row_keys(sample_dataset(x, ONE, k=20, seed=1))
    assert row_keys(a) != row_keys(sample_dataset(x, ONE, k=20, seed=2))


def test_max_scan_caps_rows():
    x = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    for data in (x, tf.data.Dataset.from_tensor_slices(x), tf.data.Dataset.from_tensor_slices(x).batch(64)):
        s = sample_dataset(data, ONE, k=20, max_scan=100)
        assert s.scanned == 100
        assert max(row_keys(s)) < 300  # only the first 100 rows (x[i, 0] == 3 i)


# --------------------------------------------------------------------------- buckets


def test_choose_buckets_examples():
    assert choose_buckets(Counter()) == []
    assert choose_buckets(Counter({3: 5, 1: 2, 7: 1})) == [1, 3, 7]
    sizes = Counter({n: 10 for n in range(1, 101)})
    b = choose_buckets(sizes, max_buckets=4)
    assert b == [25, 50, 75, 100]
    skewed = Counter({8: 990, 500: 10})
    skewed.update({n: 1 for n in range(9, 30)})
    assert choose_buckets(skewed, max_buckets=3) == [8, 500]
    assert choose_buckets(sizes, 4, quantiles=[0.5]) == [50, 100]
    with pytest.raises(ValueError):
        choose_buckets(sizes, 2, quantiles=[0.1, 0.5, 0.9])


@settings(max_examples=100, deadline=None)
@given(sizes=st.dictionaries(st.integers(0, 1000), st.integers(1, 50), min_size=1, max_size=60),
       m=st.integers(1, 12))
def test_choose_buckets_properties(sizes, m):
    b = choose_buckets(Counter(sizes), m)
    assert b == sorted(set(b)) and set(b) <= set(sizes)
    assert max(sizes) in b and 1 <= len(b) <= m
    if len(sizes) <= m:
        assert b == sorted(sizes)


def test_sample_buckets_and_unknown_rank_sizes():
    sig = sig_of(spec("img", tf.float32, None))
    imgs = [np.zeros((h, 4), np.float32) for h in (2, 2, 3)]
    s = sample_dataset({"img": imgs}, sig, k=5)
    assert s.size_counts[("img", 1)] == Counter({2: 2, 3: 1})
    assert s.size_counts[("img", 2)] == Counter({4: 3})
    assert s.buckets() == {("img", 1): [2, 3], ("img", 2): [4]}


# --------------------------------------------------------------------------- batches


def test_batches_bucket_pad_truncate_and_cycle():
    ids = [np.full(n, n, dtype=np.int64) for n in (1, 3, 4, 6, 10)]
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    s = sample_dataset({"ids": ids, "x": x}, TWO, k=5)
    b = s.batches(2, {("ids", 1): 4}, rng=0)
    assert b["ids"].shape == (2, 4)
    assert sorted(int(r[0]) for r in b["ids"]) == [3, 4]  # rows closest to 4
    np.testing.assert_array_equal(sorted(b["ids"].tolist()), [[3, 3, 3, 0], [4, 4, 4, 4]])
    t = s.batches(1, {("ids", 1): 2}, rng=0)  # 1 and 3 tie on distance: padding wins
    np.testing.assert_array_equal(t["ids"], [[1, 0]])
    big = s.batches(12, rng=1)  # no bucket: pad to the longest row, cycle 5 rows
    assert big["ids"].shape == (12, 10) and big["x"].shape == (12, 3)
    assert len({tuple(r) for r in big["x"].tolist()}) == 5
    cut = s.batches(5, {("ids", 1): 2})
    assert cut["ids"].shape == (5, 2)
    with pytest.raises(ValueError, match="not an unknown dimension"):
        s.batches(2, {("x", 1): 3})


def test_batches_strings_pad_with_empty_bytes():
    sig = sig_of(spec("w", tf.string, (None, None)))
    s = sample_dataset({"w": [np.array([b"a", b"b"], object), np.array([b"c"], object)]}, sig, k=2)
    b = s.batches(2, {("w", 1): 3}, rng=0)
    assert b["w"].dtype == object and b["w"].shape == (2, 3)
    assert sorted(b["w"].tolist()) == [[b"a", b"b", b""], [b"c", b"", b""]]


def test_unbatched_elements_with_two_variable_dims_are_read_one_by_one():
    sig = sig_of(spec("img", tf.uint8, (None, None, None)))
    shapes = [(2, 3), (2, 5), (4, 3)]
    ds = tf.data.Dataset.from_generator(lambda: (np.zeros(s, np.uint8) for s in shapes),
                                        output_signature=tf.TensorSpec([None, None], tf.uint8))
    s = sample_dataset(ds, sig, k=2, seed=1)
    assert s.scanned == 3 and s.sample_size == 3 and s.strata == 3  # one per size class
    assert s.size_counts == {("img", 1): Counter({2: 2, 4: 1}), ("img", 2): Counter({3: 2, 5: 1})}
    assert s.batches(2, {("img", 1): 4, ("img", 2): 4})["img"].shape == (2, 4, 4)


def test_sparse_components_are_refused():
    sp = tf.sparse.from_dense(np.ones((3, 3), np.float32))
    msg = _err(tf.data.Dataset.from_tensor_slices({"x": sp}), ONE)
    assert "SparseTensor" in msg and "to_dense" in msg and "'x'" in msg


def test_scalar_input_is_not_batched():
    sig = sig_of(spec("x", tf.float32, (None, 3)), spec("t", tf.float32, ()))
    ds = tf.data.Dataset.from_tensor_slices({"x": np.ones((4, 3), np.float32),
                                             "t": np.full(4, 0.5, np.float32)})
    s = sample_dataset(ds, sig, k=4)
    b = s.batches(3)
    assert b["x"].shape == (3, 3) and b["t"].shape == () and b["t"] == np.float32(0.5)
    assert s.synthesize(3)["t"].shape == ()


# --------------------------------------------------------------------------- mismatch errors


def _err(data, sig, **kw) -> str:
    with pytest.raises(DatasetError) as e:
        sample_dataset(data, sig, **kw)
    return str(e.value)


def test_error_missing_key():
    msg = _err(tf.data.Dataset.from_tensor_slices({"x": np.ones((2, 3), np.float32)}), TWO)
    assert "missing key 'ids'" in msg and "'serving_default'" in msg and "element 0" in msg
    assert "Add the field" in msg


def test_error_unknown_extra_key():
    ds = tf.data.Dataset.from_tensor_slices({"x": np.ones((2, 3), np.float32), "label": np.ones(2)})
    msg = _err(ds, ONE)
    assert "'label'" in msg and "unknown extra key" in msg and "Drop" in msg


def test_error_float_to_int():
    ds = tf.data.Dataset.from_tensor_slices({"ids": np.ones((2, 4), np.float32),
                                             "x": np.ones((2, 3), np.float32)})
    msg = _err(ds, TWO)
    assert "field key 'ids'" in msg and "input 'ids'" in msg and "element 0" in msg
    assert "float32" in msg and "truncating" in msg and "cast" in msg


def test_error_string_vs_numeric():
    msg = _err({"x": np.array([["a", "b", "c"]])}, ONE)
    assert "input 'x'" in msg and "strings" in msg and "never converted" in msg
    msg = _err({"examples": np.ones(3, np.float32)}, EXAMPLES)
    assert "input 'examples'" in msg and "numeric" in msg


def test_error_wrong_rank():
    msg = _err(tf.data.Dataset.from_tensor_slices(np.ones((2, 3, 1, 1), np.float32)), ONE)
    assert "rank" in msg and "'x'" in msg and "element 0" in msg and "reshape" in msg
    msg = _err({"x": np.ones(3, np.float32)}, ONE)  # one example without a batch axis
    assert "wrong rank" in msg and "'x'" in msg


def test_error_fixed_dimension_mismatch_names_row():
    xs = [np.ones(3, np.float32)] * 3 + [np.ones(4, np.float32)]
    ds = tf.data.Dataset.from_generator(lambda: iter(xs), output_signature=tf.TensorSpec([None], tf.float32))
    msg = _err(ds, ONE)
    assert "element 3" in msg and "axis 1 has size 4" in msg and "needs 3" in msg and "'x'" in msg
    ids = [np.ones(2, np.int64)] * 2
    msg = _err({"ids": ids, "x": [np.ones(3, np.float32), np.ones(5, np.float32)]}, TWO)
    assert "row 1" in msg and "fixed dimension mismatch" in msg


def test_error_tuple_length_and_batch_sizes():
    msg = _err(tf.data.Dataset.from_tensor_slices((np.ones((2, 3)), np.ones(2), np.ones(2), np.ones(2))), TWO)
    assert "tuple of 4 items" in msg and "sorted alias order" in msg
    msg = _err({"ids": np.ones((3, 2), np.int64), "x": np.ones((4, 3), np.float32)}, TWO)
    assert "different batch sizes" in msg


def test_error_int_overflow():
    sig = sig_of(spec("i", tf.int8, (None,)))
    msg = _err({"i": np.array([1, 300])}, sig)
    assert "overflow int8" in msg and "'i'" in msg


def test_error_empty_dataset():
    msg = _err(tf.data.Dataset.from_tensor_slices(np.ones((0, 3), np.float32)), ONE)
    assert "no rows" in msg


# --------------------------------------------------------------------------- shapes_only


def test_shapes_only_never_copies_values():
    n = 200
    base = np.array([12345.678, 23456.789, 34567.891, 45678.912, 56789.123], np.float32)
    x = np.stack([base[np.arange(n) % 5] + 1000.0 * j for j in range(3)], axis=1).astype(np.float32)
    ids = [np.arange(1, 1 + (i % 7) + 1, dtype=np.int64) * 1_000_003 + i for i in range(n)]
    s = sample_dataset({"ids": ids, "x": x}, TWO, k=64, seed=4)
    source_x = set(x.ravel().tolist())
    source_ids = set(np.concatenate(ids).tolist())
    for seed in range(3):
        out = s.synthesize(32, {("ids", 1): 5}, rng=seed)
        assert out["x"].shape == (32, 3) and out["ids"].shape == (32, 5)
        assert out["x"].dtype == np.float32 and out["ids"].dtype == np.int64
        assert not set(out["x"].ravel().tolist()) & source_x
        assert not (set(out["ids"].ravel().tolist()) - {0}) & source_ids
        assert out["x"].min() >= x.min() and out["x"].max() <= x.max()
        # padding mirrors the chosen rows' real lengths
        assert (out["ids"] == 0).any()
    d = s.to_dict(privacy="shapes_only")
    assert d["copies_user_rows"] is False and "no row is copied" in d["privacy_note"]
    assert s.to_dict()["copies_user_rows"] is True
    text = json.dumps(d)
    # not even the range ends (each is some row's value) appear under shapes_only
    assert "12345.6" not in text and "45678.9" not in text
    assert not [v for v in source_x | source_ids if str(v) in text]
    assert "range" in d["value_stats"]["x"] and "low" not in d["value_stats"]["x"]
    assert d["sampled_values_in_file"] == []
    assert str(float(x.min())) in json.dumps(s.to_dict())  # the copy-mode report still shows it


def test_shapes_only_strings_use_vocabulary_not_unique_values():
    sig = sig_of(spec("cat", tf.string, (None,)), spec("email", tf.string, (None,)))
    n = 50
    cats = np.array([b"red", b"green", b"blue"], object)[np.arange(n) % 3]
    emails = np.array([b"person%d@example.com" % i for i in range(n)], object)
    s = sample_dataset({"cat": cats, "email": emails}, sig, k=10)
    out = s.synthesize(40, rng=0)
    assert set(out["cat"].tolist()) <= {b"red", b"green", b"blue"}
    assert not set(out["email"].tolist()) & set(emails.tolist())  # seen once: never emitted
    assert s.value_stats["email"].vocabulary() == []


def test_shapes_only_examples_are_fresh_protos(tmp_path):
    recs = [make_example(i, n_tokens=1 + i % 4) for i in range(80)]
    path = write_records(tmp_path / "e.rec", recs)
    s = sample_dataset(path, EXAMPLES, k=30, seed=2)
    out = s.synthesize(16, rng=7)["examples"]
    assert out.shape == (16,) and not set(out.tolist()) & set(recs)
    src_age = {12345.678 + 1.25 * i for i in range(80)}
    src_age32 = {float(np.float32(a)) for a in src_age}
    src_uid = {10_000 + 7919 * i for i in range(80)}
    src_email = {b"user%d@x.org" % i for i in range(80)}
    for b in out.tolist():
        ex = tf.train.Example.FromString(b)
        f = ex.features.feature
        assert set(f) == {"age", "uid", "tokens", "email"}
        assert not set(f["age"].float_list.value) & src_age32
        assert not set(f["uid"].int64_list.value) & src_uid
        assert 1 <= len(f["tokens"].bytes_list.value) <= 4
        assert set(f["tokens"].bytes_list.value) <= {b"tok0", b"tok1", b"tok2", b"tok3"}
        assert not set(f["email"].bytes_list.value) & src_email
    parsed = tf.io.parse_example(out, {"age": tf.io.FixedLenFeature([1], tf.float32),
                                       "tokens": tf.io.VarLenFeature(tf.string)})
    assert parsed["age"].shape == (16, 1)


def test_sequence_examples_are_learned_and_synthesized(tmp_path):
    recs = []
    for i in range(20):
        se = tf.train.SequenceExample()
        se.context.feature["n"].int64_list.value.append(1000 + 13 * i)
        flist = se.feature_lists.feature_list["tok"]
        for j in range(i % 4 + 1):
            flist.feature.add().float_list.value.extend([0.5 + i + j * 0.01, 2.5 + i])
        recs.append(se.SerializeToString())
    s = sample_dataset(write_records(tmp_path / "seq.rec", recs), EXAMPLES, k=20)
    stats = s.example_stats["examples"]
    assert stats.kind == "sequence_example" and stats.feature_lists["tok"].steps == Counter({1: 5, 2: 5, 3: 5, 4: 5})
    for b in s.synthesize(5, rng=3)["examples"].tolist():
        se = tf.train.SequenceExample.FromString(b)
        steps = se.feature_lists.feature_list["tok"].feature
        assert 1 <= len(steps) <= 4 and all(len(f.float_list.value) == 2 for f in steps)
        assert 1000 <= se.context.feature["n"].int64_list.value[0] <= 1000 + 13 * 19


def test_example_detection_in_tf_data_and_not_for_text():
    recs = [make_example(i) for i in range(10)]
    s = sample_dataset(tf.data.Dataset.from_tensor_slices(recs), EXAMPLES, k=5)
    assert "examples" in s.example_stats and "examples" not in s.value_stats
    text = sample_dataset(tf.data.Dataset.from_tensor_slices([b"hello world", b"a cat"] * 3), EXAMPLES, k=5)
    assert text.example_stats == {} and text.value_stats["examples"].kind == "string"


def test_to_dict_is_json_and_summarises_sizes():
    ids, x = ragged_data(40)
    s = sample_dataset({"ids": ids, "x": x}, TWO, k=8)
    d = json.loads(json.dumps(s.to_dict()))
    per_class = Counter(size_class(len(i)) for i in ids)
    assert d["scanned"] == 40 and d["sample_size"] == sum(min(8, c) for c in per_class.values())
    assert sum(d["size_distributions"]["ids[1]"].values()) == 40
    assert d["buckets"]["ids[1]"][-1] == max(len(i) for i in ids)
