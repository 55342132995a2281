"""``python -m mlipdrive.bench ...``: the same as ``mlipdrive bench ...``."""

import sys

from mlipdrive.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
