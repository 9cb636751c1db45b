"""The compression pipeline: build smaller, faster variants of an encoder and measure what they cost.

Recipes (each writes a variant folder that the service loads like any model):
:mod:`~models.compress.quantize` (int8 ONNX for CPU, float16/bfloat16 for GPU),
:mod:`~models.compress.prune` (attention heads and FFN neurons, or unstructured magnitude),
:mod:`~models.compress.distill` (fewer layers). :mod:`~models.compress.evaluate` measures quality and
speed against the base in one run; :mod:`~models.compress.report` tabulates and plots every variant.
"""
