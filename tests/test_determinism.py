"""Same model, options and seed give a byte-identical warmup file in every fresh process.

Within one process everything is repeatable, so only separate processes show what
varies per process: Python's protobuf (upb) iterates map fields such as
``NodeDef.attr`` in an order seeded per process, so an ``If`` node's
``then_branch``/``else_branch`` came out in either order and ``is_jpeg(b) ?
decode_jpeg : decode_png`` was planned as JPEG in one run and PNG in the next.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import REPO, copy_model

RUNS = 3  # the branch order is a coin toss per process: 3 agreeing runs all on JPEG by chance is 1 in 8


def _jpeg_or_png(export_dir: str) -> str:
    """The decoder zoo's ``jpeg_or_png`` signature alone: a cond on is_jpeg inside map_fn."""

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def jpeg_or_png(self, image):
            def one(b):
                return tf.cond(tf.io.is_jpeg(b),
                               lambda: tf.image.resize(tf.io.decode_jpeg(b, channels=3), [10, 10]),
                               lambda: tf.image.resize(tf.io.decode_png(b, channels=3), [10, 10]))

            return {"y": tf.map_fn(one, image, fn_output_signature=tf.TensorSpec([10, 10, 3], tf.float32))}

    m = M()
    tf.saved_model.save(m, export_dir, signatures={"jpeg_or_png": m.jpeg_or_png})
    return export_dir


@pytest.fixture(scope="module")
def cond_model(tmp_path_factory) -> str:
    return _jpeg_or_png(str(tmp_path_factory.mktemp("cond") / "1"))


def test_fresh_processes_write_byte_identical_files(cond_model, tmp_path):
    """``tfwarm add --seed 0`` in fresh processes (run side by side) writes the same bytes, and the
    cond's then-branch (the OpDef's attr order) picks the format: JPEG."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    dirs = [copy_model(cond_model, tmp_path / f"run{i}") for i in range(RUNS)]
    procs = [subprocess.Popen([sys.executable, "-m", "tfwarm_export.cli", "add", d, "--seed", "0", "--no-replay"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in dirs]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    files = [open(os.path.join(d, "assets.extra", "tf_serving_warmup_requests"), "rb").read() for d in dirs]
    assert all(f == files[0] for f in files), [len(f) for f in files]
    from tfwarm_export.serving.warmup_file import read_logs, warmup_path

    (log,) = read_logs(warmup_path(dirs[0]))
    (image,) = tf.make_ndarray(log.predict_log.request.inputs["image"]).ravel()
    assert bool(tf.io.is_jpeg(image)), image[:8]


@pytest.mark.parametrize("height,width,channels", [(224, 224, 3), (10, 10, 3), (1, 1, 3), (300, 199, 1), (37, 513, 4)])
def test_noise_image_is_tf_bilinear_resize_bit_for_bit(height, width, channels):
    """The numpy upsampling keeps the pixels ``tf.image.resize`` gave (so every image's bytes stay)."""
    import numpy as np

    from tfwarm_export.values.encoders import noise_image

    got = noise_image(height, width, channels, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    grid = rng.integers(0, 256, size=(max(2, -(-height // 16)), max(2, -(-width // 16)), channels)).astype(np.float32)
    want = tf.image.resize(grid[None], (height, width), method="bilinear")[0].numpy()
    np.testing.assert_array_equal(got, np.clip(np.round(want), 0, 255).astype(np.uint8))
