"""The warmup plan: one record per (signature, batch size, shape), with strict option keys."""
