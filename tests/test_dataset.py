"""Warming with real traffic shapes: sampled datasets, length buckets, privacy, mismatches."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import tfwarm_export as tw
from tfwarm_export.cli import main
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

from models import half_plus_two_examples, mixed_module, sequence_model

LENGTHS = [5] * 40 + [17] * 30 + [60] * 30  # a known length distribution


def _token_dataset(seed=0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 50, size=n).astype(np.int32) for n in LENGTHS]
    return tf.data.Dataset.from_generator(lambda: iter(rows),
                                          output_signature=tf.TensorSpec([None], tf.int32))


def _token_lengths(d) -> list[tuple[int, int]]:
    out = []
    for log in read_logs(warmup_path(d)):
        t = log.predict_log.request.inputs["tokens"]
        out.append(tuple(x.size for x in t.tensor_shape.dim))
    return out


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_every_length_bucket_is_warmed(tmp_path, jit):
    d = sequence_model(tmp_path / ("xla" if jit else "plain") / "1", jit_compile=jit)
    report = tw.add_warmup(d, dataset=_token_dataset(), batch_sizes=[1, 4])
    assert report.ok
    assert sorted(set(_token_lengths(d))) == [(b, n) for b in (1, 4) for n in (5, 17, 60)]
    assert "copied into assets.extra" in report.privacy and "shapes_only" in report.privacy
    assert report.data_source["serving_default"]["scanned"] == len(LENGTHS)
    assert tw.check(d).ok


def test_batched_numpy_and_fit_style_pairs(tmp_path):
    d = sequence_model(tmp_path / "s" / "1")
    x = np.arange(60, dtype=np.int32).reshape(6, 10) % 50
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(6))).batch(3)  # (x, y) as passed to fit
    report = tw.add_warmup(d, dataset=ds, batch_sizes=[2])
    assert report.ok and _token_lengths(d) == [(2, 10)]
    values = tf.make_ndarray(read_logs(warmup_path(d))[0].predict_log.request.inputs["tokens"])
    assert all(any((row == xr).all() for xr in x) for row in values)  # real rows were copied


def test_shapes_only_never_copies_a_value(tmp_path):
    d = mixed_module(tmp_path / "m" / "1")
    rng = np.random.default_rng(1)
    dense = (rng.uniform(1000, 2000, size=(50, 3)) + 0.123).astype(np.float32)
    ids = rng.integers(10**6, 2 * 10**6, size=(50, 7))
    report = tw.add_warmup(d, dataset={"serving_default": {"dense": dense, "ids": ids}},
                           privacy="shapes_only", batch_sizes=[8])
    assert report.ok and "no sampled row is copied" in report.privacy
    seen_dense = set(dense.ravel().tolist())
    seen_ids = set(ids.ravel().tolist())
    for log in read_logs(warmup_path(d)):
        req = log.predict_log.request
        if req.model_spec.signature_name != "serving_default":
            continue
        got_dense = tf.make_ndarray(req.inputs["dense"])
        got_ids = tf.make_ndarray(req.inputs["ids"])
        assert got_ids.shape == (8, 7)
        assert not seen_dense & set(got_dense.ravel().tolist())
        assert not seen_ids & set(got_ids.ravel().tolist())
        assert 1000 <= got_dense.min() and got_dense.max() <= 2001  # learned range


def test_dataset_feeds_only_signatures_it_fits(tmp_path):
    d = mixed_module(tmp_path / "m" / "1")
    data = {"dense": np.ones((4, 3), np.float32), "ids": np.ones((4, 2), np.int64)}
    report = tw.add_warmup(d, dataset=data)
    sources = {r.signature: r.source for r in report.plan.records}
    assert sources == {"serving_default": "dataset", "other": "synthetic"}
    assert any("other: the dataset does not fit" in n for n in report.plan.notes)


def test_mismatched_dataset_is_a_clear_error_and_writes_nothing(tmp_path):
    d = mixed_module(tmp_path / "m" / "1")
    with pytest.raises(tw.DatasetError, match=r"dense") as e:
        tw.add_warmup(d, dataset={"serving_default": {"ids": np.ones((4, 2), np.int64)}})
    assert "serving_default" in str(e.value)
    assert not os.path.exists(os.path.join(d, "assets.extra"))
    with pytest.raises(tw.DatasetError, match=r"dense"):
        tw.add_warmup(d, dataset={"serving_default": {"dense": np.ones((4, 5), np.float32),
                                                      "ids": np.ones((4, 2), np.int64)}})


def test_budget_binds_and_plan_says_what_was_dropped(tmp_path):
    d = sequence_model(tmp_path / "s" / "1")
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 50, size=n).astype(np.int32) for n in range(1, 41)]
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
    p = tw.plan(d, dataset=ds, batch_sizes=list(range(1, 201)), max_buckets=8)
    # 200 batch sizes x 8 buckets = 1600 > 1000: buckets (never batch sizes) are cut to the
    # most that fits, 5, so the plan uses the whole budget and every batch size is kept
    buckets = sorted({dict(r.bucket)[("tokens", 1)] for r in p.records})
    assert len(buckets) == 5 and buckets[-1] == 40  # the longest length is always warmed
    assert len(p.records) == 200 * 5 and {r.batch_size for r in p.records} == set(range(1, 201))
    (note,) = [n for n in p.notes if "dropped" in n]  # one note, the final cut
    assert "cut to 5 per dimension" in note and "tokens[1]=40" not in note


def test_cli_examples_glob_for_tf_example_signatures(half_plus_two, tmp_path, capsys):
    half_plus_two_examples(tmp_path / "data", values=[1.0, 2.0, 3.0, 4.0])
    code = main(["add", str(half_plus_two), "--signatures", "classify_x_to_y,regress_x_to_y",
                 "--examples", str(tmp_path / "data" / "*.tfrecord*"), "--batch-sizes", "2", "--json"])
    assert code == 0, capsys.readouterr().err
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["data_source"]["classify_x_to_y"]["scanned"] == 8  # two files, one GZIP
    assert "copied" in out["privacy"]
    logs = read_logs(warmup_path(half_plus_two))
    xs = {v for l in logs if l.HasField("classify_log")
          for e in l.classify_log.request.input.example_list.examples
          for v in e.features.feature["x"].float_list.value}
    assert xs <= {1.0, 2.0, 3.0, 4.0}


def test_bucket_quantiles_are_configurable(tmp_path):
    d = sequence_model(tmp_path / "s" / "1")
    rows = [np.zeros(n, np.int32) for n in range(1, 101)]
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
    # max_buckets=3 alone gives the default quantiles 1/3, 2/3, 1 -> lengths 34, 67, 100;
    # bucket_quantiles=[0.1, 1.0] must give 10 and 100 instead.
    default = sorted(r.inputs[0].shape[1] for r in tw.plan(d, dataset=ds, max_buckets=3).records)
    assert default == [34, 67, 100]
    p = tw.plan(d, dataset=ds, max_buckets=3, bucket_quantiles=[0.1, 1.0])
    assert sorted(r.inputs[0].shape[1] for r in p.records) == [10, 100]


def test_fixed_bucket_quantiles_are_cut_to_fit_the_record_budget(tmp_path):
    """With fixed quantiles the budget loop drops quantiles (evenly, never the max) instead
    of failing on an internal max_buckets."""
    d = sequence_model(tmp_path / "s" / "1")
    rows = [np.zeros(n, np.int32) for n in range(1, 101)]
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
    quantiles = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0]
    p = tw.plan(d, dataset=ds, batch_sizes=list(range(1, 201)), max_buckets=8, bucket_quantiles=quantiles)
    lengths = sorted({dict(r.bucket)[("tokens", 1)] for r in p.records})
    assert lengths == [10, 30, 50, 60, 100] and len(p.records) == 200 * 5  # 5 quantiles fit 1000, 6 do not
    (note,) = [n for n in p.notes if "dropped" in n]
    assert "bucket_quantiles cut to [0.1, 0.3, 0.5, 0.6, 1.0]" in note
    # a budget no cut can meet says so plainly, naming what to change
    with pytest.raises(tw.PlanError, match="already cut to one size per dimension"):
        tw.plan(d, dataset=ds, batch_sizes=list(range(1, 1002)), max_buckets=4, bucket_quantiles=[0.5, 1.0])


@pytest.mark.parametrize("quantiles, why", [([0.5, 1.5], r"must lie in \[0, 1\]"),
                                            ([0.2, 0.4, 0.6], "more than max_buckets=2"),
                                            (["half"], "must be numbers")])
def test_bucket_quantiles_are_validated_even_when_the_data_has_few_sizes(tmp_path, quantiles, why):
    d = sequence_model(tmp_path / "s" / "1")
    rows = [np.zeros(n, np.int32) for n in (3, 5)]  # 2 sizes: fewer than max_buckets
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
    with pytest.raises(tw.PlanError, match=why):
        tw.plan(d, dataset=ds, max_buckets=2, bucket_quantiles=quantiles)


def test_shapes_only_avoids_sampled_integers_when_the_range_allows(tmp_path):
    d = sequence_model(tmp_path / "s" / "1")
    rng = np.random.default_rng(3)
    # ids 0..49 with only even ids in the data: synthesised ids must be odd.
    rows = [(rng.integers(0, 25, size=n) * 2).astype(np.int32) for n in (6, 6, 9, 9)]
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))
    report = tw.add_warmup(d, dataset=ds, privacy="shapes_only", batch_sizes=[4])
    assert report.ok
    seen = {int(v) for r in rows for v in r}
    for log in read_logs(warmup_path(d)):
        t = tf.make_ndarray(log.predict_log.request.inputs["tokens"])
        lengths = (t != 0).sum(axis=1)  # padding is 0, which the data also holds: check the body
        got = {int(v) for row, n in zip(t, lengths) for v in row[:n]}
        assert not got & (seen - {0})
