"""Static analysis of a SavedModel graph: one module per input kind over one ``GraphIndex``.

``index`` builds the shared index (nodes, functions, call edges, constant folding);
each other module answers one question about an input by walking it:
``parse_specs`` (tf.Example features), ``value_domains`` (ids, vocabularies, bounds),
``stateful`` (ops that change model state), ``decoders`` (images, CSV, numbers,
base64, raw bytes a string input is decoded as; ``byte_decoders`` for WAV, compressed,
protobuf and Unicode), ``guards`` (regex, length and membership checks an input must pass),
``consumer_shapes`` (shapes the consumers of an undeclared input need), ``op_catalogue``
(every string-taking TF op classified: decoder, format-free, guard, unsupported),
``rejections`` (the op a failing value met, and the inputs that reach it), ``xla`` (XLA
compilation per shape),
``composites`` (which flat aliases form one ragged/sparse tensor), ``tensor_facts``
(dtype/shape the graph gives a fed tensor), ``graph_eval`` (numpy evaluation of shapes and small
values for one request), ``assert_conditions``/``windows``/``input_relations`` (the rules Asserts,
constant windows and ops combining inputs state) and ``constraint_solver`` (sizes and values
that satisfy them). A new input kind is a new module here.

Results are facts in the shared types of ``specs/`` (``Domain``, ``ExampleSpec``, the
encodings of ``specs/encodings.py``); this package imports only the leaves (today, only
``specs/``), so ``values/`` and the planner read them without anything reaching back up.
A new decoder is a reader here (named in ``decoders.py``'s op dispatch, whose op set the
op catalogue test checks), its encoding type in ``specs/encodings.py``, and one encoder
registered for that type in ``values/`` (``@register_encoder``); no ``isinstance`` chain
to extend.
"""
from tfwarm_export.analysis.composites import Component, CompositeSpec, find_composites
from tfwarm_export.analysis.constraint_solver import InputVar, Solved, explain as explain_constraint
from tfwarm_export.analysis.constraint_solver import solve as solve_constraints
from tfwarm_export.analysis.consumer_shapes import ConsumerShape, find_consumer_shape
from tfwarm_export.analysis.input_relations import (INDEX, ROW_LENGTHS, ROW_SPLITS, SEGMENT_IDS, SPARSE,
                                                    VALUE_ROWIDS, Role)
from tfwarm_export.analysis.decoders import (find_decoder_domain, find_encoding,
                                             find_feature_decoder_domains)
from tfwarm_export.analysis.guards import find_guard_domain
from tfwarm_export.analysis.index import GraphIndex, index_for
from tfwarm_export.analysis.op_catalogue import (OpClass, StringUse, classify, find_string_uses,
                                                 find_unsupported_use)
from tfwarm_export.analysis.parse_specs import find_example_spec
from tfwarm_export.analysis.rejections import Rejection, find_rejection
from tfwarm_export.analysis.stateful import find_stateful_ops, is_stateful_op
from tfwarm_export.analysis.unservable import UNSERVABLE_OPS, find_unservable_op
from tfwarm_export.analysis.value_domains import find_value_domains
from tfwarm_export.analysis.xla import find_xla_compilation, xla_shape_warning

__all__ = ["GraphIndex", "index_for", "find_example_spec", "find_value_domains",
           "find_stateful_ops", "is_stateful_op", "find_decoder_domain", "find_encoding",
           "find_feature_decoder_domains", "find_xla_compilation", "xla_shape_warning",
           "Component", "CompositeSpec", "find_composites", "find_guard_domain",
           "find_consumer_shape", "ConsumerShape", "OpClass", "StringUse", "classify",
           "find_string_uses", "find_unsupported_use", "Rejection", "find_rejection",
           "InputVar", "Solved", "solve_constraints", "explain_constraint", "Role", "ROW_SPLITS",
           "ROW_LENGTHS", "VALUE_ROWIDS", "SEGMENT_IDS", "INDEX", "SPARSE", "find_unservable_op",
           "UNSERVABLE_OPS"]
