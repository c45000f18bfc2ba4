"""Issue 26: rules the graph states (shape checks, windows, inputs that must agree), solved before synthesis.

Each SavedModel of ``models_constraints.py`` is warmed by ``tfwarm add DIR`` with no options
in a fresh process, then replayed by ``serving_replay.py`` (nothing from the package: the
TF1 loader and ``Session.run`` per record, as TF Serving's warmup does); every signature
must be covered. The planner's answers are checked against the graph itself: a
hypothesis property draws random windows, offsets and required sizes, plans them
without TensorFlow, and checks the arithmetic; a few examples also run through TF.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export import analysis
from tfwarm_export.model.signatures import read_signatures
from tfwarm_export.planning.records import InputPlan, PlannedRecord
from tfwarm_export.planning.tensor_inputs import solve_failed_record

import models_constraints
import serving_replay
from conftest import REPO, copy_model

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _tfwarm_add(export_dir: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tfwarm_export.cli", "add", export_dir],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("constraints")
    return {name: build(root / name / "1") for name, build in models_constraints.ALL.items()}


def _fed(export_dir: str) -> dict[str, dict[str, np.ndarray]]:
    """signature -> the inputs of its first record, read from the file."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for raw in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP)).as_numpy_iterator():
        req = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
        out.setdefault(req.model_spec.signature_name, {a: tf.make_ndarray(t) for a, t in req.inputs.items()})
    return out


@pytest.fixture(scope="session")
def warmed(built, tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """name -> (stdout, inputs fed per signature): one fresh `tfwarm add` with no options each,
    then the independent replay of every record."""
    out = {}
    for name, src in built.items():
        d = copy_model(src, tmp_path_factory.mktemp(name))
        proc = _tfwarm_add(d)
        assert proc.returncode == 0, f"{name}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr
        covered = serving_replay.replay_signatures(d)
        assert covered == serving_replay.signature_names(d), f"{name}: not covered"
        out[name] = (proc.stdout, _fed(d))
    return out


KINDS = [
    ("shapes", "assert12", "input 'x' axes [1] sized [12] to satisfy all(Equal(shape(x)[1], 12))"),
    ("shapes", "crop", "input 'img' axes [1, 2] sized [80, 80]"),
    ("shapes", "pad", "input 'img' axes [1, 2] sized [1, 1]"),
    ("shapes", "window", "input 'x' axes [1] sized [15] to satisfy Slice begin + size within x"),
    ("shapes", "strided", "input 'x' axes [1] sized [10] to satisfy StridedSlice index within x"),
    ("shapes", "concat5", "input 'a' axes [1] sized [5] to satisfy MatMul(ConcatV2(a, b, 1)"),
    ("shapes", "divisible", "sized [6] to satisfy Reshape element count fits x"),
    ("shapes", "split", "input 'x' axes [1] sized [3] to satisfy Split axis divides by num_split x"),
    ("agree", "einsum", "input 'k' axes [1] sized [10] to satisfy Einsum(Softmax(Einsum(q, k)), v): subscripts agree"),
    ("keras_crop", "serve",
     "input 'image' axes [1, 2] sized [80, 80] to satisfy GreaterEqual(Unpack(shape(image)), 80)"),
    ("agree", "matmul", "shape (?, ?, 7) from its consumers (BatchMatMulV2 with a [None, 7, 5] operand"),
    ("agree", "concat", "shape (?, 5, ?) from its consumers (ConcatV2 on axis 2"),
    ("agree", "elementwise", "input 'x' axes [1] sized [6] to satisfy Mul(x, y): shapes broadcast"),
    ("agree", "attention", "input 'key' axes [1] sized [10] to satisfy BatchMatMulV2("),
    ("agree", "assert_shapes", "input 'y' axes [2] sized [3] to satisfy Equal(shape(y)[2], 3)"),
    ("related", "ragged_splits", "'row_splits' is the row_splits of 'values'"),
    ("related", "ragged_lengths", "'row_lengths' is the row_lengths of 'values'"),
    ("related", "ragged_rowids", "'rowids' is the value_rowids of 'values'"),
    ("related", "ragged_nested", "'outer' is the row_splits of 'inner'"),
    ("related", "sparse", "indices 'indices', values 'values' and dense_shape 'dense_shape' of one SparseTensor"),
    ("related", "segment", "'segment_ids' is the segment_ids of 'data' (SegmentSum"),
    ("related", "gather", "'ids' indexes axis 0 of 'table' (GatherV2"),
    ("related", "ragged_starts", "'row_starts' is the row_starts of 'values'"),
    ("related", "gather_nd", "'points' indexes axis 0 of 'grid' (GatherNd"),
    ("related", "membership", "one of ['AT', 'BE', 'CH']"),
]


@pytest.mark.parametrize("model, signature, says", KINDS, ids=[f"{k[0]}-{k[1]}" for k in KINDS])
def test_no_options_plan_names_the_rule(warmed, model, signature, says):
    stdout = warmed[model][0]
    assert says in stdout, stdout[-4000:]


def test_sizes_fed_satisfy_the_checks(warmed):
    fed = warmed["shapes"][1]
    assert fed["assert12"]["x"].shape[1] == 12
    assert min(fed["crop"]["img"].shape[1:3]) >= 80
    assert max(fed["pad"]["img"].shape[1:3]) <= 2
    assert fed["window"]["x"].shape[1] >= 15 and fed["strided"]["x"].shape[1] > 9
    assert fed["concat5"]["a"].shape[1] == 5
    assert np.prod(fed["divisible"]["x"].shape) % 6 == 0 and fed["split"]["x"].shape[1] % 3 == 0
    assert min(warmed["keras_crop"][1]["serve"]["image"].shape[1:3]) >= 80
    agree = warmed["agree"][1]
    assert agree["einsum"]["k"].shape[1] == 10
    assert agree["attention"]["key"].shape[1] == 10
    assert agree["elementwise"]["x"].shape == agree["elementwise"]["y"].shape


def test_related_parts_agree(warmed):
    fed = warmed["related"][1]
    splits, values = fed["ragged_splits"]["row_splits"], fed["ragged_splits"]["values"]
    assert splits[0] == 0 and np.all(np.diff(splits) >= 0) and splits[-1] == len(values)
    assert fed["ragged_lengths"]["row_lengths"].sum() == len(fed["ragged_lengths"]["values"])
    rowids = fed["ragged_rowids"]["rowids"]
    assert len(rowids) == len(fed["ragged_rowids"]["values"]) and np.all(np.diff(rowids) >= 0)
    nested = fed["ragged_nested"]
    assert nested["outer"][-1] == len(nested["inner"]) - 1 and nested["inner"][-1] == len(nested["flat"])
    sp = fed["sparse"]
    assert np.all(sp["indices"] < sp["dense_shape"]) and len(sp["values"]) == len(sp["indices"])
    flat = np.ravel_multi_index(sp["indices"].T, sp["dense_shape"])
    assert np.all(np.diff(flat) > 0)  # sorted and unique, as SparseToDense validates
    ids = fed["segment"]["segment_ids"]
    assert len(ids) == len(fed["segment"]["data"]) and ids[0] >= 0 and np.all(np.diff(ids) >= 0)
    assert np.all(fed["gather"]["ids"] < len(fed["gather"]["table"]))
    starts = fed["ragged_starts"]["row_starts"]
    assert starts[0] == 0 and np.all(np.diff(starts) >= 0) and starts[-1] < len(fed["ragged_starts"]["values"])
    points, grid = fed["gather_nd"]["points"], fed["gather_nd"]["grid"]
    assert np.all(points >= 0) and np.all(points < np.array(grid.shape[:2]))
    assert set(fed["membership"]["country"].tolist()) <= {b"AT", b"BE", b"CH"}


def test_python_op_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    class PyOp(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.py_function(np.square, [x], tf.float32)}

    d = os.fspath(tmp_path / "pyop" / "1")
    m = PyOp()
    tf.saved_model.save(m, d, signatures={"serving_default": m.serve})
    proc = _tfwarm_add(d)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tfwarm add: error")]
    assert len(lines) == 1 and "EagerPyFunc" in lines[0], proc.stderr
    assert not os.path.exists(os.path.join(d, WARMUP))


def test_a_failed_record_is_solved_from_its_own_shapes(built):
    """The replay-time hook: a record whose sizes did not come from the plan-time solve."""
    model = read_signatures(built["shapes"])
    sig = model.get("crop")
    spec = sig.inputs["img"]
    record = PlannedRecord("crop", "predict", 1, (InputPlan("img", spec.name, tf.float32, (1, 32, 32, 3),
                                                            defaulted_axes=(1, 2)),))
    solved = solve_failed_record(model.meta_graph, record)
    assert solved.inputs[0].shape == (1, 80, 80, 3) and solved.inputs[0].defaulted_axes == ()
    fixed = PlannedRecord("crop", "predict", 1, (InputPlan("img", spec.name, tf.float32, (1, 32, 32, 3)),))
    assert solve_failed_record(model.meta_graph, fixed) is None  # user-sized axes stay as given


def test_every_rule_has_a_test_model(built):
    """Each rule the solver applies is exercised by a signature of models_constraints."""
    covered = models_constraints.RULE_MODELS
    assert set(analysis.constraint_solver.RULES) == set(covered), "a rule without a test model"
    for rule, (name, signature) in covered.items():
        model = read_signatures(built[name])
        sig = model.get(signature)
        ops = {n.op for n, _ in analysis.index_for(model.meta_graph).call_tree(
            [o.name for o in sig.outputs.values()])}
        assert ops & set(analysis.constraint_solver.RULES[rule][0]), (rule, signature)


# ------------------------------------------------------------------ property: planner only
def _window_graph(oh, ow, th, tw, begin, size, k, d):
    """A TF1 graph with a crop, a constant slice, an equality check and a reshape to [-1, d]."""
    g = tf.Graph()
    with g.as_default():
        img = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="img")
        x = tf.compat.v1.placeholder(tf.float32, [None, None], name="x")
        y = tf.compat.v1.placeholder(tf.float32, [None, None], name="y")
        z = tf.compat.v1.placeholder(tf.float32, [None, None, None], name="z")
        crop = tf.image.crop_to_bounding_box(img, oh, ow, th, tw)
        win = tf.slice(x, [0, begin], [-1, size])
        with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(y)[1], k)]):
            yy = tf.identity(y)
        zz = tf.reshape(z, [-1, d])
        outs = [tf.reduce_sum(crop), tf.reduce_sum(win), tf.reduce_sum(yy), tf.reduce_sum(zz)]
    meta = meta_graph_pb2.MetaGraphDef(graph_def=g.as_graph_def())
    return g, meta, [t.name for t in outs]


def _plan(meta, outputs):
    inputs = [analysis.InputVar("img", "img:0", tf.float32, (None, 4, 4, 3), (1, 2)),
              analysis.InputVar("x", "x:0", tf.float32, (None, 4), (1,)),
              analysis.InputVar("y", "y:0", tf.float32, (None, 4), (1,)),
              analysis.InputVar("z", "z:0", tf.float32, (None, 4, 4), (1, 2))]
    return analysis.solve_constraints(meta, outputs, inputs, 1)


_WINDOWS = dict(oh=st.integers(0, 40), ow=st.integers(0, 40), th=st.integers(1, 60), tw=st.integers(1, 60),
                begin=st.integers(0, 30), size=st.integers(1, 30), k=st.integers(1, 64), d=st.integers(2, 12))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_WINDOWS)
def test_property_planned_sizes_satisfy_the_windows(oh, ow, th, tw, begin, size, k, d):
    _, meta, outputs = _window_graph(oh, ow, th, tw, begin, size, k, d)
    solved = _plan(meta, outputs)
    assert not solved.unsolved, solved.unsolved
    img, x, y, z = (solved.shapes[a] for a in ("img", "x", "y", "z"))
    assert img[1] >= oh + th and img[2] >= ow + tw
    assert x[1] >= begin + size and y[1] == k and np.prod(z) % d == 0


@pytest.mark.parametrize("params", [(16, 16, 64, 64, 5, 10, 12, 6), (0, 3, 1, 7, 0, 1, 1, 7)])
def test_planned_sizes_run_in_tensorflow(params):
    g, meta, outputs = _window_graph(*params)
    solved = _plan(meta, outputs)
    with tf.compat.v1.Session(graph=g) as sess:
        feeds = {f"{a}:0": np.zeros(solved.shapes[a], np.float32) for a in ("img", "x", "y", "z")}
        sess.run(outputs, feeds)  # raises if any check or window fails
