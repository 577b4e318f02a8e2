"""`python -m unitune` runs the command line."""

import sys

from unitune.cli import main

sys.exit(main())
