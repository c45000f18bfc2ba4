"""The ``tfwarm`` command as a user runs it: exit codes, human and JSON output."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfwarm_export.cli import main
from tfwarm_export.serving.warmup_file import read_logs, warmup_path



@pytest.fixture
def model(mixed) -> str:
    return mixed


@pytest.mark.compat
def test_inspect_json_writes_nothing(model, capsys):
    assert main(["inspect", model, "--batch-sizes", "1,4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_records"] == 4
    assert {r["signature"] for r in out["records"]} == {"serving_default", "other"}
    assert not os.path.exists(warmup_path(model))


@pytest.mark.compat
def test_add_then_check(model, tmp_path, capsys):
    cfg = tmp_path / "batching.txt"
    cfg.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8\n")
    assert main(["add", model, "--batching-parameters", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "wrote 4 warmup record(s)" in out and "Replay" in out and "Privacy" in out
    assert main(["check", model, "--batching-parameters", str(cfg), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["batch_sizes"] == {"other": [2, 8], "serving_default": [2, 8]}


def test_add_refuses_existing_file_without_overwrite(model, capsys):
    assert main(["add", model]) == 0
    assert main(["add", model]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["add", model, "--overwrite", "--seed", "3"]) == 0


def test_check_fails_with_one_line_per_problem(model, tmp_path, capsys):
    assert main(["add", model, "--batch-sizes", "2"]) == 0
    cfg = tmp_path / "b.txt"
    cfg.write_text("max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    capsys.readouterr()
    assert main(["check", model, "--batching-parameters", str(cfg)]) == 1
    problems = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("problem:")]
    assert len(problems) == 2 and all("[4] are not warmed" in p for p in problems)


def test_dim_and_value_options(model, capsys):
    assert main(["inspect", model, "--signatures", "serving_default", "--dim", "ids:1=3,9",
                 "--value", "ids=[1,2]", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    shapes = sorted(tuple(i["shape"]) for r in out["records"] for i in r["inputs"] if i["alias"] == "ids")
    assert shapes == [(1, 3), (1, 9)]
    # the --value reaches the file: every id is 1 or 2, and both occur
    assert main(["add", model, "--signatures", "serving_default", "--dim", "ids:1=3,9",
                 "--value", "ids=[1,2]"]) == 0
    ids = np.concatenate([tf.make_ndarray(lg.predict_log.request.inputs["ids"]).ravel()
                          for lg in read_logs(warmup_path(model))])
    assert ids.size == 12 and set(ids.tolist()) == {1, 2}


def test_bad_input_exit_code_2(tmp_path, capsys):
    assert main(["add", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no SavedModel" in err


@pytest.mark.compat
def test_console_script_runs(model):
    """A plain user's run: no TF logging variables set, and stderr holds no TF start-up lines."""
    from test_fleet_cli import TF_STARTUP, plain_env

    proc = subprocess.run([sys.executable, "-m", "tfwarm_export.cli", "inspect", model],
                          capture_output=True, text=True, env=plain_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warmup plan" in proc.stdout
    assert not TF_STARTUP.search(proc.stderr), proc.stderr


@pytest.mark.compat
def test_quickstart_example_runs_end_to_end(tmp_path, capsys):
    """The README's first command: build, export, warm, replay and check a small model."""
    from test_export import run_example

    assert run_example("quickstart", "--out", str(tmp_path / "qs")) == 0
    out = capsys.readouterr().out
    assert "tfwarm check" in out and ": OK (" in out
    assert (tmp_path / "qs" / "1" / "assets.extra" / "tf_serving_warmup_requests").exists()


def test_internal_error_is_one_line_exit_1(model, monkeypatch, capsys):
    """A bug in tfwarm itself still reaches the user as one line and exit 1, never a traceback."""
    import tfwarm_export.cli as cli

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_single", broken)
    assert main(["inspect", model]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err
    assert main(["inspect", model, "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err
