"""Shared types every layer may use; this package imports nothing else from tfwarm_export."""
