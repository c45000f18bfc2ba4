"""Values for each input: synthetic tensors, tf.Examples, encoded strings, composites."""
