"""Model side of bertserve, in two halves that import one way.

- :mod:`models.runtime`: what the server runs (model folders, tokenization, backends, int8 at load time,
  drift at start-up, built-in model names). Imports neither :mod:`models.training` nor ``service``.
- :mod:`models.training`: the offline pipeline (datasets, fine-tune and distillation loops, prune /
  quantize / distill recipes, evaluate, report, the ``bertserve models`` CLI). Imports the runtime.

Nothing in this package imports FastAPI: the service layer depends on it, never the reverse.
"""
