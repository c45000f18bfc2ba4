"""Warm from data users already have: datasets, REST JSON bodies, request logs and
earlier warmup files.

``readers/`` holds one module per source; ``rows`` matches data to a signature;
``validate`` checks a logged request against the new export; ``stats`` learns
sizes and value ranges; ``select`` keeps rows (bottom-k per stratum) and builds
batches; ``combine`` is the one combiner over logged traffic, local and Beam;
``privacy`` synthesises from stats for ``shapes_only``; ``sample`` runs a scan in
this process.
"""
from tfwarm_export.traffic.readers.files import TrafficFile, describe_sources, traffic_files
from tfwarm_export.traffic.sample import (check_selection, previous_version_file, read_elements,
                                          traffic_plan,
                                          sample_dataset, sample_traffic, traffic_spec)
from tfwarm_export.traffic.combine import SelectionCombiner, TrafficSelection, to_element
from tfwarm_export.traffic.hashing import row_hashes
from tfwarm_export.traffic.select import DEFAULT_K, DataSample, Stratum
from tfwarm_export.traffic.stats import ExampleStats, FeatureStats, ValueStats, choose_buckets
from tfwarm_export.traffic.validate import TrafficSpec

__all__ = ["DEFAULT_K", "DataSample", "ExampleStats", "FeatureStats", "SelectionCombiner", "Stratum",
           "TrafficFile", "TrafficSelection", "TrafficSpec", "ValueStats", "check_selection",
           "choose_buckets", "describe_sources", "previous_version_file", "read_elements",
           "row_hashes", "sample_dataset", "sample_traffic", "traffic_files", "traffic_plan",
           "to_element", "traffic_spec"]
