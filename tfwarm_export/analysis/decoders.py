"""Decoders a string input feeds: encoded images, CSV lines, numbers as text, base64, raw bytes.

The most common serving input after tf.Example is a string the model decodes
itself (TF Serving's ResNet example takes JPEG bytes; REST clients send base64;
tabular models take CSV lines). Random strings fail every such decoder, so this
module follows a string input forward, through ``tf.map_fn``'s TensorList
plumbing (``TensorListFromTensor`` -> ``While`` body -> ``TensorListGetItem``),
``If``/``Case`` branches and function calls, to the decoder op, and describes
the encoding that op accepts (an ``Encoding``, from ``specs/encodings.py``). WAV, compressed, protobuf and
strict Unicode decoders are described in ``byte_decoders.py``; decoders whose
output is bytes again (base64, ``DecodeCompressed``, a transcode) wrap the
encoding of whatever decodes their output. Producing the bytes is the
values stage's job (``values/encoders.py``); this module only reads the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfwarm_export.analysis.byte_decoders import (BYTE_DECODERS, compressed_encoding, proto_encoding,
                                                  unicode_encoding, wav_encoding)
from tfwarm_export.analysis.index import IDENTITY_OPS, GraphIndex, Node, Ref, index_for
from tfwarm_export.analysis.parse_specs import find_parsers, merge_specs
from tfwarm_export.analysis.value_domains import find_value_domains, locate_parsers, value_domain
from tfwarm_export.specs.domains import Domain
from tfwarm_export.specs.encodings import (Base64Encoding, CsvEncoding, CsvField, Encoding, ImageEncoding,
                                           JsonExampleEncoding, NumberEncoding, RawEncoding, TensorProtoEncoding)
from tfwarm_export.specs.example_spec import ExampleSpec

DEFAULT_IMAGE_SIZE = (224, 224)
"""Image height/width when nothing in the graph (resize, crop, reshape) says otherwise."""

DEFAULT_RAW_ELEMENTS = 16
"""Elements per string for ``DecodeRaw`` when no following ``Reshape`` fixes the count."""

IMAGE_DECODERS = {  # op -> formats it accepts, preferred first
    "DecodeJpeg": ("JPEG",), "DecodeAndCropJpeg": ("JPEG",), "DecodePng": ("PNG",),
    "DecodeGif": ("GIF",), "DecodeBmp": ("BMP",), "DecodeWebP": ("WEBP",),
    "DecodeImage": ("JPEG", "PNG", "GIF", "BMP"),
}
OTHER_DECODERS = frozenset({"DecodeCSV", "StringToNumber", "DecodeBase64", "DecodeRaw",
                            "DecodePaddedRaw", "ParseTensor", "DecodeJSONExample"})
DECODER_OPS = frozenset(IMAGE_DECODERS) | OTHER_DECODERS | BYTE_DECODERS

_MAX_CHANNELS = {"JPEG": 3, "PNG": 4, "GIF": 3, "BMP": 4, "WEBP": 4}


# --------------------------------------------------------------------------- walks


_CONTENT_PASS_FIRST = frozenset({
    "Reshape", "ExpandDims", "Squeeze", "StridedSlice", "Slice", "GatherV2", "Gather", "GatherNd",
    "Transpose", "Tile", "BroadcastTo", "ReverseV2", "StringStrip", "StaticRegexReplace",
    "RegexReplace", "TensorListFromTensor", "TensorListGetItem", "TensorListStack",
    "TensorListGather", "TensorListSplit", "EnsureShape",
})


def content_passthrough(node: Node, pos: int) -> Sequence[int]:
    """Outputs that carry the input's string elements unchanged (batching, slicing, map_fn)."""
    op = node.op
    if op in IDENTITY_OPS or op in _CONTENT_PASS_FIRST:
        return (0,) if pos == 0 else ()
    if op == "IdentityN":
        return (pos,)
    if op == "TensorListSetItem":
        return (0,) if pos == 2 else ()
    if op == "TensorListPopBack":
        return (1,) if pos == 0 else ()
    if op == "ConcatV2":
        return (0,) if pos < len(node.inputs) - 1 else ()
    if op == "Pack":
        return (0,)
    if op == "Unpack":
        n = node.attr("num")
        return tuple(range(int(n.i))) if pos == 0 and n is not None else ()
    if op in ("Split", "SplitV"):
        n = node.attr("num_split")
        return tuple(range(int(n.i))) if pos == (1 if op == "Split" else 0) and n is not None else ()
    if op in ("Select", "SelectV2"):
        return (0,) if pos in (1, 2) else ()
    if op in ("Switch", "RefSwitch"):
        return (0, 1) if pos == 0 else ()
    if op in ("Merge", "RefMerge"):
        return (0,)
    if op in ("StringSplitV2", "StringSplit"):  # a single-token string splits into itself
        return (1,) if pos == 0 else ()
    return _tensor_array_flow(node, pos)


# TF1 map_fn: values go into a TensorArray (scatter/write) and come out of reads/gathers that
# take the writer's flow tensor; following the flow links each read to what was written.
_TA_WRITES = frozenset({"TensorArrayScatterV3", "TensorArrayScatterV2", "TensorArrayWriteV3",
                        "TensorArrayWriteV2"})
_TA_READS = frozenset({"TensorArrayReadV3", "TensorArrayReadV2", "TensorArrayGatherV3",
                       "TensorArrayGatherV2"})


def _tensor_array_flow(node: Node, pos: int) -> Sequence[int]:
    if node.op in _TA_WRITES and pos == 2:
        return (0,)
    if node.op in _TA_READS and pos == 2:
        return (0,)
    return ()


_IMAGE_PASS_FIRST = frozenset({
    "Cast", "ExpandDims", "Squeeze", "ClipByValue", "ReverseV2", "AdjustContrastv2",
    "AdjustSaturation", "AdjustHue", "TensorListStack", "TensorListGetItem", "TensorListGather",
    "RGBToHSV", "HSVToRGB", "Round", "Floor", "Neg", "Relu", "Relu6",
})
_ELEMENTWISE = frozenset({"Sub", "Mul", "RealDiv", "Div", "AddV2", "Add", "Maximum", "Minimum",
                          "TruncateDiv", "FloorDiv", "SquaredDifference", "BiasAdd"})
_RESIZE_OPS = frozenset({"ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea",
                         "ScaleAndTranslate", "ResizeBilinearV2"})


def _image_passthrough(node: Node, pos: int) -> Sequence[int]:
    """Outputs that keep the decoded image's height and width (dtype casts, scaling, map_fn)."""
    if node.op in IDENTITY_OPS or node.op in _IMAGE_PASS_FIRST:
        return (0,) if pos == 0 else ()
    if node.op == "IdentityN":
        return (pos,)
    if node.op in _ELEMENTWISE:
        return (0,)
    if node.op == "TensorListSetItem":
        return (0,) if pos == 2 else ()
    if node.op in ("Switch", "RefSwitch"):
        return (0, 1) if pos == 0 else ()
    if node.op in ("Merge", "RefMerge"):
        return (0,)
    return _tensor_array_flow(node, pos)


def _int_list(v: np.ndarray | None) -> list[int] | None:
    if v is None or v.dtype.kind not in "iu":
        return None
    return [int(x) for x in np.ravel(v)]


def _hw_of_shape(dims: Sequence[int | None]) -> tuple[int, int, int | None] | None:
    """(h, w, c) of a rank-3/4 image shape whose h and w are known and positive."""
    if len(dims) not in (3, 4):
        return None
    h, w, c = dims[-3], dims[-2], dims[-1]
    if h is None or w is None or h <= 0 or w <= 0:
        return None
    return h, w, (c if c is not None and c > 0 else None)


@dataclass
class _Sizes:
    exact: tuple[int, int, str] | None = None
    target: tuple[int, int, str] | None = None
    minimum: tuple[int, int, str] | None = None
    channels: int | None = None

    def need_at_least(self, h: int, w: int, why: str) -> None:
        if self.minimum is None or h > self.minimum[0] or w > self.minimum[1]:
            mh, mw = (self.minimum[0], self.minimum[1]) if self.minimum else (0, 0)
            self.minimum = (max(h, mh), max(w, mw), why)


def _image_sizes(idx: GraphIndex, decoder: Node) -> _Sizes:
    """What the ops after a decoder say about the image's size."""
    sizes = _Sizes()
    if decoder.op == "DecodeAndCropJpeg" and len(decoder.inputs) > 1:
        win = _int_list(idx.const_value(decoder.inputs[1]))
        if win is not None and len(win) == 4:
            sizes.need_at_least(win[0] + win[2], win[1] + win[3], "DecodeAndCropJpeg crop_window")
    for node, pos in idx.walk_forward((decoder.scope, decoder.name, 0), _image_passthrough):
        if pos != 0:
            continue
        if node.op in _RESIZE_OPS and len(node.inputs) > 1 and sizes.target is None:
            hw = _int_list(idx.const_value(node.inputs[1]))
            if hw is not None and len(hw) == 2 and min(hw) > 0:
                sizes.target = (hw[0], hw[1], f"{node.op} target")
        elif node.op == "CropAndResize" and len(node.inputs) > 3 and sizes.target is None:
            hw = _int_list(idx.const_value(node.inputs[3]))
            if hw is not None and len(hw) == 2 and min(hw) > 0:
                sizes.target = (hw[0], hw[1], "CropAndResize crop_size")
        elif node.op == "EnsureShape" and sizes.exact is None:
            s = node.attr("shape")
            if s is not None and not s.shape.unknown_rank:
                got = _hw_of_shape([d.size if d.size >= 0 else None for d in s.shape.dim])
                if got is not None:
                    sizes.exact = (got[0], got[1], "EnsureShape")
                    sizes.channels = sizes.channels or got[2]
        elif node.op == "Reshape" and len(node.inputs) > 1 and sizes.exact is None:
            dims = _int_list(idx.const_value(node.inputs[1]))
            got = _hw_of_shape(dims) if dims is not None else None
            if got is not None:
                sizes.exact = (got[0], got[1], "Reshape")
                sizes.channels = sizes.channels or got[2]
        elif node.op == "Slice" and len(node.inputs) > 2:  # tf.image.crop_to_bounding_box
            begin = _int_list(idx.const_value(node.inputs[1]))
            size = _int_list(idx.const_value(node.inputs[2]))
            if begin and size and len(begin) == len(size) and len(size) in (3, 4):
                h = begin[-3] + size[-3] if size[-3] > 0 else 1
                w = begin[-2] + size[-2] if size[-2] > 0 else 1
                sizes.need_at_least(h, w, "crop")
    return sizes


def _image_encoding(idx: GraphIndex, node: Node, image_size: tuple[int, int] | None) -> ImageEncoding:
    sizes = _image_sizes(idx, node)
    ch_attr = node.attr("channels")
    channels = int(ch_attr.i) if ch_attr is not None else 0
    if channels == 0:
        channels = sizes.channels or 3
    formats = IMAGE_DECODERS[node.op]
    if node.op == "DecodeImage":  # any format: the first that can hold these channels
        formats = tuple(f for f in formats if _MAX_CHANNELS[f] >= channels) or ("PNG",)
        if channels == 4:
            formats = ("PNG",) + tuple(f for f in formats if f != "PNG")
    exact = False
    if image_size is not None:
        h, w, why = int(image_size[0]), int(image_size[1]), "image_size option"
    elif sizes.exact is not None:
        (h, w, why), exact = sizes.exact, True
    elif sizes.target is not None:
        h, w, why = sizes.target
    else:
        h, w, why = DEFAULT_IMAGE_SIZE[0], DEFAULT_IMAGE_SIZE[1], "default"
    if sizes.minimum is not None and image_size is None and not exact:
        h, w = max(h, sizes.minimum[0]), max(w, sizes.minimum[1])
    if formats[0] in ("GIF", "JPEG") and channels == 4:
        channels = 3
    return ImageEncoding(node.op, formats, h, w, channels, exact, why)


def _csv_encoding(idx: GraphIndex, node: Node, export_dir: str | None) -> CsvEncoding | None:
    groups = idx.input_groups(node)
    defaults = groups.get("record_defaults", [])
    types = [tf.dtypes.as_dtype(t) for t in node.attr("OUT_TYPE").list.type] if node.attr("OUT_TYPE") else []
    if not defaults or len(defaults) != len(types):
        return None
    used: list[CsvField] = []
    for i, (ref, dtype) in enumerate(zip(defaults, types)):
        v = idx.const_value(ref)
        required = v is None or v.size == 0
        default = None if required else np.ravel(v)[0]
        dom = value_domain(idx, idx.output_ref(node, "output", i), export_dir)
        used.append(CsvField(dtype, required, default, dom))
    select = list(node.attr("select_cols").list.i) if node.attr("select_cols") is not None else []
    if select:
        if len(select) != len(used):
            return None
        fields = [CsvField(None, False)] * (max(select) + 1)
        for col, f in zip(select, used):
            fields[col] = f
    else:
        fields = used
    delim = node.attr("field_delim").s.decode("utf-8", "replace") if node.attr("field_delim") else ","
    na = node.attr("na_value").s.decode("utf-8", "replace") if node.attr("na_value") else ""
    quote = bool(node.attr("use_quote_delim").b) if node.attr("use_quote_delim") is not None else True
    return CsvEncoding(tuple(fields), delim or ",", quote, na)


def _raw_encoding(idx: GraphIndex, node: Node) -> RawEncoding:
    dtype = tf.dtypes.as_dtype(node.attr("out_type").type)
    little = bool(node.attr("little_endian").b) if node.attr("little_endian") is not None else True
    fixed = None
    if node.op == "DecodePaddedRaw" and len(node.inputs) > 1:
        v = _int_list(idx.const_value(node.inputs[1]))
        fixed = v[0] if v else None
    count, exact = DEFAULT_RAW_ELEMENTS, False
    for consumer, pos in idx.walk_forward((node.scope, node.name, 0), _image_passthrough):
        if consumer.op == "Reshape" and pos == 0 and len(consumer.inputs) > 1:
            dims = _int_list(idx.const_value(consumer.inputs[1]))
            if dims and all(d != 0 for d in dims):
                count, exact = int(np.prod([d for d in dims if d > 0])), True
                break
    if fixed is not None:
        count = max(1, fixed // dtype.size)
    return RawEncoding(dtype, count, little, fixed, exact, op=node.op)


def _tensor_encoding(idx: GraphIndex, node: Node) -> TensorProtoEncoding:
    dtype = tf.dtypes.as_dtype(node.attr("out_type").type)
    shape: tuple[int, ...] = (4,)
    for consumer, pos in idx.walk_forward((node.scope, node.name, 0), _image_passthrough):
        if pos != 0:
            continue
        if consumer.op == "EnsureShape":
            s = consumer.attr("shape")
            if s is not None and not s.shape.unknown_rank:
                shape = tuple(d.size if d.size >= 0 else 4 for d in s.shape.dim)
                break
        if consumer.op == "Reshape" and len(consumer.inputs) > 1:
            dims = _int_list(idx.const_value(consumer.inputs[1]))
            if dims is not None:
                shape = tuple(d if d >= 0 else 1 for d in dims)
                break
    return TensorProtoEncoding(dtype, shape)


def _json_example_encoding(idx: GraphIndex, node: Node, export_dir: str | None) -> JsonExampleEncoding | None:
    matches = find_parsers(idx, (node.scope, node.name, 0))
    if not matches:
        return None
    spec = merge_specs([m.spec for m in matches])
    if spec.is_sequence:
        return None  # DecodeJSONExample only yields tf.Example
    domains = find_value_domains(idx, {}, spec, export_dir=export_dir)
    return JsonExampleEncoding(spec, tuple(sorted(domains.items())))


def _encoding_at(idx: GraphIndex, node: Node, export_dir: str | None,
                 image_size: tuple[int, int] | None, depth: int) -> Encoding | None:
    op = node.op
    if op in IMAGE_DECODERS:
        return _image_encoding(idx, node, image_size)
    if op == "DecodeCSV":
        return _csv_encoding(idx, node, export_dir)
    if op == "StringToNumber":
        dtype = tf.dtypes.as_dtype(node.attr("out_type").type)
        return NumberEncoding(dtype, value_domain(idx, (node.scope, node.name, 0), export_dir))
    if op == "DecodeBase64":
        inner = _find(idx, (node.scope, node.name, 0), export_dir, image_size, depth + 1)
        return Base64Encoding(inner)
    if op in ("DecodeRaw", "DecodePaddedRaw"):
        return _raw_encoding(idx, node)
    if op == "ParseTensor":
        return _tensor_encoding(idx, node)
    if op == "DecodeJSONExample":
        return _json_example_encoding(idx, node, export_dir)
    if op == "DecodeWav":
        return wav_encoding(idx, node)
    if op == "DecodeProtoV2":
        return proto_encoding(node)
    if op in ("DecodeCompressed", "UnicodeTranscode"):  # bytes again: what decodes them next
        inner = _find(idx, (node.scope, node.name, 0), export_dir, image_size, depth + 1)
        return (compressed_encoding(node, inner) if op == "DecodeCompressed"
                else unicode_encoding(node, inner))
    if op in ("UnicodeDecode", "UnicodeDecodeWithOffsets"):
        return unicode_encoding(node, None)
    return None


def _merge(found: list[Encoding]) -> Encoding:
    """One encoding every decoder reached accepts (images: the formats they share)."""
    first = found[0]
    if isinstance(first, ImageEncoding):
        images = [e for e in found if isinstance(e, ImageEncoding)]
        shared = [f for f in first.formats if all(f in e.formats for e in images)]
        exact = next((e for e in images if e.exact), None)
        base = exact or first
        # Decoders in exclusive branches (is_jpeg ? decode_jpeg : decode_png) share no format:
        # the first one's format reaches its own branch, which is enough.
        return replace(base, formats=tuple(shared) or base.formats)
    return first


def _find(idx: GraphIndex, start: Ref, export_dir: str | None, image_size: tuple[int, int] | None,
          depth: int = 0) -> Encoding | None:
    if depth > 4:
        return None
    found: list[Encoding] = []
    seen = set()
    for node, pos in idx.walk_forward(start, content_passthrough):
        if pos != 0 or node.op not in DECODER_OPS or node.key in seen:
            continue
        seen.add(node.key)
        enc = _encoding_at(idx, node, export_dir, image_size, depth)
        if enc is not None:
            found.append(enc)
    return _merge(found) if found else None


def find_encoding(meta_graph_def, tensor_name: str, export_dir: str | None = None,
                  image_size: tuple[int, int] | int | None = None) -> Encoding | None:
    """The encoding the decoder(s) fed by string tensor ``tensor_name`` accept, or None.

    ``image_size`` (``(h, w)`` or one int for both) replaces the size found in
    the graph for images.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    idx = index_for(meta_graph_def)
    start = idx.tensor_ref(tensor_name)
    return None if start is None else _find(idx, start, export_dir, image_size)


def _domain(enc: Encoding) -> Domain:
    small = enc.smallest()
    return Domain(encoding=enc, source=f"decoded: {enc.describe()}",
                  safe=Domain(encoding=small, source=f"smallest valid: {small.describe()}"))


def find_decoder_domain(meta_graph_def, tensor_name: str, export_dir: str | None = None,
                        image_size: tuple[int, int] | int | None = None) -> Domain | None:
    """A ``Domain`` whose values the decoders after ``tensor_name`` accept, or None.

    ``source`` names the decoder (``decoded: DecodeJpeg 224x224x3``); ``safe``
    is its smallest valid value (a 1x1 image, a line of defaults, "0").
    """
    enc = find_encoding(meta_graph_def, tensor_name, export_dir, image_size)
    return None if enc is None else _domain(enc)


def find_feature_decoder_domains(meta_graph_def, example_spec: ExampleSpec, export_dir: str | None = None,
                                 image_size: tuple[int, int] | int | None = None) -> dict[str, Domain]:
    """Decoder domains of tf.Example string features (``image/encoded`` -> ``DecodeJpeg``),
    keyed by ``example_spec.domain_key``: the graph parses the example, then decodes the feature.
    ``image_size`` may be a dict keyed by feature key."""
    idx = index_for(meta_graph_def)
    out: dict[str, Domain] = {}
    for m in locate_parsers(idx, example_spec):
        for (fl, key), ref in sorted(m.values.items()):
            size = image_size.get(key) if isinstance(image_size, Mapping) else image_size
            if isinstance(size, int):
                size = (size, size)
            enc = _find(idx, ref, export_dir, size)
            if enc is not None and not isinstance(enc, JsonExampleEncoding):
                out.setdefault(example_spec.domain_key(key, fl), _domain(enc))
    return out


__all__ = ["find_encoding", "find_decoder_domain", "find_feature_decoder_domains", "DECODER_OPS",
           "IMAGE_DECODERS", "DEFAULT_IMAGE_SIZE", "content_passthrough"]
