"""``python -m ppgen``: the ``ppgen`` command line (see :mod:`ppgen.cli`)."""

import sys

if __name__ == "__main__":
    try:
        from ppgen.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the command line itself is imported, before main() handles it
        print("ppgen: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
