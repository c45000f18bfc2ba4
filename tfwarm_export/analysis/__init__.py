"""Static analysis of a SavedModel graph, one module per input kind over one GraphIndex."""
