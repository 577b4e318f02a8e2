"""Adapters proper: the registry of named adapter folders in two stores, each adapter's card, archives,
atomic writes and verification; file names, keys and method names in one place (`constants`)."""
