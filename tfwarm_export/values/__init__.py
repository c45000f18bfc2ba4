"""Values for each input: synthetic tensors, tf.Examples, encoded strings, composites.

The encoder modules register one encoder per encoding type on import
(``encoder_registry.py``); importing them here completes that table before any
value is drawn, whichever module of this package is imported first.
"""
from tfwarm_export.values import byte_encoders, encoders, examples, regex_strings  # noqa: F401 - they register
