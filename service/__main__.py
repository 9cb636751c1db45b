"""``python -m service [flags]`` serves, like ``bertserve serve``; subcommands work too."""

import sys

from service.cli import main

_COMMANDS = {"serve", "models", "-h", "--help"}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in _COMMANDS:
        argv = ["serve", *argv]
    sys.exit(main(argv))
