"""``python -m ncf``: the command line (see :mod:`ncf.cli`)."""

import sys

from ncf.cli import main

sys.exit(main())
