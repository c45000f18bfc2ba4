"""The TF Serving APIs a warmup record (or a logged request) goes through, by the names this package uses.

The plan picks one per signature, ``planning/requests.py`` builds its request, and
traffic readers, request classes and coverage compare them; a leaf, so all can.
"""

PREDICT, CLASSIFY, REGRESS, MULTI_INFERENCE = "predict", "classify", "regress", "multi_inference"

LOG_TYPES = {"predict_log": PREDICT, "classify_log": CLASSIFY, "regress_log": REGRESS,
             "multi_inference_log": MULTI_INFERENCE}
"""PredictionLog ``log_type`` -> the request type traffic readers name."""
