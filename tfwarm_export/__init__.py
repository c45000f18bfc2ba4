"""tfwarm_export: ship every SavedModel with a correct TF Serving warmup file.

    import tfwarm_export
    report = tfwarm_export.add_warmup("export/1", batch_sizes=[1, 8, 32])
    print(report.summary())
"""
from tfwarm_export.api import add_warmup, build_logs, check, plan
from tfwarm_export.batching import BatchingConfig, load_batching_parameters, parse_batching_parameters
from tfwarm_export.config import WarmupConfig
from tfwarm_export.domains import Domain
from tfwarm_export.errors import (BatchingError, DatasetError, OpLibraryError, PlanError, ReplayError,
                                  SavedModelError, SignatureError, TfwarmError, WarmupFileError)
from tfwarm_export.plan import WarmupPlan
from tfwarm_export.report import CheckReport, WarmupReport
from tfwarm_export.saving import export, save
from tfwarm_export.signatures import read_signatures

__version__ = "0.1.0"

__all__ = [
    "add_warmup", "plan", "check", "build_logs", "read_signatures", "save", "export",
    "WarmupConfig", "WarmupPlan", "WarmupReport", "CheckReport", "Domain",
    "BatchingConfig", "load_batching_parameters", "parse_batching_parameters",
    "TfwarmError", "SavedModelError", "SignatureError", "BatchingError", "PlanError",
    "DatasetError", "WarmupFileError", "ReplayError", "OpLibraryError",
]


def __getattr__(name: str):
    # Lazy: importing Keras (for the callback) is slow and not needed by the CLI.
    if name == "WarmupExport":
        from tfwarm_export.keras import WarmupExport

        return WarmupExport
    raise AttributeError(f"module 'tfwarm_export' has no attribute {name!r}")
