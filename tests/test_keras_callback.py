"""``WarmupExport``: versioned, warmed exports during ``model.fit`` on a real Keras model."""
from __future__ import annotations

import logging
import os

import keras
import numpy as np
import pytest

import tfwarm_export as tw
from tfwarm_export.keras import WarmupExport, clean_staging, list_versions
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

WARM = tw.WarmupConfig(batch_sizes=[1, 2])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)


def make_model(lr: float = 0.01) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="features")
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.SGD(learning_rate=lr), "mse")
    return model


def fit(model, data, cb, epochs, **kw):
    x, y = data
    return model.fit(x, y, epochs=epochs, batch_size=8, shuffle=False, callbacks=[cb], verbose=0, **kw)


def names(base) -> list[str]:
    return sorted(os.listdir(base))


@pytest.mark.compat
def test_versions_per_epoch_restart_max_to_keep_and_stale_staging(tmp_path, data):
    base = tmp_path / "model"
    # A "killed" earlier export: a hidden staging dir with a higher number than any version.
    killed = base / ".9.tmp-0123456789ab"
    (killed / "variables").mkdir(parents=True)
    (killed / "saved_model.pb").write_bytes(b"half written")
    assert list_versions(base) == []  # never looks like a version

    model = make_model()
    cb = WarmupExport(base, warmup=WARM)
    fit(model, data, cb, epochs=3)
    assert names(base) == ["1", "2", "3"]  # stale staging dir cleaned, numbering from 1
    assert sorted(cb.reports) == [1, 2, 3] and all(r.ok for r in cb.reports.values())
    for v in (1, 2, 3):
        # model.export writes "serve" and "serving_default": 2 signatures x 2 batch sizes
        assert len(read_logs(warmup_path(str(base / str(v))))) == 4
        assert tw.check(str(base / str(v))).ok

    # Restart (new callback, same base_dir): numbering continues; max_to_keep prunes the oldest.
    cb2 = WarmupExport(base, warmup=WARM, max_to_keep=2)
    fit(make_model(), data, cb2, epochs=2)
    assert names(base) == ["4", "5"]
    assert sorted(cb2.reports) == [4, 5]


def test_save_best_only(tmp_path, data, caplog):
    # learning_rate=0: the loss is identical every epoch, so only the first one "improves".
    cb = WarmupExport(tmp_path / "best", warmup=WARM, monitor="loss", save_best_only=True)
    fit(make_model(lr=0.0), data, cb, epochs=3)
    assert list_versions(tmp_path / "best") == [1]

    # A threshold nothing beats: no export at all.
    cb = WarmupExport(tmp_path / "none", warmup=WARM, monitor="loss", mode="min",
                      save_best_only=True, initial_value_threshold=-1.0)
    fit(make_model(), data, cb, epochs=2)
    assert list_versions(tmp_path / "none") == []

    # A metric that is not logged: warn and skip rather than export blindly.
    cb = WarmupExport(tmp_path / "missing", warmup=WARM, monitor="val_auc", save_best_only=True)
    assert cb.mode == "max"
    with caplog.at_level(logging.WARNING, logger="tfwarm_export"):
        fit(make_model(), data, cb, epochs=1)
    assert list_versions(tmp_path / "missing") == []
    assert "val_auc" in caplog.text


def test_save_freq_batches_and_train_end(tmp_path, data):
    # 32 rows / batch 8 = 4 batches per epoch; every 3 batches -> batch 3 and batch 6.
    cb = WarmupExport(tmp_path / "m", warmup=WARM, save_freq=3, export_on_train_end=True)
    fit(make_model(), data, cb, epochs=2)
    # exports after batches 3 and 6, plus the final weights (2 batches later) at train end
    assert list_versions(tmp_path / "m") == [1, 2, 3]

    # Nothing trained since the last export: train end does not duplicate it.
    cb = WarmupExport(tmp_path / "e", warmup=WARM, export_on_train_end=True)
    fit(make_model(), data, cb, epochs=1)
    assert list_versions(tmp_path / "e") == [1]


def test_failed_warmup_raises_by_default_or_warns(tmp_path, data):
    bad = tw.WarmupConfig(signatures=["nope"])
    with pytest.raises(tw.SignatureError, match="nope"):
        fit(make_model(), data, WarmupExport(tmp_path / "r", warmup=bad), epochs=2)
    assert names(tmp_path / "r") == []  # nothing published, no staging left

    cb = WarmupExport(tmp_path / "w", warmup=bad, on_failure="warn")
    history = fit(make_model(), data, cb, epochs=2)
    assert len(history.history["loss"]) == 2  # training went on
    assert len(cb.failures) == 2 and names(tmp_path / "w") == []


def test_clean_staging_restores_an_interrupted_swap(tmp_path):
    base = tmp_path / "m"
    (base / ".2.old-aaaaaaaaaaaa").mkdir(parents=True)  # set aside, new one never renamed in
    (base / ".2.old-aaaaaaaaaaaa" / "saved_model.pb").write_bytes(b"x")
    (base / ".3.tmp-bbbbbbbbbbbb").mkdir()
    (base / ".hidden_user_dir").mkdir()  # not ours: left alone
    (base / ".cache.tmp-cccccccccccc").mkdir()  # not a version's staging dir: left alone
    assert sorted(clean_staging(base)) == [".2.old-aaaaaaaaaaaa", ".3.tmp-bbbbbbbbbbbb"]
    assert names(base) == [".cache.tmp-cccccccccccc", ".hidden_user_dir", "2"]
    assert list_versions(base) == [2]


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        WarmupExport(tmp_path, save_freq="batch")
    with pytest.raises(ValueError, match="on_failure"):
        WarmupExport(tmp_path, on_failure="ignore")
    with pytest.raises(ValueError, match="max_to_keep"):
        WarmupExport(tmp_path, max_to_keep=0)


@pytest.mark.compat
def test_example_keras_callback(tmp_path, capsys):
    from test_export import run_example

    assert run_example("keras_callback", "--out", str(tmp_path / "m"), "--epochs", "2") == 0
    assert list_versions(tmp_path / "m") == [1, 2]
    assert "versions in" in capsys.readouterr().out
