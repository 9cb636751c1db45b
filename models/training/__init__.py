"""The offline pipeline: datasets, fine-tuning and distillation, the compression recipes (quantize, prune,
distill), evaluation and the report, and the ``bertserve models`` CLI. Runs on a workstation or in an
image build, never on the request path; imports :mod:`models.runtime`, never the reverse.
"""
