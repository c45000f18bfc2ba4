"""Beam equals local in every server mode (issue 25): ``tfwarm add --traffic`` and the same with
``--runner DirectRunner`` write byte-identical files under per-model batching, a platform
config, non-default tags and exact XLA classes. The Beam selection takes the context the
local path resolved, so it cannot pad, drop or pick signatures differently."""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("apache_beam")

from tfwarm_export import cli  # noqa: E402
from tfwarm_export.serving.warmup_file import warmup_path  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from conftest import copy_model  # noqa: E402
from test_batching_model import _xla_model  # noqa: E402

BATCHING_2_8 = "max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8\n"
PLATFORM = ('platform_configs { key: "tensorflow" value { source_adapter_config {\n'
            '  [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { legacy_config {\n'
            f'    batching_parameters {{ {BATCHING_2_8.replace(chr(10), " ")} }}\n'
            '  } } } } }\n')


def _write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def _rest(path, bodies) -> str:
    return _write(path, "\n".join(json.dumps(b) for b in bodies) + "\n")


def _x_traffic(path, n: int = 40) -> str:
    """Predict bodies for a ``x [batch, 1]`` signature, batch 1, 2, 3, 5 or 7."""
    sizes = [1, 2, 3, 5, 7]
    return _rest(path, [{"instances": [[float(i + j)] for j in range(sizes[i % 5])]} for i in range(n)])


def _tf1_model(path: str, tags: list[str]) -> str:
    """half_plus_two's graph, saved by the TF1 builder under ``tags`` only."""
    g = tf.Graph()
    with g.as_default(), tf.compat.v1.Session(graph=g) as sess:
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.identity(x * 0.5 + 2.0, name="y")
        sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder = tf.compat.v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(sess, tags, signature_def_map={"serving_default": sig})
        builder.save()
    return path


@pytest.fixture(scope="module")
def modes(tmp_path_factory, half_plus_two_src):
    """Each mode: (model dir, extra CLI args, traffic file); models built once."""
    root = tmp_path_factory.mktemp("beam_modes")
    per_model = copy_model(half_plus_two_src, root / "per_model")
    _write(os.path.join(per_model, "batching_params.pbtxt"), BATCHING_2_8)
    platform = copy_model(half_plus_two_src, root / "platform")
    xla = _xla_model(str(root / "xla" / "1"))
    batching = _write(root / "b.txt", BATCHING_2_8)
    rng = np.random.default_rng(1)
    xla_bodies = [{"instances": [{"ids": rng.integers(0, 9, n).tolist(), "mask": [True] * n}
                                 for _ in range(b)]} for b, n in zip([1, 2, 3, 5, 7] * 6, [3, 5, 7] * 10)]
    return {
        "per_model_batching": (per_model, [], _x_traffic(root / "x.jsonl")),
        "platform_config": (platform, ["--platform-config-file", _write(root / "platform.txt", PLATFORM)],
                            str(root / "x.jsonl")),
        "tags": (_tf1_model(str(root / "tags" / "1"), ["serve", "tpu"]),
                 ["--tags", "serve,tpu", "--batching-parameters", batching], str(root / "x.jsonl")),
        "xla_exact": (xla, ["--batching-parameters", batching], _rest(root / "xla.jsonl", xla_bodies)),
    }


@pytest.mark.parametrize("mode", ["per_model_batching", "platform_config", "tags", "xla_exact"])
def test_directrunner_writes_the_local_bytes(modes, mode, tmp_path, capsys):
    model, extra, traffic = modes[mode]
    files = {}
    for how, runner in (("local", []), ("beam", ["--runner", "DirectRunner"])):
        d = copy_model(model, tmp_path / how)
        assert cli.main(["add", d, "--traffic", traffic, "--json"] + extra + runner) == 0, \
            capsys.readouterr()
        out = json.loads(capsys.readouterr().out)
        assert out["coverage"]["missing_batch_sizes"] == {}, (how, out["coverage"])  # every size padded
        with open(warmup_path(d), "rb") as f:
            files[how] = f.read()
        shutil.rmtree(d)
    assert files["beam"] == files["local"]
