"""``python -m ppgen``: the ``ppgen`` command line (see :mod:`ppgen.cli`)."""

import sys

from ppgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
