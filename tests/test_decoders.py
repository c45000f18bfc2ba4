"""String inputs the graph decodes: images, CSV, number strings, base64, raw bytes, serialized tensors.

Every model here is a real SavedModel (``models_decoders.py``) run through
``tfwarm add`` with no options and then ``tfwarm check``; the written values are
decoded again with TensorFlow's own ops to show they are what the decoder needs.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import tfwarm_export as tw
from tfwarm_export import analysis
from tfwarm_export.specs.encodings import (CsvEncoding, CsvField, ImageEncoding, NumberEncoding, RawEncoding,
                                           TensorProtoEncoding)
from tfwarm_export.cli import main
from tfwarm_export.values.encoders import encode_array, encode_image, noise_image
from tfwarm_export.model.signatures import read_signatures
from tfwarm_export.values.synth import SAFE, record_values
from tfwarm_export.serving.warmup_file import read_logs, warmup_path

from conftest import copy_model
from models_decoders import BUILDERS, HAS_WEBP, decoder_zoo, example_with_image, tf1_jpeg_map_fn


@pytest.fixture(scope="session")
def decoder_models(tmp_path_factory) -> dict[str, str]:
    """The eight issue models, built once per session (read-only: copy before writing)."""
    root = tmp_path_factory.mktemp("decoders")
    return {name: build(root / name / "1") for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def zoo_src(tmp_path_factory) -> str:
    return decoder_zoo(tmp_path_factory.mktemp("zoo") / "1")


def _inputs(d: str, signature: str = "serving_default") -> dict[str, np.ndarray]:
    """alias -> values of the first record of ``signature`` in the written warmup file."""
    for log in read_logs(warmup_path(d)):
        req = log.predict_log.request
        if req.model_spec.signature_name == signature:
            return {k: tf.make_ndarray(v) for k, v in req.inputs.items()}
    raise AssertionError(f"no record for {signature}")


def _add_and_check(d: str, capsys, *extra: str) -> str:
    assert main(["add", d, *extra]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert main(["check", d]) == 0, capsys.readouterr().out
    return out


@pytest.mark.parametrize("name, strategy", [
    ("jpeg_map_fn", "decoded: DecodeJpeg 24x24x3"),
    ("decode_image_float", "decoded: DecodeImage any (JPEG) 16x16x3"),
    ("png_cond", "decoded: DecodePng 8x8x4"),
    ("base64_jpeg", "decoded: DecodeBase64 of DecodeJpeg 12x12x1"),
    ("csv", "decoded: DecodeCSV 4 fields [float32,int32,string?,float64]"),
    ("number_strings", "decoded: StringToNumber float32"),
    ("decode_raw", "decoded: DecodeRaw 16 x float32 (little-endian, fixed by Reshape)"),
    ("parse_tensor", "decoded: ParseTensor float32[8]"),
])
def test_tfwarm_add_no_options_then_check(decoder_models, tmp_path, capsys, name, strategy):
    d = copy_model(decoder_models[name], tmp_path)
    out = _add_and_check(d, capsys)
    assert strategy in out  # the report names the decoder per input
    assert tw.check(d).ok


def test_jpeg_values_decode_at_the_resize_target(decoder_models, tmp_path):
    d = copy_model(decoder_models["jpeg_map_fn"], tmp_path)
    report = tw.add_warmup(d, batch_sizes=[1, 4])
    (inp,) = report.plan.records[0].inputs
    assert inp.domain.encoding == ImageEncoding("DecodeJpeg", ("JPEG",), 24, 24, 3, False,
                                                "ResizeBilinear target")
    values = [tf.make_ndarray(log.predict_log.request.inputs["image_bytes"]) for log in read_logs(warmup_path(d))]
    assert [v.shape for v in values] == [(1,), (4,)]
    assert len({bytes(b) for b in values[1]}) == 4  # seeded noise: every image differs
    for b in values[1]:
        assert b[:2] == b"\xff\xd8" and tf.io.decode_jpeg(b).shape == (24, 24, 3)


def test_image_size_option_and_default_size_stays_small(decoder_models, tmp_path, capsys):
    d = copy_model(decoder_models["jpeg_map_fn"], tmp_path)
    assert main(["add", d, "--image-size", "image_bytes=64x48"]) == 0
    (b,) = _inputs(d)["image_bytes"]
    assert tf.io.decode_jpeg(b).shape == (64, 48, 3)
    plan = tw.plan(d, image_size=224)
    assert plan.records[0].inputs[0].domain.source == "decoded: DecodeJpeg 224x224x3"
    value = record_values(plan.records[0], 0)[0]["image_bytes"][0]
    assert len(value) < 12_000  # a few KB, not a raw 150 KB dump
    with pytest.raises(tw.TfwarmError, match="image_size key 'image_byte' names no input.*Did you mean"):
        tw.plan(d, image_size={"image_byte": (8, 8)})
    with pytest.raises(tw.TfwarmError, match=r"image_size\['image_bytes'\] must be"):
        tw.plan(d, image_size={"image_bytes": (0, 8)})
    with pytest.raises(SystemExit) as e:
        main(["inspect", d, "--image-size", "bad"])
    assert e.value.code == 2
    assert "argument --image-size: expected [ALIAS=]HxW" in capsys.readouterr().err


def test_decode_image_beside_float_input(decoder_models, tmp_path):
    d = copy_model(decoder_models["decode_image_float"], tmp_path)
    report = tw.add_warmup(d, batch_sizes=[2])
    inputs = {i.alias: i for i in report.plan.records[0].inputs}
    assert inputs["scale"].domain is None and inputs["image"].domain.encoding.op == "DecodeImage"
    vals = _inputs(d)
    assert vals["scale"].dtype == np.float32
    assert tf.io.decode_image(vals["image"][0]).shape == (16, 16, 3)


def test_png_through_cond_has_alpha(decoder_models, tmp_path):
    d = copy_model(decoder_models["png_cond"], tmp_path)
    tw.add_warmup(d, batch_sizes=[3])
    for b in _inputs(d)["png"]:
        assert b.startswith(b"\x89PNG") and tf.io.decode_png(b).shape == (8, 8, 4)


def test_base64_wraps_jpeg(decoder_models, tmp_path):
    d = copy_model(decoder_models["base64_jpeg"], tmp_path)
    tw.add_warmup(d, batch_sizes=[2])
    for b in _inputs(d)["b64"]:
        assert b"+" not in b and b"/" not in b  # web-safe alphabet
        inner = base64.urlsafe_b64decode(b)
        assert tf.io.decode_jpeg(inner).shape == (12, 12, 1)


def test_csv_lines_typed_with_optional_field_left_empty(decoder_models, tmp_path):
    d = copy_model(decoder_models["csv"], tmp_path)
    tw.add_warmup(d, batch_sizes=[6])
    lines = [b.decode() for b in _inputs(d)["line"]]
    fields = [ln.split(",") for ln in lines]
    assert {len(f) for f in fields} == {4}
    assert any(f[2] == "" for f in fields) and any(f[2] not in ("", '""') for f in fields)
    for f in fields:
        float(f[0]), int(f[1]), float(f[3])  # typed from the defaults' dtypes
        assert "." not in f[1]


def test_number_strings_batch_by_3(decoder_models, tmp_path):
    d = copy_model(decoder_models["number_strings"], tmp_path)
    tw.add_warmup(d, batch_sizes=[5])
    amounts = _inputs(d)["amounts"]
    assert amounts.shape == (5, 3)
    assert tf.strings.to_number(amounts).shape == (5, 3)


def test_decode_raw_sized_by_reshape(decoder_models, tmp_path):
    d = copy_model(decoder_models["decode_raw"], tmp_path)
    tw.add_warmup(d, batch_sizes=[3])
    raw = _inputs(d)["raw"]
    assert {len(b) for b in raw} == {64}  # 4x4 float32
    assert np.isfinite(np.frombuffer(raw[0], "<f4")).all()


def test_parse_tensor_shape_from_ensure_shape(decoder_models, tmp_path):
    d = copy_model(decoder_models["parse_tensor"], tmp_path)
    tw.add_warmup(d, batch_sizes=[2])
    for b in _inputs(d)["tensor"]:
        t = tf.io.parse_tensor(b, tf.float32)
        assert t.shape == (8,)


def test_same_seed_same_bytes(decoder_models, tmp_path):
    files = []
    for i in range(2):
        d = copy_model(decoder_models["jpeg_map_fn"], tmp_path / str(i))
        tw.add_warmup(d, batch_sizes=[1, 3])
        files.append(open(warmup_path(d), "rb").read())
    assert files[0] == files[1]


def test_safe_retry_uses_smallest_valid_values(decoder_models):
    want = {"jpeg_map_fn": ("image_bytes", lambda b: tf.io.decode_jpeg(b).shape == (1, 1, 3)),
            "csv": ("line", lambda b: b == b"0,0,,0"),
            "number_strings": ("amounts", lambda b: b == b"0"),
            "decode_raw": ("raw", lambda b: b == bytes(64))}
    for name, (alias, ok) in want.items():
        plan = tw.plan(decoder_models[name], batch_sizes=[2])
        values, how = record_values(plan.records[0], 0, SAFE)
        assert all(ok(b) for b in values[alias].ravel()), (name, values[alias])
        assert how[alias].startswith("safe: smallest valid: ")


def test_user_override_wins(decoder_models, tmp_path):
    d = copy_model(decoder_models["jpeg_map_fn"], tmp_path)
    mine = encode_image(noise_image(40, 40, 3, np.random.default_rng(1)), "JPEG")
    report = tw.add_warmup(d, overrides={"image_bytes": [mine]})
    assert report.plan.records[0].inputs[0].domain.user
    assert _inputs(d)["image_bytes"][0] == mine


def test_zoo_formats_branches_and_options(zoo_src, tmp_path):
    d = copy_model(zoo_src, tmp_path)
    sigs = ["gif", "bmp", *HAS_WEBP * ["webp"], "vectorized", "jpeg_or_png", "json_example", "padded_raw",
            "csv_options", "ids_as_strings"]
    report = tw.add_warmup(d, batch_sizes=[3], signatures=sigs)
    assert report.ok and tw.check(d).ok
    doms = {r.signature: r.inputs[0].domain for r in report.plan.records}
    assert doms["gif"].source == "decoded: DecodeGif 224x224x3"
    assert doms["bmp"].source == "decoded: DecodeBmp 224x224x4"
    assert doms["vectorized"].encoding.height == 20 and doms["vectorized"].encoding.exact  # EnsureShape
    assert doms["padded_raw"].encoding.fixed_length == 12 and not doms["padded_raw"].encoding.little_endian
    assert (doms["ids_as_strings"].encoding.domain.low, doms["ids_as_strings"].encoding.domain.high) == (0, 30)
    v = {s: _inputs(d, s) for s in sigs}
    assert v["gif"]["gif"][0].startswith(b"GIF8") and v["bmp"]["bmp"][0].startswith(b"BM")
    assert not HAS_WEBP or v["webp"]["webp"][0][8:12] == b"WEBP"
    assert tf.io.decode_jpeg(v["vectorized"]["jpeg"][0]).shape == (20, 30, 3)
    lines = [b.decode() for b in v["csv_options"]["line"]]
    assert all(len(ln.split(";")) == 4 for ln in lines) and any(ln.split(";")[0] == "NA" for ln in lines)
    ex = json.loads(v["json_example"]["json"][0])
    assert "age" in ex["features"]["feature"]
    assert {int(x) for x in v["ids_as_strings"]["ids"]} <= set(range(30))


def test_safe_retry_end_to_end_sends_a_1x1_image(zoo_src, tmp_path):
    """The model rejects 224x224 (an assert the analysis cannot read); the retry's 1x1 JPEG passes."""
    d = copy_model(zoo_src, tmp_path)
    report = tw.add_warmup(d, signatures=["small_only"])
    assert report.ok and report.results[0].inputs["jpeg"] == "safe: smallest valid: DecodeJpeg 1x1x3"
    assert tf.io.decode_jpeg(_inputs(d, "small_only")["jpeg"][0]).shape == (1, 1, 3)


def test_failure_names_decoder_and_fix(zoo_src, tmp_path):
    d = copy_model(zoo_src, tmp_path)
    with pytest.raises(tw.ReplayError) as e:
        tw.add_warmup(d, signatures=["needs_300"])
    msg = str(e.value)
    assert "feeds DecodeJpeg 224x224x3" in msg and "image_size={'needs_300/jpeg': (h, w)}" in msg
    assert not os.path.exists(warmup_path(d))
    assert tw.add_warmup(d, signatures=["needs_300"], image_size=(300, 8)).ok


def test_analysis_walks_into_while_and_if_bodies(decoder_models):
    model = read_signatures(decoder_models["png_cond"])
    enc = analysis.find_encoding(model.meta_graph, model.signatures["serving_default"].inputs["png"].name)
    assert enc.op == "DecodePng" and (enc.height, enc.width, enc.channels) == (8, 8, 4)
    model = read_signatures(decoder_models["jpeg_map_fn"])
    f = model.signatures["serving_default"].inputs["image_bytes"].name
    assert analysis.find_encoding(model.meta_graph, f, image_size=32).height == 32


def test_tf1_builder_map_fn_tensor_array(tmp_path, capsys):
    """TF1 control flow: TensorArrayScatterV3 -> while frame -> TensorArrayReadV3 -> DecodeJpeg."""
    d = tf1_jpeg_map_fn(tmp_path / "tf1" / "1")
    out = _add_and_check(d, capsys, "--batch-sizes", "1,3")
    assert "decoded: DecodeJpeg 20x20x3" in out


def test_tf_example_feature_the_graph_decodes(tmp_path, capsys):
    d = example_with_image(tmp_path / "ex" / "1")
    assert main(["add", d, "--batch-sizes", "3"]) == 0, capsys.readouterr().err
    assert "image/encoded: decoded: DecodeJpeg 14x14x3" in capsys.readouterr().out
    assert main(["check", d]) == 0
    report = tw.plan(d)
    (inp,) = report.records[0].inputs
    assert inp.kind == "examples" and inp.feature_domains["image/encoded"].source == "decoded: DecodeJpeg 14x14x3"
    for b in _inputs(d)["examples"]:
        jpeg = tf.train.Example.FromString(b).features.feature["image/encoded"].bytes_list.value[0]
        assert tf.io.decode_jpeg(jpeg).shape == (14, 14, 3)


@pytest.mark.compat
@pytest.mark.parametrize("fmt, decode", [
    ("JPEG", tf.io.decode_jpeg), ("PNG", tf.io.decode_png), ("GIF", tf.io.decode_gif),
    ("BMP", tf.io.decode_bmp),
    pytest.param("WEBP", getattr(tf.io, "decode_webp", None), marks=pytest.mark.skipif(
        not hasattr(tf.io, "decode_webp"), reason=f"tf.io.decode_webp is not in TF {tf.__version__}"))])
def test_encoders_write_what_tf_decodes(fmt, decode):
    pixels = noise_image(5, 7, 3, np.random.default_rng(0))
    shape = decode(encode_image(pixels, fmt)).shape
    assert tuple(shape)[-3:] == (5, 7, 3)


def test_encode_array_shapes_and_types():
    rng = np.random.default_rng(0)
    csv = CsvEncoding((CsvField(tf.int64), CsvField(tf.string, required=False, default=b"x"),
                       CsvField(None, required=False), CsvField(tf.float32)), delim="|", na_value="?")
    lines = encode_array(csv, (4,), rng)
    parsed = tf.io.decode_csv(lines, [tf.constant([], tf.int64), ["x"], tf.constant([], tf.float32)],
                              field_delim="|", na_value="?", select_cols=[0, 1, 3])
    assert parsed[1].numpy()[1] == b"x"  # an optional field left out takes its default
    nums = encode_array(NumberEncoding(tf.int32), (2, 3), rng)
    assert tf.strings.to_number(nums, tf.int32).shape == (2, 3)
    raw = encode_array(RawEncoding(tf.int16, 5, little_endian=False), (2,), rng)
    assert tf.io.decode_raw(raw, tf.int16, little_endian=False).shape == (2, 5)
    t = encode_array(TensorProtoEncoding(tf.string, (2, 2)), (1,), rng)[0]
    assert tf.io.parse_tensor(t, tf.string).shape == (2, 2)


def test_every_encoding_in_specs_has_a_registered_encoder():
    """The encodings are found in ``specs/encodings.py`` itself (every dataclass that describes a decoder's
    bytes), and a fresh process that imports only the registry sees an encoder for each."""
    code = ("import dataclasses, typing\n"
            "from tfwarm_export.specs import encodings\n"
            "from tfwarm_export.values.encoder_registry import registered_types\n"
            "kinds = {c for c in vars(encodings).values() if isinstance(c, type) and dataclasses.is_dataclass(c)"
            " and c.__module__ == encodings.__name__ and hasattr(c, 'describe')}\n"
            "union = set(typing.get_args(encodings.Encoding))\n"
            "assert kinds == union, kinds ^ union\n"
            "print(len(kinds), sorted(k.__name__ for k in kinds - registered_types()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["12", "[]"], proc.stdout


def test_a_new_encoding_needs_only_its_registered_encoder():
    from tfwarm_export.errors import PlanError
    from tfwarm_export.values.encoder_registry import encode_array, encoder_for, register_encoder

    @dataclasses.dataclass(frozen=True)
    class Hex:  # a decoder the package does not know: bytes as hex digits
        count: int
        op: str = "HexDecode"

        def describe(self) -> str:
            return f"hex {self.count}"

    with pytest.raises(PlanError, match=r"no encoder is registered for hex 2 \(Hex\).*--override"):
        encode_array(Hex(2), (1,), np.random.default_rng(0))
    register_encoder(Hex)(lambda enc, rng, row: rng.bytes(enc.count).hex().encode())
    out = encode_array(Hex(2), (3,), np.random.default_rng(0))
    assert [len(v) for v in out] == [4, 4, 4] and all(bytes.fromhex(v.decode()) for v in out)
    with pytest.raises(ValueError, match="Hex already has an encoder"):
        register_encoder(Hex)(lambda enc, rng, row: b"")

    @dataclasses.dataclass(frozen=True)
    class Octal(NumberEncoding):  # a subclass finds its base's encoder
        pass

    assert encoder_for(Octal) is encoder_for(NumberEncoding) is not None


def test_json_examples_inside_a_feature_are_written():
    """Base64 of a JSON tf.Example inside a tf.Example feature: the JSON encoder is registered like
    any other, so the tf.Example synthesis reaches it too (it used to be refused)."""
    from tfwarm_export.specs.domains import Domain
    from tfwarm_export.specs.encodings import Base64Encoding, JsonExampleEncoding
    from tfwarm_export.specs.example_spec import DenseFeature, ExampleSpec
    from tfwarm_export.values.examples import feature_values

    spec = ExampleSpec(dense=(DenseFeature("age", tf.int64, ()),))
    domain = Domain(encoding=Base64Encoding(JsonExampleEncoding(spec)))
    values = feature_values(tf.string, 2, np.random.default_rng(3), domain)
    protos = tf.io.decode_json_example(tf.io.decode_base64(tf.constant(values)))
    parsed = tf.io.parse_example(protos, {"age": tf.io.FixedLenFeature([], tf.int64)})
    assert parsed["age"].shape == (2,)


def _user_jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(42)
    return [encode_image(noise_image(30, 40, 3, rng), "JPEG") for _ in range(n)]


def test_shapes_only_learns_image_form_and_writes_no_user_bytes(decoder_models, tmp_path):
    photos = _user_jpegs(6)
    d = copy_model(decoder_models["jpeg_map_fn"], tmp_path / "a")
    report = tw.add_warmup(d, batch_sizes=[1, 4], dataset={"image_bytes": np.array(photos, dtype=object)},
                           privacy="shapes_only")
    assert report.ok
    written = [b for log in read_logs(warmup_path(d))
               for b in tf.make_ndarray(log.predict_log.request.inputs["image_bytes"])]
    assert len(written) == 5 and not set(written) & set(photos)
    for b in written:  # the learned form: JPEG, 30x40, RGB
        assert tf.io.decode_jpeg(b).shape == (30, 40, 3)
    d = copy_model(decoder_models["jpeg_map_fn"], tmp_path / "b")
    tw.add_warmup(d, dataset={"image_bytes": np.array(photos, dtype=object)})  # rows: copied, and said so
    assert _inputs(d)["image_bytes"][0] in photos


def test_shapes_only_base64_images(decoder_models, tmp_path):
    user = [base64.urlsafe_b64encode(tf.io.encode_jpeg(np.full((9, 9, 1), i * 20, np.uint8)).numpy())
            for i in range(4)]
    d = copy_model(decoder_models["base64_jpeg"], tmp_path)
    assert tw.add_warmup(d, batch_sizes=[3], dataset={"b64": np.array(user, dtype=object)},
                         privacy="shapes_only").ok
    for b in _inputs(d)["b64"]:
        assert b not in user and tf.io.decode_jpeg(base64.urlsafe_b64decode(b)).shape == (9, 9, 1)


def test_shapes_only_csv_and_number_strings(decoder_models, tmp_path):
    lines = [f"{10 + i}.25,{i},{['paris', 'rome', ''][i % 3]},{i * 1.5:.1f}".encode() for i in range(9)]
    d = copy_model(decoder_models["csv"], tmp_path / "csv")
    assert tw.add_warmup(d, batch_sizes=[6], dataset={"line": np.array(lines, dtype=object)},
                         privacy="shapes_only").ok
    user_fields = {f for ln in lines for f in ln.decode().split(",")} - {"", "paris", "rome", "0"}
    out = [b.decode().split(",") for b in _inputs(d)["line"]]
    assert {len(f) for f in out} == {4} and any(f[2] == "" for f in out)
    assert all(f[2] in ("", "paris", "rome") for f in out)  # categories seen twice, nothing else
    assert not {x for f in out for x in (f[0], f[3])} & user_fields
    assert all(10 <= float(f[0]) <= 18.25 and len(f[0].split(".")[1]) == 2 for f in out)

    amounts = np.array([[f"{a}.{b:02d}" for a, b in ((i, 3 * i), (i + 7, i), (2 * i, 50))]
                        for i in range(1, 9)], dtype=object).astype(bytes).astype(object)
    d = copy_model(decoder_models["number_strings"], tmp_path / "num")
    assert tw.add_warmup(d, batch_sizes=[4], dataset={"amounts": amounts}, privacy="shapes_only").ok
    got = _inputs(d)["amounts"]
    assert got.shape == (4, 3) and not set(got.ravel()) & set(amounts.ravel())
    assert all(1.0 <= float(x) <= 16.5 for x in got.ravel())


_CSV_TYPES = [tf.float32, tf.float64, tf.int32, tf.int64, tf.string]
csv_fields = st.lists(st.tuples(st.sampled_from(_CSV_TYPES), st.booleans()), min_size=1, max_size=5)


@settings(max_examples=12, deadline=None)
@given(fields=csv_fields, delim=st.sampled_from([",", ";", "|", "\t"]), quote=st.booleans(),
       na=st.sampled_from(["", "NA"]), skip=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_property_csv_lines_parse_with_the_models_options(fields, delim, quote, na, skip, seed):
    """Any record_defaults / delimiter / quoting / na_value / select_cols: every line parses."""
    defaults, cols = [], []
    for dtype, required in fields:
        defaults.append(tf.constant([], dtype) if required else tf.constant([b"d" if dtype == tf.string else 1],
                                                                           dtype))
        cols.append(CsvField(dtype, required, None if required else 1))
    select = list(range(skip, skip + len(fields))) if skip else []
    layout = [CsvField(None, False)] * skip + cols if skip else cols
    enc = CsvEncoding(tuple(layout), delim, quote, na)
    lines = encode_array(enc, (4,), np.random.default_rng(seed))
    parsed = tf.io.decode_csv(lines, defaults, field_delim=delim, use_quote_delim=quote, na_value=na,
                              select_cols=select or None)
    assert len(parsed) == len(fields) and all(p.shape == (4,) for p in parsed)
    safe = encode_array(enc.smallest(), (2,), np.random.default_rng(seed))
    tf.io.decode_csv(safe, defaults, field_delim=delim, use_quote_delim=quote, na_value=na,
                     select_cols=select or None)


@settings(max_examples=8, deadline=None)
@given(dtype=st.sampled_from([tf.int32, tf.int64, tf.float32, tf.float64]),
       low=st.one_of(st.none(), st.integers(-50, 50)), width=st.integers(1, 100), seed=st.integers(0, 2**16))
def test_property_number_strings_parse_within_domain(dtype, low, width, seed):
    from tfwarm_export.specs.domains import Domain

    dom = None if low is None else Domain(low=low, high=low + width)
    enc = NumberEncoding(dtype, dom)
    values = tf.strings.to_number(encode_array(enc, (6,), np.random.default_rng(seed)), dtype).numpy()
    if dom is not None:
        assert (values >= dom.low).all() and (values < dom.high).all()
    assert tf.strings.to_number(encode_array(enc.smallest(), (1,), np.random.default_rng(0)), dtype).shape == (1,)
