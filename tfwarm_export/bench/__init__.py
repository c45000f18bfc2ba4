"""``tfwarm bench``: cold/warm first-request latency per planned record, measured in fresh processes."""
