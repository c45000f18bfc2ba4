"""tfwarm_export: ship every SavedModel with a correct TF Serving warmup file.

    import tfwarm_export
    report = tfwarm_export.add_warmup("export/1", batch_sizes=[1, 8, 32])
    print(report.summary())
"""
import importlib

from tfwarm_export._support.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before any module below imports TensorFlow

# ruff: noqa: E402
from tfwarm_export.api import add_warmup, build_logs, check, plan
from tfwarm_export.serving.batching import BatchingConfig, load_batching_parameters, parse_batching_parameters
from tfwarm_export.config import WarmupConfig
from tfwarm_export.specs.domains import Domain
from tfwarm_export.errors import (BatchingError, ConfigKeyError, DatasetError, ModelConfigError,
                                  OpLibraryError, OptionError, PlanError, ReplayError, SavedModelError,
                                  ServingConfigError, SignatureError, TfwarmError,
                                  WarmupFileError)
from tfwarm_export.planning.records import WarmupPlan
from tfwarm_export.report import CheckReport, WarmupReport
from tfwarm_export.saving import export, save
from tfwarm_export.model.signatures import read_signatures

__version__ = "0.1.0"

__all__ = [
    "add_warmup", "plan", "check", "build_logs", "read_signatures", "save", "export",
    "WarmupConfig", "WarmupPlan", "WarmupReport", "CheckReport", "Domain",
    "BatchingConfig", "load_batching_parameters", "parse_batching_parameters",
    "TfwarmError", "SavedModelError", "SignatureError", "BatchingError", "PlanError",
    "DatasetError", "WarmupFileError", "ReplayError", "ConfigKeyError", "ModelConfigError",
    "OpLibraryError", "ServingConfigError", "OptionError",
]


LAZY_SUBMODULES = ("keras", "components", "beam")
"""Integration modules reachable as attributes (``tfwarm_export.keras``), imported on
first use: they pull in Keras/KFP/Apache Beam, which the CLI and most callers never need."""


def __getattr__(name: str):
    if name == "WarmupExport":
        from tfwarm_export.keras import WarmupExport

        return WarmupExport
    if name in LAZY_SUBMODULES:
        return importlib.import_module(f"tfwarm_export.{name}")
    raise AttributeError(f"module 'tfwarm_export' has no attribute {name!r}")
