"""unitune's language server (`unitune serve`, `python -m unitune.server`)."""
