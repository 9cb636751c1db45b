"""Model side of bertserve: loading, tokenization, pooling, runtimes and the compression pipeline.

Nothing in this package imports FastAPI: the service layer depends on it, never the reverse.
"""
