"""The command line's subcommands, one module each; `unitune.cli` reaches each lazily, so `unitune
--help` and `unitune focal` start without torch."""
