"""TF Serving's fixed limits that several layers check (the plan, ``check``, the XLA classes)."""

MAX_RECORDS = 1000
"""TF Serving's limit on records in one warmup file (record 1001 fails the load)."""
