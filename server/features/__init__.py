"""The language server's features, one small module each; `register(server)` plugs one in."""
