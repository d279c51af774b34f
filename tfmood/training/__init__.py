"""Training: configuration, distribution strategy, callbacks and the `fit()`-based trainer."""
