"""Training: heuristics, LightGBM models, metrics, training sets, tracking and the registry."""
