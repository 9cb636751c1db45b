"""bertserve HTTP service: routes and schemas -> engine -> model runtimes."""

__version__ = "0.1.0"
