"""The serving runtime: everything the server needs to turn a model folder into rows.

Imported by ``service``; imports neither :mod:`models.training` nor ``service`` (import-linter checks it).
"""
