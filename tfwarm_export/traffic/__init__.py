"""Warm from data users already have: datasets, request logs, earlier warmup files."""
