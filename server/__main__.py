"""`python -m unitune.server`: start the language server on stdio."""

import sys

from unitune.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
