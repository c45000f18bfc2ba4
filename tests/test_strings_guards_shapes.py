"""Issue 19: WAV/compressed/proto/strict-Unicode decoders, guards, and shapes from the consumers.

Each model (``models_strings.py``) is warmed by ``tfwarm add DIR`` with no options
in a fresh process, then replayed independently of the package the way TF
Serving does: the file read with ``tf.data.TFRecordDataset`` as ``PredictionLog``
protos, the model loaded with the TF1 loader, every record's inputs fed to
``Session.run`` by the SignatureDef's tensor names. Every signature must be
covered and stderr must hold no traceback.
"""
from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import prediction_log_pb2

from tfwarm_export import analysis
from tfwarm_export.specs.encodings import GuardEncoding
from tfwarm_export.errors import PlanError
from tfwarm_export.model.signatures import read_signatures
from tfwarm_export.values.regex_strings import full_match, generate, guarded_string

import models_strings
from conftest import REPO, copy_model


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("strings")
    return {name: build(root / name / "1") for name, build in models_strings.ALL.items()}


def _tfwarm_add(export_dir: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tfwarm_export.cli", "add", export_dir],
                          capture_output=True, text=True, env=env, timeout=600)


def _serving_replay(export_dir: str) -> dict[str, list[dict[str, np.ndarray]]]:
    """TF Serving's warmup, without the package: each record's Predict inputs through Session.run.
    Returns signature -> the inputs fed, one dict per record."""
    path = os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests")
    fed: dict[str, list[dict[str, np.ndarray]]] = {}
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())  # eager, before the session
    assert records
    g = tf.Graph()
    with tf.compat.v1.Session(graph=g) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        for raw in records:
            log = prediction_log_pb2.PredictionLog.FromString(raw)
            assert log.WhichOneof("log_type") == "predict_log"
            req = log.predict_log.request
            name = req.model_spec.signature_name or "serving_default"
            sig = meta.signature_def[name]
            inputs = {a: tf.make_ndarray(t) for a, t in req.inputs.items()}
            assert set(inputs) == set(sig.inputs), (name, sorted(inputs))
            sess.run({a: o.name for a, o in sig.outputs.items()},
                     {sig.inputs[a].name: v for a, v in inputs.items()})
            fed.setdefault(name, []).append(inputs)
        wanted = set(meta.signature_def) - {"__saved_model_init_op"}
    assert set(fed) == wanted, f"signatures not covered: {sorted(wanted - set(fed))}"
    return fed


@pytest.fixture(scope="module")
def warmed(built, tmp_path_factory) -> dict[str, tuple[str, str, dict]]:
    """name -> (stdout, export dir, inputs fed per signature): one fresh `tfwarm add` each."""
    out = {}
    for name, src in built.items():
        d = copy_model(src, tmp_path_factory.mktemp(name))
        proc = _tfwarm_add(d)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr
        out[name] = (proc.stdout, d, _serving_replay(d))
    return out


@pytest.mark.parametrize("name, says", [
    ("wav", ["DecodeWav 1600 samples x 1 ch", "DecodeWav 800 samples x 2 ch (desired_samples)"]),
    ("compressed", ["DecodeCompressed ZLIB of DecodeRaw 8 x float32", "GZIP of DecodeCSV 3 fields",
                    "ZLIB of DecodeJSONExample", "GZIP of DecodePng 8x8x3", "uncompressed of ParseTensor"]),
    ("proto", ["DecodeProtoV2 tfwarm.test.Reading", "tensorflow.TensorShapeProto"]),
    ("unicode", ["UnicodeDecode strict UTF-16-BE", "UnicodeTranscode strict ISO-8859-1 of StringToNumber",
                 "UnicodeDecodeWithOffsets strict UTF-8"]),
    ("tf1_guarded", ["StaticRegexFullMatch at Assert", "length in [0, 9)"]),
    ("guarded_date", ["guarded: length 6", "guarded: one of ['US', 'DE', 'JP']", "StaticRegexFullMatch at Assert"]),
    ("tf1_matmul", ["input 'x' has unknown rank; shape (?, 8) from its consumers (Reshape to [-1, 8]"]),
    ("tf2_dims", ["input 'a' has shape (?, ?); shape (?, 8) from its consumers (Reshape to [-1, 2, 4]",
                  "input 'b' has shape (?, ?); shape (?, 4) from its consumers (MatMul with a [4, 3]",
                  "shape (?, 2, ?) from its consumers (ConcatV2 on axis 2",
                  "input 'd' has unknown rank; shape (?) from its consumers (ExpandDims"]),
    ("tf1_conv", ["shape (?, ?, ?, 3) from its consumers (Conv2D with a [3, 3, 3, 2] filter",
                  "shape (?, 5) from its consumers (AddV2 with a [5] operand"]),
])
def test_tfwarm_add_no_options_covers_every_signature(warmed, name, says):
    stdout = warmed[name][0]
    for s in says:
        assert s in stdout


def test_wav_bytes_decode_to_the_planned_audio(warmed):
    fed = warmed["wav"][2]
    audio, rate = tf.audio.decode_wav(fed["serving_default"][0]["audio"][0])
    assert audio.shape == (1600, 1) and int(rate) == 16000
    assert float(tf.reduce_max(tf.abs(audio))) > 0.1  # a tone, not silence
    stereo, _ = tf.audio.decode_wav(fed["stereo"][0]["clip"][()])
    assert stereo.shape == (800, 2)


def test_compressed_chain_continues_past_the_first_op(warmed):
    fed = warmed["compressed"][2]
    raw = zlib.decompress(fed["serving_default"][0]["payload"][0])
    assert len(raw) == 8 * 4  # 8 float32 for the Reshape to [-1, 8]
    line = gzip.decompress(fed["csv"][0]["lines"][0]).decode()
    assert len(line.split(",")) == 3
    png = gzip.decompress(fed["image"][0]["image"][0])
    assert png.startswith(b"\x89PNG")
    assert b'"features"' in zlib.decompress(fed["json"][0]["json"][0])


def test_proto_messages_carry_the_decoded_fields(warmed):
    fed = warmed["proto"][2]
    msg = fed["serving_default"][0]["reading"]
    sizes, (ids, units) = tf.io.decode_proto(
        msg, "tfwarm.test.Reading", ["id", "unit"], [tf.int32, tf.string],
        descriptor_source=b"bytes://" + models_strings.descriptor_set())
    assert sizes.numpy().tolist() == [[1, 1]] and int(ids[0, 0]) > 0 and units[0, 0].numpy()


def test_strict_unicode_text_is_valid_in_the_declared_encoding(warmed):
    fed = warmed["unicode"][2]
    text = fed["serving_default"][0]["text"][0]
    assert len(text) % 2 == 0 and text.decode("utf-16-be")
    latin = fed["transcode"][0]["latin"][0].decode("iso-8859-1")
    float(latin)  # the transcoded text is a number for StringToNumber


def test_guarded_values_pass_each_guard(warmed):
    rec = warmed["guarded_date"][2]["serving_default"][0]
    date = rec["date"][0]
    assert full_match(models_strings.DATE_PATTERN, date)
    assert len(rec["code"][0]) == 6
    assert rec["country"][0] in (b"US", b"DE", b"JP")
    assert rec["amount"].dtype == np.float32  # the unrelated float input needs nothing
    sku = warmed["guarded_date"][2]["sku"][0]
    assert all(full_match(r"[A-Z]{3}-\d{2}", s) for s in sku["sku"])  # the tf.cond's valid branch
    assert (sku["qty"] > 2.5).all()  # tf.where's check
    token = warmed["tf1_guarded"][2]["serving_default"][0]["token"]
    assert all(full_match("[a-f0-9]{8}", t) for t in token)


def test_same_seed_same_file(built, tmp_path):
    files = []
    for i in range(2):
        d = copy_model(built["guarded_date"], tmp_path / str(i))
        assert _tfwarm_add(d).returncode == 0
        files.append(open(os.path.join(d, "assets.extra", "tf_serving_warmup_requests"), "rb").read())
    assert files[0] == files[1]


def test_guard_analysis_on_the_graph(built):
    model = read_signatures(built["guarded_date"])
    sig = model.get("serving_default")
    dom = analysis.find_guard_domain(model.meta_graph, sig.inputs["date"].name, tf.string)
    assert dom.encoding.patterns == (models_strings.DATE_PATTERN,)
    assert analysis.find_guard_domain(model.meta_graph, sig.inputs["amount"].name, tf.float32) is None
    code = analysis.find_guard_domain(model.meta_graph, sig.inputs["code"].name, tf.string).encoding
    assert (code.min_length, code.max_length) == (6, 7)
    # the safe retry's value passes the guards too
    small = guarded_string(dom.safe.encoding, np.random.default_rng(0))
    assert full_match(models_strings.DATE_PATTERN, small)


def test_consumer_shapes_read_from_the_graph(built):
    model = read_signatures(built["tf1_conv"])
    sig = model.get("serving_default")
    got = analysis.find_consumer_shape(model.meta_graph, sig.inputs["image"].name)
    assert got.shape == (None, None, None, 3) and got.minimum == {1: 3, 2: 3}
    # a declared shape that disagrees with the reading gets nothing
    assert analysis.find_consumer_shape(model.meta_graph, sig.inputs["feats"].name, (None, 7)) is None


def test_unknown_rank_without_a_telling_consumer_still_names_the_fix(tmp_path):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, shape=None, name="x")
        return {"x": x}, {"y": tf.reduce_sum(x)}

    d = models_strings.tf1_builder(tmp_path / "1", build)
    proc = _tfwarm_add(d)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--shape serving_default/x=-1,16" in proc.stdout + proc.stderr


def test_unsatisfiable_guard_is_a_plan_error():
    enc = GuardEncoding(patterns=(r"\d{3}",), min_length=5, sources=("test",))
    with pytest.raises(PlanError, match="passes"):
        guarded_string(enc, np.random.default_rng(0))


RE2_PATTERNS = [
    models_strings.DATE_PATTERN,
    r"[A-Z]{2}\d{4}", r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}", r"\d+(\.\d{1,2})?",
    r"(?i)hello|world", r"[^,\s]{1,8}", r"0x[0-9a-fA-F]+", r"(ab|cd)*e?", r"\w+\s\w+",
    r"[[:digit:]]{3}-[[:alpha:]]+", r"\pL+\p{N}", r"[\-+]?\d*\.?\d+", r"a.b.c", r"(?:x|y){2,5}z",
    r"[^a-z]+", r"^\S+$", r"(19|20)\d\d", r"[\[\]]+", r"\d{1,3}(,\d{3})*",
]


@settings(max_examples=60, deadline=None)
@given(pattern=st.sampled_from(RE2_PATTERNS), seed=st.integers(0, 2**32 - 1))
def test_property_generated_strings_match_in_re2(pattern, seed):
    text = generate(pattern, np.random.default_rng(seed))
    assert full_match(pattern, text.encode("utf-8")), (pattern, text)
    assert generate(pattern, np.random.default_rng(seed)) == text  # deterministic per seed
    assert re.fullmatch(r"[ -~]*", text)  # printable ASCII only


def test_new_encoders_are_deterministic_per_seed():
    from tfwarm_export.specs.encodings import (CompressedEncoding, ProtoEncoding, RawEncoding, UnicodeEncoding,
                                               WavEncoding)
    from tfwarm_export.values.encoders import encode_array

    encs = [WavEncoding(64, 2), CompressedEncoding("GZIP", RawEncoding(tf.float32, 4)),
            CompressedEncoding("ZLIB", UnicodeEncoding("UTF-32-BE", "UnicodeDecode")),
            ProtoEncoding("tensorflow.TensorShapeProto", ("unknown_rank",), (tf.bool,))]
    for enc in encs:
        a = encode_array(enc, (3,), np.random.default_rng(7))
        b = encode_array(enc, (3,), np.random.default_rng(7))
        assert a.tolist() == b.tolist(), enc.describe()
    utf32 = zlib.decompress(encode_array(encs[2], (1,), np.random.default_rng(1))[0])
    assert len(utf32) % 4 == 0 and utf32.decode("utf-32-be")
