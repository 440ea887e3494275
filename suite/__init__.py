"""Shared machinery of the AAO reproducibility suite: data, models, the training engine and entry points."""
