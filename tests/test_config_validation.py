"""``WarmupConfig`` refuses bad values and contradicting pairs when it is built (issue 25):
one place, one error type (``OptionError``, a ``PlanError``: CLI exit 2), before any scan."""
from __future__ import annotations

import dataclasses

import pytest

import tfwarm_export as tw
from tfwarm_export.config import WarmupConfig
from tfwarm_export.errors import OptionError


@pytest.mark.parametrize("options, message", [
    (dict(privacy="everything"), "privacy must be 'rows' or 'shapes_only'"),
    (dict(iterations=0), "iterations must be >= 1"),
    (dict(max_buckets=0), "max_buckets must be an integer >= 1"),
    (dict(dataset_sample_size=0), "dataset_sample_size must be an integer >= 1"),
    (dict(max_buckets=2, bucket_quantiles=[0.2, 0.5, 0.8]), "more than max_buckets=2"),
    (dict(load_budget="soon"), "is not a duration"),
    (dict(load_budget="30s", replay=False), "cannot be used with replay=False"),
    (dict(beam_args=["project=p"]), r"runner= \(CLI --runner\) is not set"),
    (dict(tags=()), "tags must be a non-empty list"),
])
def test_bad_values_and_contradicting_pairs_are_refused_when_built(options, message):
    with pytest.raises(OptionError, match=message):
        WarmupConfig(**options)
    with pytest.raises(tw.PlanError, match=message):  # replace() validates too
        WarmupConfig().replace(**options)


def test_valid_options_build_and_every_field_is_typed():
    config = WarmupConfig(load_budget="2m", runner="DirectRunner", beam_args=["direct_num_workers=2"])
    assert config.load_budget_s == 120.0 and WarmupConfig().load_budget_s is None
    hints = {f.name: str(f.type) for f in dataclasses.fields(WarmupConfig)}
    assert not [name for name, hint in hints.items() if hint == "Any"], hints
