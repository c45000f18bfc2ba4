"""Replay under the configuration TF Serving will load the model with (issue 14).

Real SavedModels (tests/models_serving.py), real ``PlatformConfigMap`` text parsed
with ``text_format``, real replay in a TF Session.
"""
from __future__ import annotations

import json
import os

import pytest

import tfwarm_export as tw
from tfwarm_export.serving import serving_config as sc
from tfwarm_export.cli import main
from tfwarm_export.errors import BatchingError, ServingConfigError
from tfwarm_export.serving.warmup_file import read_records, warmup_path

from conftest import copy_model


@pytest.fixture(scope="session")
def rank0_src(tmp_path_factory) -> str:
    from models_serving import rank0_module

    return rank0_module(tmp_path_factory.mktemp("rank0") / "1")


@pytest.fixture
def rank0(rank0_src, tmp_path) -> str:
    return copy_model(rank0_src, tmp_path)


@pytest.fixture(scope="session")
def shared_state_src(tmp_path_factory) -> str:
    from models_serving import shared_state_module

    return shared_state_module(tmp_path_factory.mktemp("shared_state") / "1")


@pytest.fixture(scope="session")
def xla_src(tmp_path_factory) -> str:
    from models_serving import xla_sequence_module

    return xla_sequence_module(tmp_path_factory.mktemp("xla") / "1")


PER_MODEL = "max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n"


def platform_text(legacy: str, adapter: str = "SavedModelBundleSourceAdapterConfig",
                  field: str = "legacy_config") -> str:
    return ('platform_configs {\n  key: "tensorflow"\n  value {\n    source_adapter_config {\n'
            f'      [type.googleapis.com/tensorflow.serving.{adapter}] {{\n'
            f'        {field} {{\n{legacy}\n        }}\n      }}\n    }}\n  }}\n}}\n')


def write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# ----------------------------------------------------------------- per-model batching


def test_per_model_batching_params_plan_replay_and_rank0_skip(rank0):
    write(os.path.join(rank0, "batching_params.pbtxt"), PER_MODEL)
    p = tw.plan(rank0)
    assert p.batch_sizes == (2, 4)
    assert p.batching is not None and p.batching.source.endswith("batching_params.pbtxt")
    assert any(sc.PER_MODEL_NOTE in n for n in p.notes)
    assert sc.PER_MODEL_NOTE in p.summary()
    # The rank-0 signature can never pass the batching session: skipped, with the reason.
    assert "scalar" in p.skipped and "rank 0" in p.skipped["scalar"]
    assert "batch dimension" in p.skipped["scalar"]
    report = tw.add_warmup(rank0)
    assert report.ok and {r.padded_to for r in report.results} == {2, 4}
    check = tw.check(rank0)  # check finds the same per-model file
    assert check.ok and check.batch_sizes == {"serving_default": [2, 4]}


def test_per_model_batching_params_can_be_ignored(rank0):
    write(os.path.join(rank0, "batching_params.pbtxt"), PER_MODEL)
    p = tw.plan(rank0, ignore_per_model_batching=True)
    assert p.batching is None and p.batch_sizes == (1,)
    assert "scalar" not in p.skipped
    assert any("ignored" in n for n in p.notes)
    # A file written without batching has a rank-0 record the batching session rejects:
    tw.add_warmup(rank0, ignore_per_model_batching=True)
    assert not tw.check(rank0).ok
    assert tw.check(rank0, ignore_per_model_batching=True).ok


def test_per_model_file_replaces_common_batching_file(rank0, tmp_path):
    write(os.path.join(rank0, "batching_params.pbtxt"), PER_MODEL)
    common = write(tmp_path / "b.txt", "max_batch_size { value: 8 }\nallowed_batch_sizes: 8\n")
    assert tw.plan(rank0, batching_parameters=common).batch_sizes == (2, 4)
    assert tw.plan(rank0, batching_parameters=common, ignore_per_model_batching=True).batch_sizes == (8,)


# ----------------------------------------------------------------- platform config

EVERY_FIELD = """
          session_config {
            intra_op_parallelism_threads: 2
            inter_op_parallelism_threads: 2
            graph_options { optimizer_options { opt_level: L1 } }
          }
          batching_parameters {
            max_batch_size { value: 8 }
            batch_timeout_micros { value: 0 }
            allowed_batch_sizes: 4
            allowed_batch_sizes: 8
          }
          enable_model_warmup: true
          model_warmup_options {
            num_request_iterations { value: 3 }
            num_model_warmup_threads { value: 2 }
          }
          enable_saved_model_config: true
          enable_session_metadata: true
"""


@pytest.mark.compat
def test_carried_platform_config_descriptor_matches_tf_serving():
    """``PlatformConfigMap`` is carried (tensorflow-serving-api < 2.21 has no
    ``platform_config_pb2``); where the installed one has it, the two are the same message."""
    from google.protobuf import descriptor_pb2, text_format

    try:
        from tensorflow_serving.config import platform_config_pb2
    except ImportError:
        pytest.skip("this tensorflow-serving-api has no config/platform_config_pb2 to compare with")
    for name in ("PlatformConfig", "PlatformConfigMap"):
        ours, theirs = descriptor_pb2.DescriptorProto(), descriptor_pb2.DescriptorProto()
        sc.POOL.FindMessageTypeByName(f"tensorflow.serving.{name}").CopyToProto(ours)
        getattr(platform_config_pb2, name).DESCRIPTOR.CopyToProto(theirs)
        assert ours == theirs, name
    text = platform_text(EVERY_FIELD)
    theirs = text_format.Parse(text, platform_config_pb2.PlatformConfigMap(), descriptor_pool=sc.POOL)
    ours = text_format.Parse(text, sc.PlatformConfigMap(), descriptor_pool=sc.POOL)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


@pytest.mark.compat
def test_platform_config_every_field(rank0, tmp_path):
    smc = sc.SavedModelConfig()
    smc.session_overrides.disable_meta_optimizer = True
    os.makedirs(os.path.join(rank0, "assets.extra"), exist_ok=True)
    with open(os.path.join(rank0, sc.SAVED_MODEL_CONFIG_FILE), "wb") as f:
        f.write(smc.SerializeToString())
    cfg = write(tmp_path / "platform.config", platform_text(EVERY_FIELD))
    report = tw.add_warmup(rank0, platform_config=cfg)
    server = report.plan.server
    # batching_parameters: planned and replayed through them (the rank-0 signature is skipped)
    assert report.plan.batch_sizes == (4, 8) and "scalar" in report.plan.skipped
    assert {r.padded_to for r in report.results} == {4, 8}
    # model_warmup_options: 3 runs per record, on 2 threads
    assert (server.num_request_iterations, server.num_model_warmup_threads) == (3, 2)
    assert (report.replay_runs, report.replay_threads) == (3, 2)
    assert "each record run 3 times" in report.summary() and "on 2 threads" in report.summary()
    # session_config, with saved_model_config.pb's override on top (enable_saved_model_config)
    cp = server.session_config
    assert cp.intra_op_parallelism_threads == 2 and cp.inter_op_parallelism_threads == 2
    assert cp.graph_options.optimizer_options.opt_level == cp.graph_options.optimizer_options.L1
    assert cp.graph_options.rewrite_options.disable_meta_optimizer
    assert cp.experimental.session_metadata.version == 1  # enable_session_metadata
    applied = "\n".join(server.applied)
    assert "disable_meta_optimizer=true" in applied and "intra_op_parallelism_threads" in applied
    assert server.warmup_enabled and not server.warnings
    assert report.ok and tw.check(rank0, platform_config=cfg).ok


def test_platform_config_not_reproducible_settings_are_reported(rank0, tmp_path):
    smc = sc.SavedModelConfig()
    smc.session_overrides.batch_op_rewriter_config.SetInParent()
    os.makedirs(os.path.join(rank0, "assets.extra"), exist_ok=True)
    with open(os.path.join(rank0, sc.SAVED_MODEL_CONFIG_FILE), "wb") as f:
        f.write(smc.SerializeToString())
    legacy = ("enable_model_warmup: true\nenable_saved_model_config: true\n"
              "session_run_load_threadpool_index { value: 0 }\nsession_target: \"grpc://x:1\"\n")
    server = tw.plan(rank0, platform_config=write(tmp_path / "p.config", platform_text(legacy))).server
    missing = "\n".join(server.not_reproduced)
    assert "batch_op_rewriter" in missing and "session_run_load_threadpool_index" in missing
    assert "session_target" in missing


def test_older_session_bundle_adapter_is_read(rank0, tmp_path):
    text = platform_text("enable_model_warmup: true\nmodel_warmup_options { num_request_iterations "
                         "{ value: 2 } }", adapter="SessionBundleSourceAdapterConfig", field="config")
    assert tw.plan(rank0, platform_config=write(tmp_path / "p", text)).server.num_request_iterations == 2


def test_explicit_batching_file_wins_over_platform_batching(rank0, tmp_path):
    cfg = write(tmp_path / "platform.config", platform_text(EVERY_FIELD))
    mine = write(tmp_path / "b.txt", "max_batch_size { value: 2 }\n")
    assert tw.plan(rank0, platform_config=cfg, batching_parameters=mine).batch_sizes == (2,)


def test_platform_per_model_flag_decides(rank0, tmp_path):
    write(os.path.join(rank0, "batching_params.pbtxt"), PER_MODEL)
    base = "enable_model_warmup: true\nbatching_parameters { max_batch_size { value: 8 } }\n"
    off = write(tmp_path / "off", platform_text(base))
    on = write(tmp_path / "on", platform_text(base + "enable_per_model_batching_params: true\n"))
    assert tw.plan(rank0, platform_config=off).batch_sizes == (8,)
    assert tw.plan(rank0, platform_config=on).batch_sizes == (2, 4)
    os.remove(os.path.join(rank0, "batching_params.pbtxt"))
    p = tw.plan(rank0, platform_config=on)  # flag on, no file: TF Serving runs it unbatched
    assert p.batching is None and any("WITHOUT batching" in n for n in p.notes)


def test_disabled_warmup_is_a_warning_everywhere(rank0, tmp_path, capsys):
    cfg = write(tmp_path / "platform.config", platform_text("session_config { }"))
    p = tw.plan(rank0, platform_config=cfg)
    assert not p.server.warmup_enabled and "enable_model_warmup" in p.server.warnings[0]
    assert main(["add", rank0, "--platform-config-file", cfg]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "ignores assets.extra/tf_serving_warmup_requests" in out
    assert main(["check", rank0, "--platform-config-file", cfg]) == 0
    assert "enable_model_warmup" in capsys.readouterr().out


def test_threads_on_model_whose_signatures_share_state(shared_state_src, tmp_path):
    model = copy_model(shared_state_src, tmp_path)
    legacy = ("enable_model_warmup: true\nmodel_warmup_options { num_request_iterations { value: 2 }"
              " num_model_warmup_threads { value: 4 } }")
    cfg = write(tmp_path / "platform.config", platform_text(legacy))
    report = tw.add_warmup(model, platform_config=cfg, include_stateful=True, batch_sizes=[1, 2, 4])
    assert report.ok and report.replay_threads == 4
    bump = [r for r in report.results if r.signature == "bump"]
    # Every run of a bump record moves the shared variable: flagged as not safe to run concurrently.
    assert bump and all(any("not safe to run concurrently" in w for w in r.warnings) for r in bump)
    assert "not safe to run concurrently" in report.summary()
    check = tw.check(model, platform_config=cfg)
    assert check.ok and any(r.warnings for r in check.results if r.signature == "bump")
    # Sequential replay of the read-only signature alone raises no such warning.
    alone = tw.add_warmup(model, platform_config=cfg, signatures=["serving_default"], overwrite=True)
    assert alone.ok and not any(r.warnings for r in alone.results)


# ----------------------------------------------------------------- strict parsing


def test_misspelt_field_in_platform_config_names_the_line(rank0, tmp_path, capsys):
    text = platform_text("enable_model_warmup: true\nmodel_warmup_options { num_request_iteration "
                         "{ value: 2 } }")
    cfg = write(tmp_path / "platform.config", text)
    with pytest.raises(ServingConfigError, match=r"line 8.*num_request_iteration"):
        tw.plan(rank0, platform_config=cfg)
    assert main(["add", rank0, "--platform-config-file", cfg]) == 2
    err = capsys.readouterr().err
    assert "line 8" in err and "Traceback" not in err
    assert not os.path.exists(warmup_path(rank0))


def test_misspelt_field_inside_platform_batching_names_the_line(rank0, tmp_path):
    text = platform_text("batching_parameters { max_batch_size { value: 8 } allowed_batch_size: 8 }")
    with pytest.raises(ServingConfigError, match=r"line 7.*allowed_batch_size"):
        tw.plan(rank0, platform_config=write(tmp_path / "p", text))


def test_unknown_any_type_and_missing_platform(rank0, tmp_path):
    bad_any = platform_text("", adapter="NoSuchAdapterConfig", field="x")
    with pytest.raises(ServingConfigError, match="NoSuchAdapterConfig"):
        tw.plan(rank0, platform_config=write(tmp_path / "a", bad_any))
    with pytest.raises(ServingConfigError, match="no 'tensorflow' entry"):
        tw.plan(rank0, platform_config=write(tmp_path / "b", 'platform_configs { key: "tf2" }'))
    with pytest.raises(ServingConfigError, match="does not exist"):
        tw.plan(rank0, platform_config=str(tmp_path / "missing.config"))


def test_misspelt_field_in_per_model_batching_file_names_the_line(rank0):
    write(os.path.join(rank0, "batching_params.pbtxt"), "max_batch_size { value: 4 }\nalowed_batch_sizes: 4\n")
    with pytest.raises(BatchingError, match=r"batching_params\.pbtxt.*2:1.*alowed_batch_sizes"):
        tw.plan(rank0)
    assert tw.plan(rank0, ignore_per_model_batching=True).batching is None


def test_misspelt_field_in_batching_parameters_file_names_the_line(rank0, tmp_path):
    cfg = write(tmp_path / "b.txt", "max_batch_size { value: 4 }\n\nmax_batch_sise { value: 4 }\n")
    with pytest.raises(BatchingError, match=r"3:1.*max_batch_sise"):
        tw.plan(rank0, batching_parameters=cfg)


def test_corrupt_saved_model_config(rank0, tmp_path):
    os.makedirs(os.path.join(rank0, "assets.extra"), exist_ok=True)
    with open(os.path.join(rank0, sc.SAVED_MODEL_CONFIG_FILE), "wb") as f:
        f.write(b"\xff\xff\xff not a proto")
    cfg = write(tmp_path / "p", platform_text("enable_model_warmup: true\nenable_saved_model_config: true"))
    with pytest.raises(ServingConfigError, match="unable to parse SavedModelConfig"):
        tw.plan(rank0, platform_config=cfg)
    # Without enable_saved_model_config TF Serving never reads it; neither do we.
    assert tw.plan(rank0, platform_config=write(tmp_path / "q", platform_text(
        "enable_model_warmup: true"))).server.warmup_enabled


# ----------------------------------------------------------------- iterations


def test_iterations_writes_each_record_n_times(rank0):
    report = tw.add_warmup(rank0, iterations=3)
    n = len(report.plan.records)
    records = read_records(warmup_path(rank0))
    assert len(records) == 3 * n and report.plan.copies == 3
    assert all(records[3 * i] == records[3 * i + 1] == records[3 * i + 2] for i in range(n))
    assert report.replay_runs == 3
    assert tw.check(rank0).ok


def test_iterations_stay_within_the_record_limit(rank0):
    p = tw.plan(rank0, iterations=800)  # 2 records x 800 > 1000
    assert p.copies == 500 and any("limit of 1000" in note for note in p.notes)
    with pytest.raises(tw.PlanError, match="iterations must be >= 1"):
        tw.plan(rank0, iterations=0)


def test_iterations_cli(rank0, capsys):
    assert main(["add", rank0, "--iterations", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["copies"] == 2 and len(read_records(warmup_path(rank0))) == 2 * out["num_records"]


# ----------------------------------------------------------------- XLA shape coverage


def test_xla_signature_warmed_at_default_length_is_flagged(xla_src, tmp_path, capsys):
    model = copy_model(xla_src, tmp_path)
    p = tw.plan(model)
    assert set(p.xla) == {"seq"} and "jit-compiled function" in p.xla["seq"][0]
    text = p.summary()
    assert "compiles once per shape; lengths other than 4 will compile at request time" in text
    report = tw.add_warmup(model)
    assert "about " in report.xla_warnings["seq"] and "measured in replay" in report.xla_warnings["seq"]
    assert "give `dim_sizes=` or traffic/a dataset" in report.summary()
    check = tw.check(model)
    assert check.ok and any("'seq'" in w and "compiles once per shape" in w for w in check.warnings)
    assert main(["check", model]) == 0
    assert "lengths other than 4 will compile" in capsys.readouterr().out


def test_xla_signature_with_dim_sizes_is_not_flagged(xla_src, tmp_path):
    model = copy_model(xla_src, tmp_path)
    dims = {"ids": {1: [5, 9]}, "mask": {1: [5, 9]}}
    assert tw.plan(model, dim_sizes=dims).xla == {}
    tw.add_warmup(model, dim_sizes=dims)
    assert not tw.check(model).warnings


def test_non_xla_model_is_not_flagged(mixed):
    assert tw.plan(mixed).xla == {}


# ----------------------------------------------------------------- as a user runs it


@pytest.mark.compat
def test_cli_per_model_and_platform(rank0_src, tmp_path, capsys):
    model = copy_model(rank0_src, tmp_path)
    write(os.path.join(model, "batching_params.pbtxt"), PER_MODEL)
    cfg = write(tmp_path / "platform.config", platform_text(EVERY_FIELD + "enable_per_model_batching_params: true"))
    assert main(["add", model, "--platform-config-file", cfg]) == 0
    out = capsys.readouterr().out
    assert sc.PER_MODEL_NOTE in out and "each record run 3 times" in out
    assert "applied in replay: model_warmup_options.num_request_iterations" in out
    assert main(["check", model, "--platform-config-file", cfg]) == 0
    capsys.readouterr()
    assert main(["inspect", model, "--platform-config-file", cfg, "--ignore-per-model-batching-params",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_sizes"] == [4, 8]  # the platform's own batching


def test_session_feed_check_becomes_a_record_problem(rank0_src):
    """A feed the Session itself refuses (shape vs placeholder) is a failed record, not a crash."""
    import numpy as np

    from tfwarm_export.serving.replay import PreparedRun, RecordProblem, Replayer

    with Replayer(rank0_src) as replayer:
        sig = replayer.meta_graph.signature_def["serving_default"]
        run = PreparedRun("predict_log", ("serving_default",), {sig.inputs["x"].name: np.float32(1.0)},
                          {"serving_default/y": sig.outputs["y"].name}, None)
        with pytest.raises(RecordProblem, match="refused the feed"):
            replayer.run(run)
        assert not replayer.run_record(0, run).ok


def test_bench_replays_under_the_platform_config(rank0, tmp_path):
    from tfwarm_export.bench import command as bench

    cfg = write(tmp_path / "platform.config", platform_text(EVERY_FIELD))
    report = bench.bench(rank0, platform_config=cfg, rows=[0], iterations=2, idle_ms=0, cold=False)
    assert (report.warmup_iterations, report.warmup_threads) == (3, 2)
    assert report.batching["allowed_batch_sizes"] == [4, 8]
    assert report.ok and report.rows[0].warmed_first_ms is not None
    assert "3 times each on 2 threads" in report.summary()
