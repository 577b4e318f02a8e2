"""Files shipped inside the installed package, found where the install put them.

The source tree maps its folders to other import names (`adapters/` is `unitune.adapters`), so a path
built from one module's `__file__` to another folder holds only in the source tree; `importlib.resources`
asks the import system where a package's files are, in an editable install and in a wheel alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: Models shipped inside the package (`unitune/models/NAME`), by the name the `model` setting uses.
BUNDLED_MODELS_DIR = Path(str(files("unitune") / "models"))
