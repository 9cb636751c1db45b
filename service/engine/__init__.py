"""Engine layer: per-model tokenization, batching and inference off the event loop."""
