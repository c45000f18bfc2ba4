"""tfwarm_export: ship every SavedModel with a correct TF Serving warmup file."""
__version__ = "0.1.0"
