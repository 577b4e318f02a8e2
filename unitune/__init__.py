"""unitune: unit tests for the function under your cursor, from a local code model tuned on your repository.

The top-level package holds what every part shares: tree-sitter parsing and focal-method extraction
(`unitune.focal`), context rendering (`unitune.context`), function/test listing (`unitune.listing`),
the prompt format (`unitune.prompt`), test-file placement (`unitune.placement`) and the command line
(`unitune.cli`). Nothing here imports torch.
"""

__version__ = "0.1.0"
