"""TF Serving's rules: batching, server config, requests, the warmup file, replay and check."""
