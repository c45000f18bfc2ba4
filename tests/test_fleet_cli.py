"""Fleet warmup from a TF Serving model config, and the CLI as a new user meets it:
strict keys, pipes, quiet start-up, progress, plain help, lazy attributes (import cycles: test_layout.py)."""
from __future__ import annotations

import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

import tfwarm_export as tw
from tfwarm_export import fleet
from tfwarm_export.cli import build_parser, main
from tfwarm_export.errors import ConfigKeyError, ModelConfigError
from tfwarm_export.serving.warmup_file import warmup_path

from conftest import REPO

TF_STARTUP = re.compile(r"absl::InitializeLog|cudart_stub|cpu_feature_guard|oneDNN|cuda_platform|"
                        r"Unable to register cu|"
                        r"^[IWE]0000 ", re.M)
BATCHING_TEXT = "max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8\n"


def plain_env() -> dict:
    """A plain user's environment: our tree on the path, no TF logging variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# --------------------------------------------------------------------------- fleet


def _version(src: str, base: pathlib.Path, name: str) -> None:
    shutil.copytree(src, base / name)
    for root, _, files in os.walk(base / name):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


@pytest.fixture
def fleet_config(mixed_src, tmp_path) -> pathlib.Path:
    """Three models under latest (2 of 3 versions), all and specific, plus a broken one."""
    root = tmp_path / "models"
    for model, versions in {"ranker": ["1", "2", "3"], "scorer": ["1", "05"], "tagger": ["1", "2"]}.items():
        for v in versions:
            _version(mixed_src, root / model, v)
    (root / "scorer" / "staging").mkdir()  # not a number: not a version
    (root / "broken" / "7").mkdir(parents=True)
    (root / "broken" / "7" / "saved_model.pb").write_bytes(b"not a SavedModel")
    cfg = tmp_path / "models.config"
    cfg.write_text(textwrap.dedent(f"""\
        model_config_list {{
          config {{ name: "ranker" base_path: "{root / 'ranker'}" model_platform: "tensorflow"
                   model_version_policy {{ latest {{ num_versions: 2 }} }} }}
          config {{ name: "scorer" base_path: "{root / 'scorer'}" model_platform: "tensorflow"
                   model_version_policy {{ all {{}} }} }}
          config {{ name: "tagger" base_path: "{root / 'tagger'}" model_platform: "tensorflow"
                   model_version_policy {{ specific {{ versions: 2 }} }} }}
          config {{ name: "broken" base_path: "{root / 'broken'}" model_platform: "tensorflow" }}
        }}
        """))
    return cfg


@pytest.mark.compat
def test_fleet_add_then_check(fleet_config, capsys):
    root = fleet_config.parent / "models"
    assert main(["add", "--model-config-file", str(fleet_config), "--jobs", "2",
                 "--batch-sizes", "1,2"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("MODEL "))
    table = [ln.split() for ln in lines[start:lines.index("", start)]]
    assert table[0] == ["MODEL", "VERSION", "RECORDS", "STATUS", "TIME"]
    rows = [(r[0], r[1], r[2], r[3]) for r in table[1:]]
    assert rows == [("ranker", "3", "4", "warmed"), ("ranker", "2", "4", "warmed"),
                    ("scorer", "5", "4", "warmed"), ("scorer", "1", "4", "warmed"),
                    ("tagger", "2", "4", "warmed"), ("broken", "7", "-", "FAILED")]
    assert "broken version 7" in out and "not a valid SavedModel proto" in out
    assert "5 of 6 version(s) ok, 1 failed" in out
    written = {p.relative_to(root).parts[:2] for p in root.glob("*/*/assets.extra/tf_serving_warmup_requests")}
    assert written == {("ranker", "3"), ("ranker", "2"), ("scorer", "05"), ("scorer", "1"), ("tagger", "2")}

    assert main(["check", "--model-config-file", str(fleet_config), "--json", "--jobs", "1"]) == 1
    report = json.loads(capsys.readouterr().out)  # stdout is pure JSON
    assert not report["ok"]
    status = {(v["model"], v["version"]): (v["status"], v["records"]) for v in report["versions"]}
    assert status == {("ranker", 3): ("ok", 4), ("ranker", 2): ("ok", 4), ("scorer", 5): ("ok", 4),
                      ("scorer", 1): ("ok", 4), ("tagger", 2): ("ok", 4), ("broken", 7): ("FAILED", None)}


def test_existing_valid_file_is_kept_unless_overwrite(mixed_src, tmp_path):
    base = tmp_path / "m"
    _version(mixed_src, base, "4")
    target = fleet.VersionTarget("m", 4, str(base / "4"))
    config = tw.WarmupConfig(batch_sizes=[2])
    assert fleet.run_version(target, "add", config).status == fleet.WARMED
    before = open(warmup_path(target.path), "rb").read()
    kept = fleet.run_version(target, "add", config.replace(seed=5))
    assert (kept.status, kept.records) == (fleet.KEPT, 2)
    assert open(warmup_path(target.path), "rb").read() == before
    assert fleet.run_version(target, "add", config.replace(seed=5, overwrite=True)).status == fleet.WARMED
    assert open(warmup_path(target.path), "rb").read() != before
    with open(warmup_path(target.path), "wb") as f:  # a file TF Serving would reject
        f.write(b"garbage")
    row = fleet.run_version(target, "add", config)
    assert row.status == fleet.REWARMED and "failed check" in row.notes[0]
    assert tw.check(target.path).ok


def test_per_model_batching_file(mixed_src, tmp_path):
    """--per-model-batching: a version's batching_params.pbtxt, or unbatched without one."""
    base = tmp_path / "m"
    _version(mixed_src, base, "1")
    _version(mixed_src, base, "2")
    (base / "1" / fleet.PER_MODEL_BATCHING_FILE).write_text(
        "max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    global_batching = tw.parse_batching_parameters(BATCHING_TEXT)
    config = tw.WarmupConfig(batching_parameters=global_batching)
    own = fleet.run_version(fleet.VersionTarget("m", 1, str(base / "1")), "add", config, per_model_batching=True)
    assert own.status == fleet.WARMED and own.notes == [f"batching from {fleet.PER_MODEL_BATCHING_FILE}"]
    assert tw.check(str(base / "1"), batching_parameters=str(base / "1" / fleet.PER_MODEL_BATCHING_FILE)).batch_sizes \
        == {"other": [2, 4], "serving_default": [2, 4]}
    bare = fleet.run_version(fleet.VersionTarget("m", 2, str(base / "2")), "add", config, per_model_batching=True)
    assert bare.status == fleet.WARMED and "unbatched" in bare.notes[0] and bare.records == 2
    common = fleet.run_version(fleet.VersionTarget("m", 2, str(base / "2")), "add",
                               config.replace(overwrite=True))
    assert common.records == 4  # without the flag, TF Serving's one batching file: sizes 2 and 8


PLATFORM_TEXT = """platform_configs {
  key: "tensorflow"
  value { source_adapter_config {
    [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { legacy_config {
      model_warmup_options { num_request_iterations { value: 3 } }
      batching_parameters { max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 8 }
      enable_per_model_batching_params: true
    } }
  } }
}
"""


def test_platform_config_applies_to_every_version_as_to_one_directory(mixed_src, tmp_path, capsys):
    """Fleet add/check under a platform config that disables warmup, sets iterations and
    enables per-model batching: each version's result is the single-directory result."""
    base = tmp_path / "m"
    _version(mixed_src, base, "1")
    (base / "1" / fleet.PER_MODEL_BATCHING_FILE).write_text(
        "max_batch_size { value: 4 }\nallowed_batch_sizes: 4\n")
    platform = tmp_path / "platform.config"
    platform.write_text(PLATFORM_TEXT)
    models = tmp_path / "models.config"
    models.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{base}" }} }}')
    target = fleet.VersionTarget("m", 1, str(base / "1"))
    config = tw.WarmupConfig(platform_config=str(platform))

    # An existing file warmed for the common sizes (2, 8): TF Serving runs this version
    # with its own batching_params.pbtxt (size 4), so the full check fails it: not kept.
    tw.add_warmup(str(base / "1"), batch_sizes=[2, 8], ignore_per_model_batching=True)
    single = tw.check(str(base / "1"), platform_config=str(platform))
    assert not single.ok and single.server.num_request_iterations == 3
    row = fleet.run_version(target, "add", config)
    assert row.status == fleet.REWARMED and any("exceeds max_batch_size 4" in n for n in row.notes)
    assert any("enable_model_warmup" in w for w in row.warnings)  # the server's warning, kept

    single = tw.check(str(base / "1"), platform_config=str(platform))
    assert single.ok and single.batch_sizes == {"other": [4], "serving_default": [4]}
    row = fleet.run_version(target, "check", config)
    assert row.status == fleet.CHECKED and row.records == single.num_records == 2
    assert any(fleet.PER_MODEL_BATCHING_FILE in n for n in row.notes)  # what the config decided, said
    assert row.warnings == single.warnings and any("enable_model_warmup" in w for w in row.warnings)
    assert fleet.run_version(target, "add", config).status == fleet.KEPT

    # The CLI: the same flags, the same verdict, in both modes.
    assert main(["check", "--model-config-file", str(models), "--platform-config-file", str(platform)]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "enable_model_warmup" in out
    assert main(["check", str(base / "1"), "--platform-config-file", str(platform)]) == 0
    capsys.readouterr()
    # per-model batching is the platform config's to decide: the flag is refused with it
    with pytest.raises(SystemExit) as e:
        main(["add", "--model-config-file", str(models), "--platform-config-file", str(platform),
              "--per-model-batching"])
    assert e.value.code == 2 and "enable_per_model_batching_params decides" in capsys.readouterr().err
    with pytest.raises(tw.TfwarmError, match="does not apply with a platform config"):
        fleet.run_fleet(str(models), "check", config, per_model_batching=True)


@pytest.mark.parametrize("argv, flag", [
    (["add", "{d}", "--jobs", "2"], "--jobs"),
    (["check", "{d}", "--jobs", "1"], "--jobs"),
    (["add", "{d}", "--per-model-batching"], "--per-model-batching"),
    (["add", "--model-config-file", "{c}", "--per-model-batching", "--ignore-per-model-batching-params"],
     "--per-model-batching"),
    (["inspect", "{d}", "--runner", "DirectRunner"], "--runner"),
    (["inspect", "{d}", "--beam-arg", "project=p"], "--beam-arg"),
    (["inspect", "{d}", "--max-scan", "10"], "--max-scan"),
    (["add", "{d}", "--sample-size", "10"], "--sample-size"),
    (["inspect", "{d}", "--max-buckets", "3"], "--max-buckets"),
    (["inspect", "{d}", "--privacy", "shapes_only"], "--privacy"),
    (["bench", "{d}", "--privacy", "rows"], "--privacy"),
    (["check", "{d}", "--progress", "--json"], "--progress"),
])
def test_an_option_that_does_not_apply_is_an_error(mixed, tmp_path, capsys, argv, flag):
    """Never accepted and ignored: exit 2, naming the flag, before anything is loaded."""
    cfg = tmp_path / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{tmp_path}" }} }}')
    with pytest.raises(SystemExit) as e:
        main([a.format(d=mixed, c=cfg) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: {argv[0]}: {flag} " in err, err
    assert not os.path.exists(warmup_path(mixed))


def _policy_model(policy: str, base, **kw) -> fleet.ServedModel:
    return fleet.ServedModel(name="m", base_path=str(base), platform="tensorflow", policy=policy, **kw)


def test_version_rules_follow_tf_serving(tmp_path):
    base = tmp_path / "m"
    for child in ["1", "0003", "3", "10", "tmp", "2a", "-4", "\u0661"]:  # last: Arabic-Indic one
        (base / child).mkdir(parents=True)
    (base / "notes.txt").write_text("x")

    def versions(policy, **kw):
        targets, failed = fleet.servable_versions(_policy_model(policy, base, **kw))
        return [(t.version, os.path.basename(t.path)) for t in targets], [f.error for f in failed]

    # "3" sorts after "0003", so it wins for version 3; "tmp", "2a", "notes.txt" are no versions.
    assert versions("latest", num_versions=1) == ([(10, "10")], [])
    assert versions("latest", num_versions=3) == ([(10, "10"), (3, "3"), (1, "1")], [])
    assert versions("all")[0] == [(10, "10"), (3, "3"), (3, "0003"), (1, "1"), (-4, "-4")]
    got, failed = versions("specific", versions=(3, 7))
    assert got == [(3, "3")] and "version 7" in failed[0]
    assert fleet.parse_model_config('model_config_list { config { name: "m" base_path: "/x" } }')[0] \
        == fleet.ServedModel("m", "/x", "tensorflow", "latest", 1, ())
    _, failed = fleet.servable_versions(_policy_model("latest", tmp_path / "missing", num_versions=1))
    assert "does not exist" in failed[0].error
    (tmp_path / "empty" / "export").mkdir(parents=True)
    _, failed = fleet.servable_versions(_policy_model("latest", tmp_path / "empty", num_versions=1))
    assert "no numeric version directory" in failed[0].error


def test_version_without_saved_model_fails_its_row(tmp_path):
    (tmp_path / "m" / "9").mkdir(parents=True)  # an export still being written
    row = fleet.run_version(fleet.VersionTarget("m", 9, str(tmp_path / "m" / "9")), "add", tw.WarmupConfig())
    assert row.status == fleet.FAILED and "no saved_model.pb" in row.error


def test_bad_model_config_is_exit_2(tmp_path, capsys):
    cfg = tmp_path / "bad.config"
    cfg.write_text("model_config_list { config { nme: 'x' } }")
    assert main(["add", "--model-config-file", str(cfg)]) == 2
    assert "not a text-format ModelServerConfig" in capsys.readouterr().err
    with pytest.raises(ModelConfigError, match="more than once"):
        fleet.parse_model_config('model_config_list { config { name: "a" base_path: "/x" } '
                                 'config { name: "a" base_path: "/y" } }')
    with pytest.raises(SystemExit):
        main(["add", str(tmp_path), "--model-config-file", str(cfg)])
    assert "not both" in capsys.readouterr().err


# --------------------------------------------------------------------------- strict keys


def test_mistyped_keys_in_python_are_rejected_with_a_suggestion(mixed):
    with pytest.raises(ConfigKeyError, match=r"overrides key 'idz'.*Did you mean 'ids'\?.*Valid keys"):
        tw.add_warmup(mixed, overrides={"idz": [1, 2]})
    with pytest.raises(ConfigKeyError, match=r"Did you mean 'serving_default/ids'\?"):
        tw.add_warmup(mixed, overrides={"serving_default/idss": [1, 2]})
    with pytest.raises(ConfigKeyError, match=r"dim_sizes key 'id'.*Did you mean 'ids'\?"):
        tw.add_warmup(mixed, dim_sizes={"id": {1: 5}})
    with pytest.raises(ConfigKeyError, match=r"axis 2 does not exist"):
        tw.add_warmup(mixed, dim_sizes={"ids": {2: 5}})
    with pytest.raises(ConfigKeyError, match=r"shapes key 'txt'.*Did you mean 'text'\?"):
        tw.add_warmup(mixed, shapes={"txt": (None,)})
    with pytest.raises(tw.SignatureError, match=r"Did you mean 'serving_default'\?"):
        tw.add_warmup(mixed, signatures=["serving_defualt"])
    with pytest.raises(ConfigKeyError, match=r"dataset key 'dnse'.*Did you mean 'dense'\?"):
        import numpy as np

        tw.add_warmup(mixed, dataset={"dnse": np.ones((4, 3), np.float32), "ids": np.ones((4, 2), np.int64)})
    assert not os.path.exists(warmup_path(mixed))  # nothing was written
    config = tw.WarmupConfig(overrides={"idss": 1})
    with pytest.raises(ConfigKeyError, match="Did you mean 'ids'"):
        tw.plan(mixed, config)


def test_example_feature_keys_are_valid_override_keys(half_plus_two):
    # 'x2' is a tf.Example feature parsed from the classify/regress inputs, not an alias.
    p = tw.plan(half_plus_two, overrides={"x2": [1.0, 2.0]}, signatures=["regress_x_to_y2"], batch_sizes=[8])
    (log,) = tw.build_logs(p)
    examples = log.regress_log.request.input.example_list.examples
    x2 = [v for e in examples for v in e.features.feature["x2"].float_list.value]
    assert len(examples) == 8 and len(x2) == 8 and set(x2) <= {1.0, 2.0}
    other = tw.build_logs(tw.plan(half_plus_two, signatures=["regress_x_to_y2"], batch_sizes=[8]))[0]
    assert {v for e in other.regress_log.request.input.example_list.examples
            for v in e.features.feature["x2"].float_list.value} - {1.0, 2.0}  # not what it would pick anyway
    with pytest.raises(ConfigKeyError, match=r"Did you mean 'x2'\?"):
        tw.plan(half_plus_two, overrides={"x22": [1.0]})


def test_mistyped_keys_on_the_command_line(mixed, capsys):
    assert main(["add", mixed, "--value", "nosuch=1"]) == 2
    assert main(["add", mixed, "--dim", "idz:1=5"]) == 2
    err = capsys.readouterr().err
    assert "overrides key 'nosuch'" in err and "dim_sizes key 'idz'" in err and "Did you mean 'ids'?" in err
    assert "Traceback" not in err and not os.path.exists(warmup_path(mixed))


# --------------------------------------------------------------------------- pipes


def test_batching_file_from_process_substitution_and_verbose_startup(mixed_src):
    """A user's shell: <(...) feeds the batching file; -v shows TF's captured start-up lines.
    (The plain run's clean stderr is checked by test_cli.test_console_script_runs.)"""
    script = (f"{sys.executable} -m tfwarm_export.cli inspect {mixed_src} -v --json "
              f"--batching-parameters <(printf '{BATCHING_TEXT}')")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=plain_env(),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["batch_sizes"] == [2, 8]
    assert "TensorFlow start-up output (shown because of -v)" in proc.stderr
    assert TF_STARTUP.search(proc.stderr.split("shown because of -v")[1])


def test_stdin_and_fifo_file_arguments(mixed, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BATCHING_TEXT.encode())))
    assert main(["inspect", mixed, "--batching-parameters", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_sizes"] == [2, 8]

    fifo = tmp_path / "batching.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(BATCHING_TEXT))
    writer.start()
    assert tw.load_batching_parameters(str(fifo)).allowed_batch_sizes == (2, 8)
    writer.join()

    assert main(["add", mixed, "--batch-sizes", "1"]) == 0
    capsys.readouterr()
    data = open(warmup_path(mixed), "rb").read()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["check", mixed, "--file", "-"]) == 0
    assert "tfwarm check <stdin>: OK (2 record(s))" in capsys.readouterr().out


def test_examples_from_stdin(half_plus_two, tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    path = tmp_path / "ex.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(5):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)]))}))
            w.write(ex.SerializeToString())
    args = ["inspect", str(half_plus_two), "--examples", "-", "--signatures", "regress_x_to_y", "--json"]
    for payload in (path.read_bytes(), f"# the files\n{path}\n".encode()):  # records, or a list of paths
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["data"]["regress_x_to_y"]["scanned"] == 5


# --------------------------------------------------------------------------- output and surface


def test_progress_on_request_and_never_with_json(mixed, capsys):
    assert main(["add", mixed, "--progress"]) == 0
    assert "replay" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # asked for bars and for no bars: refused, not ignored
        main(["check", mixed, "--progress", "--json"])
    assert e.value.code == 2 and "--progress cannot be used with --json" in capsys.readouterr().err
    assert main(["check", mixed, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] and "replay" not in captured.err
    assert main(["check", mixed]) == 0  # not a terminal, no --progress: no bar
    assert "replay:" not in capsys.readouterr().err


def test_help_is_plain_text():
    parser = build_parser()
    texts = [parser.format_help()]
    sub = next(a for a in parser._actions if a.dest == "command")
    texts += [p.format_help() for p in sub.choices.values()]
    for text in texts:
        assert "``" not in text and not re.search(r":(func|class|meth):`|^\s*\.\. \w", text, re.M), text
    assert "--model-config-file" in sub.choices["add"].format_help()


def test_integration_modules_are_lazy_attributes():
    code = ("import sys, tfwarm_export; "
            "assert 'tfwarm_export.keras' not in sys.modules; "
            "assert 'tfwarm_export.components' not in sys.modules; "
            "tfwarm_export.keras.WarmupExport; tfwarm_export.components.run_warmup_component; "
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plain_env(),
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
