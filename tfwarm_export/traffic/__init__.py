"""Warm from data users already have.

``readers/`` holds one module per source; ``rows`` matches data to a signature;
``stats`` learns sizes and value ranges; ``select`` keeps rows and builds batches;
``privacy`` synthesises from stats for ``shapes_only``; ``sample`` runs a scan.
"""
from tfwarm_export.traffic.sample import sample_dataset
from tfwarm_export.traffic.select import DEFAULT_K, DataSample, Stratum, row_hashes
from tfwarm_export.traffic.stats import (
           ExampleStats,
           FeatureStats,
           ValueStats,
           choose_buckets,
)

__all__ = ["DEFAULT_K", "DataSample", "ExampleStats", "FeatureStats", "Stratum", "ValueStats",
           "choose_buckets", "row_hashes", "sample_dataset"]
